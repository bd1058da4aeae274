"""The callback a trial gives the trainer: report to Optuna, apply quality gates, ask the pruner.

Runs in the trial's child process; every report and every prune question goes through the
shared study storage, so the parent's pruner settings and the other trials are seen as they are.
The child reaches its trial by storage id through ``TrialHandle``, Optuna's public storage API,
not by constructing an ``optuna.Trial`` for a trial another process asked for. Metrics are read
by the names the trainer reports them under (``trainer.evaluation.metric_registry``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trainer.evaluation import metric_registry
from tuner.errors import TunerError
from tuner.fleet.endings import GATED, PRUNED, StopReason
from tuner.fleet.lease import LostLease, holds

FINAL_EVALUATION_ATTR = "final_evaluation"  # the trial's value's measurement: checkpoint, step, sentences, figures

if TYPE_CHECKING:
    from optuna import Study
    from optuna.storages import BaseStorage

    from tuner.space.spec import Gate, Objective


@dataclass(frozen=True)
class TrialHandle:
    """A running trial of ``study`` named by its storage id: report it and ask the study's pruner about it."""

    study: Study
    storage: BaseStorage
    trial_id: int

    def set_user_attr(self, key: str, value: Any) -> None:
        """Store a user attribute on the trial."""
        self.storage.set_trial_user_attr(self.trial_id, key, value)

    def report(self, value: float, step: int) -> None:
        """Store the trial's intermediate objective ``value`` at ``step`` (what pruners compare)."""
        self.storage.set_trial_intermediate_value(self.trial_id, step, value)

    def should_prune(self) -> bool:
        """Return the study pruner's judgement of the trial as stored now."""
        return self.study.pruner.prune(self.study, self.storage.get_trial(self.trial_id))


