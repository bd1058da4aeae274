"""One trial, in the worker: sample, prepare the run folder, run the child, and return the verdict.

``TrialRunner(trial, lease)`` is the function the worker loop (``tuner.fleet.worker``) calls for
each trial it asks the study for. It samples the parameters, makes the run folder (resuming a
dead predecessor's checkpoint for a retry), hands the child its job through the supervisor
(``tuner.trial.supervisor``), lets the observers (``tuner.trial.observers``: live view, MLflow,
dashboard) show the trial as it trains, and returns the ``Verdict`` (``tuner.trial.verdict``)
the worker tells the study. A crash, an out-of-memory error or a hung trial fails that trial
only, with its stop reason.

Every trial that gets as far as its verdict carries the user attribute ``timing`` (seconds,
rounded to ms): the parent's ``parent_before_child_s`` (sampling, MLflow run, job file),
``child_s`` (spawn to exit), ``parent_after_child_s`` (exit to the verdict: last metrics to
MLflow, artifacts, MLflow run finished) and ``objective_s`` (the three together), plus the
child's own ``timings`` (``tuner.trial.child``) when it left an outcome, and ``child_exit_s``
(from the outcome file's writing to the child's exit: the interpreter's shutdown).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.fleet.endings import INTERRUPTED, LEASE_LOST, StopReason, Verdict
from tuner.fleet.lease import LostLease
from tuner.fleet.slots import SlotPool, gpu_of, threads_per_trial
from tuner.space.spec import suggest
from tuner.study.optuna_api import trial_id
from tuner.study.storage import worker_id
from tuner.trial.protocol import Outcome, TrialJob
from tuner.trial.resume import Resumed, prepare_resume, retry_history
from tuner.trial.supervisor import Limits, Supervisor
from tuner.trial.verdict import stop_of_error, verdict

if TYPE_CHECKING:
    from optuna import Study, Trial

    from tuner.fleet.lease import LeaseKeeper
    from tuner.paths import Home
    from tuner.trial.observers import Observers
    from tuner.trial.setup import TrialSetup


@dataclass
class TrialRunner:
    """Runs each trial of a worker in a child process; thread-safe (one trial per GPU slot at a time)."""

    setup: TrialSetup
    study: Study
    home: Home
    storage_url: str
    observers: Observers
    limits: Limits = field(default_factory=Limits)
    gpus: list[str] | None = None  # GPU slots (tuner.fleet.slots): one trial per slot at a time
    stopping: threading.Event = field(default_factory=threading.Event)  # set by SIGTERM/SIGINT (run_study)
    _pool: SlotPool | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.gpus:
            self._pool = SlotPool(self.gpus)

    def __call__(self, trial: Trial, lease: LeaseKeeper | None = None) -> Verdict:
        """Run one trial and return its verdict; LostLease when the trial stopped being this worker's.

        Whatever goes wrong on the parent's side of one trial fails that trial with its reason (a
        lost database connection as ``lease_lost``, so the trial is retried); only an interrupt
        (Ctrl-C) ends the worker.
        """
        gpu = self._pool.take() if self._pool is not None else None
        try:
            return self._run(trial, gpu, lease)
        except (LostLease, KeyboardInterrupt):
            raise
        except Exception as err:  # the boundary of one trial: its failure must not end the worker
            stop = stop_of_error(err, f"tuner: {type(err).__name__}: {err}"[:500])
            ended = Verdict("failed", stop)
            self.observers.view.finished(trial.number, "FAILED", stop.text())
            return ended
        finally:
            if gpu is not None and self._pool is not None:
                self._pool.give_back(gpu)

    def _run(self, trial: Trial, gpu: str | None, lease: LeaseKeeper | None) -> Verdict:
        """Sample, start the child, supervise it and turn its outcome into the trial's verdict."""
        clock = {"started": time.perf_counter()}  # moments of the trial, see trial_timing
        params = suggest(trial, self.setup.space)
        run_dir = claim_run_dir(self.home.trial_dir(self.study.study_name, trial.number))
        resumed = self._resume(trial, run_dir)
        owner = lease.owner if lease is not None else worker_id()
        trial.set_user_attr("worker", owner)
        trial.set_user_attr("run_dir", str(run_dir))
        if gpu is not None:
            trial.set_user_attr("gpu", gpu_of(gpu))
            if gpu != gpu_of(gpu):
                trial.set_user_attr("gpu_slot", gpu)
        where = "this machine" if gpu is None else f"GPU {gpu_of(gpu)}" + (f" (slot {gpu})" if gpu != gpu_of(gpu)
                                                                            else "")
        run_id = self.observers.started(trial, params, self.setup.config(params).to_dict(), run_dir, where, owner)
        job = TrialJob(settings=self.setup.settings, study_name=self.study.study_name, trial_id=trial_id(trial),
                       trial_number=trial.number, params=params, run_dir=str(run_dir), resume=resumed is not None,
                       owner=lease.owner if lease is not None else "")
        pool = self._pool
        threads = threads_per_trial(pool.size) if pool is not None and pool.per_gpu > 1 else None
        supervisor = Supervisor(job, self.storage_url, self.limits, self.stopping, lease, gpu, clock, threads)
        max_steps = self.setup.settings.max_steps
        try:
            outcome = supervisor.run(lambda records, media: self.observers.progress(trial, run_id, max_steps,
                                                                                    records, media))
        except LostLease as lost:
            self.observers.close_run(run_id, StopReason(LEASE_LOST, str(lost)), trial.number)  # another retries it
            raise
        except KeyboardInterrupt:
            self.observers.close_run(run_id, StopReason(INTERRUPTED, "interrupted (Ctrl-C)"), trial.number)
            raise
        return self._conclude(trial, outcome, run_dir, run_id, clock)

    def _conclude(self, trial: Trial, outcome: Outcome, run_dir: Path, run_id: str | None,
                  clock: dict[str, float]) -> Verdict:
        """Judge the outcome, let the observers show it and keep the trial's timing; return the verdict."""
        ended = verdict(outcome, len(self.setup.objective.metrics))
        self.observers.finished(trial, ended, outcome, run_dir, run_id)
        attrs: dict[str, Any] = {"timing": trial_timing(clock, outcome.timings)}
        if ended.state == "complete" and outcome.best_step is not None:
            attrs["best_step"] = outcome.best_step
        return replace(ended, attrs=attrs)  # stored by the worker with the verdict, which waits out an outage

    def _resume(self, trial: Trial, run_dir: Path) -> Resumed | None:
        """For a retry of a dead worker's trial: copy its last checkpoint into ``run_dir``; return where it resumes."""
        history = retry_history(self.study, trial)
        if not history:
            return None
        trial.set_user_attr("retry_of", history[-1])
        resumed = prepare_resume(self.study, trial, run_dir)
        view = self.observers.view
        if resumed is None:
            trial.set_user_attr("resumed_from", None)
            view.say(f"trial {trial.number} retries trial {history[-1]} from step 0 (no checkpoint reachable)")
            return None
        trial.set_user_attr("resumed_from", resumed.as_attr())
        view.say(f"trial {trial.number} retries trial {resumed.trial}: resuming from its {resumed.checkpoint} "
                 f"at step {resumed.step}" + (f" ({len(resumed.skipped)} unreadable checkpoint(s) passed over)"
                                              if resumed.skipped else ""))
        # The dead worker left its MLflow run RUNNING.
        self.observers.close_run(resumed.mlflow_run_id, StopReason(
            LEASE_LOST, f"worker lost (no heartbeat); retried as trial {trial.number}"), resumed.trial)
        return resumed


