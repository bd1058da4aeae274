"""The ``study:`` section of a search-space file: objective, sampler, pruner, gates, budgets and retries.

Objective and gate metrics must be declared in ``trainer.evaluation.metric_registry``, which also gives an
objective's default direction and the range a gate's bounds must fall in; the sampler and the
pruner are built once here, so settings Optuna rejects are reported at load time, not mid-study.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any

from trainer.evaluation import metric_registry
from trainer.evaluation.metric_registry import Metric, UnknownMetricError
from tuner.paths import study_name_problem
from tuner.space.samplers import PRUNERS, SAMPLERS, build_pruner, pruner_class, sampler_class
from tuner.space.spec import DEFAULT_OBJECTIVE, Gate, Objective, StudySpec
from tuner.space.yamlfile import Located, mapping, number

__all__ = ["check_builds", "parse_study"]


_STUDY_KEYS = {"name", "objective", "direction", "sampler", "pruner", "n_trials", "max_steps", "gates",
               "fine_tune", "warm_start", "enqueue_defaults", "trial_timeout", "stall_timeout", "samples",
               "max_retries", "max_consecutive_failures"}


_GATE_KEYS = {"metric", "min", "max", "after_step", "after_fraction"}


_OBJECTIVE_KEYS = {"metric", "direction"}


_DIRECTIONS = ("minimize", "maximize")


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


def parse_study(data: dict, loc: Located, path: Path) -> StudySpec:
    study = mapping(data.get("study", {}) or {}, ("study",), loc, _STUDY_KEYS)
    name = study.get("name", path.stem)
    problem = study_name_problem(name)
    if problem is not None:
        raise loc.error(("study", "name"), problem)
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


def check_builds(study: StudySpec, loc: Located) -> None:
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

