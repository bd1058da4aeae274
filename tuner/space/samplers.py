"""Optuna samplers and pruners by the names a search-space file uses, and how the tuner builds them.

A leaf module that knows the space's sections, not the space: the space validator
(``tuner.space.load``) builds a space's sampler and pruner once to report bad settings at load
time, the study (``tuner.study.studies``) gets its sampler here, and the parent and each trial's
child get the pruner through ``tuner.trial.setup``.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from tuner.errors import TunerError

__all__ = ["SAMPLERS", "PRUNERS", "sampler_class", "pruner_class", "build_pruner", "make_sampler", "describe_pruner"]

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


def make_sampler(section: dict[str, Any]) -> optuna.samplers.BaseSampler:
    """Return the Optuna sampler of a space's ``sampler`` section (its name and settings)."""
    settings = {k: v for k, v in section.items() if k != "name"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return sampler_class(section["name"])(**settings)


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


def describe_pruner(section: dict[str, Any], multi: bool) -> str:
    """Return a short text of a space's ``pruner`` section, e.g. ``median (patience 2)``."""
    if multi:
        return "off (several objectives; quality gates only)"
    extra = f" (patience {section['patience']})" if section.get("patience") is not None else ""
    return f"{section['name']}{extra}"
