"""Who watches a trial: the live view on the terminal, the study's MLflow runs and the Optuna dashboard.

What they show is a courtesy to the people looking: an error in any of them (MLflow down, a full
artifact disk, a plotting bug) must cost the trial its picture, never its training. Every call
that reaches them goes through ``Observers.best_effort``, the one place their errors are caught;
it says what failed on one line of the live view and lets the trial go on.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from optuna.trial import TrialState

from trainer.evaluation import metric_registry
from trainer.fileio import atomic_write_text
from tuner.space.yamlfile import is_number
from tuner.tracking.artifacts import upload_trial_artifacts

if TYPE_CHECKING:
    from optuna import Study, Trial
    from optuna.trial import FrozenTrial

    from tuner.fleet.endings import StopReason, Verdict
    from tuner.paths import Home
    from tuner.space.spec import SearchSpace
    from tuner.tracking.runs import StudyTracker
    from tuner.trial.protocol import Outcome

T = TypeVar("T")

# Files a finished trial shows on the dashboard (Optuna artifacts): the alignment and one sample.
DASHBOARD_FILES = ("alignment.png", "sample-1.wav")
# ... and, while it runs, each validation's free-running alignment and sample.
DASHBOARD_VALIDATION_FILES = ("_alignment_fr.png", "_sample.wav")
MAX_DECISION_ATTRS = 30  # user attributes are for reading at a glance; the full list is in MLflow
HIDDEN_ACTIONS = ("none_cooldown", "none_deferred")  # controller decisions that did nothing worth showing


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

        Each figure is headed by its metric's label, in registry order (``metric_registry.shown``).
        """
        figures = "  ".join(f"{m.label} {float(record[m.name]):.3f}" for m in metric_registry.shown()
                            if is_number(record.get(m.name)))
        self.say(f"  trial {number} step {step}/{max_steps}: {figures}")

    def finished(self, number: int, state: str, detail: str) -> None:
        """Remember how a trial ended; ``after_trial`` prints it once Optuna has stored the state."""
        with self.lock:
            self.endings[number] = f"{state} {detail}"

    def after_trial(self, study: Study, trial: FrozenTrial) -> None:
        """Print the trial's ending and the study's counts (now including it)."""
        with self.lock:
            ending = self.endings.pop(trial.number, trial.state.name)
        self.say(f"trial {trial.number} {ending} | {self.counts()}")


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class ValidationMedia:
    """The pictures and sample the trainer writes at each validation (``RUN/plots/step_NNNNNN_*``), as they appear.

    The trainer appends a validation's record before it draws its files, so a validation
    is "ready" once its last file, the stop-gate plot, exists; ``ready(flush=True)`` takes whatever
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


class Observers:
    """The live view, the study's MLflow runs and the dashboard, for the trials of one worker. Thread-safe."""

    def __init__(self, view: LiveView, home: Home, space: SearchSpace, tracker: StudyTracker | None = None) -> None:
        self.view, self.home, self.space, self.tracker = view, home, space, tracker

    def best_effort(self, what: str, call: Callable[[], T]) -> T | None:
        """Return ``call()``; on any error say that ``what`` failed, on one line, and return None."""
        try:
            return call()
        except Exception as err:  # the one place an observer's error is caught: it never fails a trial
            self.view.say(f"  {what} ({type(err).__name__}: {str(err)[:300]})")
            return None

    # ------------------------------------------------------------------ a trial's life

    def started(self, trial: Trial, params: dict[str, Any], config: dict[str, Any], run_dir: Path,
                where: str, worker: str) -> str | None:
        """Announce the trial and open its MLflow run; return the run's id (None without MLflow)."""
        run_id = None
        tracker = self.tracker
        if tracker is not None:
            run_id = self.best_effort(f"mlflow: no run for trial {trial.number}", lambda: tracker.start_trial(
                trial.number, params, config, {"worker": worker, "run_dir": str(run_dir)}))
            if run_id is not None:
                trial.set_user_attr("mlflow_run_id", run_id)
                trial.set_user_attr("mlflow_experiment_id", tracker.experiment_id)
                trial.set_user_attr("mlflow_run", tracker.run_link(run_id))
        self.view.started(trial.number, params, where)
        return run_id

    def close_run(self, run_id: str | None, stop: StopReason, number: int) -> None:
        """Close the MLflow run of a trial that ends without a verdict here (lease lost, interrupted, retried)."""
        tracker = self.tracker
        if tracker is not None and run_id is not None:
            self.best_effort(f"mlflow: could not close the run of trial {number}",
                             lambda: tracker.finish_trial(run_id, "FAIL", stop, None, []))

    def progress(self, trial: Trial, run_id: str | None, max_steps: int, records: list[dict[str, Any]],
                 media: list[tuple[int, list[Path]]]) -> None:
        """Show a running trial's new metrics records and finished validations' media."""
        self._publish_media(trial, run_id, media)
        if not records:
            return
        tracker = self.tracker
        if tracker is not None and run_id is not None:
            self.best_effort(f"mlflow: could not log metrics of trial {trial.number}",
                             lambda: tracker.log_records(run_id, records))
        for record in records:
            if record.get("kind") == "val":
                self.view.validation(trial.number, int(record["step"]), max_steps, record)
            elif record.get("kind") == "quality" and record.get("action") not in HIDDEN_ACTIONS:
                self.view.say(f"  trial {trial.number} step {record['step']}: {record['detection']} -> "
                              f"{record['action']}")

    def _publish_media(self, trial: Trial, run_id: str | None, ready: list[tuple[int, list[Path]]]) -> None:
        """Log each validation's files to MLflow (``validation/step_NNNNNN/``) and its free-running
        alignment and sample to the dashboard (Optuna artifacts), so a running trial can be seen and heard."""
        tracker = self.tracker
        for step, files in ready:
            prefix = f"step_{step:06d}_"
            if tracker is not None and run_id is not None:
                named = [(p, f"validation/step_{step:06d}", p.name[len(prefix):]) for p in files]
                self.best_effort(f"mlflow: could not log the step {step} media of trial {trial.number}",
                                 lambda named=named: tracker.log_files(run_id, named))  # type: ignore[misc]
            shown = [p for p in files if p.name.endswith(DASHBOARD_VALIDATION_FILES)]
            self.best_effort(f"artifacts: could not store the step {step} media of trial {trial.number}",
                             lambda shown=shown: upload_trial_artifacts(self.home, trial, shown))  # type: ignore[misc]

    def finished(self, trial: Trial, verdict: Verdict, outcome: Outcome, run_dir: Path, run_id: str | None) -> None:
        """Show a trial's end: its media on the dashboard, its note, its MLflow run closed with the stop reason."""
        media = [Path(p) for p in outcome.media]
        decisions = quality_decisions(run_dir / "metrics.jsonl")
        if decisions:
            # Why the run changed course (the trainer's quality controller), readable in the dashboard.
            self.best_effort(f"dashboard: could not store the controller's decisions of trial {trial.number}",
                             lambda: _keep_decisions(trial, run_dir, decisions))
        if verdict.state in ("complete", "pruned"):
            self.best_effort(f"artifacts: could not store the plots of trial {trial.number}",
                             lambda: upload_trial_artifacts(self.home, trial,
                                                            [p for p in media if p.name in DASHBOARD_FILES]))
        self.best_effort(f"dashboard: could not write the note of trial {trial.number}",
                         lambda: _save_note(trial, trial_note(trial.number, verdict, outcome, self.space, decisions)))
        tracker = self.tracker
        if tracker is not None and run_id is not None:
            files = [(p, "plots" if p.suffix == ".png" else "samples") for p in media]
            files += [(run_dir / "config.yaml", "config"), (run_dir / "metrics.jsonl", "logs")]
            if decisions:
                files.append((run_dir / "quality_decisions.txt", "logs"))
            if verdict.state == "complete":  # its checkpoint, for export elsewhere and the model registry
                self.best_effort(f"mlflow: could not log the checkpoint of trial {trial.number}",
                                 lambda: tracker.log_checkpoint(run_id, run_dir / "checkpoints" / "best.pt",
                                                                run_dir / "config.yaml"))
            self.best_effort(f"mlflow: could not finish the run of trial {trial.number}",
                             lambda: tracker.finish_trial(run_id, verdict.mlflow_state, verdict.stop, verdict.values,
                                                          files))
        self.view.finished(trial.number, verdict.state.upper(), verdict.headline(self.space.study.objective.metrics))

    def after_trial(self, study: Study, number: int) -> None:
        """Once the trial's end is stored: print it with the study's counts."""
        self.best_effort(f"trial {number}: stored, but its line could not be printed",
                         lambda: self.view.after_trial(study, study.trials[number]))


