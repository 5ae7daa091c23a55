"""No import cycle among the project's own modules (src/, the layer, bench/).

Read from the source with ``ast``: every import counts, at module level or inside a function
(a lazy import only hides a cycle from the interpreter; the two modules still cannot be
understood, tested or moved apart). ``if TYPE_CHECKING:`` imports count too: they couple the
modules as much for a reader. Imports of other packages (boto3, moto, ...) are not followed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
# (where module names start, the folder of modules under it)
ROOTS = (
    (PROJECT / "src", PROJECT / "src"),
    (PROJECT / "layers" / "shared", PROJECT / "layers" / "shared" / "videodb_retry"),
    (PROJECT, PROJECT / "bench"),
)

Graph = dict[str, set[str]]


def project_modules() -> dict[str, Path]:
    """Every module of the project by dotted name (a package by its own name)."""
    modules: dict[str, Path] = {}
    for base, folder in ROOTS:
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imported_names(module: str, path: Path) -> Iterable[str]:
    """Each name an import in ``module`` could mean: ``from a import b`` gives ``a.b`` then ``a``."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            origin = _absolute(module, is_package, node.level, node.module)
            yield from (f"{origin}.{alias.name}" if origin else alias.name for alias in node.names)
            if origin:
                yield origin


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of a (possibly relative) ``from`` import's module."""
    if level == 0:
        return name or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    anchor = package[: len(package) - (level - 1)]
    return ".".join([*anchor, *([name] if name else [])])


def import_graph(modules: dict[str, Path]) -> Graph:
    """Which project modules each project module imports."""
    graph: Graph = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(module, path):
            # `import a.b.c` needs a.b.c; the nearest enclosing project module is what it means.
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle (``[a, b, a]``) for each group of modules that import each other."""
    found: list[list[str]] = []
    for group in _strongly_connected(graph):
        if len(group) > 1:
            found.append(_cycle_in(graph, group))
    return found


def _strongly_connected(graph: Graph) -> list[set[str]]:
    # Tarjan's algorithm, iterative: a deep import chain must not hit the recursion limit.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            step = next(successors, None)
            if step is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    groups.append(group)
            elif step not in index:
                index[step] = low[step] = len(index)
                stack.append(step)
                on_stack.add(step)
                work.append((step, iter(sorted(graph[step]))))
            elif step in on_stack:
                low[node] = min(low[node], index[step])
    return groups


def _cycle_in(graph: Graph, group: set[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for step in sorted(graph[node] & group):
                if step == start:
                    return [*paths[node], start]
                if step not in paths:
                    paths[step] = [*paths[node], step]
                    following.append(step)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")  # not reached: it is an SCC


def test_the_project_has_no_import_cycle() -> None:
    found = cycles(import_graph(project_modules()))
    assert not found, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_the_check_finds_a_cycle_even_through_a_lazy_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "first.py").write_text("from pkg.second import helper\n")
    (package / "second.py").write_text("def helper():\n    from . import first\n")
    (package / "third.py").write_text("import pkg.first\n")
    modules = {
        "pkg": package / "__init__.py",
        **{f"pkg.{name}": package / f"{name}.py" for name in ("first", "second", "third")},
    }
    assert cycles(import_graph(modules)) == [["pkg.first", "pkg.second", "pkg.first"]]


def test_the_graph_reaches_every_root() -> None:
    modules = project_modules()
    assert {"videodb_retry_local.sandbox", "videodb_retry.messages", "bench.common"} <= set(modules)
    graph = import_graph(modules)
    assert "videodb_retry_local.network_guard" in graph["bench.common"]
