"""Optuna samplers and pruners by the names a search-space file uses, and how the tuner builds them.

A leaf module: the space validator (``tuner.space``) builds a space's sampler and pruner once to
report bad settings at load time, the parent (``tuner.study``) builds them for the study, and
each trial's child (``tuner.trial.child``) rebuilds the pruner it asks through the storage.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import optuna

from tuner.errors import TunerError

if TYPE_CHECKING:
    from tuner.space.spec import SearchSpace

__all__ = ["SAMPLERS", "PRUNERS", "sampler_class", "pruner_class", "build_pruner", "make_sampler", "make_pruner",
           "describe_pruner"]

SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc", "nsgaii")
PRUNERS = ("median", "percentile", "hyperband", "successive_halving", "threshold", "none")


def sampler_class(name: str) -> type[optuna.samplers.BaseSampler]:
    """Return the Optuna sampler class for a space's sampler name."""
    classes: dict[str, type[optuna.samplers.BaseSampler]] = {
        "tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
        "cmaes": optuna.samplers.CmaEsSampler, "gp": optuna.samplers.GPSampler,
        "qmc": optuna.samplers.QMCSampler, "nsgaii": optuna.samplers.NSGAIISampler}
    return classes[name]


def pruner_class(name: str) -> type[optuna.pruners.BasePruner] | None:
    """Return the Optuna pruner class for a space's pruner name (None for ``none``)."""
    classes: dict[str, type[optuna.pruners.BasePruner] | None] = {
        "median": optuna.pruners.MedianPruner, "percentile": optuna.pruners.PercentilePruner,
        "hyperband": optuna.pruners.HyperbandPruner, "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "threshold": optuna.pruners.ThresholdPruner, "none": None}
    return classes[name]


def make_sampler(space: SearchSpace) -> optuna.samplers.BaseSampler:
    """Return the space's Optuna sampler, built from its name and settings."""
    settings = {k: v for k, v in space.study.sampler.items() if k != "name"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return sampler_class(space.study.sampler["name"])(**settings)


def make_pruner(space: SearchSpace, max_steps: int, val_interval: int) -> optuna.pruners.BasePruner:
    """Return the space's Optuna pruner for a budget of ``max_steps`` steps validated every ``val_interval``."""
    return build_pruner(space.study.pruner, space.study.objective.multi, max_steps, val_interval)


def build_pruner(section: dict[str, Any], multi: bool, max_steps: int, val_interval: int) -> optuna.pruners.BasePruner:
    """Return the Optuna pruner of a space's ``pruner`` section (already validated by ``load_space``).

    Several objectives: NopPruner (Optuna cannot prune multi-objective trials; the quality
    gates still apply). ``patience`` wraps the pruner in a PatientPruner. Hyperband and
    successive halving count resources in steps: min_resource defaults to ``val_interval``;
    median and percentile start pruning after a quarter of the budget unless told otherwise.
    TunerError names a setting the Optuna class rejects.
    """
    section = dict(section)
    name = section.pop("name")
    patience = section.pop("patience", None)
    min_delta = section.pop("min_delta", 0.0)
    cls = pruner_class(name)
    if cls is None or multi:
        return optuna.pruners.NopPruner()
    if name == "hyperband":
        section.setdefault("min_resource", val_interval)
        section.setdefault("max_resource", max_steps)
    if name == "successive_halving":
        section.setdefault("min_resource", val_interval)
    if name in ("median", "percentile"):
        section.setdefault("n_warmup_steps", max_steps // 4)
    try:
        pruner = cls(**section)
    except (TypeError, ValueError) as err:  # Optuna's own checks of the settings the space gave
        raise TunerError(f"pruner {name}: {err}") from None
    if patience is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            pruner = optuna.pruners.PatientPruner(pruner, patience=int(patience), min_delta=float(min_delta))
    return pruner


def describe_pruner(space: SearchSpace) -> str:
    """Return a short text of the configured pruner, e.g. ``median (patience 2)``."""
    if space.study.objective.multi:
        return "off (several objectives; quality gates only)"
    section = space.study.pruner
    extra = f" (patience {section['patience']})" if section.get("patience") is not None else ""
    return f"{section['name']}{extra}"
