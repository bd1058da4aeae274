"""A trial's verdict: what the worker tells the study, as a pure function of what the child reported.

``verdict(outcome, objectives)`` turns the child's ``Outcome`` (or the supervisor's, when the
child was killed or left none) into the trial's state, its objective values and its one stop
reason. It reads nothing and writes nothing, so every case is a row of a table test.
"""

from __future__ import annotations

import errno
import math

from tuner.fleet.endings import (
    COMPLETED,
    CONTROLLER,
    DISK_FULL,
    FAILED,
    GATED,
    LEASE_LOST,
    OUT_OF_MEMORY,
    PRUNED,
    StopReason,
    Verdict,
)
from tuner.study.resilience import is_transient
from tuner.trial.protocol import Outcome

__all__ = ["stop_of_error", "verdict"]


def verdict(outcome: Outcome, objectives: int) -> Verdict:
    """Return the verdict of ``outcome`` for a study of ``objectives`` objective values.

    A complete outcome needs one finite value per objective, else the trial fails ("objective not
    finite"); a complete outcome is stopped by its budget or by the controller, a pruned one by
    the pruner or a gate: any other pairing is the child's bug, and fails the trial saying so.
    """
    stop = outcome.stop
    if outcome.state == "complete":
        values = list(outcome.values or [])
        if len(values) != objectives or not all(math.isfinite(v) for v in values):
            return Verdict("failed", StopReason(FAILED, "objective not finite at the end of training", stop.step))
        if stop.kind not in (COMPLETED, CONTROLLER):
            return _mismatch(outcome)
        return Verdict("complete", stop, values)
    if outcome.state == "pruned":
        return Verdict("pruned", stop) if stop.kind in (PRUNED, GATED) else _mismatch(outcome)
    if outcome.state == "failed":
        return _mismatch(outcome) if stop.kind in (COMPLETED, CONTROLLER, PRUNED, GATED) else Verdict("failed", stop)
    return _mismatch(outcome)


def stop_of_error(err: BaseException, reason: str) -> StopReason:
    """Return why an error (``reason``: its one line) ended a trial: out of memory, a full disk and a lost database
    are retried; anything else is the trial's failure."""
    if type(err).__name__ == "OutOfMemoryError":
        return StopReason(OUT_OF_MEMORY, f"out of memory (try a smaller batch_size or preset): {reason}"[:500])
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return StopReason(DISK_FULL, f"disk full: {reason}"[:500])
    if is_transient(err):  # the database, not the trial: the trial resumes (tuner.fleet.lease)
        return StopReason(LEASE_LOST, f"lease lost: the study storage was unreachable ({reason})"[:500])
    return StopReason(FAILED, reason[:500])


def _mismatch(outcome: Outcome) -> Verdict:
    return Verdict("failed", StopReason(FAILED, f"the trial's outcome is inconsistent: state {outcome.state!r} "
                                                f"with stop kind {outcome.stop.kind!r}", outcome.stop.step))
