"""``tuner best --export DIR``: the best trial's config, checkpoint, samples and plots in one folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from optuna.trial import TrialState

from trainer import metric_registry
from trainer.fileio import atomic_write_text
from tuner.errors import TunerError

if TYPE_CHECKING:
    from optuna import Study
    from optuna.trial import FrozenTrial


def _checkpoint_metrics(path: Path) -> dict[str, float]:
    """Return the registered figures of the validation a checkpoint was saved at (its objective, fr_mcd ...)."""
    from trainer.checkpoint import CheckpointError, load_checkpoint  # lazy: torch, only when exporting

    try:
        metrics = load_checkpoint(path).get("metrics") or {}
    except CheckpointError:
        return {}
    return metric_registry.summary(metrics, [name for name in metrics if metric_registry.is_known(name)])


def _export_trial(trial: FrozenTrial, out: Path, objective: list[str]) -> list[str]:
    """Copy one trial's files into ``out``; return what was written (one line each)."""
    run_dir = Path(trial.user_attrs.get("run_dir", ""))
    if not run_dir.is_dir():
        raise TunerError(f"trial {trial.number}: its run folder {run_dir} is not on this machine "
                         "(export on the machine that ran it)")
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


def export_best(study: Study, out: str | Path) -> list[str]:
    """Export the best trial (one objective) or each Pareto-front trial into ``out/trial-N`` (several).

    Returns one line per written file. TunerError when no trial is complete.
    """
    out = Path(out)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise TunerError(f"study {study.study_name!r} has no complete trial to export")
    objective = study.user_attrs.get("objective") or ["value"]
    if len(study.directions) == 1:
        lines = _export_trial(study.best_trial, out, objective)
    else:
        lines = []
        for trial in study.best_trials:
            lines += _export_trial(trial, out / f"trial-{trial.number}", objective)
    return [f"wrote {line}" for line in lines]
