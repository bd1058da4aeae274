"""``run-study`` from arguments to the last table: check everything, then create or join, then optimise.

Order matters: every input (space file, arguments, data, base checkpoint, storage reachability,
MLflow/Optuna separation) is checked before the study storage, the MLflow store or the demo
are written, so a bad command leaves nothing behind.
"""

from __future__ import annotations

import math
import os
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import optuna
import torch

from trainer.config import TrainConfig, config_from_stored
from trainer.data.corpus import check_corpus
from trainer.errors import CheckpointError, ConfigError, CorpusError
from trainer.model.checkpoint import load_checkpoint
from trainer.training.plan import plan_training
from tuner import env
from tuner.commands.demo import DemoPlan, ensure_demo
from tuner.commands.status import best_lines, counts_line, trials_table
from tuner.errors import TunerError
from tuner.fleet.gpuclaim import CLAIM, claim_gpu, lock_folder
from tuner.fleet.slots import gpu_of, parse_slots
from tuner.fleet.worker import FINISHED, Worker, WorkerResult
from tuner.paths import Home, safe_name, study_name_problem
from tuner.space.load import load_space, with_vocoder
from tuner.space.samplers import describe_pruner
from tuner.space.spec import SearchSpace
from tuner.study.storage import check_storage, creation_lock, resolve_storage, sqlite_single_process, worker_id
from tuner.study.studies import open_study
from tuner.study.timeouts import Timeouts, timeouts
from tuner.study.urls import mask_url
from tuner.tracking.runs import EXPERIMENT_ID_ATTR, StudyTracker, check_separate, runs_table_url, tracking_uri
from tuner.trial.observers import LiveView, Observers
from tuner.trial.protocol import RunSettings
from tuner.trial.runner import TrialRunner
from tuner.trial.setup import TrialSetup, space_digest
from tuner.trial.supervisor import Limits


@dataclass
class StudyRequest:
    """The options of ``tuner run-study`` (None: the space's or the default's value)."""

    space: str
    study: str | None = None
    storage: str | None = None
    data: Path | None = None
    warm_start: Path | None = None
    trials: int | None = None
    timeout: float | None = None
    max_steps: int | None = None
    gpus: str | None = None
    trials_per_gpu: int = 1  # slots on each GPU of --gpus without its own :N (tuner.fleet.slots)
    preset: str | None = None
    home: Path | None = None
    trial_timeout: float | None = None
    mlflow: bool = True
    quiet: bool = False
    vocoder: str | None = None  # replaces the space's fixed vocoder (hifigan:GENERATOR or griffin-lim)
    vocoder_config: Path | None = None
    wait_for_storage: float = 0.0  # seconds to wait for an unreachable database server at start
    demo_plan: DemoPlan | None = None  # tests pass a miniature one


@dataclass
class Plan:
    """A checked request: what will run, where."""

    space: SearchSpace
    home: Home
    study_name: str
    storage_url: str
    data: Path | None
    warm_start: Path | None
    use_demo: bool
    preset: str
    max_steps: int
    n_trials: int
    gpus: list[str] | None
    limits: Limits  # a trial's time limit and stall time (tuner.trial.supervisor)
    timeouts: Timeouts  # the trial lease's heartbeat, grace and storage retry (tuner.study.timeouts)
    claim_gpu: bool = False  # --gpus claim: take one free GPU of this machine (see tuner.fleet.gpuclaim)
    shortened: str | None = None  # why the study runs shorter than its space asks (the CPU demo), said at the start


DEMO_CPU_TRIALS = 5
DEMO_CPU_STEPS = 150


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def planned_steps(data: Path, space: SearchSpace, preset: str) -> int | None:
    """Return the epoch planner's optimiser steps for ``data`` (trainer.training.plan), or None when it cannot plan.

    Used as the per-trial budget when neither the space nor --max-steps gives one. The
    batch size is the space's default trial's.
    """
    config = space.build_config(space.defaults_or_low(), preset_name=preset, max_steps=None)
    try:
        plan = plan_training(data, config.batch_size, config.grad_accum_steps, val_size=config.val_size,
                             lang=config.lang, min_seconds=config.min_seconds, max_seconds=config.max_seconds,
                             drop_unknown_chars=config.on_unknown_char == "drop")
    except ValueError:  # a CorpusError, or too few utterances to plan: check_data below names the problem
        return None
    return plan.steps