@dataclass
class Reporter:
    """Callable ``(step, metrics) -> stop?`` for ``trainer.train``; remembers why it stopped (``stop``).

    With one objective, each validation's value is reported at its step and the pruner is asked;
    with several, nothing is reported (Optuna cannot prune them) and only the quality gates apply.

    ``report_seconds`` and ``report_calls`` measure the tuner's cost per validation: the wall
    time of every ``__call__`` (its storage work: the attributes, the report, the prune question;
    the gate arithmetic around them takes microseconds) and how many calls there were.
    ``replay`` (a resumed run restoring earlier validations) is not counted.
    """

    trial: TrialHandle
    objective: Objective
    gates: tuple[Gate, ...]
    max_steps: int
    pruner_name: str = "pruner"
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    stop: StopReason | None = None  # why this callback stopped training (pruned or gated), None while it has not
    report_seconds: float = 0.0  # wall time spent in __call__ (storage round trips), summed over calls
    report_calls: int = 0  # number of __call__ (validations reported)
    owner: str = ""  # the lease this trial runs under (tuner.fleet.lease); "" for none: nothing is checked

    def values(self, metrics: dict[str, float]) -> list[float]:
        """Return the objective values in ``metrics``; TunerError names a metric the trainer did not report."""
        missing = [m for m in self.objective.metrics if m not in metrics]
        if missing:
            raise TunerError(f"objective metric {missing[0]!r} is not reported by the trainer "
                             f"(it reports: {', '.join(sorted(metrics))})")
        return [float(metrics[m]) for m in self.objective.metrics]

    def __call__(self, step: int, metrics: dict[str, float]) -> bool:
        """Report one validation; return True to stop training (the trial is then pruned).

        Fencing: when the trial is no longer held by ``owner`` (another worker failed it and
        retries it), LostLease is raised before anything is reported, ending the training.
        """
        started = time.perf_counter()
        try:
            if self.owner and not holds(self.trial.storage, self.trial.trial_id, self.owner):
                raise LostLease(f"lease lost at step {step}: the trial is no longer this worker's")
            return self._report(step, metrics)
        finally:
            self.report_seconds += time.perf_counter() - started
            self.report_calls += 1

    def summary_names(self) -> list[str]:
        """Return the metrics kept on the trial as ``last_metrics``: the shown ones, the objective's and the gates'."""
        names = [m.name for m in metric_registry.shown()]
        for name in (*self.objective.metrics, *(g.metric for g in self.gates)):
            if name not in names:
                names.append(name)
        return names

    def _report(self, step: int, metrics: dict[str, float]) -> bool:
        """The body of ``__call__`` (timed there)."""
        self.history.append((step, metrics))
        values = self.values(metrics)
        self.trial.set_user_attr("last_step", step)
        self.trial.set_user_attr("last_metrics", metric_registry.summary(metrics, self.summary_names()))
        if not self.objective.multi:
            self.trial.report(values[0], step)
        self.stop = self._judge(step, metrics, values)
        return self.stop is not None

    def _judge(self, step: int, metrics: dict[str, float], values: list[float]) -> StopReason | None:
        """Return why training must stop at this validation (a gate, a non-finite objective, the pruner), or None."""
        reason = next((r for r in (g.violation(step, metrics, self.max_steps) for g in self.gates) if r), None)
        if reason is not None:
            return StopReason(GATED, reason, step)
        not_finite = [m for m, v in zip(self.objective.metrics, values, strict=True) if not math.isfinite(v)]
        if not_finite:
            return StopReason(GATED, f"objective {not_finite[0]} is not finite at step {step}", step)
        if not self.objective.multi and self.trial.should_prune():
            return StopReason(PRUNED, f"pruner {self.pruner_name}: {self.objective.metrics[0]} {values[0]:.4f} at "
                                      f"step {step} is worse than the other trials at this step", step)
        return None

    def replay(self, step: int, metrics: dict[str, float]) -> None:
        """Take an earlier validation of a resumed run: remember it and restore its intermediate value.

        No gate or pruner is asked: the dead trial's run already passed them at that step.
        """
        self.history.append((step, metrics))
        if not self.objective.multi:
            values = self.values(metrics)
            if math.isfinite(values[0]):
                self.trial.report(values[0], step)

    def final_values(self, final: dict[str, float] | None = None) -> list[float]:
        """Return the trial's objective values.

        ``final`` is the trainer's final evaluation (``TrainResult.final``: best.pt free-running on
        every held-out sentence, each with its own seed); when it holds every objective metric,
        the values are its figures: one deterministic measurement on the whole held-out set,
        where the minimum of several noisy validations on a few sentences would reward luck.
        Otherwise (a teacher-forced objective, or the final evaluation off) they are those of
        the validation where the first objective was best: that validation is the trainer's
        best.pt (its ``best_metric`` is the first objective), so a trial's value is always the
        objective of the checkpoint it exports. With several objectives, the others are read at
        the same validation (NaN values when none was finite).
        """
        if final is not None and all(m in final for m in self.objective.metrics):
            return self.values(final)
        if not self.history:
            raise TunerError("training ended before any validation (is max_steps 0?)")
        if self.objective.multi:
            best = self.best_step()
            chosen = next((m for s, m in self.history if s == best), None)
            return self.values(chosen) if chosen is not None else [math.nan] * len(self.objective.metrics)
        direction = self.objective.directions[0]
        finite = [v for v in (self.values(m)[0] for _, m in self.history) if math.isfinite(v)]
        if not finite:
            return [math.nan]
        return [min(finite) if direction == "minimize" else max(finite)]

    def note_final(self, checkpoint: str, step: int, sentences: int, metrics: dict[str, float]) -> None:
        """Keep the trainer's final evaluation on the trial (user attribute ``final_evaluation``)."""
        self.trial.set_user_attr(FINAL_EVALUATION_ATTR, {
            "checkpoint": checkpoint, "step": step, "sentences": sentences,
            "metrics": metric_registry.summary(metrics, sorted(metrics))})

    def best_step(self) -> int | None:
        """Return the step of the best validation of the first objective (None before any validation)."""
        if not self.history:
            return None
        sign = 1.0 if self.objective.directions[0] == "minimize" else -1.0
        scored = [(sign * self.values(m)[0], s) for s, m in self.history if math.isfinite(self.values(m)[0])]
        return min(scored)[1] if scored else None
