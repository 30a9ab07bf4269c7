"""The package's shape: rooms that follow the pipeline, no import cycles, and no code outside a
component that tests a component's name (the catalogue entry carries the fact instead)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "evalgrid"
# The pipeline, in order, and the component rooms; errors.py and _version.py are shared by all of them.
ROOMS = {"grid", "catalogue", "launch", "executors", "evaluation", "fl", "store", "tables", "report", "cli",
         "attacks", "defenses", "priors", "models", "data", "metrics"}
ROOT_MODULES = {"__init__.py", "__main__.py", "_version.py", "errors.py"}
COMPONENT_ROOMS = ("attacks", "defenses", "priors", "models", "data", "fl", "metrics")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The evalgrid modules ``module`` imports, at module level or inside functions."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join([*package[:len(package) - node.level + 1], *([node.module] if node.module else [])]
                            ) if node.level else node.module or ""
            # ``from package import module`` names the module; ``from module import name``, the module
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in graph:
        if node not in index:
            visit(node)
    return groups


def test_no_module_imports_itself_through_others():
    known = _modules()
    graph = {module: _imports(module, path, known) for module, path in known.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_lives_in_a_room_of_the_pipeline():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ROOT_MODULES)
    rooms = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert loose == [] and set(rooms) == ROOMS


def test_no_code_outside_a_component_compares_with_a_component_name():
    from evalgrid.catalogue import REGISTRIES

    names = {name for registry in REGISTRIES.values() for name in registry}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] in COMPONENT_ROOMS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            constants = [o.value for o in operands if isinstance(o, ast.Constant)]
            constants += [e.value for o in operands if isinstance(o, (ast.Tuple, ast.List, ast.Set))
                          for e in o.elts if isinstance(e, ast.Constant)]
            if any(isinstance(c, str) and c in names for c in constants):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []
