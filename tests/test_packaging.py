"""The wheel holds the products only: the repository's tools stay in the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO, repository_files

PRODUCTS = {"guard_client", "guard_eval", "guard_gateway", "guard_screen", "guard_tune"}
REPOSITORY_TOOLS = {"bench", "deploy", "loadtest", "reliability", "tests", "tools"}


def test_the_wheel_installs_the_products_and_none_of_the_repository_tools(tmp_path: Path) -> None:
    # Built from a copy of the files git sees, so setuptools' build/ and egg-info land in tmp_path, not the checkout.
    source = tmp_path / "source"
    for path in repository_files():
        (source / path.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, source / path.relative_to(REPO))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), "."],
        cwd=source,
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == PRODUCTS
    assert not top_level & REPOSITORY_TOOLS
