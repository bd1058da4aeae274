"""The verdict: a pure function from the child's outcome to the trial's state, values and one stop reason."""

from __future__ import annotations

import math

import pytest

from tuner.fleet.endings import KINDS, RETRIED, StopReason
from tuner.trial.protocol import Outcome
from tuner.trial.verdict import verdict


def _outcome(state: str, kind: str, values: list[float] | None = None, detail: str = "why") -> Outcome:
    return Outcome(state, StopReason(kind, detail, 40), values=values)


# (outcome, objectives) -> (state, stop kind, values)
CASES = [
    (_outcome("complete", "completed", [1.5]), 1, ("complete", "completed", [1.5])),
    (_outcome("complete", "controller", [1.5]), 1, ("complete", "controller", [1.5])),
    (_outcome("complete", "completed", [1.5, 0.5]), 2, ("complete", "completed", [1.5, 0.5])),
    (_outcome("complete", "completed", [math.nan]), 1, ("failed", "failed", None)),
    (_outcome("complete", "completed", [math.inf, 0.5]), 2, ("failed", "failed", None)),
    (_outcome("complete", "completed", [1.5]), 2, ("failed", "failed", None)),  # one value short
    (_outcome("complete", "completed", None), 1, ("failed", "failed", None)),
    (_outcome("pruned", "pruned"), 1, ("pruned", "pruned", None)),
    (_outcome("pruned", "gated"), 1, ("pruned", "gated", None)),
    (_outcome("failed", "timed_out"), 1, ("failed", "timed_out", None)),
    (_outcome("failed", "stalled"), 1, ("failed", "stalled", None)),
    (_outcome("failed", "interrupted"), 1, ("failed", "interrupted", None)),
    (_outcome("failed", "lease_lost"), 1, ("failed", "lease_lost", None)),
    (_outcome("failed", "crashed"), 1, ("failed", "crashed", None)),
    (_outcome("failed", "out_of_memory"), 1, ("failed", "out_of_memory", None)),
    (_outcome("failed", "disk_full"), 1, ("failed", "disk_full", None)),
    (_outcome("failed", "failed"), 1, ("failed", "failed", None)),
    # A state and a kind that do not belong together: the child's bug, a failure that says so.
    (_outcome("complete", "gated", [1.5]), 1, ("failed", "failed", None)),
    (_outcome("pruned", "timed_out"), 1, ("failed", "failed", None)),
    (_outcome("failed", "completed"), 1, ("failed", "failed", None)),
    (_outcome("running", "failed"), 1, ("failed", "failed", None)),
]


@pytest.mark.parametrize(("outcome", "objectives", "expected"), CASES)
def test_the_verdict_of_each_outcome(outcome: Outcome, objectives: int, expected: tuple) -> None:
    ended = verdict(outcome, objectives)
    assert (ended.state, ended.stop.kind, ended.values) == expected
    assert ended.stop.step == 40  # the step the trial reached is kept, whatever the verdict


def test_a_kept_reason_is_the_childs_and_a_rewritten_one_says_why() -> None:
    assert verdict(_outcome("failed", "crashed", detail="crashed: killed by SIGKILL"), 1).stop.text() == (
        "crashed: killed by SIGKILL")
    assert verdict(_outcome("complete", "completed", [math.nan]), 1).stop.text() == (
        "objective not finite at the end of training")
    assert "inconsistent" in verdict(_outcome("pruned", "timed_out"), 1).stop.text()


def test_every_kind_is_covered_and_the_retried_ones_are_the_transient_ones() -> None:
    covered = {case[2][1] for case in CASES}
    assert covered == set(KINDS)
    assert set(RETRIED) == {"timed_out", "stalled", "interrupted", "lease_lost", "crashed", "out_of_memory",
                            "disk_full"}
    assert StopReason("interrupted").free and not StopReason("crashed").free
    with pytest.raises(ValueError, match="stop kind 'exploded'"):
        StopReason("exploded")


@pytest.mark.parametrize(("text", "kind"), [
    ("worker lost: no heartbeat for 200 s", "lease_lost"), ("lease lost: storage unreachable", "lease_lost"),
    ("interrupted at step 12 (checkpoint saved)", "interrupted"), ("timed out: still running", "timed_out"),
    ("stalled: no training progress", "stalled"), ("crashed: worker exited with status 86", "crashed"),
    ("out of memory (try a smaller batch_size)", "out_of_memory"), ("RuntimeError: a bug", "failed"),
    ("disk full: [Errno 28] No space left on device", "disk_full"),
    ("quality gate: tf_diagonality 0.1 < 0.2", "gated"), ("pruner median: worse", "pruned"),
])
def test_reasons_written_as_text_by_earlier_versions_are_read_with_their_kind(text: str, kind: str) -> None:
    assert StopReason.from_text(text).kind == kind


def test_errors_that_are_the_machines_not_the_trials_are_retried() -> None:
    import errno

    from sqlalchemy.exc import OperationalError

    from tuner.trial.verdict import stop_of_error

    full = stop_of_error(OSError(errno.ENOSPC, "No space left on device"), "OSError: no space")
    assert (full.kind, full.retried) == ("disk_full", True)
    assert stop_of_error(OSError(errno.EACCES, "denied"), "OSError: denied").kind == "failed"
    lost = stop_of_error(OperationalError("SELECT 1", {}, Exception("refused")), "OperationalError: refused")
    assert lost.kind == "lease_lost" and lost.text().startswith("lease lost: the study storage was unreachable")
    assert stop_of_error(ValueError("a bug"), "ValueError: a bug") == StopReason("failed", "ValueError: a bug")
