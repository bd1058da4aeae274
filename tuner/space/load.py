"""Search-space files: YAML -> validated ``SearchSpace`` -> Optuna distributions and trainer configs.

A space file has four top-level keys (see ``search_spaces/README.md`` for the full format):

``study``
    name, objective, sampler, pruner, n_trials, max_steps (per-trial step budget),
    quality gates, fine_tune / warm_start, trial_timeout, stall_timeout, samples, max_retries,
    max_consecutive_failures.
``preset``
    the trainer preset the trials start from (``tiny`` or ``base``).
``fixed``
    TrainConfig keys every trial gets (validated by the trainer's own ``config_from_dict``).
``params``
    the searched parameters. A parameter sets the TrainConfig key of its own name, or
    the keys listed in ``targets`` (``dropout: {targets: [prenet_dropout]}``).

Everything is checked before anything is written: a problem raises ``SpaceError`` with
``file:line: key.path: problem`` (the line comes from the YAML parser's nodes, ``tuner.space.yamlfile``;
numbers read as in the trainer's config files, so ``1e-4`` is a float). Objective and gate
metrics must be declared in ``trainer.evaluation.metric_registry``, which also gives an objective's
default direction and the range a gate's bounds must fall in.
"""

from __future__ import annotations

import inspect
import re
import warnings
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.config import CONFIG_KEYS, PRESETS, TrainConfig, preset
from trainer.errors import ConfigError
from trainer.evaluation import metric_registry
from trainer.evaluation.metric_registry import Metric, UnknownMetricError
from trainer.presets import DEFAULT_PRESET
from tuner.errors import SpaceError
from tuner.space.samplers import PRUNERS, SAMPLERS, build_pruner, pruner_class, sampler_class
from tuner.space.yamlfile import Located, load_yaml, mapping, number

if TYPE_CHECKING:
    pass
from tuner.space.spec import DEFAULT_OBJECTIVE, Gate, Objective, ParamSpec, SearchSpace, StudySpec

__all__ = ["SPACES_PACKAGE", "spaces_dir", "SPACES_DIR", "shipped_spaces", "resolve_space_path", "with_vocoder",
           "load_space"]


SPACES_PACKAGE = "tuner.search_spaces"  # the shipped spaces: package data mapped onto search_spaces/


# A source checkout run without installing it (PYTHONPATH=.), or an editable install made before
# the spaces became package data, has no tuner.search_spaces; the files sit beside the package.
_CHECKOUT_SPACES = Path(__file__).resolve().parents[2] / "search_spaces"


def spaces_dir() -> Path:
    """Return the folder of the shipped search spaces (``default.yaml``, ``scratch.yaml``, their README).

    Found through ``importlib.resources`` in the installed package (wheel or editable), so a
    bare space name resolves from any working directory; pip unpacks wheels, so the package
    data is always a real folder.
    """
    try:
        folder = resources.files(SPACES_PACKAGE)
    except ModuleNotFoundError:
        return _CHECKOUT_SPACES
    return Path(str(folder))


SPACES_DIR = spaces_dir()


_PATH_KEYS = ("vocoder", "vocoder_config")  # fixed keys naming files, resolved relative to the space file


_TOP_KEYS = {"study", "preset", "fixed", "params", "description"}


_STUDY_KEYS = {"name", "objective", "direction", "sampler", "pruner", "n_trials", "max_steps", "gates",
               "fine_tune", "warm_start", "enqueue_defaults", "trial_timeout", "stall_timeout", "samples",
               "max_retries", "max_consecutive_failures"}


_PARAM_KEYS = {"type", "low", "high", "log", "step", "choices", "default", "targets"}


_GATE_KEYS = {"metric", "min", "max", "after_step", "after_fraction"}


_OBJECTIVE_KEYS = {"metric", "direction"}


_DIRECTIONS = ("minimize", "maximize")


# TrainConfig keys the tuner sets itself from the space's objective.
_SET_BY_THE_OBJECTIVE = ("best_metric",)


def _config_fields() -> set[str]:
    return set(CONFIG_KEYS)