def check_base_checkpoint(path: Path, config: TrainConfig) -> None:
    """Raise TunerError unless ``path`` is a checkpoint whose network shape (ModelConfig) matches ``config``."""
    if not path.is_file():
        raise TunerError(f"{path}: base checkpoint not found")
    try:
        payload = load_checkpoint(path)
        saved = config_from_stored(payload["config"], source=str(path)).model
    except (CheckpointError, ConfigError) as err:
        raise TunerError(str(err)) from None
    for key, value in vars(saved).items():
        if value != getattr(config.model, key):
            # The frontend is not a preset's: a base trained before phonemes became the default reads characters.
            fix = (f"add `{key}: {value}` under the space's fixed keys" if key == "text_frontend"
                   else "use the preset the base was trained with (--preset)")
            raise TunerError(f"{path}: the base checkpoint has {key}={value} but the trials' config has "
                             f"{getattr(config.model, key)}; {fix}")


def held_out_size(usable: int, wanted: int) -> int | None:
    """Return the held-out sentences of a corpus of ``usable`` utterances when the space's ``wanted`` does not fit.

    A corpus of fewer than twice ``wanted`` would train on less than it holds out: a quarter of
    it is held out instead. None: ``wanted`` fits. TunerError when not even one utterance can be.

    >>> held_out_size(120, 32), held_out_size(60, 32), held_out_size(16, 32), held_out_size(24, 8)
    (None, 15, 4, None)
    """
    if usable >= 2 * wanted:
        return None
    if usable < 4:
        raise TunerError(f"{usable} usable utterances, not enough for a validation set plus training (a study "
                         "needs at least 4)")
    return min(wanted, usable // 4)


def check_data(data: Path, config: TrainConfig) -> int:
    """Return the corpus's usable utterances; TunerError when it is missing, has problems that block training,
    or is too small for any held-out set (``held_out_size``)."""
    if not data.exists():
        raise TunerError(f"{data}: corpus not found (an LJSpeech folder or a path|text filelist)")
    try:
        report = check_corpus(data, lang=config.lang, min_seconds=config.min_seconds, max_seconds=config.max_seconds,
                              drop_unknown_chars=config.on_unknown_char == "drop")
    except CorpusError as err:
        raise TunerError(str(err)) from None
    if report.blocking and not config.skip_bad_items:
        raise TunerError(f"{data}: {len(report.blocking)} blocking problem(s), first: {report.blocking[0].line()} "
                         "(see `trainer check-data`)")
    try:
        held_out_size(len(report.usable), config.val_size)
    except TunerError as err:
        raise TunerError(f"{data}: {err}") from None
    return len(report.usable)


def make_plan(request: StudyRequest) -> Plan:
    """Return the checked plan of ``request``; TunerError/SpaceError name the first problem. Writes nothing."""
    problem = None if request.study is None else study_name_problem(request.study)
    if problem is not None:
        raise TunerError(f"--study: {problem}")
    space = load_space(request.space)
    if request.vocoder is not None:
        space = with_vocoder(space, request.vocoder, request.vocoder_config)
    elif request.vocoder_config is not None:
        raise TunerError("--vocoder-config needs --vocoder hifigan:GENERATOR")
    home = Home.resolve(request.home)
    for name, count in (("--trials", request.trials), ("--max-steps", request.max_steps)):
        if count is not None and count < 1:
            raise TunerError(f"{name} must be >= 1, got {count}")
    for name, seconds in (("--timeout", request.timeout), ("--trial-timeout", request.trial_timeout)):
        if seconds is not None and not (seconds > 0 and math.isfinite(seconds)):
            raise TunerError(f"{name} must be a positive number of seconds, got {seconds}")
    if not (request.wait_for_storage >= 0 and math.isfinite(request.wait_for_storage)):
        raise TunerError(f"--wait-for-storage must be 0 or more seconds, got {request.wait_for_storage}")
    preset = request.preset or space.preset
    claim = request.gpus == CLAIM
    gpus = None if claim else parse_slots(request.gpus, request.trials_per_gpu)
    storage_url = resolve_storage(request.storage, home)
    warm_start = request.warm_start or space.study.warm_start
    data = request.data
    use_demo = data is None and warm_start is None
    trials, max_steps = request.trials, request.max_steps
    shortened = None
    if use_demo and not gpus and not claim and not _cuda_available():
        # The zero-flag demo on a CPU: the documented space's trials x steps would take
        # hours on 2 cores, so it runs a short study unless the user asks for more.
        trials = trials or min(space.study.n_trials, DEMO_CPU_TRIALS)
        max_steps = max_steps or min(space.study.max_steps or DEMO_CPU_STEPS, DEMO_CPU_STEPS)
        if (trials, max_steps) != (space.study.n_trials, space.study.max_steps):
            shortened = (f"  CPU demo: {trials} trials x {max_steps} steps, where {space.path.name} asks for "
                         f"{space.study.n_trials} x {space.study.max_steps or 'the planned'}: trials this short show "
                         "the tuner working, not which configuration is best (--trials/--max-steps ask for more)")
    if max_steps is None and space.study.max_steps is None and data is not None and Path(data).exists():
        max_steps = planned_steps(Path(data), space, preset)
    sample_config = space.build_config(space.defaults_or_low(), preset_name=preset, max_steps=max_steps)
    if space.study.fine_tune and warm_start is None and not use_demo:
        lr = next((p for p in space.params if "learning_rate" in p.targets), None)
        rates = f" (learning rate {lr.low:g}..{lr.high:g})" if lr is not None and lr.low is not None else ""
        raise TunerError(f"{space.path.name} is a fine-tuning space{rates}: its trials must warm-start from a "
                         "trained base checkpoint; give --warm-start CKPT (or study.warm_start in the space), "
                         "or leave out --data for the embedded demo")
    if data is None and warm_start is not None:
        raise TunerError(f"a base checkpoint ({warm_start}) needs --data: the corpus of the voice to fine-tune on")
    if data is not None:
        check_data(Path(data), sample_config)
    if warm_start is not None:
        check_base_checkpoint(Path(warm_start), sample_config)
    if gpus or claim:
        if not torch.cuda.is_available():
            raise TunerError(f"--gpus {request.gpus} given but no CUDA device is visible")
        visible = torch.cuda.device_count()
        if any(int(gpu_of(g)) >= visible for g in gpus or []) and env.CUDA_VISIBLE_DEVICES not in os.environ:
            raise TunerError(f"--gpus {request.gpus}: only {visible} GPU(s) visible")
    return Plan(space=space, home=home, study_name=request.study or space.study.name, storage_url=storage_url,
                data=None if data is None else Path(data).resolve(),
                warm_start=None if warm_start is None else Path(warm_start).resolve(), use_demo=use_demo,
                preset=preset, max_steps=sample_config.max_steps,
                n_trials=trials or space.study.n_trials, gpus=gpus,
                limits=Limits(request.trial_timeout or space.study.trial_timeout, space.study.stall_timeout),
                timeouts=timeouts(),
                claim_gpu=claim, shortened=shortened)


def next_steps(home: Home, storage_url: str, study_name: str, mlflow_uri: str | None,
               experiment_id: str | None = None) -> list[str]:
    """Return the commands that look at this study: dashboard, MLflow runs, export and long run of its best trial.

    Each is a shell line (paths quoted; ``#`` comments say what it opens). Passwords are masked,
    so a masked URL is followed by a line saying how to give the real one.
    """
    shown = mask_url(storage_url)
    where = f"--home {shlex.quote(str(home.root))} --storage {shlex.quote(shown)}"
    lines = ["look at this study:",
             f"  tuner dashboard {where}  # optuna-dashboard on http://127.0.0.1:8080/"]
    if mlflow_uri is not None:
        runs = f" the study's runs: {runs_table_url(mlflow_uri, experiment_id)}" if experiment_id else ""
        if mlflow_uri.startswith(("http://", "https://")):
            lines.append(f"  # MLflow UI: {mask_url(mlflow_uri)} (the tracking server it logged to);{runs}")
        else:
            lines.append(f"  mlflow ui --backend-store-uri {shlex.quote(mask_url(mlflow_uri))}"
                         f"  # MLflow UI on http://127.0.0.1:5000/;{runs}")
    lines.append(f"  tuner best {where} --study {shlex.quote(study_name)} "
                 f"--export {shlex.quote('best-' + safe_name(study_name))}  # config, checkpoint, samples of the best")
    lines.append(f"  tuner train-best {where} --study {shlex.quote(study_name)}"
                 "  # train the winner to the corpus's planned length")
    if "***" in shown and "***" not in storage_url:
        lines.append(f"  # the storage's password is masked: give the URL in ${env.STORAGE} instead of --storage")
    return lines


def run_study(request: StudyRequest) -> int:
    """Run ``tuner run-study``; return the exit code (0 also when trials were pruned or failed)."""
    plan = make_plan(request)
    if request.mlflow:
        check_separate(tracking_uri(plan.home), plan.storage_url)
    say = (lambda line: None) if request.quiet else (lambda line: print(line, flush=True))
    # Last check: for SQLite it makes the storage's folder.
    check_storage(plan.storage_url, wait=request.wait_for_storage, say=say)

    # SQLite serves one process: a second run-study on the same file is refused (tuner.study).
    with sqlite_single_process(plan.storage_url):
        return _run_locked(request, plan, say)


def _run_locked(request: StudyRequest, plan: Plan, say: Callable[[str], None]) -> int:
    """Claim a GPU, build the demo when asked, open (or join) the study and run the worker loop."""
    if plan.claim_gpu:
        # Held until this process ends (the kernel drops the lock then, whatever the ending).
        claim = claim_gpu(lock_folder(plan.home.root), [str(i) for i in range(torch.cuda.device_count())],
                          worker_id())
        plan.gpus = parse_slots(claim.gpu, request.trials_per_gpu)
        say(f"claimed GPU {claim.gpu} of this machine" + (f" for {request.trials_per_gpu} trials at a time"
                                                          if request.trials_per_gpu > 1 else ""))
    setup = TrialSetup(plan.space, _settings(request, plan, say))
    options = ServeOptions(mlflow=request.mlflow, quiet=request.quiet, timeout=request.timeout)
    study, result = serve(plan, setup, options, say, prepare=lambda study: remember_settings(study, setup.settings))
    return finish(study, plan, result, options, say)


@dataclass(frozen=True)
class ServeOptions:
    """How a worker runs a study's trials: MLflow tracking, the terminal's live view, a time limit."""

    mlflow: bool = True
    quiet: bool = False
    timeout: float | None = None  # seconds after which no new trial starts


def serve(plan: Plan, setup: TrialSetup, options: ServeOptions, say: Callable[[str], None],
          prepare: Callable[[optuna.Study], None] | None = None,
          queued_only: bool = False) -> tuple[optuna.Study, WorkerResult]:
    """Open (or join) the plan's study, let ``prepare`` see it, and run trials until its target is met
    (``queued_only``: run the queued trials only, asking the sampler for none)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the live view reports trials; Optuna's lines repeat them
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    opened = open_study(plan.space, plan.study_name, plan.storage_url, plan.max_steps, setup.pruner())
    study = opened.study
    if prepare is not None:
        prepare(study)
    tracker = None
    if options.mlflow:
        tracker = StudyTracker.open(plan.home, study, plan.space, plan.storage_url,
                                    {"max_steps": plan.max_steps, "n_trials": plan.n_trials,
                                     "data": setup.settings.data, "warm_start": setup.settings.warm_start or "none"})
    observers = Observers(LiveView(study, quiet=options.quiet), plan.home, plan.space, tracker)
    for line in _intro(plan, setup, opened.created):
        say(line)
    runner = TrialRunner(setup, study, plan.home, plan.storage_url, observers, plan.limits, plan.gpus)
    result = _work(options, plan, study, runner, say, queued_only)
    if tracker is not None:  # the study's results are safe in Optuna; a failure here is said and passed
        observers.best_effort("mlflow: could not close the study run", lambda: tracker.finish_study(study))
    if runner.stopping.is_set() and result.exit_code == 0:
        say(result.reason)
    return study, result


def finish(study: optuna.Study, plan: Plan, result: WorkerResult, options: ServeOptions,
           say: Callable[[str], None]) -> int:
    """Say how the run ended (a failure on stderr) and print the closing table; return the exit code."""
    if result.exit_code != 0:
        print(f"tuner: {result.reason}", file=sys.stderr)
    if not options.quiet:
        print()
        print("\n".join(closing_lines(study, plan.home, plan.storage_url, plan.study_name,
                                      tracking_uri(plan.home) if options.mlflow else None)))
    return result.exit_code


SETTINGS_ATTR = "run_settings"  # study user attribute: the RunSettings of its first run (what `tuner confirm` reuses)


def remember_settings(study: optuna.Study, settings: RunSettings) -> None:
    """Keep the first run's settings on the study: its corpus, base, preset and budget, for later commands."""
    if SETTINGS_ATTR not in study.user_attrs:
        study.set_user_attr(SETTINGS_ATTR, asdict(settings))


def _settings(request: StudyRequest, plan: Plan, say: Callable[[str], None]) -> RunSettings:
    """Return what every trial of this run shares: the space file, the preset, the budget and the data.

    The embedded demo's corpora and base checkpoint are built here, once, when the plan asks for them.
    """
    space = plan.space
    data, warm_start = plan.data, plan.warm_start
    if plan.use_demo:
        assets = ensure_demo(plan.home, request.demo_plan, need_base=space.study.fine_tune, say=say,
                             show_progress=not request.quiet)
        if space.study.fine_tune:
            data, warm_start = assets.voice_corpus, assets.base_checkpoint
            check_base_checkpoint(warm_start, space.build_config(space.defaults_or_low(), preset_name=plan.preset,
                                                                 max_steps=plan.max_steps))
        else:
            data = assets.base_corpus
    assert data is not None, "make_plan sends a request without --data to the demo"
    sample = space.build_config(space.defaults_or_low(), preset_name=plan.preset, max_steps=plan.max_steps)
    wanted = sample.val_size
    held_out = held_out_size(check_data(Path(data), sample), wanted)
    if held_out is not None:
        say(f"the corpus is small for the space's {wanted} held-out sentences (val_size): the trials hold out "
            f"{held_out}, a quarter of it, and are ranked on those")
    vocoder = space.fixed.get("vocoder") if request.vocoder is not None else None
    vocoder_config = space.fixed.get("vocoder_config") if request.vocoder is not None else None
    return RunSettings(space=str(space.path), space_sha256=space_digest(space), preset=plan.preset,
                       max_steps=plan.max_steps, data=str(data),
                       warm_start=None if warm_start is None else str(warm_start), vocoder=vocoder,
                       vocoder_config=vocoder_config, held_out=held_out)


def _intro(plan: Plan, setup: TrialSetup, created: bool) -> list[str]:
    """Return the lines that say what this run is about to do."""
    space, settings = plan.space, setup.settings
    return [f"study {plan.study_name!r} ({'new' if created else 'continued'}) in {mask_url(plan.storage_url)}",
            f"  space {space.path.name}: {space.study.objective.describe()}; {len(space.params)} parameters; "
            f"{plan.max_steps} steps per trial; preset {plan.preset}",
            f"  pruner {describe_pruner(space.study.pruner, space.study.objective.multi)}; gates: "
            + ("; ".join(g.describe() for g in space.study.gates) or "none"),
            f"  data {settings.data}" + (f"; warm start from {settings.warm_start}" if settings.warm_start
                                         else "; from scratch"),
            *([plan.shortened] if plan.shortened else [])]


def _work(options: ServeOptions, plan: Plan, study: optuna.Study, runner: TrialRunner,
          say: Callable[[str], None], queued_only: bool = False) -> WorkerResult:
    """Run the worker loop until the study holds the target number of finished trials (or a stop)."""
    space = plan.space
    worker = Worker(study, runner, target=plan.n_trials, timeouts=plan.timeouts,
                    max_retries=space.study.max_retries, max_consecutive_failures=space.study.max_consecutive_failures,
                    jobs=len(plan.gpus) if plan.gpus else 1, timeout=options.timeout, stopping=runner.stopping,
                    say=lambda line: print(f"tuner: {line}", file=sys.stderr, flush=True),
                    serialize=lambda: creation_lock(plan.storage_url, "ask"),
                    after_trial=runner.observers.after_trial, queued_only=queued_only)
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    if finished >= plan.n_trials:
        say(f"the study already has {finished} finished trials (target {plan.n_trials}); raise --trials to run more")
    else:
        say(f"running trials until the study holds {plan.n_trials} finished ones (it has {finished})"
            + (f", on GPUs {','.join(plan.gpus)}" if plan.gpus else ""))
    with stop_on_signals(runner.stopping, say):
        return worker.run()


def closing_lines(study: optuna.Study, home: Home, storage_url: str, study_name: str,
                  mlflow_uri: str | None) -> list[str]:
    """Return the closing table of a run: the trials, their counts, the best, and the commands to look further."""
    return [trials_table(study), counts_line(study), *best_lines(study), "",
            *next_steps(home, storage_url, study_name, mlflow_uri, study.user_attrs.get(EXPERIMENT_ID_ATTR))]


@contextmanager
def stop_on_signals(stopping: threading.Event, say: Callable[[str], None],
                    what: str = "the running trials save their checkpoints and are queued to resume") -> Iterator[None]:
    """Turn SIGTERM and SIGINT into a graceful stop for the ``with`` block; a second signal stops at once.

    Graceful: ``stopping`` is set; each running trial's child saves its checkpoint at the end of
    its current step and the trial is failed as interrupted and queued to resume; no new trial
    starts. Only the main thread can install signal handlers; elsewhere the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if stopping.is_set():  # the second signal: the user means it
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        stopping.set()
        say(f"{signal.Signals(signum).name}: stopping; {what} (a second signal stops at once)")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
