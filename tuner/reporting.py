"""The callback a trial gives the trainer: report to Optuna, apply quality gates, ask the pruner.

Runs in the trial's child process; every report and every ``should_prune`` goes through the
shared study storage, so the parent's pruner settings and the other trials are seen as they are.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from tuner.space import QUALITY, Gate, Objective

# Fallback quality score when the trainer reports none: the mean of the SPEC's alignment figures
# that a random attention does not already score well on (monotonicity is ~1 for it).
QUALITY_TERMS = ("tf_diagonality", "tf_focus", "tf_coverage", "tf_gate_balanced_accuracy")

# Figures kept on the trial (user attribute ``last_metrics``) for the status table and dashboard.
SUMMARY_KEYS = ("val_mel_postnet_l1", "tf_diagonality", "tf_focus", "tf_monotonicity", "tf_coverage",
                "tf_gate_balanced_accuracy", QUALITY)


def quality_score(metrics: dict[str, float]) -> float:
    """Return the quality score in [0, 1]: the trainer's ``quality_score`` when it reports one.

    Otherwise (an older trainer) the mean of diagonality, focus, coverage and gate balanced
    accuracy; NaN when one of them is missing.
    """
    if "quality_score" in metrics:
        return float(metrics["quality_score"])
    values = [metrics.get(key, math.nan) for key in QUALITY_TERMS]
    return sum(values) / len(values)


def with_quality(metrics: dict[str, float]) -> dict[str, float]:
    """Return ``metrics`` plus ``quality`` (the name space files use for the quality score)."""
    out = dict(metrics)
    out.setdefault(QUALITY, quality_score(metrics))
    return out


@dataclass
class Reporter:
    """Callable ``(step, metrics) -> stop?`` for ``trainer.train``; remembers why it stopped.

    ``trial`` is an ``optuna.trial.Trial`` attached to the running trial. With one objective,
    each validation's value is reported at its step and the pruner is asked; with several,
    nothing is reported (Optuna cannot prune them) and only the quality gates apply.

    ``report_seconds`` and ``report_calls`` measure the tuner's cost per validation: the wall
    time of every ``__call__`` (its storage work: ``set_user_attr``, ``trial.report``,
    ``should_prune``; the gate arithmetic around them takes microseconds) and how many calls
    there were. ``replay`` (a resumed run restoring earlier validations) is not counted.
    """

    trial: Any
    objective: Objective
    gates: tuple[Gate, ...]
    max_steps: int
    pruner_name: str = "pruner"
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    prune_reason: str | None = None
    prune_step: int | None = None
    report_seconds: float = 0.0  # wall time spent in __call__ (storage round trips), summed over calls
    report_calls: int = 0  # number of __call__ (validations reported)

    def values(self, metrics: dict[str, float]) -> list[float]:
        """Return the objective values in ``metrics``; KeyError names a metric the trainer did not report."""
        missing = [m for m in self.objective.metrics if m not in metrics]
        if missing:
            raise KeyError(f"objective metric {missing[0]!r} is not reported by the trainer "
                           f"(it reports: {', '.join(sorted(metrics))})")
        return [float(metrics[m]) for m in self.objective.metrics]

    def __call__(self, step: int, metrics: dict[str, float]) -> bool:
        """Report one validation; return True to stop training (the trial is then pruned)."""
        started = time.perf_counter()
        try:
            return self._report(step, metrics)
        finally:
            self.report_seconds += time.perf_counter() - started
            self.report_calls += 1

    def _report(self, step: int, metrics: dict[str, float]) -> bool:
        """The body of ``__call__`` (timed there)."""
        metrics = with_quality(metrics)
        self.history.append((step, metrics))
        values = self.values(metrics)
        summary = {k: round(float(metrics[k]), 5) for k in SUMMARY_KEYS if k in metrics and math.isfinite(metrics[k])}
        self.trial.set_user_attr("last_step", step)
        self.trial.set_user_attr("last_metrics", summary)
        if not self.objective.multi:
            self.trial.report(values[0], step)
        reason = next((r for r in (g.violation(step, metrics, self.max_steps) for g in self.gates) if r), None)
        not_finite = [m for m, v in zip(self.objective.metrics, values) if not math.isfinite(v)]
        if reason is None and not_finite:
            reason = f"objective {not_finite[0]} is not finite at step {step}"
        if reason is None and not self.objective.multi and self.trial.should_prune():
            reason = (f"pruner {self.pruner_name}: {self.objective.metrics[0]} {values[0]:.4f} at step {step} "
                      "is worse than the other trials at this step")
        if reason is not None:
            self.prune_reason = reason
            self.prune_step = step
            self.trial.set_user_attr("prune_reason", reason)
            return True
        return False

    def replay(self, step: int, metrics: dict[str, float]) -> None:
        """Take an earlier validation of a resumed run: remember it and restore its intermediate value.

        No gate or pruner is asked: the dead trial's run already passed them at that step.
        """
        metrics = with_quality(metrics)
        self.history.append((step, metrics))
        if not self.objective.multi:
            values = self.values(metrics)
            if math.isfinite(values[0]):
                self.trial.report(values[0], step)

    def final_values(self) -> list[float]:
        """Return the trial's objective values: one objective, its best validation; several, the last one."""
        if not self.history:
            raise RuntimeError("training ended before any validation (is max_steps 0?)")
        if self.objective.multi:
            return self.values(self.history[-1][1])
        direction = self.objective.directions[0]
        finite = [v for v in (self.values(m)[0] for _, m in self.history) if math.isfinite(v)]
        if not finite:
            return [math.nan]
        return [min(finite) if direction == "minimize" else max(finite)]

    def best_step(self) -> int | None:
        """Return the step of the best validation of the first objective (None before any validation)."""
        if not self.history:
            return None
        sign = 1.0 if self.objective.directions[0] == "minimize" else -1.0
        scored = [(sign * self.values(m)[0], s) for s, m in self.history if math.isfinite(self.values(m)[0])]
        return min(scored)[1] if scored else None
