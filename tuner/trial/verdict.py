"""A trial's verdict: what the worker tells the study, as a pure function of what the child reported.

``verdict(outcome, objectives)`` turns the child's ``Outcome`` (or the supervisor's, when the
child was killed or left none) into the trial's state, its objective values and its one stop
reason. It reads nothing and writes nothing, so every case is a row of a table test.
"""

from __future__ import annotations

import math

from tuner.fleet.endings import COMPLETED, CONTROLLER, FAILED, GATED, PRUNED, StopReason, Verdict
from tuner.trial.protocol import Outcome

__all__ = ["verdict"]


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


def _mismatch(outcome: Outcome) -> Verdict:
    return Verdict("failed", StopReason(FAILED, f"the trial's outcome is inconsistent: state {outcome.state!r} "
                                                f"with stop kind {outcome.stop.kind!r}", outcome.stop.step))
