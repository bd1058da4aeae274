"""A trial's child process, from spawn to exit: time limits, stalls, stop requests and the lease.

The child (``python -m tuner.trial.child JOB OUTCOME``) runs in a process session of its own, so
a kill takes its whole group and never the worker. While it runs, ``Supervisor.run`` polls it:
it hands each new ``metrics.jsonl`` record and each finished validation's media to the caller,
kills the child when it runs past the trial's time limit or stops making progress, asks it to
save and stop when the worker is stopping (SIGTERM, then a kill after a grace), and kills it at
once when the trial's lease is lost. What it returns is the child's outcome, or the one it
writes for a child that was killed or left none; a lost lease raises ``LostLease`` instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from trainer.fileio import JsonlTail
from tuner import env
from tuner.fleet.endings import CRASHED, INTERRUPTED, STALLED, TIMED_OUT, StopReason
from tuner.fleet.lease import LeaseKeeper, LostLease
from tuner.fleet.slots import gpu_of
from tuner.trial.observers import ValidationMedia
from tuner.trial.protocol import LEASE_LOST_EXIT_CODE, Outcome, TrialJob

STOP_GRACE_SECONDS = 25.0  # a child's time to save and stop after a stop request, before it is killed

# (new metrics records, finished validations' (step, files)): what the supervisor hands on while the child runs.
Progress = Callable[[list[dict[str, Any]], list[tuple[int, list[Path]]]], None]


@dataclass(frozen=True)
class Limits:
    """How long a trial's child may run (seconds; None: no limit) and how the supervisor watches it."""

    trial_timeout: float | None = None
    stall_timeout: float | None = None  # without a new metrics record, once training has started
    stop_grace: float = STOP_GRACE_SECONDS
    poll_seconds: float = 0.5