def _check_against_config(overrides: dict[str, Any], base: TrainConfig, keys: tuple, loc: Located) -> None:
    """Raise SpaceError at ``keys`` when ``overrides`` make an invalid TrainConfig."""
    try:
        base.replace(**overrides)
    except ConfigError as err:
        detail = str(err).split(": ", 1)[-1]
        raise loc.error(keys, detail) from None


def _declared(metric: Any, keys: tuple, loc: Located) -> Metric:
    """Return the registry's declaration of ``metric``; SpaceError at ``keys`` (with close names) when unknown."""
    try:
        return metric_registry.lookup(metric)
    except UnknownMetricError as err:
        raise loc.error(keys, str(err)) from None


def _check_in_range(declared: Metric, bound: float, keys: tuple, loc: Located) -> None:
    """Refuse a gate bound outside the values ``declared`` can take (such a gate always or never prunes)."""
    if declared.low is not None and bound < declared.low:
        raise loc.error(keys, f"{bound:g} is below the lowest value {declared.name} takes ({declared.low:g})")
    if declared.high is not None and bound > declared.high:
        raise loc.error(keys, f"{bound:g} is above the highest value {declared.name} takes ({declared.high:g})")


def _parse_objective(study: dict, loc: Located) -> Objective:
    raw = study.get("objective", DEFAULT_OBJECTIVE)
    keys = ("study", "objective")
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise loc.error(keys, "must name at least one metric")
    if len(items) > 2:
        raise loc.error(keys, "at most two objectives are supported")
    metrics: list[str] = []
    directions: list[str] = []
    for i, item in enumerate(items):
        here = keys + (i,) if isinstance(raw, list) else keys
        direction = None
        if isinstance(item, dict):
            mapping(item, here, loc, _OBJECTIVE_KEYS)
            metric, direction = item.get("metric"), item.get("direction")
        else:
            metric = item
        declared = _declared(metric, here, loc)
        if declared.direction is None:
            raise loc.error(here, f"{declared.name} is informational ({declared.meaning}), not a quality figure: "
                                  "it cannot be an objective")
        if direction is None and not isinstance(raw, list):
            direction = study.get("direction")
        if direction is None:
            direction = declared.direction
        if direction not in _DIRECTIONS:
            raise loc.error(here, f"direction must be minimize or maximize, got {direction!r}")
        if direction != declared.direction:
            # The trainer keeps best.pt by the metric's declared direction, and a trial's value
            # must be the objective at the checkpoint it exports.
            raise loc.error(here, f"{declared.name} is {declared.direction}d ({declared.meaning}); "
                                  f"it cannot be an objective to {direction}")
        metrics.append(declared.name)
        directions.append(direction)
    if len(set(metrics)) != len(metrics):
        raise loc.error(keys, "the same metric is listed twice")
    if isinstance(raw, list) and "direction" in study:
        raise loc.error(("study", "direction"), "give each objective its own direction in a list objective")
    return Objective(tuple(metrics), tuple(directions))


def _named_section(value: Any, default: str, keys: tuple, loc: Located, names: tuple[str, ...]) -> dict[str, Any]:
    if value is None:
        value = {"name": default}
    if isinstance(value, str):
        value = {"name": value}
    section = dict(mapping(value, keys, loc))
    name = section.get("name", default)
    if name not in names:
        raise loc.error(keys + ("name",), f"unknown {keys[-1]} {name!r} (choose from {', '.join(names)})")
    section["name"] = name
    return section


def _check_kwargs(cls, kwargs: dict[str, Any], keys: tuple, loc: Located) -> None:
    """Reject settings the Optuna class does not take, naming the key."""
    if cls is None:
        if kwargs:
            raise loc.error(keys + (next(iter(kwargs)),), "the 'none' pruner takes no settings")
        return
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    for key, value in kwargs.items():
        if key not in accepted:
            raise loc.error(keys + (key,), f"unknown setting of {cls.__name__} "
                                           f"(accepted: {', '.join(sorted(accepted))})")
        if isinstance(value, (dict, list)):
            raise loc.error(keys + (key,), "only plain values are supported here")