def _keep_decisions(trial: Trial, run_dir: Path, decisions: list[str]) -> None:
    trial.set_user_attr("quality_decisions", decisions[-MAX_DECISION_ATTRS:])
    atomic_write_text(run_dir / "quality_decisions.txt", "\n".join(decisions) + "\n")


def _save_note(trial: Trial, note: str) -> None:
    from optuna_dashboard import save_note  # lazy: the dashboard package is only needed here

    save_note(trial, note)


def trial_note(number: int, verdict: Verdict, outcome: Outcome, space: SearchSpace, decisions: list[str]) -> str:
    """Return the dashboard note of a finished trial (Markdown): its verdict and why, the gates, the controller."""
    objective = space.study.objective
    lines = [f"## Trial {number}: {verdict.state}", "", f"Stopped: **{verdict.stop.kind.replace('_', ' ')}**"
             + (f" at step {verdict.stop.step}" if verdict.stop.step is not None else "")
             + f": {verdict.stop.text()}.", ""]
    if verdict.state == "complete" and verdict.values:
        shown = ", ".join(f"**{m} {v:.4g}**" for m, v in zip(objective.metrics, verdict.values, strict=False))
        where = (f"the validation at step {outcome.best_step}" if outcome.best_step is not None
                 else "its best validation")
        lines.append(f"{shown}, from {where}: the checkpoint `tuner best --export` exports.")
    lines += ["", "Quality gates: " + ("; ".join(g.describe() for g in space.study.gates) or "none") + ".", ""]
    if decisions:
        lines += ["The trainer's quality controller acted:", ""] + [f"- {d}" for d in decisions]
    else:
        lines.append("The trainer's quality controller did not need to act.")
    return "\n".join(lines) + "\n"


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
        if record.get("kind") == "quality" and record.get("action") not in HIDDEN_ACTIONS:
            lines.append(f"step {record['step']}: {record['detection']} -> {record['action']} "
                         f"({record.get('reason', '')})")
    return lines
