"""Optuna samplers and pruners by the names a search-space file uses, and how the tuner builds them.

A leaf module that knows the space's sections, not the space: the space validator
(``tuner.space.load``) builds a space's sampler and pruner once to report bad settings at load
time, the study (``tuner.study.studies``) gets its sampler here, and the parent and each trial's
child get the pruner through ``tuner.trial.setup``.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import optuna

from tuner.errors import TunerError

if TYPE_CHECKING:
    from optuna import Study
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial, TrialState

__all__ = ["SAMPLERS", "PRUNERS", "TrialSeededSampler", "sampler_class", "pruner_class", "build_pruner", "make_sampler",
           "describe_pruner", "trial_seed"]

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
    """Return the Optuna sampler of a space's ``sampler`` section (its name and settings).

    A ``seed`` seeds each trial's draws from (seed, trial number), not the sampler once: every
    worker of a study builds its own sampler, and one seed would make them all draw the same
    sequence (``TrialSeededSampler``). QMC keeps its seed: it scrambles one low-discrepancy
    sequence whose position the study stores, so its workers never repeat each other.
    """
    settings = {k: v for k, v in section.items() if k != "name"}
    cls = sampler_class(section["name"])

    def build(**extra: Any) -> optuna.samplers.BaseSampler:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**{**settings, **extra})

    if settings.get("seed") is None or section["name"] == "qmc":
        return build()
    return TrialSeededSampler(lambda seed: build(seed=seed), int(settings["seed"]))


def trial_seed(seed: int, number: int) -> int:
    """Return the seed of trial ``number``'s draws in a study seeded with ``seed`` (a 32-bit integer).

    >>> trial_seed(1, 0) == trial_seed(1, 0) != trial_seed(1, 1)
    True
    """
    return int.from_bytes(hashlib.sha256(f"{seed}:{number}".encode()).digest()[:4], "big")


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A seeded sampler whose draws for trial N come from ``trial_seed(seed, N)``.

    Workers sharing a study each hold one; since every trial number is given out once, their
    draws differ, and a study replayed trial by trial draws the same values. Each trial gets a
    sampler of its own (built by ``factory(seed)``); the samplers keep nothing between trials
    that the study's storage does not hold (TPE, GP and CMA-ES rebuild their models from it).
    """

    KEEP = 64  # samplers of trials still in flight in this process (a failed trial never says it ended)

    def __init__(self, factory: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._factory, self._seed = factory, seed
        self._samplers: OrderedDict[int, optuna.samplers.BaseSampler] = OrderedDict()
        self._lock = threading.Lock()

    def _of(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        with self._lock:
            sampler = self._samplers.get(trial.number)
            if sampler is None:
                sampler = self._samplers[trial.number] = self._factory(trial_seed(self._seed, trial.number))
                while len(self._samplers) > self.KEEP:
                    self._samplers.popitem(last=False)
            return sampler

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._of(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._of(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._of(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._of(trial).before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._of(trial).after_trial(study, trial, state, values)
        with self._lock:
            self._samplers.pop(trial.number, None)

    def reseed_rng(self) -> None:
        """Nothing to reseed: each trial's seed is derived from the study's and its number."""


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
