"""One trial = one child process; the parent stays inside ``study.optimize()``.

The objective the parent gives Optuna samples the parameters, builds the trainer config,
starts ``python -m tuner.trial.child`` and supervises it: it tails the run's
``metrics.jsonl`` (live view, MLflow metrics), kills the child when it runs past its time
limit or stalls, and turns the child's outcome into Optuna's trial state. So a crash, an
out-of-memory error or a hung trial fails that trial only, with its reason on the trial, and
Optuna's heartbeat (which runs only inside ``optimize``) keeps the trial marked alive.

Every trial that gets as far as its verdict carries the user attribute ``timing`` (seconds,
rounded to ms), set before the verdict so pruned and failed trials have it too: the parent's
``parent_before_child_s`` (start of the objective to spawning the child: sampling, MLflow
run, job file), ``child_s`` (spawn to exit), ``parent_after_child_s`` (exit to the verdict:
last metrics to MLflow, outcome, artifacts, MLflow run finished) and ``objective_s`` (the
three together), plus the child's own ``timings`` (``tuner.trial.child``: ``process_start_s``,
``worker_start_to_train_s``, ``train_s``, ``media_s``, ``report_s``, ``report_calls``) when
it left an outcome, and ``child_exit_s`` (from the outcome file's writing to the child's exit:
the interpreter's shutdown).
"""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from optuna import Study, Trial, TrialPruned
from optuna.trial import FrozenTrial, TrialState

from trainer.evaluation import metric_registry
from trainer.fileio import JsonlTail, atomic_write_text
from tuner import env
from tuner.errors import TrialFailed
from tuner.fleet.lease import LeaseKeeper, LostLease
from tuner.paths import Home
from tuner.space.spec import SearchSpace, suggest
from tuner.space.yamlfile import is_number
from tuner.study.resilience import is_transient
from tuner.study.storage import worker_id
from tuner.tracking.artifacts import upload_trial_artifacts
from tuner.tracking.runs import StudyTracker
from tuner.trial.protocol import LEASE_LOST_EXIT_CODE, Outcome, TrialJob
from tuner.trial.resume import Resumed, prepare_resume, retry_history

# Files a finished trial shows on the dashboard (Optuna artifacts): the alignment and one sample.
DASHBOARD_FILES = ("alignment.png", "sample-1.wav")
# ... and, while it runs, each validation's free-running alignment and sample.
DASHBOARD_VALIDATION_FILES = ("_alignment_fr.png", "_sample.wav")


class ValidationMedia:
    """The pictures and sample the trainer writes at each validation (``RUN/plots/step_NNNNNN_*``), as they appear.

    The trainer appends a validation's record before it draws its files, so a validation
    is "ready" once its last file, the stop-gate plot, exists; ``flush`` takes whatever
    is left when the trial ends (``plots: false`` leaves nothing).
    """

    LAST_FILE = "gate.png"  # trainer.training.loop.write_validation_plots writes it last

    def __init__(self, run_dir: Path) -> None:
        self.folder = run_dir / "plots"
        self.pending: list[int] = []

    def add(self, step: int) -> None:
        """Remember a validation whose record was read."""
        self.pending.append(step)

    def files(self, step: int) -> list[Path]:
        """Return the files of the validation at ``step`` that exist, sorted."""
        return sorted(self.folder.glob(f"step_{step:06d}_*"))

    def ready(self, flush: bool = False) -> list[tuple[int, list[Path]]]:
        """Return (step, files) of the validations whose files are complete (all of them when ``flush``)."""
        done, waiting = [], []
        for step in self.pending:
            if flush or (self.folder / f"step_{step:06d}_{self.LAST_FILE}").is_file():
                done.append((step, self.files(step)))
            else:
                waiting.append(step)
        self.pending = waiting
        return [(step, files) for step, files in done if files]