def _parse_sampler(study: dict, loc: Located) -> dict[str, Any]:
    keys = ("study", "sampler")
    section = _named_section(study.get("sampler"), "tpe", keys, loc, SAMPLERS)
    kwargs = {k: v for k, v in section.items() if k != "name"}
    _check_kwargs(sampler_class(section["name"]), kwargs, keys, loc)
    return section


def _parse_pruner(study: dict, loc: Located) -> dict[str, Any]:
    keys = ("study", "pruner")
    section = _named_section(study.get("pruner"), "median", keys, loc, PRUNERS)
    if "pruner" not in study:
        # The default: Optuna's median pruner made patient, so one noisy validation never ends a trial.
        section = {"name": "median", "n_startup_trials": 3, "patience": 2}
    if "patience" in section:
        number(section["patience"], keys + ("patience",), loc, integer=True, minimum=0)
    if "min_delta" in section:
        number(section["min_delta"], keys + ("min_delta",), loc, minimum=0)
    kwargs = {k: v for k, v in section.items() if k not in ("name", "patience", "min_delta")}
    _check_kwargs(pruner_class(section["name"]), kwargs, keys, loc)
    return section


def _parse_gates(study: dict, loc: Located) -> tuple[Gate, ...]:
    raw = study.get("gates", [])
    keys = ("study", "gates")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise loc.error(keys, f"expected a list of gates, got {type(raw).__name__}")
    gates = []
    for i, item in enumerate(raw):
        here = keys + (i,)
        mapping(item, here, loc, _GATE_KEYS)
        if "metric" not in item:
            raise loc.error(here, "a gate needs 'metric' (`tuner metrics` lists them)")
        metric = item["metric"]
        declared = _declared(metric, here + ("metric",), loc)
        if "min" not in item and "max" not in item:
            raise loc.error(here, "a gate needs 'min' or 'max'")
        low = number(item["min"], here + ("min",), loc) if "min" in item else None
        high = number(item["max"], here + ("max",), loc) if "max" in item else None
        for key, bound in (("min", low), ("max", high)):
            if bound is not None:
                _check_in_range(declared, bound, here + (key,), loc)
        if low is not None and high is not None and low > high:
            raise loc.error(here, f"min ({low}) is above max ({high})")
        if "after_step" in item and "after_fraction" in item:
            raise loc.error(here, "give 'after_step' or 'after_fraction', not both")
        after_step = number(item["after_step"], here + ("after_step",), loc, integer=True, minimum=0) \
            if "after_step" in item else None
        fraction = None
        if "after_fraction" in item:
            fraction = number(item["after_fraction"], here + ("after_fraction",), loc)
            if not 0 <= fraction <= 1:
                raise loc.error(here + ("after_fraction",), f"must be in [0, 1], got {fraction}")
        gates.append(Gate(declared.name, min=None if low is None else float(low),
                          max=None if high is None else float(high),
                          after_step=None if after_step is None else int(after_step),
                          after_fraction=None if fraction is None else float(fraction)))
    return tuple(gates)


def _parse_study(data: dict, loc: Located, path: Path) -> StudySpec:
    study = mapping(data.get("study", {}) or {}, ("study",), loc, _STUDY_KEYS)
    name = study.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise loc.error(("study", "name"), f"must be a non-empty string, got {name!r}")
    objective = _parse_objective(study, loc)
    sampler = _parse_sampler(study, loc)
    pruner = _parse_pruner(study, loc)
    n_trials = int(number(study.get("n_trials", 20), ("study", "n_trials"), loc, integer=True, minimum=1))
    max_steps = study.get("max_steps")
    if max_steps is not None:
        number(max_steps, ("study", "max_steps"), loc, integer=True, minimum=1)
    fine_tune = study.get("fine_tune", False)
    if not isinstance(fine_tune, bool):
        raise loc.error(("study", "fine_tune"), f"must be true or false, got {fine_tune!r}")
    warm_start = study.get("warm_start")
    if warm_start is not None:
        if not isinstance(warm_start, str) or not warm_start:
            raise loc.error(("study", "warm_start"), f"must be a checkpoint path, got {warm_start!r}")
        # A relative path is read from the space file's folder, so the file can travel with its checkpoint.
        warm_start = (path.parent / warm_start).resolve()
    enqueue = study.get("enqueue_defaults", True)
    if not isinstance(enqueue, bool):
        raise loc.error(("study", "enqueue_defaults"), f"must be true or false, got {enqueue!r}")
    timeouts = {}
    for key, default in (("trial_timeout", None), ("stall_timeout", 1800.0)):
        value = study.get(key, default)
        timeouts[key] = None if value is None else float(number(value, ("study", key), loc, positive=True))
    samples = int(number(study.get("samples", 2), ("study", "samples"), loc, integer=True, minimum=0))
    max_retries = int(number(study.get("max_retries", 2), ("study", "max_retries"), loc, integer=True, minimum=0))
    max_failures = int(number(study.get("max_consecutive_failures", 3), ("study", "max_consecutive_failures"), loc,
                              integer=True, minimum=1))
    return StudySpec(name=name, objective=objective, sampler=sampler, pruner=pruner, n_trials=n_trials,
                     max_steps=max_steps, gates=_parse_gates(study, loc), fine_tune=fine_tune,
                     warm_start=warm_start, enqueue_defaults=enqueue, samples=samples, max_retries=max_retries,
                     max_consecutive_failures=max_failures, **timeouts)


