"""``tuner best --export DIR``: the best trial's config, checkpoint, samples and plots in one folder.

From the trial's run folder when it is on this machine, else from its MLflow run.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from optuna.trial import TrialState

from trainer.evaluation import metric_registry
from trainer.fileio import atomic_write_text
from tuner.errors import TunerError
from tuner.evidence.confirm import winner_trial

if TYPE_CHECKING:
    from optuna import Study
    from optuna.trial import FrozenTrial

    from tuner.tracking.runs import StudyTracker


def _checkpoint_metrics(path: Path) -> dict[str, float]:
    """Return the registered figures of the validation a checkpoint was saved at (its objective, fr_mcd ...)."""
    from trainer.model.checkpoint import CheckpointError, load_checkpoint  # lazy: torch, only when exporting

    try:
        metrics = load_checkpoint(path).get("metrics") or {}
    except CheckpointError:
        return {}
    return metric_registry.summary(metrics, [name for name in metrics if metric_registry.is_known(name)])


def _export_trial(trial: FrozenTrial, out: Path, objective: list[str],
                  tracker: Callable[[], StudyTracker] | None = None) -> list[str]:
    """Copy one trial's files into ``out``, from its run folder or else its MLflow run; return what was written."""
    run_dir = Path(trial.user_attrs.get("run_dir", ""))
    if not run_dir.is_dir():
        return _export_from_mlflow(trial, out, objective, tracker, run_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    sources = [(run_dir / "config.yaml", out / "config.yaml"),
               (run_dir / "checkpoints" / "best.pt", out / "best.pt")]
    media = run_dir / "media"
    if media.is_dir():
        sources += [(p, out / p.name) for p in sorted(media.iterdir()) if p.suffix in (".wav", ".png")]
    for source, target in sources:
        if source.is_file():
            shutil.copy2(source, target)
            written.append(str(target))
    summary = {"trial": trial.number, "values": dict(zip(objective, trial.values or [], strict=False)),
               "params": trial.params,
               "best_step": trial.user_attrs.get("best_step"), "last_metrics": trial.user_attrs.get("last_metrics"),
               "checkpoint_metrics": _checkpoint_metrics(run_dir / "checkpoints" / "best.pt"),
               "mlflow_run": trial.user_attrs.get("mlflow_run"), "run_dir": str(run_dir)}
    atomic_write_text(out / "best.json", json.dumps(summary, indent=1, sort_keys=True) + "\n")
    written.append(str(out / "best.json"))
    return written


def _export_from_mlflow(trial: FrozenTrial, out: Path, objective: list[str],
                        tracker: Callable[[], StudyTracker] | None, run_dir: Path) -> list[str]:
    """Fetch a trial's checkpoint, config, samples and plots from its MLflow run (its folder is elsewhere)."""
    run_id = trial.user_attrs.get("mlflow_run_id")
    if tracker is None or run_id is None:
        raise TunerError(f"trial {trial.number}: its run folder {run_dir} is not on this machine and "
                         + ("it has no MLflow run" if run_id is None else "MLflow is off (--no-mlflow)")
                         + " (export on the machine that ran it)")
    out.mkdir(parents=True, exist_ok=True)
    written = tracker().download(run_id, out)
    if not (out / "best.pt").is_file():
        raise TunerError(f"trial {trial.number}: its run folder {run_dir} is not on this machine and its MLflow "
                         f"run {run_id} holds no checkpoint (export on the machine that ran it)")
    summary = {"trial": trial.number, "values": dict(zip(objective, trial.values or [], strict=False)),
               "params": trial.params, "best_step": trial.user_attrs.get("best_step"),
               "last_metrics": trial.user_attrs.get("last_metrics"),
               "checkpoint_metrics": _checkpoint_metrics(out / "best.pt"),
               "mlflow_run": trial.user_attrs.get("mlflow_run"), "run_dir": str(run_dir), "from": "mlflow"}
    atomic_write_text(out / "best.json", json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return [str(p) for p in written] + [str(out / "best.json")]


def export_best(study: Study, out: str | Path, tracker: Callable[[], StudyTracker] | None = None) -> list[str]:
    """Export the best trial (one objective) or each Pareto-front trial into ``out/trial-N`` (several).

    A trial whose run folder is not on this machine comes from its MLflow run (``tracker()``
    opens the study's tracking, only then): the inference checkpoint, config, samples and
    plots logged when it finished. Returns one
    line per written file. TunerError when no trial is complete.
    """
    out = Path(out)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise TunerError(f"study {study.study_name!r} has no complete trial to export")
    objective = study.user_attrs.get("objective") or ["value"]
    if len(study.directions) == 1:
        lines = _export_trial(winner_trial(study), out, objective, tracker)
    else:
        lines = []
        for trial in study.best_trials:
            lines += _export_trial(trial, out / f"trial-{trial.number}", objective, tracker)
    return [f"wrote {line}" for line in lines]


def register_best(study: Study, tracker: Callable[[], StudyTracker], model_name: str) -> str:
    """Register the best trial's logged checkpoint as a new version of MLflow model ``model_name``; return a line.

    ``tracker()`` opens the study's tracking once the trial is known to have an MLflow run.
    """
    if not model_name.strip():
        raise TunerError("--register: the model name is empty")
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise TunerError(f"study {study.study_name!r} has no complete trial to register")
    if len(study.directions) > 1:
        raise TunerError(f"study {study.study_name!r} has several objectives: no single best trial to register")
    best = winner_trial(study)
    run_id = best.user_attrs.get("mlflow_run_id")
    if run_id is None:
        raise TunerError(f"trial {best.number} has no MLflow run (the study ran with --no-mlflow)")
    version, source = tracker().register(model_name, run_id, best.number, best.value)
    return (f"registered trial {best.number} as model {model_name!r} version {version} ({source}); "
            f"fetch it with: mlflow artifacts download -u models:/{model_name}/{version}")