@dataclass
class Supervisor:
    """Runs one trial's child to its end; ``clock`` gets ``child_started`` and ``child_ended`` (perf_counter)."""

    job: TrialJob
    storage_url: str
    limits: Limits
    stopping: threading.Event
    lease: LeaseKeeper | None = None
    gpu: str | None = None  # the trial's GPU slot (tuner.fleet.slots): its child sees that slot's GPU only
    clock: dict[str, float] = field(default_factory=dict)
    threads: int | None = None  # CPU threads of the child when trials share the machine (threads_per_trial)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.job.run_dir)
        self.tail = JsonlTail(self.run_dir / "metrics.jsonl")
        # A resumed trial's folder holds its earlier attempt's records: the stall clock arms only once the
        # child writes past them, so its start-up (checkpoint load, data) never counts as a stall.
        self.inherited = self.tail.path.stat().st_size if self.tail.path.exists() else 0
        self.media = ValidationMedia(self.run_dir)
        self.asked_to_stop: float | None = None

    def run(self, progress: Progress) -> Outcome:
        """Run the child to its end (or kill it); return its outcome. LostLease when the trial is not ours any more."""
        job_path, outcome_path = self.run_dir / "job.json", self.run_dir / "outcome.json"
        self.job.write(job_path)
        with (self.run_dir / "worker.log").open("ab") as log:
            self.clock["child_started"] = time.perf_counter()
            process = self._spawn(job_path, outcome_path, log)
            try:
                ending = self._watch(process, progress)
            except BaseException:
                kill(process)  # Ctrl-C or an error here: never leave an orphan trainer behind
                raise
            self.clock["child_ended"] = time.perf_counter()
            ended_at = time.time()
        if ending is None and process.returncode == LEASE_LOST_EXIT_CODE:
            raise LostLease("lease lost: the trainer found its trial taken by another worker and stopped")
        if isinstance(ending, str):
            raise LostLease(ending)
        self._read(progress, flush=True)
        if ending is not None:
            return Outcome("failed", stop=ending)
        return self._outcome(process, outcome_path, ended_at)

    def _spawn(self, job_path: Path, outcome_path: Path, log: IO[bytes]) -> subprocess.Popen:
        child_env = dict(os.environ)
        child_env[env.STORAGE] = self.storage_url  # not in the job file: a password never reaches the disk
        child_env["PYTHONUNBUFFERED"] = "1"
        child_env[env.PARENT_PID] = str(os.getpid())  # the child dies with this process (tuner.trial.child)
        if self.gpu is not None:
            child_env[env.CUDA_VISIBLE_DEVICES] = gpu_of(self.gpu)  # the child sees only its GPU, as cuda:0
        if self.threads is not None:  # torch takes its thread count from these (unless the config sets one)
            child_env[env.OMP_NUM_THREADS] = child_env[env.MKL_NUM_THREADS] = str(self.threads)
        # A session of its own: a timeout kills the child's whole process group, never ours.
        return subprocess.Popen([sys.executable, "-m", "tuner.trial.child", str(job_path), str(outcome_path)],
                                stdout=log, stderr=subprocess.STDOUT, env=child_env, start_new_session=True)

    def _watch(self, process: subprocess.Popen, progress: Progress) -> StopReason | str | None:
        """Poll the child until it exits (None), is killed (why: a StopReason) or its lease is lost (why: text)."""
        started = last_progress = time.monotonic()
        while True:
            try:
                process.wait(timeout=self.limits.poll_seconds)
                return None
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            lost = self._lease_lost()
            if lost is not None:
                kill(process)  # not ours any more: stop at once, write nothing more
                return lost
            if self._read(progress):
                last_progress = now
            killed = self._stop_request(process, now) or self._over_limit(now - started, now - last_progress)
            if killed is not None:
                kill(process)
                return killed

    def _lease_lost(self) -> str | None:
        lease = self.lease
        if lease is None or not (lease.lost.is_set() or lease.expired()):
            return None
        return lease.reason or (f"lease lost: no heartbeat stored for over {lease.heartbeat + lease.retry:g} s "
                                "(the study storage hangs)")

    def _stop_request(self, process: subprocess.Popen, now: float) -> StopReason | None:
        """Pass a stop request on (the child saves at the end of its step); a child that ignores it is killed."""
        if self.stopping.is_set() and self.asked_to_stop is None:
            self.asked_to_stop = now
            signal_group(process, signal.SIGTERM)
        elif self.asked_to_stop is not None and now - self.asked_to_stop > self.limits.stop_grace:
            return StopReason(INTERRUPTED, f"interrupted: the trainer did not stop within "
                                           f"{self.limits.stop_grace:g} s (worker killed)")
        return None

    def _over_limit(self, running: float, silent: float) -> StopReason | None:
        """Return why the child must be killed for time after ``running`` s, ``silent`` of them without progress."""
        limits = self.limits
        if limits.trial_timeout is not None and running > limits.trial_timeout:
            return StopReason(TIMED_OUT, f"timed out: still running after {limits.trial_timeout:g} s (worker killed)")
        if (limits.stall_timeout is not None and self.tail.seen_any and self.tail.offset > self.inherited
                and silent > limits.stall_timeout):
            return StopReason(STALLED, f"stalled: no training progress for {limits.stall_timeout:g} s "
                                       "(worker killed)")
        return None

    def _read(self, progress: Progress, flush: bool = False) -> bool:
        """Hand on the new records and the finished validations' media; return True when there were new records."""
        records = self.tail.read_new()
        for record in records:
            if record.get("kind") == "val":
                self.media.add(int(record["step"]))
        ready = self.media.ready(flush)
        if records or ready:
            progress(records, ready)
        return bool(records)

    def _outcome(self, process: subprocess.Popen, outcome_path: Path, ended_at: float) -> Outcome:
        outcome = Outcome.read(outcome_path)
        if outcome is None:
            code = process.returncode
            how = (f"killed by signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals()
                   else f"exited with status {code}")
            hint = " (out of memory?)" if code == -signal.SIGKILL else ""
            last = last_line(self.run_dir / "worker.log")
            # Retried (tuner.fleet.endings): an out-of-memory kill may well pass on a retry.
            return Outcome("failed", stop=StopReason(CRASHED, f"crashed: worker {how}{hint} without an outcome"
                                                              + (f"; last output: {last}" if last else "")))
        try:  # the child's exit after its outcome (interpreter shutdown), from the file's modification time
            outcome.timings["child_exit_s"] = max(0.0, ended_at - outcome_path.stat().st_mtime)
        except OSError:
            pass
        return outcome


def signal_group(process: subprocess.Popen, signum: int) -> None:
    """Send ``signum`` to the child's process group (it runs in a session of its own)."""
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def kill(process: subprocess.Popen) -> None:
    """Kill the child's process group and reap it."""
    signal_group(process, signal.SIGKILL)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def last_line(path: Path) -> str:
    """Return the last non-empty line of ``path`` (at most 300 characters; "" when there is none)."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return lines[-1][:300] if lines else ""