def claim_run_dir(base: Path) -> Path:
    """Make and return a new run folder: ``base``, or ``base-2``, ``base-3`` ... when it exists.

    A folder left by an older study of the same name (storage deleted, home kept) is never mixed
    with a new trial's run.
    """
    base.parent.mkdir(parents=True, exist_ok=True)
    chosen, k = base, 1
    while True:
        try:
            chosen.mkdir()  # the claim itself: of two workers making one folder, one gets it
            return chosen
        except FileExistsError:
            k += 1
            chosen = base.with_name(f"{base.name}-{k}")


def trial_timing(clock: dict[str, float], child: dict[str, float], now: float | None = None) -> dict[str, float]:
    """Return the ``timing`` attribute of a trial: the parent's parts and the child's timings (ms-rounded seconds).

    ``clock`` holds ``time.perf_counter()`` moments: ``started`` (the objective began),
    ``child_started`` and ``child_ended`` (missing ones leave their parts out); ``now`` is the
    verdict (default: now). ``child`` is the child's ``Outcome.timings``; counts stay integers.
    """
    now = time.perf_counter() if now is None else now
    parts: dict[str, float] = {}
    if "child_started" in clock:
        parts["parent_before_child_s"] = clock["child_started"] - clock["started"]
        if "child_ended" in clock:
            parts["child_s"] = clock["child_ended"] - clock["child_started"]
            parts["parent_after_child_s"] = now - clock["child_ended"]
    parts["objective_s"] = now - clock["started"]
    for key, value in child.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.setdefault(key, value)
    return {key: value if isinstance(value, int) else round(float(value), 3) for key, value in parts.items()}
