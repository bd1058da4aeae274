"""A retried trial resumes its dead predecessor's training instead of starting again at step 0.

When a worker dies (SIGKILL, a lost machine), its trial stops sending heartbeats; after the grace
period any worker fails it and Optuna's ``RetryHeartbeatStaleTrialCallback`` enqueues a copy
(same parameters) whose system attributes name the trials it retries (``retry_history``). The
worker that picks the copy calls ``prepare_resume``: it finds the latest of those trials whose run
folder (in the shared home) holds a readable checkpoint (``trainer.model.checkpoint.resume_candidates``:
last.pt, else the newest step checkpoint, else good.pt, else best.pt, whichever reads whole),
copies it and the metrics up to its step into the new trial's run folder, and the child trains
with ``resume=True``: same model, optimiser, data position and RNG, the next step after the
checkpoint.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.fileio import atomic_write_text, read_jsonl
from trainer.model.checkpoint import CheckpointError, load_resumable
from tuner.study.optuna_api import storage_of, trial_id

if TYPE_CHECKING:
    from optuna import Study, Trial

CHECKPOINTS = ("last.pt", "best.pt", "good.pt")  # what train() saves and a resume may read


@dataclass(frozen=True)
class Resumed:
    """Where a retried trial's run continues from."""

    trial: int  # number of the dead trial whose checkpoint is used
    run_dir: Path  # its run folder
    step: int  # the checkpoint's step: training continues with the next one
    mlflow_run_id: str | None  # the dead trial's MLflow run (left RUNNING by the dead worker)
    checkpoint: str = "last.pt"  # which of its checkpoints: another one when last.pt could not be read
    skipped: tuple[str, ...] = ()  # the unreadable ones passed over, with their reasons

    def as_attr(self) -> dict[str, Any]:
        """Return the ``resumed_from`` user attribute of the new trial."""
        return {"trial": self.trial, "step": self.step, "run_dir": str(self.run_dir), "checkpoint": self.checkpoint,
                "skipped": list(self.skipped)}


def retry_history(study: Study, trial: Trial) -> list[int]:
    """Return the numbers of the trials ``trial`` retries, oldest first (empty for a fresh trial)."""
    attrs = storage_of(study).get_trial_system_attrs(trial_id(trial))
    return [int(n) for n in attrs.get("retry_history", [])]


def prepare_resume(study: Study, trial: Trial, run_dir: Path) -> Resumed | None:
    """Fill ``run_dir`` from the latest retried trial with a readable checkpoint; None when there is none.

    A checkpoint that cannot be read (the file is damaged, or was cut by the kill) is passed over
    for the next one; a trial none of whose checkpoints reads (or whose folder is on another
    machine) is passed over for an older attempt; with none at all the retry trains from the start.
    """
    history = retry_history(study, trial)
    if not history:
        return None
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number in reversed(history):
        old = by_number.get(number)
        if old is None:
            continue
        source = old.user_attrs.get("run_dir")
        if not source or not (Path(source) / "checkpoints").is_dir():
            continue
        source = Path(source)
        try:
            used, payload, skipped = load_resumable(source / "checkpoints")
        except CheckpointError:
            continue
        step = int(payload["position"]["step"])
        copy_run(source, run_dir, step, used)
        return Resumed(number, source, step, old.user_attrs.get("mlflow_run_id"), used.name, tuple(skipped))
    return None


def copy_run(source: Path, target: Path, step: int, resume_from: Path | None = None) -> None:
    """Copy the checkpoints of ``source`` and its metrics up to ``step`` into ``target`` (a fresh run folder).

    ``resume_from`` (default: ``source``'s last.pt) becomes the target's last.pt, which the
    child resumes from. Metrics after the checkpoint are dropped: training repeats those steps,
    and the records would otherwise appear twice.
    """
    (target / "checkpoints").mkdir(parents=True, exist_ok=True)
    for name in CHECKPOINTS:
        if (source / "checkpoints" / name).is_file():
            shutil.copy2(source / "checkpoints" / name, target / "checkpoints" / name)
    if resume_from is not None and resume_from != source / "checkpoints" / "last.pt":
        shutil.copy2(resume_from, target / "checkpoints" / "last.pt")
    kept = [line for line, record in read_jsonl(source / "metrics.jsonl") if int(record.get("step", 0)) <= step]
    if kept:
        atomic_write_text(target / "metrics.jsonl", "\n".join(kept) + "\n")


def earlier_validations(run_dir: Path) -> list[tuple[int, dict[str, float]]]:
    """Return the (step, metrics) of the validations already in ``run_dir/metrics.jsonl`` (copied by a resume)."""
    found: list[tuple[int, dict[str, float]]] = []
    for _, record in read_jsonl(run_dir / "metrics.jsonl"):
        if record.get("kind") == "val":
            metrics = {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                       and k not in ("step", "time")}
            found.append((int(record["step"]), metrics))
    return found
