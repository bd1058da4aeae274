"""A trial is a lease held by one worker process: who holds it, whether it still does, and when it is lost.

Each worker process has an owner token, ``host/space:pid:start`` (``space``: a short id of this
boot of the machine and of the pid namespace the process sees, so two machines or containers
that share a host name, such as cloned VMs or replicas given one ``hostname:``, never judge each
other's pids; ``start``: the process's start time, so a recycled pid is never taken for the old
owner). When a worker begins a trial it stores its
token on the trial (system attribute ``lease_owner``; the user attribute ``worker`` shows it)
and then, every ``heartbeat`` seconds, the time by the study's clock (``lease_heartbeat``: the
database server's clock on PostgreSQL, ``tuner.study.clock``, so machines whose clocks disagree
judge each other's heartbeats alike). Only the holder may
train the trial, report it or tell its end; each of them checks first (``holds``).

A lease is lost when (``lost_trials``):

* its trial is RUNNING and no heartbeat came for ``grace`` seconds (the worker, or its
  machine, or its network, is gone); or
* its owner ran in this machine's process space and that process no longer exists: found at
  once, so a worker restarted by its supervisor takes over its predecessor's trial within
  seconds. Where the process space cannot be read (no /proc), only the heartbeat speaks.

Any worker that finds a lost lease fails the trial and, when the failure is transient (worker
lost, interrupted, out of memory, timed out) and the trial has retries left, adds a WAITING
copy whose ``retry_history`` names it: the next worker to ask for a trial resumes it from its
checkpoint (``tuner.trial.resume``). Failing a trial is a compare-and-set in the storage, so of two
workers finding the same lost lease one retries it, exactly once.

``LeaseKeeper`` is the heartbeat of one running trial: a thread that keeps the lease and
notices when it is gone (another worker failed the trial, or the storage stayed unreachable
for the retry window; ``tuner.study.timeouts`` says why that window is shorter than the grace).
It never dies silently: whatever ends it sets ``lost`` with a reason.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState, create_trial

from tuner.fleet.endings import LEASE_LOST, STOP_ATTR, StopReason
from tuner.study.clock import study_clock
from tuner.study.optuna_api import CREATE_KEY_ATTR, fail_running_trial, storage_of, trial_id
from tuner.study.resilience import is_transient

if TYPE_CHECKING:
    from optuna import Study
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

__all__ = ["Failed", "LeaseKeeper", "LostLease", "OWNER_ATTR", "HEARTBEAT_ATTR", "RETRY_HISTORY_ATTR",
           "RETRIES_USED_ATTR", "claim", "fail_trial", "holds", "lost_trials", "owner_alive", "owner_token",
           "queue_retry", "silent_trials", "unqueued_retries"]

OWNER_ATTR = "lease_owner"  # system attribute: the holder's owner token
HEARTBEAT_ATTR = "lease_heartbeat"  # system attribute: unix time of the holder's last heartbeat
RETRY_HISTORY_ATTR = "retry_history"  # system attribute: numbers of the trials this one retries, oldest first
RETRIES_LEFT_ATTR = "retries_left"  # user attribute shown on a retry: how many more it may get
RETRIES_USED_ATTR = "retries_used"  # system attribute: the retries its failures have charged so far

def _start_ticks(pid: int) -> int | None:
    """Return process ``pid``'s start time in clock ticks after boot (/proc), or None when it does not exist."""
    try:
        text = open(f"/proc/{pid}/stat", encoding="ascii", errors="replace").read()
    except OSError:
        return None
    try:
        return int(text[text.rindex(")") + 2:].split()[19])  # field 22; the name may hold spaces
    except (ValueError, IndexError):
        return None


@functools.cache
def _process_space() -> str | None:
    """Return a short id of the pids this process can see (this boot, this pid namespace); None without /proc."""
    try:
        boot = open("/proc/sys/kernel/random/boot_id", encoding="ascii").read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return hashlib.sha256(f"{boot}|{namespace}".encode()).hexdigest()[:12]


def _place() -> str:
    """Return ``host/space`` of this process (``host/-`` where the process space cannot be read)."""
    return f"{socket.gethostname()}/{_process_space() or '-'}"


def owner_token(pid: int | None = None) -> str:
    """Return ``host/space:pid:start`` of this process (or of ``pid`` in this process's pid space)."""
    pid = os.getpid() if pid is None else pid
    return f"{_place()}:{pid}:{_start_ticks(pid) or 0}"


def owner_alive(token: str) -> bool | None:
    """Return whether the owner of ``token`` still runs: True/False in this process space, None elsewhere or
    where it cannot be read (unknowable: only the heartbeat can tell)."""
    try:
        place, pid_text, start_text = token.rsplit(":", 2)
        pid, start = int(pid_text), int(start_text)
    except ValueError:
        return None
    if _process_space() is None or place != _place():
        return None
    ticks = _start_ticks(pid)
    if ticks is None and _pid_exists(pid):
        return None  # alive but unreadable (/proc mounted with hidepid): only the heartbeat can tell
    return ticks is not None and (start == 0 or ticks == start)


