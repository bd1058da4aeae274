"""The loop one worker process runs: take over lost trials, ask for the next one, run it under a lease, tell.

It replaces ``study.optimize`` so that every ending of a trial is one of: complete, pruned,
failed-and-resumable (a WAITING retry is queued that resumes from its checkpoint), or
failed-for-good; and a worker whose trial was taken over goes on quietly instead of telling
Optuna about a trial that is no longer its own.

Before each trial the worker fails the trials whose lease is lost (``tuner.fleet.lease``) and queues
their retries. It stops when:

* the study holds the target number of finished (complete or pruned) trials;
* or the finished trials and those running live elsewhere reach the target, and no retry is
  waiting (the other workers finish theirs); while a running trial has gone silent (missed two
  heartbeats) the worker waits instead, until it beats again or is lost and retried here;
* or a stop was requested (SIGTERM/SIGINT): the running trials save their checkpoints at the
  end of their current step, are failed as "interrupted" and queued to resume;
* or ``max_consecutive_failures`` trials failed in a row (a systemic fault: disk full, a
  broken driver): one line says so, exit code 1;
* or the timeout passed (no new trial starts after it).

While the study storage is unreachable the loop waits and tries again, for up to
``OUTAGE_LIMIT`` seconds, so a database restart costs time, not the worker. Past it the worker
stops with one line and exit code 1, so a supervisor restarts it; its running trial, whose lease
it could not give back, is taken over after the grace and resumes from its checkpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from tuner.fleet.endings import DISK_FULL, LEASE_LOST, StopReason, Verdict, record_stop
from tuner.fleet.lease import (
    OWNER_ATTR,
    LeaseKeeper,
    LostLease,
    claim,
    fail_trial,
    holds,
    lost_trials,
    owner_token,
    queue_retry,
    silent_trials,
    unqueued_retries,
)
from tuner.study.optuna_api import storage_of, trial_id
from tuner.study.resilience import STORAGE_ERRORS, is_transient
from tuner.study.timeouts import Timeouts

if TYPE_CHECKING:
    from optuna import Study, Trial

    from tuner.fleet.lease import Failed

__all__ = ["OUTAGE_LIMIT", "Worker", "WorkerResult"]

_T = TypeVar("_T")
OUTAGE_LIMIT = 1800.0  # seconds a worker waits for an unreachable study storage before it gives up
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
WAIT = "wait"  # _decide_and_ask: nothing to start now, but a silent trial may need this worker soon

# runner(trial, lease) -> the trial's verdict; raises LostLease when the trial stopped being this worker's.
TrialFunction = Callable[["Trial", LeaseKeeper], Verdict]


class StorageLost(Exception):
    """The study storage stayed unreachable past ``OUTAGE_LIMIT``: the worker stops (exit code 1)."""


@dataclass
class WorkerResult:
    """How the loop ended: ``exit_code`` 0 (target reached, or stopped on request) or 1 (too many failures)."""

    exit_code: int
    reason: str
    trials_run: int = 0


@dataclass
class Worker:
    """One worker process's loop over a study; ``jobs`` trials at a time (one per GPU)."""

    study: Study
    run_trial: TrialFunction
    target: int
    timeouts: Timeouts
    max_retries: int = 2
    max_consecutive_failures: int = 3
    jobs: int = 1
    timeout: float | None = None
    say: Callable[[str], None] = print
    # (study, trial number) once its end is stored; it must not raise (tuner.trial.observers makes it best effort)
    after_trial: Callable[[Study, int], None] | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    owner: str = field(default_factory=owner_token)
    serialize: Callable[[], AbstractContextManager[object]] = nullcontext  # a lock shared by the study's workers
    queued_only: bool = False  # run only queued trials (a confirmation's runs); never ask the sampler for one
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _in_a_row: int = field(default=0, init=False)
    _trials_run: int = field(default=0, init=False)
    _failed_out: str | None = field(default=None, init=False)
    _claimed: dict[int, float] = field(default_factory=dict, init=False)  # trial id -> claim()'s moment
    _unrecorded: int = field(default=0, init=False)  # storage calls given up because a stop came during an outage

    # ------------------------------------------------------------------ the loop

    def run(self) -> WorkerResult:
        """Run trials until one of the ends in the module docstring; return how it ended."""
        started = time.monotonic()
        threads = [threading.Thread(target=self._loop, args=(started,), name=f"trials-{k}")
                   for k in range(max(1, self.jobs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)  # short joins: the main thread stays free for signal handlers
        if self._failed_out is not None:
            return WorkerResult(1, self._failed_out, self._trials_run)
        if self.stopping.is_set() and self._unrecorded:
            return WorkerResult(0, f"stopped on request with the study database unreachable: the end of "
                                   f"{self._unrecorded} trial(s) could not be recorded; their checkpoints are "
                                   "saved, and the next worker resumes them (on this machine at once, elsewhere after "
                                   "the grace)",
                                self._trials_run)
        if self.stopping.is_set():
            return WorkerResult(0, "stopped on request: the running trials were saved and queued to resume",
                                self._trials_run)
        return WorkerResult(0, "done", self._trials_run)

    def _loop(self, started: float) -> None:
        try:
            self._trials(started)
        except StorageLost as lost:  # this thread's end, said once: the worker exits 1 (a supervisor restarts it)
            with self._lock:
                self._failed_out = self._failed_out or str(lost)

    def _trials(self, started: float) -> None:
        while not self.stopping.is_set() and self._failed_out is None:
            if self.timeout is not None and time.monotonic() - started > self.timeout:
                return
            trial = self._next_trial()
            if trial is None:
                return
            if trial == WAIT:
                self.stopping.wait(self.timeouts.heartbeat)
                continue
            assert not isinstance(trial, str)
            self._run_one(trial)

    def _next_trial(self) -> Trial | str | None:
        """Take over lost trials, decide whether to go on, and ask for the next trial (a retry first)."""
        def decide_and_ask() -> Trial | str | None:
            with self.serialize():  # among processes: two deciding at once would both start the last trial
                return self._decide_and_ask()

        with self._lock:
            return self._with_storage(decide_and_ask)

    def _decide_and_ask(self) -> Trial | str | None:
        self.recover()
        trials = self.study.get_trials(deepcopy=False)
        finished = sum(t.state in FINISHED for t in trials)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if finished >= self.target:
            return None
        if waiting == 0 and (finished + running >= self.target or self.queued_only):
            # The others are running what is left; but one that went silent may be lost, and its
            # retry would then have nobody to run it.
            return WAIT if silent_trials(self.study, self.timeouts.heartbeat) else None
        if self.stopping.is_set() or self._failed_out is not None:
            return None
        trial = self.study.ask()
        self._claimed[trial_id(trial)] = claim(storage_of(self.study), trial_id(trial), self.owner)
        trial.set_user_attr("worker", self.owner)
        return trial

    def recover(self) -> list[int]:
        """Fail the trials whose lease is lost and queue their retries; return their numbers."""
        taken = []
        for trial, stop in lost_trials(self.study, self.timeouts.grace):
            failed = fail_trial(self.study, trial, stop, self.max_retries)
            if not failed.by_us:
                continue  # another worker took it over a moment earlier
            taken.append(trial.number)
            if failed.retry is not None:
                self.say(f"trial {trial.number}: {stop.text()}; queued to resume from its checkpoint "
                         f"({_attempt(failed)})")
            else:
                self.say(f"trial {trial.number}: {stop.text()}; failed (no retries left)")
        for trial, stop in unqueued_retries(self.study, self.max_retries, settle=self.timeouts.grace):
            failed = queue_retry(self.study, trial, stop, self.max_retries)
            self.say(f"trial {trial.number} failed ({stop.text()[:120]}) but its retry was never queued (the study "
                     f"database was lost in between); queued now ({_attempt(failed)})")
        return taken

    # ------------------------------------------------------------------ one trial

    def _run_one(self, trial: Trial) -> None:
        storage = storage_of(self.study)
        ended: Verdict | LostLease
        with LeaseKeeper(storage, trial_id(trial), self.owner, self.timeouts.heartbeat, self.timeouts.retry,
                         claimed_at=self._claimed.pop(trial_id(trial), None)) as lease:
            try:
                ended = self.run_trial(trial, lease)
            except LostLease as lost:
                ended = lost
        self._trials_run += 1
        if isinstance(ended, LostLease):
            stop = StopReason(LEASE_LOST, str(ended))
            with self._lock:
                self._with_storage(lambda: self._give_up(trial, stop))
            return
        with self._lock:
            told = self._with_storage(lambda: self._tell(trial, ended))
        if told and self.after_trial is not None:
            self.after_trial(self.study, trial.number)

    def _give_up(self, trial: Trial, stop: StopReason) -> None:
        """After a lost lease: if the storage still names this worker (its heartbeats failed, nobody
        took the trial over), fail the trial and queue its resume now rather than after the grace."""
        frozen = storage_of(self.study).get_trial(trial_id(trial))
        if frozen.state == TrialState.RUNNING and frozen.system_attrs.get(OWNER_ATTR) == self.owner:
            failed = fail_trial(self.study, frozen, stop, self.max_retries)
            if failed.by_us and failed.retry is not None:
                self.say(f"trial {trial.number}: {stop.text()}; queued to resume from its checkpoint "
                         f"({_attempt(failed)})")
                return
        self.say(f"trial {trial.number}: {stop.text()}; this worker goes on with the next trial")

    def _tell(self, trial: Trial, ended: Verdict) -> bool:
        """Store the trial's end if this worker still holds it; count failures in a row; return whether stored."""
        storage = storage_of(self.study)
        if not holds(storage, trial_id(trial), self.owner):
            self.say(f"trial {trial.number}: taken over by another worker before its end could be stored; "
                     "this worker goes on")
            return False
        for key, value in ended.attrs.items():
            storage.set_trial_user_attr(trial_id(trial), key, value)
        if ended.state == "failed":
            self._fail(trial, ended.stop)
            return True
        record_stop(storage, trial_id(trial), ended.stop)
        try:
            if ended.state == "complete":
                self.study.tell(trial, ended.values, skip_if_finished=True)
            else:
                self.study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        except UpdateFinishedTrialError:
            pass  # finished already: our own write whose answer was lost and retried, or a takeover
        self._in_a_row = 0
        return True

    def _fail(self, trial: Trial, stop: StopReason) -> None:
        """Fail the trial (its retry queued when due); a worker whose trials keep failing stops."""
        frozen = storage_of(self.study).get_trial(trial_id(trial))
        failed = fail_trial(self.study, frozen, stop, self.max_retries)
        if failed.retry is not None:
            self.say(f"trial {trial.number} will resume from its checkpoint as a retry ({_attempt(failed)})")
        if not stop.free:
            self._in_a_row += 1
        if stop.kind == DISK_FULL and self._failed_out is None:  # this worker's disk: another worker takes it on
            self._failed_out = (f"{stop.text()[:200]}; stopping this worker: trial {trial.number} is queued to "
                                "resume from its checkpoint on another worker (free some disk space here)")
        if self._in_a_row >= self.max_consecutive_failures and self._failed_out is None:
            self._failed_out = (f"{self._in_a_row} trials failed in a row (the last: {stop.text()[:200]}); "
                                "stopping this worker: something outside the trials is wrong "
                                "(see their stop reasons in `tuner status`)")

    # ------------------------------------------------------------------ the storage

    def _with_storage(self, call: Callable[[], _T]) -> _T | None:
        """Run ``call``; while the storage is unreachable, wait and try again (up to OUTAGE_LIMIT)."""
        first_failure: float | None = None
        while True:
            try:
                return call()
            except STORAGE_ERRORS as err:
                if not is_transient(err):
                    raise
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                if now - first_failure > OUTAGE_LIMIT:
                    raise StorageLost(f"the study storage was unreachable for longer than {OUTAGE_LIMIT:g} s "
                                      f"({type(err).__name__}); stopping this worker: its running trial resumes "
                                      "from its checkpoint on the next worker (after the lease's grace)") from err
                self.say(f"the study storage is unreachable ({type(err).__name__}); trying again")
                if self.stopping.wait(min(10.0, self.timeouts.heartbeat)):
                    self._unrecorded += 1
                    return None


def _attempt(failed: Failed) -> str:
    """Return "attempt N, K retries left" of the retry ``fail_trial`` or ``queue_retry`` queued."""
    left = failed.retries_left
    return f"attempt {failed.retry}, {left} retr{'y' if left == 1 else 'ies'} left"
