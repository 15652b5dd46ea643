"""Packages talk through public APIs, and the client library stays thin."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, repository_files

#: Only the library itself and its own white-box tests may reach its private modules.
PRIVATE_ALLOWED = ("guard_client/", "tests/client/")


def python_files() -> list[Path]:
    return repository_files("*.py")


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
        # yaml: only reading a policy file needs it; openai: only the gateway's moderation shape; pyarrow,
        # matplotlib: only the applications' Parquet and charts; filelock: only a batch run's lock; fcntl: POSIX
        # only (asyncio's import loads it through subprocess, so the async client imports asyncio when used).
        "heavy = ('vllm', 'torch', 'transformers', 'fastapi', 'starlette', 'uvicorn', 'yaml', 'openai', 'pyarrow',"
        " 'matplotlib', 'filelock', 'fcntl', 'guard_screen', 'guard_eval', 'guard_gateway')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


#: Modules that exist on one platform only: the library never needs one to import.
PLATFORM_ONLY = {"fcntl", "msvcrt", "termios", "resource", "pwd", "grp", "winreg"}


def module_level_imports(source: str) -> set[str]:
    """Top-level module names imported at a module's top level (not inside functions)."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_the_client_library_imports_nothing_platform_specific_at_import_time() -> None:
    library = [path for path in python_files() if str(path.relative_to(REPO)).startswith("guard_client/")]
    assert len(library) > 10
    offenders = {
        str(path.relative_to(REPO)): sorted(module_level_imports(path.read_text()) & PLATFORM_ONLY) for path in library
    }
    assert {name: found for name, found in offenders.items() if found} == {}
    assert module_level_imports("import fcntl\nfrom resource import setrlimit\ndef f():\n    import msvcrt\n") == {
        "fcntl",
        "resource",
    }


#: What only serving HTTP needs: the gateway's routers, middleware and server.
WEB_STACK = ("fastapi", "starlette", "uvicorn")


def loaded_by(modules: list[str], candidates: tuple[str, ...]) -> list[str]:
    """Which of `candidates` (top-level packages) importing `modules` in a fresh interpreter loads."""
    code = f"import sys, {', '.join(modules)}\nprint(','.join(sorted(m for m in {candidates!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return [name for name in out.stdout.strip().split(",") if name]


def test_the_gateway_settings_import_without_the_web_stack() -> None:
    assert loaded_by(["guard_gateway.config"], (*WEB_STACK, "prometheus_client")) == []


def test_the_chart_generator_imports_without_the_web_stack() -> None:
    # It reads the gateway's settings and deploy's profiles only: rendering the chart needs no server.
    assert loaded_by(["tools.helm_render"], WEB_STACK) == []


def gateway_endpoints() -> list[str]:
    """The gateway's endpoint packages (as vLLM's entrypoints: `protocol`, `serving`, `api_router`)."""
    return sorted(path.parent.name for path in (REPO / "guard_gateway").glob("*/api_router.py"))


def test_every_endpoint_serving_layer_imports_without_the_web_stack() -> None:
    # Serving returns results or async iterators; only the endpoint's router builds HTTP responses.
    endpoints = gateway_endpoints()
    assert {"chat", "checks", "litellm", "moderations"} <= set(endpoints)
    assert loaded_by([f"guard_gateway.{name}.serving" for name in endpoints], WEB_STACK) == []


def test_the_loader_sees_the_web_stack() -> None:
    assert {"fastapi", "starlette"} <= set(loaded_by(["guard_gateway.chat.api_router"], WEB_STACK))
