"""Packages talk through public APIs, and the client library stays thin."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

#: Only the library itself and its own white-box tests may reach its private modules.
PRIVATE_ALLOWED = ("guard_client/", "tests/client/")


def python_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [REPO / name for name in listed if (REPO / name).is_file()]


def private_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import that reaches a private module of guard_client."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        # `guard_client.__main__` is the CLI's public entry point (the `guard` script), not a private module.
        found += [
            (node.lineno, name)
            for name in names
            if name.startswith("guard_client._") and not name.startswith("guard_client.__main__")
        ]
    return found


def test_nothing_outside_guard_client_imports_its_private_modules() -> None:
    files = [p for p in python_files() if not str(p.relative_to(REPO)).startswith(PRIVATE_ALLOWED)]
    assert len(files) > 20  # the scan sees the project
    offenders = [
        f"{path.relative_to(REPO)}:{line} {name}" for path in files for line, name in private_imports(path.read_text())
    ]
    assert offenders == []


def test_the_scan_catches_a_private_import() -> None:
    sample = (
        "from guard_client._flows import Request\nimport guard_client._input\nfrom guard_client import X\n"
        "from guard_client.__main__ import main\n"
    )
    assert [name for _, name in private_imports(sample)] == [
        "guard_client._flows",
        "guard_client._flows.Request",
        "guard_client._input",
    ]


def test_the_client_library_imports_no_server_or_model_dependencies() -> None:
    code = (
        "import sys, guard_client\n"
        # yaml: only reading a policy file needs it.
        "heavy = ('vllm', 'torch', 'transformers', 'fastapi', 'uvicorn', 'yaml')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