def _pid_exists(pid: int) -> bool:
    """Return whether process ``pid`` exists in this pid space, whoever owns it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def claim(storage: BaseStorage, trial_id: int, owner: str) -> float:
    """Make ``owner`` the holder of the RUNNING trial ``trial_id`` and record its first heartbeat.

    Returns the monotonic moment the heartbeat was stamped, for ``LeaseKeeper(claimed_at=...)``:
    the writes may retry for a while, and the lease's clock must not start later than the stamp
    other workers judge it by.
    """
    moment = time.monotonic()
    stamp = study_clock(storage)()
    storage.set_trial_system_attr(trial_id, OWNER_ATTR, owner)
    storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, stamp)
    return moment


def holds(storage: BaseStorage, trial_id: int, owner: str) -> bool:
    """True when trial ``trial_id`` is RUNNING and ``owner`` holds its lease."""
    trial = storage.get_trial(trial_id)
    return trial.state == TrialState.RUNNING and trial.system_attrs.get(OWNER_ATTR) == owner


class LostLease(Exception):
    """This process no longer holds its trial's lease: it must stop, write nothing more and tell nothing."""


def lost_trials(study: Study, grace: float, now: float | None = None) -> list[tuple[FrozenTrial, StopReason]]:
    """Return the RUNNING trials whose lease is lost, with the reason (see the module docstring).

    ``now`` defaults to the study's clock (``tuner.study.clock``), the one the heartbeats were stamped by.
    """
    now = study_clock(storage_of(study))() if now is None else now
    found = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.system_attrs.get(OWNER_ATTR)
        beat = trial.system_attrs.get(HEARTBEAT_ATTR)
        if beat is None and trial.datetime_start is not None:
            beat = trial.datetime_start.timestamp()  # claimed by nobody yet: the start counts
        alive = owner_alive(owner) if isinstance(owner, str) else None
        if alive is False:
            found.append((trial, StopReason(LEASE_LOST, f"worker lost: its process ({owner}) on this machine is gone")))
        elif beat is not None and now - float(beat) > grace:
            found.append((trial, StopReason(LEASE_LOST, f"worker lost: no heartbeat for {now - float(beat):.0f} s "
                                                        f"(grace {grace:g} s)")))
    return found


def silent_trials(study: Study, heartbeat: float, now: float | None = None) -> list[FrozenTrial]:
    """Return the RUNNING trials that missed two heartbeats: maybe lost, not yet past the grace.

    A worker about to stop waits while there are any: once lost, they must be retried by someone.
    """
    now = study_clock(storage_of(study))() if now is None else now
    silent = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = trial.system_attrs.get(HEARTBEAT_ATTR)
        if beat is None and trial.datetime_start is not None:
            beat = trial.datetime_start.timestamp()
        if beat is not None and now - float(beat) > 2 * heartbeat + 1:
            silent.append(trial)
    return silent


@dataclass(frozen=True)
class Failed:
    """What ``fail_trial`` did: ``by_us`` False when another worker had already ended the trial;
    ``retry`` the attempt number of the queued retry (2 for the first retry), None when none was queued;
    ``retries_left`` the retries still free after it."""

    by_us: bool
    retry: int | None = None
    retries_left: int | None = None  # after the queued retry, how many more its failures may charge


def fail_trial(study: Study, trial: FrozenTrial, stop: StopReason, max_retries: int) -> Failed:
    """Fail the RUNNING ``trial`` for ``stop``; queue its retry when its kind is retried and retries are left.

    The state change is a compare-and-set in the storage: of two workers failing the same
    trial, one does it (and queues the one retry), the other learns it was too late.
    A trial stopped on request ("interrupted": a rolling restart, a reclaimed spot machine) saved
    its step and says nothing about itself, so its retry is free; every other transient failure
    charges one of ``max_retries``.
    """
    try:
        # One step: of two workers failing one trial, the loser never overwrites the winner's reason.
        if not fail_running_trial(storage_of(study), trial_id(trial), STOP_ATTR, stop.to_attr()):
            return Failed(False)
    except UpdateFinishedTrialError:
        return Failed(False)  # someone finished it first
    return queue_retry(study, trial, stop, max_retries)


def _retries_used(trial: FrozenTrial, stop: StopReason) -> int:
    """Return the retries charged once ``trial`` has failed for ``stop`` (see ``fail_trial``)."""
    # Trials queued before the count existed charged every attempt: their history's length is their count.
    earlier = trial.system_attrs.get(RETRY_HISTORY_ATTR, [])
    used = int(trial.system_attrs.get(RETRIES_USED_ATTR, len(earlier)))
    return used + (0 if stop.free else 1)


