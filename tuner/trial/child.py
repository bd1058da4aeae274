"""The child process of one trial: ``python -m tuner.trial.child JOB.json OUTCOME.json``.

It attaches to the running trial through the shared storage, trains with ``trainer.train``
and the ``Reporter`` callback, makes the trial's plots and samples, and writes its outcome
(complete with values, pruned or failed, each with its stop reason) for the parent. A crash of
this process (segfault, out-of-memory kill) leaves no outcome: the parent then fails the
trial with the exit status as reason.

Fault injection, for tests and drills only: ``SMART_TUNER_FAULT=KIND[@TRIAL]`` makes the
worker of trial number TRIAL (every trial when omitted) misbehave before training:
``crash`` exits at once with status 86 and no outcome, ``hang`` sleeps until killed,
``raise`` raises a RuntimeError (an ordinary failed trial). Three faults strike inside
training instead, through the real code paths: ``nonfinite`` makes every loss NaN (the
trainer's guard skips steps, then stops the run), ``oom`` raises CUDA's out-of-memory error
from the model's first forward pass, ``dataloader`` makes the batch loader fail on its
second batch. Several are comma-separated (``crash@0,raise@1``). Only this module reads it.

Timings: the outcome carries ``timings`` (seconds) for the parent's ``timing`` trial attribute:
``process_start_s`` (the process's creation by the parent to the start of ``run``: exec,
interpreter start, the first imports), ``worker_start_to_train_s`` (``run`` to the call of
``train``: optuna, torch and trainer imports, storage connection, loading the trial),
``train_s`` (the ``train`` call, validations and the reports within it included), ``media_s``
(plots and samples), ``report_s`` and ``report_calls`` (the Reporter's storage work per
validation, a part of ``train_s``).

Imports: at module level only the standard library and light tuner modules (``tuner.env``,
``tuner.errors``, ``tuner.fleet.endings``, ``tuner.trial.protocol``), so the process starts fast;
optuna, torch, the trainer and the tuner modules that use them are imported inside ``run``, after
``process_start_s`` is taken, so their cost shows in ``worker_start_to_train_s``.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from tuner import env
from tuner.errors import TunerError
from tuner.fleet.endings import COMPLETED, CONTROLLER, INTERRUPTED, StopReason
from tuner.trial.protocol import CRASH_EXIT_CODE, LEASE_LOST_EXIT_CODE, ORPHAN_EXIT_CODE, Outcome, TrialJob

if TYPE_CHECKING:
    from trainer.training.loop import TrainResult
    from tuner.trial.reporting import Reporter
    from tuner.trial.setup import TrialSetup

FAULT_ENV = env.FAULT
STOP = threading.Event()  # set by SIGTERM/SIGINT: the trainer saves at the end of its step and stops
PR_SET_PDEATHSIG = 1  # linux/prctl.h

IMPORTED_AT = time.time()  # fallback origin of process_start_s where /proc is not available


def seconds_since_process_start() -> float:
    """Return the seconds since this process was created (by the parent's ``Popen``).

    On Linux: the start time in ``/proc/self/stat`` (field 22, clock ticks after boot, so 10 ms
    resolution) against ``CLOCK_BOOTTIME``; this covers exec, the interpreter's start and the
    imports so far. Elsewhere: the seconds since this module was imported (the interpreter's
    start is then missed).
    """
    try:
        text = Path("/proc/self/stat").read_text(encoding="ascii")
        fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22; fields[0] is field 3
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return max(0.0, time.time() - IMPORTED_AT)


def die_with_parent() -> None:
    """Make the kernel kill this process when its parent (the worker) dies, and check it has not already.

    The child runs in a session of its own (so the parent can kill its whole group), which also
    means a SIGKILLed parent takes nobody with it: an orphaned trainer would go on writing to the
    dead trial's run folder while its retry (on this machine, started within seconds: tuner.fleet.lease)
    resumes from there. PR_SET_PDEATHSIG has the kernel do it; the parent's pid, given at spawn
    (``$SMART_TUNER_PARENT_PID``), closes the gap before the call: a parent that died already
    has re-parented us. Where prctl is not available, a thread watches the parent instead.
    """
    expected = os.environ.get(env.PARENT_PID, "")
    try:
        import ctypes  # lazy: Linux only; the fallback below covers the rest

        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        armed = False
    if expected.isdigit() and os.getppid() != int(expected):
        print(f"worker: parent {expected} is gone before this trial started; stopping", file=sys.stderr, flush=True)
        os._exit(ORPHAN_EXIT_CODE)
    if not armed:
        watch_parent()


def stop_on_signals() -> None:
    """SIGTERM or SIGINT: finish the current step, save the checkpoint, end as interrupted (no step lost)."""
    def handler(signum: int, frame: object) -> None:
        STOP.set()
        print(f"worker: {signal.Signals(signum).name}: saving at the end of this step, then stopping",
              file=sys.stderr, flush=True)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def watch_parent(poll_seconds: float = 0.5) -> None:
    """End this process soon after its parent dies (where the kernel cannot be asked to).

    When the parent is gone the child is re-parented, so a changed parent pid is the signal.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        print(f"worker: parent {parent} is gone; stopping", file=sys.stderr, flush=True)
        os._exit(ORPHAN_EXIT_CODE)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def inject_fault(trial_number: int) -> None:
    """Misbehave as ``$SMART_TUNER_FAULT`` asks for this trial (see the module docstring); else return.

    Several faults may be listed, comma-separated: ``crash@0,raise@1``.
    """
    for spec in filter(None, (part.strip() for part in os.environ.get(FAULT_ENV, "").split(","))):
        kind, _, target = spec.partition("@")
        if target and not target.isdigit():
            raise TunerError(f"{FAULT_ENV}={spec!r}: @TRIAL must be a trial number")
        if target and int(target) != trial_number:
            continue
        if kind == "crash":
            sys.stdout.flush()
            os._exit(CRASH_EXIT_CODE)  # no outcome, no cleanup: what a segfault or an OOM kill looks like
        if kind == "hang":
            while True:
                time.sleep(60)
        if kind == "raise":
            raise RuntimeError(f"injected fault ({FAULT_ENV}={spec})")
        if kind in TRAINING_FAULTS:
            TRAINING_FAULTS[kind](spec)
            continue
        raise TunerError(f"{FAULT_ENV}={spec!r}: unknown fault (crash, hang, raise, nonfinite, oom, dataloader or "
                         "diskfull, "
                         "optionally @TRIAL)")


def _fault_nonfinite(spec: str) -> None:
    from trainer.training.losses import TacotronLoss  # lazy: torch; only this drill needs it

    original = TacotronLoss.forward

    def nan_loss(self, *args, **kwargs):
        total, terms = original(self, *args, **kwargs)
        return total * float("nan"), terms

    setattr(TacotronLoss, "forward", nan_loss)  # noqa: B010 (a drill replaces the method on purpose)


def _fault_oom(spec: str) -> None:
    import torch  # lazy: torch; only this drill needs it here

    from trainer.model.tacotron2 import Tacotron2

    def out_of_memory(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 20.00 GiB (injected: {spec})")

    setattr(Tacotron2, "forward", out_of_memory)  # noqa: B010 (a drill replaces the method on purpose)


def _fault_dataloader(spec: str) -> None:
    import trainer.training.session as session  # lazy: torch; only this drill needs it

    original = session.collate
    calls = {"n": 0}

    def failing_collate(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(f"data loader: could not read the next batch (injected: {spec})")
        return original(*args, **kwargs)

    session.collate = failing_collate


def _fault_disk_full(spec: str) -> None:
    import trainer.training.session as session  # lazy: torch; only this drill needs it

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, f"No space left on device (injected: {spec})")

    session.save_checkpoint = full


TRAINING_FAULTS = {"nonfinite": _fault_nonfinite, "oom": _fault_oom, "dataloader": _fault_dataloader,
                   "diskfull": _fault_disk_full}


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}"[:500] if text else type(err).__name__


def _stop_of(err: BaseException) -> StopReason:
    """Return why an error ended the trial (``tuner.trial.verdict.stop_of_error``)."""
    from tuner.trial.verdict import stop_of_error  # lazy: loaded by run() already; not at start-up (sqlalchemy)

    return stop_of_error(err, _reason(err))


def run(job_path: Path) -> Outcome:
    """Run the trial of ``job_path`` and return its Outcome; exceptions propagate (``main`` records them).

    The outcome's ``timings`` are described in the module docstring.
    """
    run_started = time.perf_counter()
    timings: dict[str, float] = {"process_start_s": seconds_since_process_start()}
    # lazy: these take seconds (optuna, torch, the trainer); imported after process_start_s is taken,
    # they count in worker_start_to_train_s (see the module docstring)
    from trainer.errors import TrainingInterrupted
    from trainer.training.loop import train

    job = TrialJob.read(job_path)
    print(f"worker: trial {job.trial_number}, pid {os.getpid()}, "
          f"CUDA_VISIBLE_DEVICES={os.environ.get(env.CUDA_VISIBLE_DEVICES, '(unset)')}, "
          f"OMP_NUM_THREADS={os.environ.get(env.OMP_NUM_THREADS, '(unset)')}", flush=True)
    inject_fault(job.trial_number)
    setup, reporter = _attach(job)
    train_started = time.perf_counter()
    timings["worker_start_to_train_s"] = train_started - run_started
    try:
        # warm_start also on resume: it picks the learning-rate profile (the weights come from last.pt).
        result = train(setup.config(job.params), job.settings.data, job.run_dir, callback=reporter, resume=job.resume,
                       warm_start=job.settings.warm_start, show_progress=False, stop=STOP)
    except TrainingInterrupted as stopped:  # retried (tuner.fleet.endings): queued to resume from here
        return Outcome("failed", StopReason(INTERRUPTED, f"interrupted at step {stopped.step} (checkpoint saved)",
                                            stopped.step),
                       timings={**timings, "train_s": time.perf_counter() - train_started})
    timings["train_s"] = time.perf_counter() - train_started
    if reporter.stop is not None:
        outcome = Outcome("pruned", reporter.stop)
    else:
        final = result.final
        if final is not None:
            reporter.note_final(final.checkpoint, final.step, final.sentences, final.metrics)
        outcome = Outcome("complete", _training_end(result),
                          values=reporter.final_values(final.metrics if final is not None else None),
                          best_step=reporter.best_step())
    media_started = time.perf_counter()
    outcome.media = _media(job, outcome.state == "complete", setup.space.study.samples)
    timings.update(media_s=time.perf_counter() - media_started, report_s=reporter.report_seconds,
                   report_calls=reporter.report_calls)
    outcome.timings = timings
    return outcome


def _attach(job: TrialJob) -> tuple[TrialSetup, Reporter]:
    """Rebuild the trial's setup from its job and attach a Reporter to the running trial through the storage."""
    import optuna  # lazy: see run()

    from tuner.study.storage import open_storage  # lazy: see run()
    from tuner.trial.reporting import Reporter, TrialHandle  # lazy: see run()
    from tuner.trial.resume import earlier_validations  # lazy: see run()
    from tuner.trial.setup import TrialSetup  # lazy: see run()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    setup = TrialSetup.load(job.settings)
    storage = open_storage(os.environ[env.STORAGE])
    # A light sampler: the parent already sampled; the child only reports and asks the pruner.
    study = optuna.load_study(study_name=job.study_name, storage=storage, pruner=setup.pruner(),
                              sampler=optuna.samplers.RandomSampler())
    reporter = Reporter(TrialHandle(study, storage, job.trial_id), setup.objective, setup.gates,
                        job.settings.max_steps, pruner_name=setup.space.study.pruner.get("name", "pruner"),
                        owner=job.owner)
    if job.resume:
        # The dead trial's validations up to its checkpoint: back into the objective and the trial.
        for step, metrics in earlier_validations(Path(job.run_dir)):
            reporter.replay(step, metrics)
    return setup, reporter


def _training_end(result: TrainResult) -> StopReason:
    """Return why a run the tuner did not stop ended: its budget, or the trainer's quality controller."""
    if result.stop is None:
        return StopReason(COMPLETED, f"trained its budget of {result.step} steps", result.step)
    return StopReason(CONTROLLER, f"the trainer's quality controller stopped it at step {result.step} "
                                  f"({result.stop.reason})", result.step)


def _media(job: TrialJob, complete: bool, samples: int) -> list[str]:
    """Make the trial's plots and samples: of the best checkpoint when it finished, of the last when pruned.

    Media are a bonus: a broken plotting or audio stack costs them, never the trained trial.
    """
    checkpoints = Path(job.run_dir) / "checkpoints"
    chosen = checkpoints / ("best.pt" if complete and (checkpoints / "best.pt").is_file() else "last.pt")
    try:
        # lazy: inside the try, so a broken plotting or audio stack costs the media, never the trained trial
        from tuner.trial.media import make_trial_media

        media = make_trial_media(job.run_dir, job.settings.data, chosen, samples if complete else 0,
                                 f"trial {job.trial_number} ({chosen.stem} checkpoint)")
    except Exception as err:  # the media's boundary: a plotting problem must not fail a trained trial
        print(f"media: {_reason(err)}", file=sys.stderr)
        traceback.print_exc()
        return []
    return [str(p) for p in media.all()]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child; returns 0 whenever an outcome was written."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m tuner.trial.child JOB.json OUTCOME.json", file=sys.stderr)
        return 2
    job_path, outcome_path = Path(args[0]), Path(args[1])
    die_with_parent()
    stop_on_signals()
    try:
        outcome = run(job_path)
    except Exception as err:
        from tuner.fleet.lease import LostLease  # lazy: loaded by run() already; not at start-up (optuna)

        if isinstance(err, LostLease):  # fencing: the trial is another worker's now; write nothing more
            print(f"worker: {err}; stopping without an outcome", file=sys.stderr, flush=True)
            return LEASE_LOST_EXIT_CODE
        traceback.print_exc()
        outcome = Outcome("failed", _stop_of(err))
    outcome.write(outcome_path)
    return 0


if __name__ == "__main__":
    exit_code = main()
    # The outcome is on disk (written atomically) and nothing else is left to save: skip the
    # interpreter's shutdown (finalising torch, optuna and SQLAlchemy takes 1.5-2 s per trial,
    # bench/tuner_overhead.py measured it as child_exit_s).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
