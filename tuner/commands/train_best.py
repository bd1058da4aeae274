"""``tuner train-best``: train the winning trial's configuration to full length, from its checkpoint.

A study's trials run a short budget; the configuration that won is worth training to the
length the corpus needs. This continues the trial's own last checkpoint (model, optimiser,
schedules, random state) in a copy of its run folder, so the study's evidence stays as it was
and the long run picks up exactly where the trial stopped. The length is ``--steps``, else the
epoch planner's (``trainer plan``) for the trial's corpus and batch settings. The run is
tracked in MLflow as a child of the study's run, as the trials are.

Stopping (Ctrl-C, SIGTERM) saves the checkpoint at the end of the current step; the same
command continues from it.
"""

from __future__ import annotations

import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from trainer.errors import TrainingInterrupted
from tuner.errors import TunerError
from tuner.evidence.confirm import winner_trial
from tuner.fleet.endings import COMPLETED, FAILED, INTERRUPTED, StopReason
from tuner.paths import Home, safe_name
from tuner.tracking.runs import ROLE_TAG
from tuner.trial.protocol import job_corpus

if TYPE_CHECKING:
    from optuna import Study
    from optuna.trial import FrozenTrial

    from tuner.tracking.runs import StudyTracker

COPIED_AWAY = ("job.json", "outcome.json", "*.tmp")  # the trial's bookkeeping, not the run's
ROLE = "train-best"


@dataclass(frozen=True)
class TrainBestRequest:
    """What ``tuner train-best`` was asked."""

    trial: int | None = None  # None: the study's best trial (single objective)
    steps: int | None = None  # None: the epoch planner's length
    data: Path | None = None  # None: the corpus the trial trained on
    out: Path | None = None  # None: HOME/runs/<study>/best-trial-NNNN
    device: str | None = None  # None: the trial's config
    mlflow: bool = True
    quiet: bool = False


def pick_trial(study: Study, number: int | None) -> FrozenTrial:
    """Return trial ``number`` (complete) or the study's best; TunerError names what is missing."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if number is not None:
        for trial in complete:
            if trial.number == number:
                return trial
        raise TunerError(f"--trial {number}: not a complete trial of study {study.study_name!r} "
                         f"(complete: {', '.join(str(t.number) for t in complete) or 'none'})")
    if not complete:
        raise TunerError(f"study {study.study_name!r} has no complete trial to train")
    if len(study.directions) > 1:
        front = ", ".join(str(t.number) for t in study.best_trials)
        raise TunerError(f"study {study.study_name!r} has several objectives: pick one of the Pareto-front "
                         f"trials ({front}) with --trial N")
    return winner_trial(study)


def planned_steps(config: Any, data: Path) -> int:
    """Return the epoch planner's optimiser steps for ``data`` with the config's batch settings."""
    from trainer.training.plan import plan_training  # lazy: reads the corpus (soundfile, torch)

    plan = plan_training(data, config.batch_size, config.grad_accum_steps, val_size=config.val_size,
                         lang=config.lang, min_seconds=config.min_seconds, max_seconds=config.max_seconds,
                         drop_unknown_chars=config.on_unknown_char == "drop")
    return plan.steps


def _prepare(trial: FrozenTrial, out: Path) -> None:
    """Copy the trial's run folder to ``out`` (through a temporary name: never half a copy)."""
    source = Path(trial.user_attrs.get("run_dir", ""))
    if not (source / "checkpoints" / "last.pt").is_file():
        raise TunerError(f"trial {trial.number}: no checkpoint at {source / 'checkpoints' / 'last.pt'} "
                         "(train-best runs on the machine that holds the trial's run folder)")
    staging = out.with_name(out.name + ".copying")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns(*COPIED_AWAY))
    staging.rename(out)


def train_best(study: Study, home: Home, request: TrainBestRequest,
               tracker: StudyTracker | None = None) -> list[str]:
    """Train the chosen trial's configuration to full length; return the lines to print.

    TunerError (bad input: exit 2) when the trial, its checkpoint or its corpus cannot be found,
    or when it already trained as many steps as asked.
    """
    from trainer.model.checkpoint import load_checkpoint  # lazy: torch
    from trainer.training.loop import train
    from trainer.training.run_folder import RunFolder, config_for_resume
    from trainer.training.session import pick_device
    from tuner.commands.run_study import stop_on_signals  # lazy: imports the trainer (torch)

    trial = pick_trial(study, request.trial)
    out = request.out or home.root / "runs" / safe_name(study.study_name) / f"best-trial-{trial.number:04d}"
    continuing = (out / "checkpoints" / "last.pt").is_file()
    job_file = Path(trial.user_attrs.get("run_dir", "")) / "job.json"
    recorded = job_corpus(job_file)
    data = request.data or (Path(recorded) if recorded else None)
    if data is None or not data.exists():
        raise TunerError(f"trial {trial.number}: its corpus {data or '(not recorded)'} is not here; give --data DIR")
    if not continuing:
        if out.exists() and any(out.iterdir()):
            raise TunerError(f"--out {out}: exists and holds no run to continue; choose an empty folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()
        _prepare(trial, out)
    start = int(load_checkpoint(RunFolder(out).last)["position"]["step"])
    saved = config_for_resume(out)
    steps = request.steps if request.steps is not None else planned_steps(saved, data)
    if steps <= start:
        raise TunerError(f"{out} is at step {start} already; ask for more with --steps N (N > {start})"
                         + ("" if request.steps is not None else f"; the epoch planner says {steps}"))
    config = config_for_resume(out, steps)
    if request.device is not None:
        pick_device(request.device)  # cuda without CUDA is bad input, before training starts
        config = config.replace(device=request.device)
    run_id = None
    if tracker is not None:
        run_id = tracker.start_trial(trial.number, {**trial.params, "steps": steps, "from_step": start},
                                     config.to_dict(), {ROLE_TAG: ROLE},
                                     run_name=f"train-best trial {trial.number}")

    def log(step: int, metrics: dict[str, float]) -> bool:
        if tracker is not None and run_id is not None:
            tracker.log_records(run_id, [{"kind": "val", "step": step, **metrics}])
        return False

    stop = threading.Event()
    try:
        with stop_on_signals(stop, lambda line: print(line, file=sys.stderr),
                             "the run saves its checkpoint at the end of this step"):
            result = train(config, data, out, callback=log, resume=True, show_progress=not request.quiet, stop=stop)
    except TrainingInterrupted as stopped:
        if tracker is not None and run_id is not None:
            tracker.finish_trial(run_id, "FAIL", StopReason(INTERRUPTED, f"interrupted at step {stopped.step}",
                                                            stopped.step), None, [])
        return [f"stopped at step {stopped.step}, saved in {out / 'checkpoints' / 'last.pt'}; "
                "run the same command to continue"]
    except BaseException:
        if tracker is not None and run_id is not None:
            tracker.finish_trial(run_id, "FAIL", StopReason(FAILED, "training failed"), None, [])
        raise
    best = RunFolder(out).best
    if tracker is not None and run_id is not None:
        tracker.log_checkpoint(run_id, best, RunFolder(out).config)
        tracker.finish_trial(run_id, "COMPLETE", StopReason(COMPLETED, f"trained to step {result.step}", result.step),
                             [result.best_metric], [(RunFolder(out).config, "config")])
    verb = "continued" if continuing else "trained"
    return [f"{verb} trial {trial.number}'s configuration from step {start} to {result.step} in {out}",
            f"best {config.selection_metric} {result.best_metric:.4f}: {best}",
            f"listen: trainer synth --checkpoint {best} --text \"...\" --out sample.wav"]