def _parse_param(name: str, raw: Any, loc: Located, fields: set[str]) -> ParamSpec:
    keys = ("params", name)
    item = mapping(raw, keys, loc, _PARAM_KEYS)
    kind = item.get("type")
    if kind is None:
        kind = "categorical" if "choices" in item else ("int" if all(
            isinstance(item.get(k), int) and not isinstance(item.get(k), bool) for k in ("low", "high")) else "float")
    if kind not in ("float", "int", "categorical"):
        raise loc.error(keys + ("type",), f"must be float, int or categorical, got {kind!r}")
    targets = item.get("targets", [name])
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise loc.error(keys + ("targets",), "must be a TrainConfig key or a non-empty list of them")
    for i, target in enumerate(targets):
        if target not in fields:
            where = keys + ("targets", i) if "targets" in item else keys
            hint = "" if "targets" in item else " (add 'targets:' to map it onto TrainConfig keys)"
            raise loc.error(where, f"'{target}' is not a TrainConfig key{hint}")
    has_default = "default" in item
    default = item.get("default")
    if kind == "categorical":
        for key in ("low", "high", "log", "step"):
            if key in item:
                raise loc.error(keys + (key,), "not allowed for a categorical parameter")
        choices = item.get("choices")
        if not isinstance(choices, list) or not choices:
            raise loc.error(keys + ("choices",), "must be a non-empty list")
        for i, choice in enumerate(choices):
            if not (choice is None or isinstance(choice, (str, int, float, bool))):
                raise loc.error(keys + ("choices", i), f"must be a plain value, got {type(choice).__name__}")
        if len({repr(c) for c in choices}) != len(choices):
            raise loc.error(keys + ("choices",), "has duplicates")
        if has_default and default not in choices:
            raise loc.error(keys + ("default",), f"{default!r} is not one of the choices")
        return ParamSpec(name, kind, tuple(targets), choices=tuple(choices), default=default,
                         has_default=has_default)
    if "choices" in item:
        raise loc.error(keys + ("choices",), f"not allowed for a {kind} parameter")
    for key in ("low", "high"):
        if key not in item:
            raise loc.error(keys, f"missing '{key}'")
    integer = kind == "int"
    low = number(item["low"], keys + ("low",), loc, integer=integer)
    high = number(item["high"], keys + ("high",), loc, integer=integer)
    if low >= high:
        raise loc.error(keys + ("high",), f"must be above low ({low!r}), got {high!r}")
    log = item.get("log", False)
    if not isinstance(log, bool):
        raise loc.error(keys + ("log",), f"must be true or false, got {log!r}")
    if log and low <= 0:
        raise loc.error(keys + ("low",), f"must be > 0 on a log scale, got {low!r}")
    step = item.get("step")
    if step is not None:
        step = number(step, keys + ("step",), loc, integer=integer, positive=True)
        if log:
            raise loc.error(keys + ("step",), "cannot be combined with log: true")
        if step > high - low:
            raise loc.error(keys + ("step",), f"is larger than the range {low!r}..{high!r}")
    if has_default:
        default = number(default, keys + ("default",), loc, integer=integer)
        if not low <= default <= high:
            raise loc.error(keys + ("default",), f"{default!r} is outside {low!r}..{high!r}")
        if step is not None and abs(round((default - low) / step) * step - (default - low)) > 1e-9 * max(1, abs(high)):
            raise loc.error(keys + ("default",), f"{default!r} is not on the grid low + k*step")
        default = int(default) if integer else float(default)
    return ParamSpec(name, kind, tuple(targets), low=low, high=high, log=log, step=step, default=default,
                     has_default=has_default)


