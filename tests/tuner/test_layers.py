"""The tuner's subpackages are layers: each imports only its own layer and those below, type hints included.

From the bottom: the search-space files, the study storage, the fleet of workers (leases, how a
trial ended), what people look at (MLflow, the dashboard), one trial (parent and child), the
evidence a study gathers (paired comparisons, the confirmed winner), the commands, the command line.
``errors``, ``env`` and ``paths`` are the base every layer may use.
A reader who follows a request down never has to climb back up.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tuner

PACKAGE = Path(tuner.__file__).resolve().parent
BASE = ("tuner.errors", "tuner.env", "tuner.paths", "tuner", "tuner.search_spaces")
LAYERS = ("tuner.space", "tuner.study", "tuner.fleet", "tuner.tracking", "tuner.trial", "tuner.evidence",
          "tuner.commands", "tuner.cli")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported(path: Path, modules: dict[str, Path]) -> set[str]:
    """Return the tuner modules ``path`` imports anywhere (functions and ``if TYPE_CHECKING:`` included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                         for a in node.names)
    return {name for name in found if name in modules}


def _layer(module: str) -> int | None:
    """Return the index of ``module``'s layer, None for the base."""
    if module in BASE:
        return None
    return next(i for i, layer in enumerate(LAYERS) if module == layer or module.startswith(layer + "."))


def test_every_module_is_in_a_layer_or_the_base() -> None:
    for module in _modules():
        assert module in BASE or _layer(module) is not None, module


def test_no_module_imports_a_higher_layer() -> None:
    modules = _modules()
    upward = []
    for module, path in modules.items():
        here = _layer(module)
        for target in _imported(path, modules):
            there = _layer(target)
            if there is not None and (here is None or there > here):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that climb back up a layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycle_type_hints_included() -> None:
    modules = _modules()
    graph = {m: _imported(p, modules) - {m} for m, p in modules.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))
