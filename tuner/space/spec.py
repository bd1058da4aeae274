"""The types of a validated search space: parameters, gates, objective, the study section.

A ``SearchSpace`` also makes a trial's trainer config from sampled parameters.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from trainer.config import TrainConfig, preset
from tuner.space.yamlfile import is_number

if TYPE_CHECKING:
    from optuna import Trial

__all__ = ["DEFAULT_OBJECTIVE", "ParamSpec", "Gate", "Objective", "StudySpec", "SearchSpace", "suggest"]


DEFAULT_OBJECTIVE = "val_mel_postnet_l1"
CONFIRM_SUFFIX = ":confirm"  # a study's confirmation runs form a study of this name beside it


@dataclass(frozen=True)
class ParamSpec:
    """One searched parameter; ``targets`` are the TrainConfig keys its value is written to."""

    name: str
    kind: str  # "float" | "int" | "categorical"
    targets: tuple[str, ...]
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    default: Any = None
    has_default: bool = False

    def distribution(self) -> BaseDistribution:
        """Return the Optuna distribution of this parameter."""
        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        low, high = self.bounds()
        if self.kind == "float":
            return FloatDistribution(float(low), float(high), log=self.log,
                                     step=None if self.step is None else float(self.step))
        return IntDistribution(int(low), int(high), log=self.log, step=1 if self.step is None else int(self.step))

    def bounds(self) -> tuple[float | int, float | int]:
        """Return (low, high) of a numeric parameter (load_space guarantees both)."""
        if self.low is None or self.high is None:
            raise TypeError(f"parameter {self.name!r} ({self.kind}) has no bounds")
        return self.low, self.high

    def describe(self) -> str:
        """Return a short human description, e.g. ``float 1e-06..5e-05 log (default 1e-05)``."""
        if self.kind == "categorical":
            text = f"one of {list(self.choices)}"
        else:
            text = f"{self.kind} {self.low:g}..{self.high:g}" + (" log" if self.log else "") + (
                f" step {self.step:g}" if self.step is not None else "")
        if self.has_default:
            shown = f"{self.default:g}" if is_number(self.default) else repr(self.default)
            text += f" (default {shown})"
        if self.targets != (self.name,):
            text += f" -> {', '.join(self.targets)}"
        return text


@dataclass(frozen=True)
class Gate:
    """A quality gate: prune when ``metric`` is below ``min`` (or above ``max``) from a step on.

    The gate starts at ``after_step``, or at ``after_fraction`` of the trial's step budget.
    """

    metric: str
    min: float | None = None
    max: float | None = None
    after_step: int | None = None
    after_fraction: float | None = None

    def start_step(self, max_steps: int) -> int:
        """Return the first step (optimiser steps) at which this gate is checked."""
        if self.after_fraction is not None:
            return int(math.ceil(self.after_fraction * max_steps))
        return self.after_step or 0

    def violation(self, step: int, metrics: dict[str, float], max_steps: int) -> str | None:
        """Return the prune reason when ``metrics`` at ``step`` fail this gate, else None."""
        if step < self.start_step(max_steps) or self.metric not in metrics:
            return None
        value = metrics[self.metric]
        since = f"from step {self.start_step(max_steps)}"
        if not math.isfinite(value):
            return f"quality gate: {self.metric} is {value} at step {step}"
        if self.min is not None and value < self.min:
            return f"quality gate: {self.metric} {value:.3f} < {self.min:g} at step {step} ({since})"
        if self.max is not None and value > self.max:
            return f"quality gate: {self.metric} {value:.3f} > {self.max:g} at step {step} ({since})"
        return None

    def describe(self) -> str:
        """Return e.g. ``tf_diagonality >= 0.5 from step 200``."""
        bounds = " and ".join(part for part in (f">= {self.min:g}" if self.min is not None else "",
                                                f"<= {self.max:g}" if self.max is not None else "") if part)
        when = (f"from {self.after_fraction:.0%} of the budget" if self.after_fraction is not None
                else f"from step {self.after_step or 0}")
        return f"{self.metric} {bounds} {when}"


@dataclass(frozen=True)
class Objective:
    """What a trial returns: one metric (single objective) or several (multi-objective, Pareto front)."""

    metrics: tuple[str, ...]
    directions: tuple[str, ...]

    @property
    def multi(self) -> bool:
        """True when the study optimises more than one value (Optuna's pruning is then off)."""
        return len(self.metrics) > 1

    def describe(self) -> str:
        """Return e.g. ``minimize val_mel_postnet_l1``."""
        return ", ".join(f"{d} {m}" for m, d in zip(self.metrics, self.directions, strict=True))


@dataclass(frozen=True)
class StudySpec:
    """The ``study:`` section: how the study runs."""

    name: str
    objective: Objective
    sampler: dict[str, Any]  # {"name": ..., **kwargs}
    pruner: dict[str, Any]  # {"name": ..., "patience": int | None, "min_delta": float, **kwargs}
    n_trials: int = 20
    max_steps: int | None = None  # None: the preset's max_steps
    gates: tuple[Gate, ...] = ()
    fine_tune: bool = False
    warm_start: Path | None = None
    enqueue_defaults: bool = True
    trial_timeout: float | None = None  # seconds of wall time per trial; None: no limit
    stall_timeout: float | None = 1800.0  # seconds without a new metrics line once training runs
    samples: int = 2  # synthesised wav samples per finished trial
    max_retries: int = 2  # a trial that failed for a transient reason resumes from its checkpoint this often
    max_consecutive_failures: int = 3  # a worker whose trials fail this many times in a row stops


@dataclass(frozen=True)
class SearchSpace:
    """A validated search-space file."""

    path: Path
    study: StudySpec
    preset: str
    fixed: dict[str, Any]
    params: tuple[ParamSpec, ...]
    text: str = field(default="", repr=False)  # the file as read (logged to MLflow)

    def distributions(self) -> dict[str, BaseDistribution]:
        """Return ``{param name: Optuna distribution}`` in file order."""
        return {p.name: p.distribution() for p in self.params}

    def defaults(self) -> dict[str, Any]:
        """Return the parameters that declare a default (enqueued as the study's first trial)."""
        return {p.name: p.default for p in self.params if p.has_default}

    def fingerprint(self) -> str:
        """Return a stable text of the searched distributions and objective (stored on the study)."""
        objective = self.study.objective
        spec = {"params": {n: distribution_to_json(d) for n, d in self.distributions().items()},
                "objective": list(zip(objective.metrics, objective.directions, strict=True))}
        return json.dumps(spec, sort_keys=True)

    def overrides(self, params: dict[str, Any]) -> dict[str, Any]:
        """Return the TrainConfig overrides of ``params`` (each value written to its targets)."""
        out: dict[str, Any] = {}
        by_name = {p.name: p for p in self.params}
        for name, value in params.items():
            for target in by_name[name].targets:
                out[target] = value
        return out

    def build_config(self, params: dict[str, Any], *, preset_name: str | None = None,
                     max_steps: int | None = None) -> TrainConfig:
        """Return the TrainConfig of one trial: preset, then ``fixed``, then ``params``, then the step budget.

        ``best_metric`` is the (first) objective: the trainer's best.pt is then the checkpoint
        whose validation gave the trial its value, the one ``tuner best --export`` exports.
        The keys the space samples are the tuner's: the trainer's quality controller may not turn
        them during the trial (``controller_frozen_keys``), so a trial's parameters describe the
        run that produced its value, and the sampler learns from what it chose.
        """
        base = preset(preset_name or self.preset)
        sampled = sorted({target for spec in self.params for target in spec.targets})
        values = {**self.fixed, **self.overrides(params), "best_metric": self.study.objective.metrics[0],
                  "controller_frozen_keys": sampled}
        budget = max_steps or self.study.max_steps
        if budget is not None:
            values["max_steps"] = budget
        return base.replace(**values)

    def confirmation(self) -> SearchSpace:
        """Return the space of this one's confirmation runs: the same parameters plus the trainer's ``seed``,
        trained in full (no pruner, no gates), nothing enqueued by itself and nothing sampled.

        Confirmation retrains chosen configurations on several seeds and compares them seed by
        seed (``tuner.evidence.confirm``): each run's parameters, its seed included, are queued.
        """
        if any("seed" in p.targets for p in self.params):
            raise ValueError(f"{self.path.name}: a space that searches the seed cannot be confirmed on seeds")
        seed = ParamSpec("seed", "int", ("seed",), low=0, high=2**31 - 1)
        study = replace(self.study, name=self.study.name + CONFIRM_SUFFIX, pruner={"name": "none"}, gates=(),
                        enqueue_defaults=False, sampler={"name": "random"})
        return replace(self, study=study, params=(*self.params, seed))

    def defaults_or_low(self) -> dict[str, Any]:
        """Return one valid parameter set: each default, else the low bound or first choice."""
        return {p.name: p.default if p.has_default else (p.choices[0] if p.kind == "categorical" else p.low)
                for p in self.params}


def suggest(trial: Trial, space: SearchSpace) -> dict[str, Any]:
    """Return ``{name: value}`` sampled for ``trial`` from ``space`` (Optuna's suggest API)."""
    values: dict[str, Any] = {}
    for spec in space.params:
        if spec.kind == "categorical":
            values[spec.name] = trial.suggest_categorical(spec.name, list(spec.choices))
            continue
        low, high = spec.bounds()
        if spec.kind == "float":
            values[spec.name] = trial.suggest_float(spec.name, float(low), float(high), log=spec.log,
                                                    step=None if spec.step is None else float(spec.step))
        else:
            values[spec.name] = trial.suggest_int(spec.name, int(low), int(high), log=spec.log,
                                                  step=1 if spec.step is None else int(spec.step))
    return values

