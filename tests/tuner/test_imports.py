"""How the modules import each other: no cycles (tuner and trainer), imports at the top, cheap start-up.

The graph is read from the source (every ``import`` statement, at module level or inside a
function). The tuner's leaves out those under ``if TYPE_CHECKING:``, which never run; the
trainer's counts them too, since a circle through type hints is still a circle for a reader.
A cycle is a failure, even one hidden inside a function; an import inside a tuner function must
say why it is there (a comment with "lazy" on its line or just above it). The trainer's
subpackages are layered: each imports only those below it (``TRAINER_LAYERS``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import trainer
import tuner

PACKAGE = Path(tuner.__file__).resolve().parent
TRAINER = Path(trainer.__file__).resolve().parent


def _modules(folder: Path) -> dict[str, Path]:
    """Return {dotted name: file} of every module of the package in ``folder``, subpackages included."""
    found = {}
    for path in folder.rglob("*.py"):
        parts = path.relative_to(folder.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


FILES = {**_modules(PACKAGE), **_modules(TRAINER)}
MODULES = sorted(name for name in FILES if name.startswith("tuner"))
TRAINER_MODULES = sorted(name for name in FILES if name.startswith("trainer"))


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.Module, type_hints: bool = False) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Return (import statement, at module level?) for every import that runs, in source order.

    With ``type_hints`` those under ``if TYPE_CHECKING:`` count too (as module-level ones).
    """
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child) and not type_hints:
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, top))
            inside = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
            visit(child, inside)

    visit(tree, True)
    return found


def _targets(node: ast.Import | ast.ImportFrom, modules: list[str]) -> set[str]:
    """Return the modules of ``modules`` (one package's) an import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    return {name for name in names if name in modules}


def _graph(modules: list[str] = MODULES, type_hints: bool = False) -> dict[str, set[str]]:
    """Return {module: the modules of ``modules`` it imports}; ``type_hints``: TYPE_CHECKING imports count too."""
    graph = {}
    for module in modules:
        tree = ast.parse(FILES[module].read_text(encoding="utf-8"))
        graph[module] = set().union(*(_targets(node, modules) for node, _ in _imports(tree, type_hints))) - {module}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one cycle of ``graph`` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
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
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_between_tuner_modules() -> None:
    graph = _graph(type_hints=True)
    assert graph["tuner.study.studies"] and graph["tuner.cli"], graph  # the reader does see imports
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_type_hint_reader_sees_type_hint_imports() -> None:
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import trainer.config\n")
    assert [node.names[0].name for node, _ in _imports(tree, type_hints=True)][-1] == "trainer.config"
    assert all(node.module == "typing" for node, _ in _imports(tree) if isinstance(node, ast.ImportFrom))
    assert len(_imports(tree)) == 1


def test_no_import_cycle_between_trainer_modules() -> None:
    graph = _graph(TRAINER_MODULES, type_hints=True)
    assert graph["trainer.training.loop"], graph
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
    # The leaves everything may depend on depend on nothing of the trainer's but the error base.
    # (The architecture registry the config consults is trainer.model.registry; architectures.py,
    # which builds models, sits above the config.)
    for leaf in ("trainer.errors", "trainer.model.masks", "trainer.audio.format", "trainer.model.registry",
                 "trainer.presets"):
        assert graph[leaf] == set(), (leaf, graph[leaf])
    assert graph["trainer.evaluation.metric_registry"] <= {"trainer.errors"}


# The trainer's subpackages, lowest first: a module imports (type hints included) only modules of
# its own subpackage or of one listed before it. corpora (speech corpora for demos) sits on text
# and audio beside the pipeline.
TRAINER_LAYERS = ("audio", "text", "corpora", "data", "model", "evaluation", "synthesis", "training")
# Top-level modules: the foundation under every layer, and the entry points above them all.
TRAINER_FOUNDATION = ("trainer.errors", "trainer.fileio", "trainer.yamlio", "trainer.presets", "trainer.config")
TRAINER_ENTRY_POINTS = ("trainer", "trainer.cli", "trainer.console", "trainer.tracking")


def _layer(module: str) -> str | None:
    """Return the trainer subpackage ``module`` belongs to (None for a top-level module)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in TRAINER_LAYERS) else None


def test_trainer_subpackages_import_only_the_layers_below_them() -> None:
    graph = _graph(TRAINER_MODULES, type_hints=True)
    assert {_layer(m) for m in TRAINER_MODULES} - {None} == set(TRAINER_LAYERS), "a subpackage is missing its layer"
    assert set(TRAINER_MODULES) == {m for m in TRAINER_MODULES if _layer(m)} | set(TRAINER_FOUNDATION) | set(
        TRAINER_ENTRY_POINTS), "a top-level module is neither foundation nor entry point"
    upward = [f"{source} -> {target}" for source, targets in graph.items() for target in targets
              if _layer(source) and _layer(target)
              and TRAINER_LAYERS.index(_layer(target)) > TRAINER_LAYERS.index(_layer(source))]
    assert not upward, "imports of a higher layer:\n" + "\n".join(sorted(upward))
    # Nothing below the entry points imports them.
    up_to_entry = [f"{source} -> {target}" for source, targets in graph.items() for target in targets
                   if target in TRAINER_ENTRY_POINTS and source not in TRAINER_ENTRY_POINTS]
    assert not up_to_entry, up_to_entry
    # The foundation imports no layer, except that the config reads leaf declarations (symbol tables,
    # architecture names, metric names) to check its keys: modules that import nothing but the error base.
    for module in TRAINER_FOUNDATION:
        for target in graph[module]:
            declaration = module == "trainer.config" and graph[target] <= {"trainer.errors"}
            assert target in TRAINER_FOUNDATION or declaration, f"{module} -> {target}"


