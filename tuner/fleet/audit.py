"""Audit a study's trial lifecycle from what the runs wrote: trials lost, trials trained twice, and
the training steps that retries repeated.

Every training step's record in a run's ``metrics.jsonl`` carries its wall-clock time, and a
retry names the trials it continues (``retry_history``) and the step it resumed from
(``resumed_from``). From those:

* **trained twice**: a predecessor wrote a step after its retry wrote its first (two processes
  trained one configuration at the same time), or two retries of one trial both trained;
* **wrong resume**: a retry did not start from the newest checkpoint its predecessors left;
* **repeated steps**: steps a predecessor trained past the checkpoint its retry resumed from
  (trained again by the retry: the price of a kill between two checkpoints);
* **lost**: a trial failed for a transient reason without a retry, or one still RUNNING or
  WAITING when no worker runs;
* **duplicate parameters**: two trials that are not retries of one another drew the same
  parameters (workers repeating each other's draws: a sampler seeded alike in every worker).

Used by the chaos tests and ``bench/chaos.py``; it reads the shared home's run folders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from optuna.trial import TrialState

from trainer.fileio import read_jsonl
from tuner.fleet.endings import StopReason
from tuner.fleet.lease import RETRY_HISTORY_ATTR

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

__all__ = ["Audit", "audit_trials", "own_steps"]


@dataclass
class Audit:
    """What ``audit_trials`` found; the lists hold one line per finding."""

    trials: int = 0
    finished: int = 0
    retries: int = 0  # retries that trained at least one step
    resumed_steps: int = 0  # steps retries did not have to train again, thanks to checkpoints
    repeated_steps: int = 0
    trained_twice: list[str] = field(default_factory=list)
    wrong_resume: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    duplicate_params: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """Return the figures (counts and findings) for JSON."""
        return {"trials": self.trials, "finished": self.finished, "retries": self.retries,
                "resumed_steps": self.resumed_steps, "repeated_steps": self.repeated_steps,
                "trained_twice": len(self.trained_twice), "wrong_resume": len(self.wrong_resume),
                "lost": len(self.lost), "duplicate_params": len(self.duplicate_params),
                "findings": self.trained_twice + self.wrong_resume + self.lost + self.duplicate_params}


def own_steps(run_dir: Path, after_step: int) -> list[tuple[int, float]]:
    """Return (step, unix time) of the training records ``run_dir`` wrote itself: those after ``after_step``
    (the records up to the step a retry resumed from were copied from its predecessor)."""
    return [(int(record["step"]), float(record["time"])) for _, record in read_jsonl(run_dir / "metrics.jsonl")
            if record.get("kind") == "train" and "time" in record and int(record["step"]) > after_step]


def _resume_point(history: list[int], by_number: dict[int, FrozenTrial]) -> tuple[int, int | None]:
    """Return (step, trial) of the checkpoint a retry of ``history`` must resume from: the newest
    trial's resumable checkpoint, chosen as a resume chooses it (``trainer.model.checkpoint.load_resumable``);
    (0, None) when no trial left one."""
    from trainer.model.checkpoint import CheckpointError, load_resumable  # lazy: imports torch

    for number in reversed(history):
        trial = by_number.get(number)
        run_dir = trial.user_attrs.get("run_dir") if trial is not None else None
        if not run_dir or not (Path(run_dir) / "checkpoints").is_dir():
            continue
        try:
            _, payload, _ = load_resumable(Path(run_dir) / "checkpoints")
        except CheckpointError:
            continue
        return int(payload["position"]["step"]), number
    return 0, None


def duplicate_params(trials: list[FrozenTrial]) -> list[str]:
    """Return one line per trial that drew the same parameters as an earlier one it is not a retry of."""
    drawn: dict[str, dict[int, int]] = {}  # parameters -> {lineage: its first trial's number}
    found = []
    for trial in sorted(trials, key=lambda t: t.number):
        history = trial.system_attrs.get(RETRY_HISTORY_ATTR) or []
        lineage = int(history[0]) if history else trial.number  # a retry runs its first attempt's parameters
        if not trial.params:
            continue
        lineages = drawn.setdefault(repr(sorted(trial.params.items())), {})
        if lineage not in lineages and lineages:
            found.append(f"trial {trial.number} drew the same parameters as trial {next(iter(lineages.values()))}: "
                         f"{dict(trial.params)}")
        lineages.setdefault(lineage, trial.number)
    return found


def audit_trials(trials: list[FrozenTrial], workers_gone: bool = True) -> Audit:
    """Audit ``trials`` (one study's); ``workers_gone``: no worker runs now, so RUNNING or WAITING is lost."""
    audit = Audit(trials=len(trials), duplicate_params=duplicate_params(trials))
    by_number = {t.number: t for t in trials}
    own: dict[int, list[tuple[int, float]]] = {}
    for trial in trials:
        run_dir = trial.user_attrs.get("run_dir")
        resumed = trial.user_attrs.get("resumed_from") or {}
        own[trial.number] = own_steps(Path(run_dir), int(resumed.get("step", 0))) if run_dir else []
    retried = {int(n) for t in trials for n in t.system_attrs.get(RETRY_HISTORY_ATTR, [])}
    retries_of: dict[int, list[int]] = {}
    for trial in trials:
        if trial.system_attrs.get(RETRY_HISTORY_ATTR) and own[trial.number]:
            retries_of.setdefault(int(trial.system_attrs[RETRY_HISTORY_ATTR][-1]), []).append(trial.number)
    for number, retries in sorted(retries_of.items()):
        if len(retries) > 1:
            audit.trained_twice.append(f"trial {number} was retried by {len(retries)} trials that all trained: "
                                       f"{', '.join(map(str, sorted(retries)))}")
    for trial in trials:
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            audit.finished += 1
        elif trial.state == TrialState.FAIL:
            stop = StopReason.of(trial)
            if stop is not None and stop.retried and trial.number not in retried:
                audit.lost.append(f"trial {trial.number} failed ({stop.text()}) and was not retried")
        elif workers_gone:
            audit.lost.append(f"trial {trial.number} is still {trial.state.name} with no worker left")
        history = [int(n) for n in trial.system_attrs.get(RETRY_HISTORY_ATTR, [])]
        if not history or not own[trial.number]:
            continue
        audit.retries += 1
        first = min(t for _, t in own[trial.number])
        for number in history:
            if own.get(number) and max(t for _, t in own[number]) >= first:
                audit.trained_twice.append(f"trial {number} trained until {max(t for _, t in own[number]):.3f}, "
                                           f"after its retry {trial.number} began at {first:.3f}")
        expected, source = _resume_point(history, by_number)
        resumed = trial.user_attrs.get("resumed_from") or {}
        if int(resumed.get("step", 0)) != expected:
            audit.wrong_resume.append(f"trial {trial.number} resumed from step {int(resumed.get('step', 0))}, "
                                      f"but trial {source} left a checkpoint at step {expected}")
        audit.resumed_steps += expected
        if own.get(history[-1]):
            audit.repeated_steps += max(0, max(s for s, _ in own[history[-1]]) - expected)
    return audit
