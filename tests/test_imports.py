"""The tree's import graph: no circle between the project's modules, nothing outside tests/ imports from tests/,
and the public test doubles stay off the library's import path."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO
from tests.test_boundaries import gateway_endpoints, python_files


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every Python file git knows (tracked or not ignored)."""
    modules = {}
    for path in python_files():
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import that runs (at import time or in a function); those under `if TYPE_CHECKING:` never do."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in _runtime_imports(ast.Module([child], [])))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _runtime_imports(node)


def imported_modules(module: str, source: str, known: set[str], package: bool) -> set[str]:
    """The project modules `module` imports: `from X import a` reaches X.a when that is a module, else X."""
    found = set()
    for node in _runtime_imports(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
            continue
        base = node.module or ""
        if node.level:
            anchor = module.split(".") if package else module.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            target = f"{base}.{alias.name}"
            if target in known:
                found.add(target)
            elif base in known:
                found.add(base)
    found.discard(module)
    return found


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {
        name: imported_modules(name, path.read_text(), known, path.name == "__init__.py")
        for name, path in modules.items()
    }


def test_no_import_circle_between_the_project_modules() -> None:
    graph = import_graph()
    assert {"guard_client", "guard_gateway", "bench", "loadtest", "reliability", "deploy"} <= set(graph)
    assert import_circles(graph) == []


def test_the_walk_finds_a_circle_through_a_lazy_import() -> None:
    known = {"pkg", "pkg.a", "pkg.b", "pkg.c"}
    graph = {
        "pkg.a": imported_modules("pkg.a", "from pkg.b import X\n", known, False),
        "pkg.b": imported_modules("pkg.b", "def f():\n    from . import a\n", known, False),
        "pkg.c": imported_modules(
            "pkg.c", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import Y\n", known, False
        ),
    }
    assert graph["pkg.c"] == set()
    assert import_circles(graph) == [["pkg.a", "pkg.b"]]


def test_nothing_outside_tests_imports_from_tests() -> None:
    offenders = sorted(
        f"{name} -> {target}"
        for name, targets in import_graph().items()
        if not name.startswith("tests")
        for target in targets
        if target == "tests" or target.startswith("tests.")
    )
    assert offenders == []


def endpoint_of(module: str, endpoints: set[str]) -> str | None:
    """The gateway endpoint package `module` belongs to, if any."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "guard_gateway" and parts[1] in endpoints else None


def test_no_gateway_endpoint_imports_another() -> None:
    endpoints = set(gateway_endpoints())
    assert {"chat", "checks", "litellm", "moderations"} <= endpoints
    offenders = sorted(
        f"{name} -> {target}"
        for name, targets in import_graph().items()
        if (own := endpoint_of(name, endpoints))
        for target in targets
        if endpoint_of(target, endpoints) not in (None, own)
    )
    assert offenders == []
    assert endpoint_of("guard_gateway.checks.serving", endpoints) == "checks"
    assert endpoint_of("guard_gateway.policy", endpoints) is None


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout


def test_the_test_doubles_are_imported_on_demand() -> None:
    code = (
        "import sys, guard_client, guard_gateway\n"
        "print(sorted(m for m in ('guard_client.testing', 'guard_gateway.testing') if m in sys.modules))"
    )
    assert _run(code).strip() == "[]"


def test_the_guard_double_needs_no_server_dependency() -> None:
    code = (
        "import sys, guard_client.testing\n"
        "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'vllm', 'torch') if m in sys.modules))"
    )
    assert _run(code).strip() == "[]"