def test_the_layer_check_catches_an_upward_import() -> None:
    graph = {"trainer.data.dataset": {"trainer.training.state"}}
    assert [f"{s} -> {t}" for s, ts in graph.items() for t in ts
            if TRAINER_LAYERS.index(_layer(t) or "") > TRAINER_LAYERS.index(_layer(s) or "")] \
        == ["trainer.data.dataset -> trainer.training.state"]


# The tuner's subpackages, lowest first: the search-space files, the study storage, the fleet of
# workers (leases, how a trial ended), what people look at (MLflow, the dashboard), one trial
# (parent and child), the evidence a study gathers (paired comparisons, the confirmed winner), the
# commands, the command line. A module imports (type hints included) only its own layer and those
# below, and the base every layer may use: a reader who follows a request down never climbs back up.
TUNER_BASE = ("tuner.errors", "tuner.env", "tuner.paths", "tuner", "tuner.search_spaces")
TUNER_LAYERS = ("tuner.space", "tuner.study", "tuner.fleet", "tuner.tracking", "tuner.trial", "tuner.evidence",
                "tuner.commands", "tuner.cli")


def _tuner_layer(module: str) -> int | None:
    """Return the index of ``module``'s layer, None for the base (a module in neither raises StopIteration)."""
    if module in TUNER_BASE:
        return None
    return next(i for i, layer in enumerate(TUNER_LAYERS) if module == layer or module.startswith(layer + "."))


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """Return the imports of ``graph`` that climb from a tuner layer (or the base) to a higher one."""
    return sorted(f"{source} -> {target}" for source, targets in graph.items() for target in targets
                  if (there := _tuner_layer(target)) is not None
                  and ((here := _tuner_layer(source)) is None or there > here))


def test_tuner_subpackages_import_only_the_layers_below_them() -> None:
    assert all(module in TUNER_BASE or _tuner_layer(module) is not None for module in MODULES)
    upward = _upward(_graph(type_hints=True))
    assert not upward, "imports that climb back up a layer:\n" + "\n".join(upward)


def test_the_tuner_layer_check_catches_an_upward_import() -> None:
    assert _upward({"tuner.study.studies": {"tuner.trial.child", "tuner.space.spec"},
                    "tuner.errors": {"tuner.space.spec"}}) == ["tuner.errors -> tuner.space.spec",
                                                               "tuner.study.studies -> tuner.trial.child"]


def test_the_leaf_modules_import_no_other_tuner_module_but_errors_and_env() -> None:
    graph = _graph()
    for leaf in ("tuner.env", "tuner.errors", "tuner.study.urls"):
        assert graph[leaf] == set(), (leaf, graph[leaf])
    assert graph["tuner.space.samplers"] <= {"tuner.errors"}
    assert graph["tuner.space.yamlfile"] == set()


def test_every_import_inside_a_function_says_why() -> None:
    unexplained = []
    for module in MODULES:
        path = FILES[module]
        lines = path.read_text(encoding="utf-8").splitlines()
        for node, top in _imports(ast.parse("\n".join(lines))):
            if top:
                continue
            # The reason is on the import's line, or in a comment just above it (a block of imports may share one).
            index, explained = node.lineno - 1, False
            while index >= 0:
                text = lines[index].strip()
                if "lazy" in text and ("#" in text):
                    explained = True
                    break
                if index < node.lineno - 1 and text and not (text.startswith(("#", "import ", "from "))):
                    break
                index -= 1
            if not explained:
                unexplained.append(f"{path.name}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not unexplained, "imports inside functions without a 'lazy: why' comment:\n" + "\n".join(unexplained)


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_every_tuner_module_imports_in_a_fresh_interpreter() -> None:
    loaded = _loaded_after("import importlib\n" + "\n".join(f"importlib.import_module({m!r})" for m in MODULES))
    assert set(MODULES) <= loaded


def test_start_up_stays_cheap() -> None:
    # The trial child (python -m tuner.trial.child) loads optuna, torch and the trainer inside run(),
    # after taking its process_start_s; `tuner --help`, status, best and metrics never load torch or MLflow.
    worker = _loaded_after("import tuner.trial.child")
    assert not {"optuna", "torch", "mlflow", "sqlalchemy", "matplotlib"} & worker
    cli = _loaded_after("import tuner.cli")
    assert not {"torch", "mlflow", "matplotlib", "optuna_dashboard"} & cli
    # run-study's parent: MLflow only when tracking starts; matplotlib (which writes a font cache under
    # $HOME when first imported) only in the trial child and the demo's base build.
    driver = _loaded_after("import tuner.commands.run_study")
    assert not {"mlflow", "matplotlib", "optuna_dashboard"} & driver