def _parse_params(data: dict, loc: Located, fields: set[str]) -> tuple[ParamSpec, ...]:
    raw = data.get("params")
    if raw is None:
        raise loc.error(("params",), "missing: a search space needs at least one parameter")
    mapping(raw, ("params",), loc)
    if not raw:
        raise loc.error(("params",), "a search space needs at least one parameter")
    params = []
    written: dict[str, str] = {}
    for name, item in raw.items():
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", name):
            raise loc.error(("params", name), "parameter names must be plain identifiers")
        spec = _parse_param(name, item, loc, fields)
        for target in spec.targets:
            if target in written:
                raise loc.error(("params", name), f"'{target}' is already set by parameter '{written[target]}'")
            written[target] = name
        params.append(spec)
    return tuple(params)


def _resolved_file(value: str, space_file: Path, loc: Located, where: tuple[str, ...]) -> str:
    """Return the file ``value`` names (``hifigan:`` kept), made absolute relative to the space file.

    A trial runs in its own folder, maybe on another worker: a path relative to the space
    file is the only spelling that means the same file everywhere the space is read.
    """
    prefix = "hifigan:" if value.startswith("hifigan:") else ""
    if value == "griffin-lim" or (not prefix and where[-1] == "vocoder"):
        return value  # not a file (a bad vocoder name is the trainer's check to report)
    file = (space_file.parent / value[len(prefix):]).resolve()
    if not file.is_file():
        raise loc.error(where, f"file not found: {file}")
    return prefix + str(file)


def _check_values(space_params: tuple[ParamSpec, ...], base: TrainConfig, fixed: dict, loc: Located) -> None:
    """Every bound, default and choice must make a valid TrainConfig (the trainer's own checks)."""
    for spec in space_params:
        values = list(spec.choices) if spec.kind == "categorical" else [spec.low, spec.high]
        if spec.has_default:
            values.append(spec.default)
        for value in values:
            _check_against_config({**fixed, **{t: value for t in spec.targets}}, base, ("params", spec.name), loc)


