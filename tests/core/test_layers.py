"""The layering a reader can see (docs/architecture.md), checked on the source itself.

Every `import` statement of the project counts, wherever it stands: at the top of a module,
inside a function, or under `if TYPE_CHECKING:`. A function-local import is no way around
a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "runners", "policies", "demo", "infra", "grafana_dashboards", "loadbearing", "bench")
GROUND_FLOOR = "core"
TOP = "loadbearing"  # the CLI, the composition root


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an imported name lives in (a package's `__init__` for a package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported project module, line) for every import statement in `path`."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            found = _resolve(target)
            if found is not None and found != module:
                yield found, node.lineno


GRAPH: dict[str, dict[str, int]] = {m: dict(_imports(m, p)) for m, p in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _where(a: str, b: str) -> str:
    return f"{MODULES[a].relative_to(ROOT)}:{GRAPH[a][b]} imports {b}"


def test_the_walk_sees_the_project() -> None:
    assert {"core.rundir", "runners.controller", "policies.recommend", "loadbearing.cli"} <= set(MODULES)
    assert "core.rundir" in GRAPH["runners.controller"]
    assert "runners.backends.process" in GRAPH["runners.backends.registry"]  # a function-local import counts


def test_no_module_imports_itself_back() -> None:
    cycles = _cycles({m: set(targets) for m, targets in GRAPH.items()})
    detail = [" -> ".join(c) + "\n    " + "\n    ".join(_where(a, b) for a in c for b in GRAPH[a] if b in c)
              for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(detail)


def test_no_package_imports_itself_back() -> None:
    packages: dict[str, set[str]] = {}
    for a, targets in GRAPH.items():
        for b in targets:
            pa, pb = a.split(".")[0], b.split(".")[0]
            if pa != pb:
                packages.setdefault(pa, set()).add(pb)
    assert _cycles(packages) == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.split(".")[0] == GROUND_FLOOR))
def test_the_ground_floor_imports_nothing_above_it(module: str) -> None:
    upward = [_where(module, b) for b in GRAPH[module] if b.split(".")[0] != GROUND_FLOOR]
    assert upward == []


def test_nothing_imports_the_cli() -> None:
    users = [_where(a, b) for a, targets in GRAPH.items() if a.split(".")[0] != TOP
             for b in targets if b.split(".")[0] == TOP]
    assert users == []


def test_a_cycle_is_found() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
