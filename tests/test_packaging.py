"""The wheel holds the products only: the repository's tools stay in the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO

PRODUCTS = {"guard_client", "guard_eval", "guard_gateway"}
REPOSITORY_TOOLS = {"bench", "deploy", "loadtest", "reliability", "tests"}


def test_the_wheel_installs_the_products_and_none_of_the_repository_tools(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "."],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == PRODUCTS
    assert not top_level & REPOSITORY_TOOLS