def _try_build(study: StudySpec, loc: Located) -> None:
    """Build the sampler and pruner once, so settings Optuna rejects are reported here, not mid-study."""
    settings = {k: v for k, v in study.sampler.items() if k != "name"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler_class(study.sampler["name"])(**settings)
    except (TypeError, ValueError) as err:  # Optuna's own checks of the settings the space gave
        raise loc.error(("study", "sampler"), f"rejected by Optuna ({err})") from None
    try:
        build_pruner(study.pruner, study.objective.multi, study.max_steps or 1000, 10)
    except (TypeError, ValueError) as err:  # TunerError from build_pruner, or Optuna's own checks
        raise loc.error(("study", "pruner"), str(err)) from None


def shipped_spaces() -> list[str]:
    """Return the names of the shipped search spaces (file stems, sorted)."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def resolve_space_path(name: str | Path) -> Path:
    """Return the space file for ``name``: an existing path, else the shipped ``NAME`` (``.yaml`` optional).

    An existing file always wins over a shipped space of the same name; the shipped ones live in
    ``spaces_dir()``, whatever the working directory.
    """
    path = Path(name)
    if path.is_file():
        return path
    if len(path.parts) == 1:
        for candidate in (SPACES_DIR / path.name, SPACES_DIR / f"{path.name}.yaml"):
            if candidate.is_file():
                return candidate
    return path  # load_space reports it as not found


def with_vocoder(space: SearchSpace, vocoder: str, vocoder_config: Path | None) -> SearchSpace:
    """Return ``space`` whose trials vocode with ``vocoder`` (``hifigan:GENERATOR``, or ``griffin-lim``).

    The command's choice replaces the space's ``fixed`` vocoder; files are made absolute
    (relative to the current folder, where the user typed them). SpaceError names the flag.
    """
    prefix = "hifigan:" if vocoder.startswith("hifigan:") else ""
    fixed = dict(space.fixed)
    if prefix:
        generator = Path(vocoder[len(prefix):]).expanduser().resolve()
        if not generator.is_file():
            raise SpaceError(f"--vocoder: file not found: {generator}")
        fixed["vocoder"] = prefix + str(generator)
    else:
        fixed["vocoder"] = vocoder
    if vocoder_config is not None:
        config_file = Path(vocoder_config).expanduser().resolve()
        if not config_file.is_file():
            raise SpaceError(f"--vocoder-config: file not found: {config_file}")
        fixed["vocoder_config"] = str(config_file)
    else:
        fixed.pop("vocoder_config", None)
    for spec in space.params:
        if set(spec.targets) & set(_PATH_KEYS):
            raise SpaceError(f"--vocoder: {space.path.name} searches the vocoder (parameter '{spec.name}')")
    try:
        preset(space.preset).replace(**{k: fixed[k] for k in _PATH_KEYS if k in fixed})
    except ConfigError as err:
        raise SpaceError(f"--vocoder: {str(err).split(': ', 1)[-1]}") from None
    return replace(space, fixed=fixed)


def load_space(name: str | Path) -> SearchSpace:
    """Return the validated search space of file ``name`` (a bare name: a shipped space, ``spaces_dir()``).

    Raises SpaceError (``file:line: key: problem``) for any malformed part; nothing is written.
    """
    path = resolve_space_path(name)
    if len(path.parts) == 1 and not path.exists():
        raise SpaceError(f"{path}: search-space file not found (neither a file here nor a shipped space: "
                         f"{', '.join(shipped_spaces())})")
    data, loc, text = load_yaml(path, "search-space file", SpaceError)
    if data is None:
        raise loc.error((), "the file is empty")
    mapping(data, (), loc, _TOP_KEYS)
    preset_name = data.get("preset", DEFAULT_PRESET)
    if preset_name not in PRESETS:
        raise loc.error(("preset",), f"must be one of {', '.join(PRESETS)}, got {preset_name!r}")
    fields = _config_fields()
    fixed = dict(mapping(data.get("fixed", {}) or {}, ("fixed",), loc))
    for key in fixed:
        if key not in fields:
            raise loc.error(("fixed", key), "not a TrainConfig key")
        if key in _SET_BY_THE_OBJECTIVE:
            raise loc.error(("fixed", key), "is set by study.objective (best.pt is the objective's best validation)")
    for key in _PATH_KEYS:
        if isinstance(fixed.get(key), str):
            fixed[key] = _resolved_file(fixed[key], path, loc, ("fixed", key))
    base = preset(preset_name)
    for key, value in fixed.items():
        # The vocoder and its config are only valid together.
        together = {k: fixed[k] for k in _PATH_KEYS if k in fixed} if key in _PATH_KEYS else {key: value}
        try:
            base.replace(**together)
        except ConfigError as err:
            raise loc.error(("fixed", key), str(err).split(": ", 1)[-1]) from None
    study = _parse_study(data, loc, path)
    params = _parse_params(data, loc, fields)
    for spec in params:
        for target in spec.targets:
            if target in fixed:
                raise loc.error(("fixed", target), f"is also set by parameter '{spec.name}'")
    _check_values(params, base, fixed, loc)
    if study.max_steps is not None:
        _check_against_config({**fixed, "max_steps": study.max_steps}, base, ("study", "max_steps"), loc)
    if study.objective.multi and study.sampler["name"] in ("cmaes",):
        raise loc.error(("study", "sampler", "name"), "cmaes does not support several objectives")
    _try_build(study, loc)
    return SearchSpace(path=path.resolve(), study=study, preset=preset_name, fixed=fixed, params=params, text=text)