class LiveView:
    """Line-based live view: a line per trial start, validation and end, with the study's counts."""

    def __init__(self, study: Study, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.study = study
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.lock = threading.Lock()
        self.endings: dict[int, str] = {}

    def say(self, line: str) -> None:
        """Print one line (thread-safe; several trials may run at once with --gpus)."""
        if self.quiet:
            return
        with self.lock:
            print(line, file=self.stream, flush=True)

    def counts(self) -> str:
        """Return ``done N, pruned N, failed N, running N; best #K VALUE`` for the whole study."""
        trials = self.study.get_trials(deepcopy=False)
        count = {s: sum(t.state == s for t in trials) for s in TrialState}
        text = (f"done {count[TrialState.COMPLETE]}, pruned {count[TrialState.PRUNED]}, "
                f"failed {count[TrialState.FAIL]}, running {count[TrialState.RUNNING]}")
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if complete and len(self.study.directions) == 1:
            best = self.study.best_trial
            text += f"; best #{best.number} {best.value:.4f}"
        elif complete:
            text += f"; Pareto front {len(self.study.best_trials)} trial(s)"
        return text

    def started(self, number: int, params: dict[str, Any], where: str) -> None:
        """Announce a trial and its parameters."""
        shown = " ".join(f"{k}={_short(v)}" for k, v in params.items())
        self.say(f"trial {number} started on {where}: {shown}")

    def validation(self, number: int, step: int, max_steps: int, record: dict[str, Any]) -> None:
        """Show one validation of a running trial: the registry's shown metrics that ``record`` holds.

        Each figure is headed by its metric's label, in registry order (``trainer.evaluation.metric_registry.shown``).
        """
        figures = "  ".join(f"{m.label} {float(record[m.name]):.3f}" for m in metric_registry.shown()
                            if is_number(record.get(m.name)))
        self.say(f"  trial {number} step {step}/{max_steps}: {figures}")

    def finished(self, number: int, state: str, detail: str) -> None:
        """Remember how a trial ended; ``after_trial`` prints it once Optuna has stored the state."""
        with self.lock:
            self.endings[number] = f"{state} {detail}"

    def after_trial(self, study: Study, trial: FrozenTrial) -> None:
        """Optuna callback: print the trial's ending and the study's counts (now including it)."""
        with self.lock:
            ending = self.endings.pop(trial.number, trial.state.name)
        self.say(f"trial {trial.number} {ending} | {self.counts()}")


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


STOP_GRACE_SECONDS = 25.0  # a child's time to save and stop after a stop request, before it is killed

@dataclass
class TrialRunner:
    """The study's objective: runs each trial in a child process. Thread-safe (one trial per GPU)."""

    space: SearchSpace
    study: Study
    home: Home
    storage_url: str
    data: Path
    warm_start: Path | None
    preset: str
    max_steps: int
    val_interval: int
    trial_timeout: float | None
    stall_timeout: float | None
    view: LiveView
    tracker: StudyTracker | None = None
    gpus: list[str] | None = None
    poll_seconds: float = 0.5
    stopping: threading.Event = field(default_factory=threading.Event)  # set by SIGTERM/SIGINT (run_study)
    stop_grace: float = STOP_GRACE_SECONDS
    _pool: queue.Queue[str] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.gpus:
            self._pool = queue.Queue()
            for gpu in self.gpus:
                self._pool.put(gpu)

    # ------------------------------------------------------------------ the objective

    def __call__(self, trial: Trial, lease: LeaseKeeper | None = None) -> float | list[float]:
        """Run one trial; return its objective value(s), or raise TrialPruned / TrialFailed / LostLease.

        Whatever goes wrong on the parent's side of one trial fails that trial with its reason;
        only an interrupt (Ctrl-C) ends the study. ``lease`` (``tuner.fleet.lease``): when it is lost,
        the child is killed at once and LostLease says why.
        """
        gpu = self._pool.get() if self._pool is not None else None
        try:
            return self._run(trial, gpu, lease)
        except (TrialFailed, TrialPruned, LostLease):
            raise
        except KeyboardInterrupt:
            _set_attr(trial, "fail_reason", "interrupted (Ctrl-C); the worker was stopped")
            raise
        except Exception as err:
            reason = f"tuner: {type(err).__name__}: {err}"[:500]
            if is_transient(err):  # the database, not the trial: a transient reason, so it is retried
                reason = f"lease lost: the study storage was unreachable ({reason})"[:500]
            _set_attr(trial, "fail_reason", reason)
            self.view.finished(trial.number, "FAILED", reason)
            raise TrialFailed(reason) from err
        finally:
            if gpu is not None and self._pool is not None:
                self._pool.put(gpu)

    def _run(self, trial: Trial, gpu: str | None, lease: LeaseKeeper | None = None) -> float | list[float]:
        """Sample, start the child, supervise it and turn its outcome into the trial's state."""
        clock = {"started": time.perf_counter()}  # moments of the trial, see trial_timing
        params = suggest(trial, self.space)
        config = self.space.build_config(params, preset_name=self.preset, max_steps=self.max_steps)
        run_dir = self._run_dir(trial.number)
        resumed = self._resume(trial, run_dir)
        where = f"GPU {gpu}" if gpu is not None else "this machine"
        trial.set_user_attr("worker", lease.owner if lease is not None else worker_id())
        trial.set_user_attr("run_dir", str(run_dir))
        if gpu is not None:
            trial.set_user_attr("gpu", gpu)
        run_id = None
        if self.tracker is not None:
            try:
                run_id = self.tracker.start_trial(trial.number, params, config.to_dict(),
                                                  {"worker": worker_id(), "run_dir": str(run_dir)})
            except Exception as err:  # MLflow trouble costs the trial its MLflow run, not its training
                self.view.say(f"  mlflow: no run for trial {trial.number} ({type(err).__name__}: {err})")
            else:
                trial.set_user_attr("mlflow_run_id", run_id)
                trial.set_user_attr("mlflow_experiment_id", self.tracker.experiment_id)
                trial.set_user_attr("mlflow_run", self.tracker.run_link(run_id))
        self.view.started(trial.number, params, where)
        job = TrialJob(study_name=self.study.study_name, trial_id=trial._trial_id, trial_number=trial.number,
                       run_dir=str(run_dir), data=str(self.data), config=config.to_dict(),
                       warm_start=None if self.warm_start is None else str(self.warm_start),
                       objective_metrics=list(self.space.study.objective.metrics),
                       objective_directions=list(self.space.study.objective.directions),
                       gates=[vars(g) for g in self.space.study.gates], pruner=dict(self.space.study.pruner),
                       val_interval=config.val_interval, max_steps=config.max_steps,
                       samples=self.space.study.samples, params=params, resume=resumed is not None,
                       owner=lease.owner if lease is not None else "")
        try:
            outcome = self._supervise(job, run_dir, gpu, run_id, clock, trial, lease)
        except LostLease as lost:
            if self.tracker is not None and run_id is not None:
                try:  # another worker retries it: this run ends here
                    self.tracker.finish_trial(run_id, "FAIL", str(lost), None, [])
                except Exception as err:
                    self.view.say(f"  mlflow: could not close the run of trial {trial.number} ({err})")
            raise
        except KeyboardInterrupt:
            if self.tracker is not None and run_id is not None:
                self.tracker.finish_trial(run_id, "FAIL", "interrupted (Ctrl-C)", None, [])
            raise
        return self._conclude(trial, outcome, run_dir, run_id, clock)

    def _resume(self, trial: Trial, run_dir: Path) -> Resumed | None:
        """For a retry of a dead worker's trial: copy its last checkpoint into ``run_dir``; return where it resumes."""
        history = retry_history(self.study, trial)
        if not history:
            return None
        trial.set_user_attr("retry_of", history[-1])
        resumed = prepare_resume(self.study, trial, run_dir)
        if resumed is None:
            trial.set_user_attr("resumed_from", None)
            self.view.say(f"trial {trial.number} retries trial {history[-1]} from step 0 (no checkpoint reachable)")
            return None
        trial.set_user_attr("resumed_from", resumed.as_attr())
        self.view.say(f"trial {trial.number} retries trial {resumed.trial}: resuming from its {resumed.checkpoint} "
                      f"at step {resumed.step}" + (f" ({len(resumed.skipped)} unreadable checkpoint(s) passed over)"
                                                   if resumed.skipped else ""))
        if self.tracker is not None and resumed.mlflow_run_id:
            try:  # the dead worker left its MLflow run RUNNING
                self.tracker.finish_trial(resumed.mlflow_run_id, "FAIL",
                                          f"worker lost (no heartbeat); retried as trial {trial.number}", None, [])
            except Exception as err:
                self.view.say(f"  mlflow: could not close the run of trial {resumed.trial} ({err})")
        return resumed

    def _run_dir(self, number: int) -> Path:
        base = self.home.trial_dir(self.study.study_name, number)
        chosen, k = base, 1
        # A folder left by an older study of the same name (storage deleted, home kept): do not mix runs.
        while chosen.exists():
            k += 1
            chosen = base.with_name(f"{base.name}-{k}")
        chosen.mkdir(parents=True)
        return chosen

    # ------------------------------------------------------------------ the child

    def _supervise(self, job: TrialJob, run_dir: Path, gpu: str | None, run_id: str | None,
                   clock: dict[str, float] | None = None, trial: Trial | None = None,
                   lease: LeaseKeeper | None = None) -> Outcome:
        """Run the child to its end (or kill it) and return its outcome; stream its metrics meanwhile.

        ``clock`` gets ``child_started`` (just before the spawn) and ``child_ended`` (its exit or
        kill). Each validation's pictures and sample go to MLflow and, with ``trial``, to the
        dashboard as soon as the trainer has written them.
        """
        clock = {} if clock is None else clock
        job_path, outcome_path = run_dir / "job.json", run_dir / "outcome.json"
        job.write(job_path)
        child_env = dict(os.environ)
        child_env[env.STORAGE] = self.storage_url  # not in the job file: a password never reaches the disk
        child_env["PYTHONUNBUFFERED"] = "1"
        child_env[env.PARENT_PID] = str(os.getpid())  # the child dies with this process (tuner.trial.child)
        if gpu is not None:
            child_env[env.CUDA_VISIBLE_DEVICES] = gpu  # the child sees only its GPU, as cuda:0
        tail = JsonlTail(run_dir / "metrics.jsonl")
        # A resumed trial's folder holds its earlier attempt's records: the stall clock arms only once the
        # child writes past them, so its start-up (checkpoint load, data) never counts as a stall.
        inherited = tail.path.stat().st_size if tail.path.exists() else 0
        media = ValidationMedia(run_dir)
        killed_reason: str | None = None
        lost: str | None = None
        asked_to_stop: float | None = None  # when the child was sent SIGTERM
        with (run_dir / "worker.log").open("ab") as log:
            # A session of its own: a timeout kills the child's whole process group, never ours.
            clock["child_started"] = time.perf_counter()
            process = subprocess.Popen([sys.executable, "-m", "tuner.trial.child", str(job_path),
                                        str(outcome_path)], stdout=log, stderr=subprocess.STDOUT, env=child_env,
                                       start_new_session=True)
            started = last_progress = time.monotonic()
            try:
                while True:
                    try:
                        process.wait(timeout=self.poll_seconds)
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    now = time.monotonic()
                    if lease is not None and (lease.lost.is_set() or lease.expired()):
                        # Not ours any more: stop at once, write nothing more.
                        lost = lease.reason or (f"lease lost: no heartbeat stored for over "
                                                f"{lease.heartbeat + lease.retry:g} s (the study storage hangs)")
                        _kill(process)
                        break
                    if self.stopping.is_set() and asked_to_stop is None:
                        asked_to_stop = now  # the child saves at the end of its step, then ends
                        _signal(process, signal.SIGTERM)
                    elif asked_to_stop is not None and now - asked_to_stop > self.stop_grace:
                        killed_reason = (f"interrupted: the trainer did not stop within {self.stop_grace:g} s "
                                         "(worker killed)")
                        _kill(process)
                        break
                    if self._stream(tail, job, run_id, media, trial):
                        last_progress = now
                    if self.trial_timeout is not None and now - started > self.trial_timeout:
                        killed_reason = f"timed out: still running after {self.trial_timeout:g} s (worker killed)"
                    elif (self.stall_timeout is not None and tail.seen_any and tail.offset > inherited
                          and now - last_progress > self.stall_timeout):
                        killed_reason = (f"stalled: no training progress for {self.stall_timeout:g} s "
                                         "(worker killed)")
                    if killed_reason:
                        _kill(process)
                        break
            except BaseException:
                _kill(process)  # Ctrl-C or an error here: never leave an orphan trainer behind
                raise
            clock["child_ended"] = time.perf_counter()
            ended_at = time.time()
        if lost is None and process.returncode == LEASE_LOST_EXIT_CODE:
            lost = "lease lost: the trainer found its trial taken by another worker and stopped"
        if lost is not None:
            raise LostLease(lost)
        self._stream(tail, job, run_id, media, trial, flush=True)
        if killed_reason:
            return Outcome("failed", reason=killed_reason)
        outcome = Outcome.read(outcome_path)
        if outcome is None:
            code = process.returncode
            how = (f"killed by signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals()
                   else f"exited with status {code}")
            hint = " (out of memory?)" if code == -signal.SIGKILL else ""
            last = _last_line(run_dir / "worker.log")
            # "crashed": transient (tuner.fleet.lease.TRANSIENT): an out-of-memory kill may well pass on a retry.
            return Outcome("failed", reason=f"crashed: worker {how}{hint} without an outcome"
                                            + (f"; last output: {last}" if last else ""))
        try:  # the child's exit after its outcome (interpreter shutdown), from the file's modification time
            outcome.timings["child_exit_s"] = max(0.0, ended_at - outcome_path.stat().st_mtime)
        except OSError:
            pass
        return outcome

    def _stream(self, tail: JsonlTail, job: TrialJob, run_id: str | None, media: ValidationMedia | None = None,
                trial: Trial | None = None, flush: bool = False) -> bool:
        """Forward new metrics records to MLflow and the live view, and finished validations' media to MLflow
        and the dashboard; return True when there were new records."""
        records = tail.read_new()
        if media is not None:
            media_steps = [int(r["step"]) for r in records if r.get("kind") == "val"]
            for step in media_steps:
                media.add(step)
            self._publish_media(job, run_id, media.ready(flush), trial)
        if not records:
            return False
        if self.tracker is not None and run_id is not None:
            try:
                self.tracker.log_records(run_id, records)
            except Exception as err:  # MLflow trouble must not kill a training trial
                self.view.say(f"  mlflow: could not log metrics of trial {job.trial_number} ({err})")
        for record in records:
            if record.get("kind") == "val":
                self.view.validation(job.trial_number, int(record["step"]), job.max_steps, record)
            elif record.get("kind") == "quality" and record.get("action") not in ("none_cooldown", "none_deferred"):
                self.view.say(f"  trial {job.trial_number} step {record['step']}: {record['detection']} -> "
                              f"{record['action']}")
        return True

    def _publish_media(self, job: TrialJob, run_id: str | None, ready: list[tuple[int, list[Path]]],
                       trial: Trial | None) -> None:
        """Log each validation's files to MLflow (``validation/step_NNNNNN/``) and its free-running
        alignment and sample to the dashboard (Optuna artifacts), so a running trial can be seen and heard."""
        for step, files in ready:
            prefix = f"step_{step:06d}_"
            if self.tracker is not None and run_id is not None:
                try:
                    self.tracker.log_files(run_id, [(p, f"validation/step_{step:06d}", p.name[len(prefix):])
                                                    for p in files])
                except Exception as err:  # MLflow trouble must not kill a training trial
                    self.view.say(f"  mlflow: could not log the step {step} media of trial {job.trial_number} ({err})")
            if trial is not None:
                shown = [p for p in files if p.name.endswith(DASHBOARD_VALIDATION_FILES)]
                try:
                    upload_trial_artifacts(self.home, trial, shown)
                except Exception as err:
                    self.view.say(f"  artifacts: could not store the step {step} media of trial {job.trial_number} "
                                  f"({err})")

    # ------------------------------------------------------------------ the verdict

    def _conclude(self, trial: Trial, outcome: Outcome, run_dir: Path, run_id: str | None,
                  clock: dict[str, float] | None = None) -> float | list[float]:
        """Upload the trial's media, finish its MLflow run, store ``timing``; return its value(s) or raise.

        Raises TrialPruned for a pruned outcome and TrialFailed for a failed one (or a complete
        one without a finite objective).
        """
        media = [Path(p) for p in outcome.media]
        decisions = quality_decisions(run_dir / "metrics.jsonl")
        if decisions:
            # Why the run changed course (the trainer's quality controller), readable in the dashboard.
            _set_attr(trial, "quality_decisions", decisions[-MAX_DECISION_ATTRS:])
            atomic_write_text(run_dir / "quality_decisions.txt", "\n".join(decisions) + "\n")
        if outcome.state in ("complete", "pruned"):
            try:
                upload_trial_artifacts(self.home, trial, [p for p in media if p.name in DASHBOARD_FILES])
            except Exception as err:
                self.view.say(f"  artifacts: could not store the plots of trial {trial.number} ({err})")
        state = {"complete": "COMPLETE", "pruned": "PRUNED"}.get(outcome.state, "FAIL")
        try:
            from optuna_dashboard import save_note  # lazy: the dashboard package is only needed here

            save_note(trial, trial_note(trial.number, outcome, self.space, decisions))
        except Exception as err:  # a note is a courtesy: never fail a trained trial over it
            self.view.say(f"  dashboard: could not write the note of trial {trial.number} ({err})")
        if self.tracker is not None and run_id is not None:
            files = [(p, "plots" if p.suffix == ".png" else "samples") for p in media]
            files.append((run_dir / "config.yaml", "config"))
            files.append((run_dir / "metrics.jsonl", "logs"))
            if decisions:
                files.append((run_dir / "quality_decisions.txt", "logs"))
            try:
                if outcome.state == "complete":  # its checkpoint, for export elsewhere and the model registry
                    self.tracker.log_checkpoint(run_id, run_dir / "checkpoints" / "best.pt", run_dir / "config.yaml")
                self.tracker.finish_trial(run_id, state, outcome.reason, outcome.values, files)
            except Exception as err:
                self.view.say(f"  mlflow: could not finish the run of trial {trial.number} ({err})")
        if clock is not None:
            _set_attr(trial, "timing", trial_timing(clock, outcome.timings))  # before the verdict raises
        if outcome.state == "complete":
            values = outcome.values or []
            if not values or not all(math.isfinite(v) for v in values):
                reason = "objective not finite at the end of training"
                _set_attr(trial, "fail_reason", reason)
                self.view.finished(trial.number, "FAILED", reason)
                raise TrialFailed(reason)
            if outcome.best_step is not None:
                _set_attr(trial, "best_step", outcome.best_step)
            shown = ", ".join(f"{m} {v:.4f}" for m, v in zip(self.space.study.objective.metrics, values, strict=False))
            self.view.finished(trial.number, "COMPLETE", f"{shown} (step {outcome.step})")
            return values[0] if len(values) == 1 else values
        if outcome.state == "pruned":
            _set_attr(trial, "prune_reason", outcome.reason)
            self.view.finished(trial.number, "PRUNED", f"at step {outcome.step}: {outcome.reason}")
            raise TrialPruned(outcome.reason)
        _set_attr(trial, "fail_reason", outcome.reason)
        self.view.finished(trial.number, "FAILED", outcome.reason or "")
        raise TrialFailed(outcome.reason)


MAX_DECISION_ATTRS = 30  # user attributes are for reading at a glance; the full list is in MLflow


def trial_note(number: int, outcome: Outcome, space: SearchSpace, decisions: list[str]) -> str:
    """Return the dashboard note of a finished trial (Markdown): its verdict, the gates, the controller's actions."""
    objective = space.study.objective
    lines = [f"## Trial {number}: {outcome.state}", ""]
    if outcome.state == "complete" and outcome.values:
        shown = ", ".join(f"**{m} {v:.4g}**" for m, v in zip(objective.metrics, outcome.values, strict=False))
        where = (f"the validation at step {outcome.best_step}" if outcome.best_step is not None
                 else "its best validation")
        lines.append(f"{shown}, from {where}: the checkpoint `tuner best --export` exports. "
                     f"Trained {outcome.step} steps.")
    elif outcome.state == "pruned":
        lines.append(f"Pruned at step {outcome.step}: {outcome.reason}.")
    else:
        lines.append(f"Failed: {outcome.reason}.")
    lines += ["", "Quality gates: " + ("; ".join(g.describe() for g in space.study.gates) or "none") + ".", ""]
    if decisions:
        lines += ["The trainer's quality controller acted:", ""] + [f"- {d}" for d in decisions]
    else:
        lines.append("The trainer's quality controller did not need to act.")
    return "\n".join(lines) + "\n"


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


def quality_decisions(metrics_path: Path) -> list[str]:
    """Return the quality controller's decisions in a run's metrics.jsonl as one line each (oldest first).

    A line reads ``step 150: misalignment -> raise_guided_attention (tf_diagonality 0.66 < 0.7 ...)``.
    Decisions that did nothing (cooldown, deferred) are left out.
    """
    lines: list[str] = []
    try:
        text = metrics_path.read_text(encoding="utf-8")
    except OSError:
        return lines
    for raw in text.splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if record.get("kind") == "quality" and record.get("action") not in ("none_cooldown", "none_deferred"):
            lines.append(f"step {record['step']}: {record['detection']} -> {record['action']} "
                         f"({record.get('reason', '')})")
    return lines


def _set_attr(trial: Trial, key: str, value: Any) -> None:
    """Set a user attribute, ignoring a storage error: used while handling one, and for the attributes
    that go with a trial's verdict, which must reach the worker's tell (it waits out an outage) even
    when the storage is gone for longer than one call's retry window."""
    try:
        trial.set_user_attr(key, value)
    except Exception:
        pass


def _signal(process: subprocess.Popen, signum: int) -> None:
    """Send ``signum`` to the child's process group (it runs in a session of its own)."""
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _kill(process: subprocess.Popen) -> None:
    """Kill the child's process group and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return lines[-1][:300] if lines else ""
