"""How a trial ended: one stop reason per trial, written once, read by everything that shows or retries it.

A finished trial carries the user attribute ``stop_reason``: ``{"kind": KIND, "detail": TEXT,
"step": N}``. ``record_stop`` is the one function that writes it (the worker telling a trial's
end, ``tuner.fleet.lease.fail_trial`` failing one); ``tuner status``, the dashboard note and
the trial's MLflow run show it, and the lease decides from its kind whether the trial is
retried. The kinds:

==============  ===================================================================  =========
kind            what stopped the trial                                               retried
==============  ===================================================================  =========
completed       it trained its whole step budget                                     no
controller      the trainer's quality controller stopped it (no improvement, ...)    no
pruned          the pruner: worse than the other trials at the same step             no
gated           a quality gate: a metric out of its bounds, or a non-finite value    no
timed_out       it ran past the trial time limit and was killed                      yes
stalled         it made no training progress for the stall time and was killed       yes
interrupted     a stop was asked for (SIGTERM, Ctrl-C): it saved its step            yes, free
lease_lost      its worker died, went silent, or lost the study database             yes
crashed         its process died without an outcome (a signal, an out-of-memory kill)  yes
out_of_memory   the device ran out of memory                                         yes
disk_full       its worker's disk was full (the worker stops; another takes it on)   yes
failed          an error in the trial (the detail names it)                          no
==============  ===================================================================  =========

"Retried" kinds say nothing about the configuration: the trial resumes from its checkpoint as a
retry while it has retries left; an interruption costs none of them. Trials stored before this
attribute existed carry ``prune_reason``/``fail_reason`` text; ``StopReason.of`` reads those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

__all__ = ["KINDS", "RETRIED", "STOP_ATTR", "StopReason", "Verdict", "record_stop"]

STOP_ATTR = "stop_reason"  # the trial user attribute holding its StopReason

COMPLETED, CONTROLLER, PRUNED, GATED = "completed", "controller", "pruned", "gated"
TIMED_OUT, STALLED, INTERRUPTED, LEASE_LOST = "timed_out", "stalled", "interrupted", "lease_lost"
CRASHED, OUT_OF_MEMORY, DISK_FULL, FAILED = "crashed", "out_of_memory", "disk_full", "failed"
KINDS = (COMPLETED, CONTROLLER, PRUNED, GATED, TIMED_OUT, STALLED, INTERRUPTED, LEASE_LOST, CRASHED, OUT_OF_MEMORY,
         DISK_FULL, FAILED)
RETRIED = (TIMED_OUT, STALLED, INTERRUPTED, LEASE_LOST, CRASHED, OUT_OF_MEMORY, DISK_FULL)
# How each retried kind's detail begins, and so how text written before the kinds existed is read.
_LEGACY_PREFIXES = (("timed out", TIMED_OUT), ("stalled", STALLED), ("interrupted", INTERRUPTED),
                    ("worker lost", LEASE_LOST), ("lease lost", LEASE_LOST), ("crashed", CRASHED),
                    ("out of memory", OUT_OF_MEMORY), ("disk full", DISK_FULL), ("pruner", PRUNED),
                    ("quality gate", GATED),
                    ("objective", GATED))


@dataclass(frozen=True)
class StopReason:
    """Why a trial stopped: ``kind`` (one of ``KINDS``), a one-line ``detail`` and the step it reached."""

    kind: str
    detail: str = ""
    step: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"stop kind {self.kind!r}: expected one of {', '.join(KINDS)}")

    @property
    def retried(self) -> bool:
        """True when the trial may succeed if run again: it resumes as a retry (``RETRIED``)."""
        return self.kind in RETRIED

    @property
    def free(self) -> bool:
        """True when a retry for this reason costs none of the trial's retries (it was stopped on request)."""
        return self.kind == INTERRUPTED

    def text(self) -> str:
        """Return the line people read: the detail, or the kind when there is none."""
        return self.detail or self.kind.replace("_", " ")

    def to_attr(self) -> dict[str, Any]:
        """Return the value of the ``stop_reason`` attribute."""
        return {"kind": self.kind, "detail": self.detail[:1000], "step": self.step}

    @classmethod
    def from_attr(cls, value: Any) -> StopReason | None:
        """Return the StopReason stored as ``value`` (None when it is not one)."""
        if not isinstance(value, dict) or value.get("kind") not in KINDS:
            return None
        step = value.get("step")
        return cls(str(value["kind"]), str(value.get("detail") or ""), int(step) if step is not None else None)

    @classmethod
    def from_text(cls, detail: str, default: str = FAILED, step: int | None = None) -> StopReason:
        """Return the StopReason of a reason written as text: its kind read from how the text begins."""
        lowered = detail.lower()
        kind = next((k for prefix, k in _LEGACY_PREFIXES if lowered.startswith(prefix)), default)
        return cls(kind, detail, step)

    @classmethod
    def of(cls, trial: FrozenTrial) -> StopReason | None:
        """Return how ``trial`` ended: its ``stop_reason``, else what an earlier version wrote; None if neither."""
        attrs = trial.user_attrs
        stored = cls.from_attr(attrs.get(STOP_ATTR))
        if stored is not None:
            return stored
        if attrs.get("prune_reason"):
            return cls.from_text(str(attrs["prune_reason"]), default=PRUNED)
        if attrs.get("fail_reason"):
            return cls.from_text(str(attrs["fail_reason"]))
        return None


def record_stop(storage: BaseStorage, trial: int, stop: StopReason) -> None:
    """Store ``stop`` on trial ``trial`` (its storage id): the one place a stop reason is written."""
    storage.set_trial_user_attr(trial, STOP_ATTR, stop.to_attr())


STATES = ("complete", "pruned", "failed")
_MLFLOW_STATES = {"complete": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}


@dataclass(frozen=True)
class Verdict:
    """A trial's end: ``state`` (complete, pruned or failed), why (``stop``) and, when complete, its values.

    The worker stores ``stop`` and ``attrs`` with the state, in the same outage-proof step.
    """

    state: str
    stop: StopReason
    values: list[float] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)  # user attributes stored with the verdict (best_step, timing)

    @property
    def mlflow_state(self) -> str:
        """The trial's state as the MLflow run's tag spells it (COMPLETE, PRUNED, FAIL)."""
        return _MLFLOW_STATES[self.state]

    def headline(self, metrics: Sequence[str]) -> str:
        """Return the live view's words for the ending, e.g. ``fr_mcd 7.1234 (step 150)``."""
        if self.state == "complete" and self.values:
            shown = ", ".join(f"{m} {v:.4f}" for m, v in zip(metrics, self.values, strict=False))
            return f"{shown} (step {self.stop.step})"
        if self.state == "pruned":
            return f"at step {self.stop.step}: {self.stop.text()}"
        return self.stop.text()