def queue_retry(study: Study, trial: FrozenTrial, stop: StopReason, max_retries: int) -> Failed:
    """Queue the retry of ``trial``, which failed for ``stop``, when its kind is retried and retries are left."""
    history = [int(n) for n in trial.system_attrs.get(RETRY_HISTORY_ATTR, [])] + [trial.number]
    used = _retries_used(trial, stop)
    if not stop.retried or used > max_retries:
        return Failed(True)
    distributions: dict[str, BaseDistribution] = dict(trial.distributions)
    copy = create_trial(state=TrialState.WAITING, params=dict(trial.params), distributions=distributions,
                        user_attrs={"origin": f"retry of trial {trial.number} ({stop.text()[:80]})",
                                    RETRIES_LEFT_ATTR: max_retries - used},
                        system_attrs={RETRY_HISTORY_ATTR: history, RETRIES_USED_ATTR: used,
                                      # one retry per failed trial, however often its creation is retried
                                      CREATE_KEY_ATTR: f"retry of trial {trial.number}"})
    study.add_trial(copy)
    return Failed(True, len(history) + 1, max_retries - used)


def unqueued_retries(study: Study, max_retries: int, settle: float,
                     now: float | None = None) -> list[tuple[FrozenTrial, StopReason]]:
    """Return the failed trials whose retry is owed but was never queued, with their stop reasons.

    Failing a trial and queuing its retry are two writes: a database lost between them (or the
    answer to the first lost, so that its retried write finds the trial already failed) leaves a
    transient failure with retries left and no retry. Only failures older than ``settle`` seconds
    count, so a worker that is queuing its retry at this moment is never doubled.
    """
    now = time.time() if now is None else now
    trials = study.get_trials(deepcopy=False)
    retried = {int(h[-1]) for t in trials if (h := t.system_attrs.get(RETRY_HISTORY_ATTR))}
    owed = []
    for trial in trials:
        # A failed trial without a reason: its worker stopped between failing it and saying why (fail_trial).
        stop = StopReason.of(trial) or StopReason(LEASE_LOST, "worker lost while failing this trial (no reason stored)")
        if (trial.state != TrialState.FAIL or trial.number in retried or not stop.retried
                or trial.datetime_complete is None or now - trial.datetime_complete.timestamp() <= settle):
            continue
        if _retries_used(trial, stop) <= max_retries:
            owed.append((trial, stop))
    return owed


@dataclass
class LeaseState:
    """What a LeaseKeeper found: ``lost`` is set with ``reason`` once the lease is gone."""

    lost: threading.Event
    reason: str = ""


class LeaseKeeper:
    """The heartbeat of one running trial (see the module docstring); use as a context manager."""

    def __init__(self, storage: BaseStorage, trial_id: int, owner: str, heartbeat: float, retry: float,
                 claimed_at: float | None = None) -> None:
        self.storage, self.trial_id, self.owner = storage, trial_id, owner
        self.heartbeat, self.retry = heartbeat, retry
        self.state = LeaseState(threading.Event())
        self._stop = threading.Event()
        self._clock = study_clock(storage)
        self._thread = threading.Thread(target=self._run, name=f"lease-{trial_id}", daemon=True)
        # The monotonic moment of the last heartbeat's stamp (claim()'s, when given): every lease
        # clock counts from when the stamp was taken, never from when its slow write returned,
        # or this worker would stop its child later than the others take the trial over.
        self._last_ok = time.monotonic() if claimed_at is None else claimed_at

    @property
    def lost(self) -> threading.Event:
        """Set once the lease is gone (``reason`` says why)."""
        return self.state.lost

    @property
    def reason(self) -> str:
        """Why the lease was lost ('' while held)."""
        return self.state.reason

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.heartbeat + 5)

    def _lose(self, reason: str) -> None:
        self.state.reason = reason
        self.state.lost.set()

    def expired(self) -> bool:
        """True once the lease must be taken as lost by the clock alone: no heartbeat succeeded for
        ``heartbeat + retry`` seconds, even while a storage call still hangs (a half-open connection
        can block longer than any retry window)."""
        return time.monotonic() - self._last_ok > self.heartbeat + self.retry

    def _run(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                if not holds(self.storage, self.trial_id, self.owner):
                    self._lose("lease lost: another worker failed this trial (it was silent for too long) "
                               "or took it over")
                    return
                moment = time.monotonic()
                stamp = self._clock()
                self.storage.set_trial_system_attr(self.trial_id, HEARTBEAT_ATTR, stamp)
                self._last_ok = moment
            except UpdateFinishedTrialError:
                self._lose("lease lost: the trial was finished by another worker")
                return
            except Exception as err:  # the heartbeat must never die silently: every end is a reason
                if not is_transient(err):
                    self._lose(f"lease lost: heartbeat failed ({type(err).__name__}: {str(err)[:200]})")
                    return
                if time.monotonic() - self._last_ok > self.retry:
                    self._lose(f"lease lost: the study storage was unreachable for "
                               f"{time.monotonic() - self._last_ok:.0f} s "
                               f"(retry window {self.retry:g} s)")
                    return
