"""MLflow tracking of a standalone ``trainer train`` run (the tuner tracks its trials itself).

A long final run is the one worth keeping, so it gets what a trial gets: the config as
parameters and ``config/config.yaml``, every ``metrics.jsonl`` record as metrics at its step
(training losses and validation figures), and each validation's pictures and free-running
sample under ``validation/step_NNNNNN/`` as they appear; at the end the best checkpoint
without its resume-only state, under ``checkpoints/``. The run is tagged with its run folder,
so ``--resume`` continues the same MLflow run.

MLflow is imported when a tracker opens: it takes over a second to import.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from trainer.fileio import JsonlTail

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"  # the tracking server or store; set, it turns tracking on for `train`
LOGGING_LEVEL_ENV = "MLFLOW_LOGGING_LEVEL"  # MLflow's own log level; defaulted to WARNING (its INFO is noise here)
DEFAULT_URI = "sqlite:///mlflow.db"  # MLflow 3's own default: a database in the current folder
DEFAULT_EXPERIMENT = "trainer"
RUN_DIR_TAG = "smart_tuner.run_dir"
ROLE_TAG, ROLE = "smart_tuner.role", "train"
# MLflow 3's UI opens an experiment without this tag on its GenAI overview ("Traces 0"); with it, on the runs table.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
BATCH = 900  # metrics per log_batch call (MLflow caps one at 1000)


def quiet_mlflow() -> None:
    """Import MLflow with its INFO chatter (migrations, store notices) turned down."""
    os.environ.setdefault(LOGGING_LEVEL_ENV, "WARNING")
    import mlflow  # noqa: F401  (lazy: mlflow takes over a second to import)

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def record_metrics(records: list[dict[str, Any]], timestamp_ms: int) -> list[Metric]:
    """Return MLflow metrics of ``metrics.jsonl`` records (train and val): every number at its step.

    A non-finite figure is logged as NaN (MLflow refuses infinities); booleans and the
    record's own ``step``/``time`` are not metrics.
    """
    from mlflow.entities import Metric  # lazy: see the module docstring

    metrics = []
    for record in records:
        if record.get("kind") not in ("train", "val"):
            continue
        step = int(record.get("step", 0))
        for key, value in record.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or key in ("step", "time"):
                continue
            metrics.append(Metric(key, float(value) if math.isfinite(value) else float("nan"), timestamp_ms, step))
    return metrics


def log_renamed(client: MlflowClient, run_id: str, files: list[tuple[Path, str, str]]) -> None:
    """Log each (local file, artifact folder, artifact name) to run ``run_id``; missing files are skipped."""
    with tempfile.TemporaryDirectory() as staging:
        for path, folder, name in files:
            if path.is_file():
                renamed = Path(staging) / name
                shutil.copyfile(path, renamed)
                client.log_artifact(run_id, str(renamed), folder)
                renamed.unlink()


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)[:500]
    return flat


@dataclass
class RunTracker:
    """One ``trainer train`` run in MLflow; ``sync`` after each validation, ``finish`` at the end."""

    client: MlflowClient
    run_id: str
    run_dir: Path
    offset: int = 0  # bytes of metrics.jsonl already logged
    logged_steps: int = -1  # the last validation step whose pictures were logged
    new: bool = True  # made by this process (not a resumed run's)

    @classmethod
    def open(cls, run_dir: Path, config: dict[str, Any], uri: str | None = None,
             experiment: str = DEFAULT_EXPERIMENT) -> RunTracker:
        """Return the tracker of ``run_dir``: its earlier MLflow run (a resumed run) or a new one."""
        quiet_mlflow()
        from mlflow.tracking import MlflowClient  # lazy: see the module docstring

        client = MlflowClient(uri or os.environ.get(TRACKING_URI_ENV) or DEFAULT_URI)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found is not None else client.create_experiment(
            experiment, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        run_dir = run_dir.resolve()
        earlier = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_DIR_TAG}` = '{run_dir}'",
                                     max_results=1, order_by=["attributes.start_time DESC"])
        if earlier:
            run_id = earlier[0].info.run_id
            client.update_run(run_id, status="RUNNING")
            logged = int(earlier[0].data.tags.get("smart_tuner.logged_bytes", "0"))
            return cls(client, run_id, run_dir, offset=logged, new=False)
        run = client.create_run(experiment_id, run_name=run_dir.name, tags={RUN_DIR_TAG: str(run_dir), ROLE_TAG: ROLE})
        from mlflow.entities import Param  # lazy: see the module docstring

        params = [Param(k, v) for k, v in sorted(_flat(config).items())]
        for start in range(0, len(params), 100):  # MLflow caps one batch at 100 params
            client.log_batch(run.info.run_id, params=params[start:start + 100])
        client.log_text(run.info.run_id, yaml.safe_dump(config, sort_keys=True), "config/config.yaml")
        return cls(client, run.info.run_id, run_dir)

    def sync(self, step: int | None = None) -> None:
        """Log the metrics.jsonl records written since the last call, and validation ``step``'s pictures."""
        tail = JsonlTail(self.run_dir / "metrics.jsonl", self.offset)
        metrics = record_metrics(tail.read_new(), int(time.time() * 1000))
        for start in range(0, len(metrics), BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + BATCH])
        if tail.offset != self.offset:
            self.offset = tail.offset
            self.client.set_tag(self.run_id, "smart_tuner.logged_bytes", str(self.offset))
        if step is not None and step != self.logged_steps:
            prefix = f"step_{step:06d}_"
            files = sorted((self.run_dir / "plots").glob(prefix + "*")) if (self.run_dir / "plots").is_dir() else []
            folder = f"validation/step_{step:06d}"
            log_renamed(self.client, self.run_id, [(p, folder, p.name[len(prefix):]) for p in files])
            self.logged_steps = step

    def finish(self, status: str, best_checkpoint: Path | None = None) -> None:
        """Log what is left, the slim best checkpoint (when given) and the run's end state."""
        from trainer.model.checkpoint import save_inference_checkpoint  # lazy: torch

        self.sync()
        if best_checkpoint is not None and best_checkpoint.is_file():
            with tempfile.TemporaryDirectory() as staging:
                slim = save_inference_checkpoint(best_checkpoint, Path(staging) / "best.pt")
                log_renamed(self.client, self.run_id, [(slim, "checkpoints", "best.pt"),
                                   (self.run_dir / "config.yaml", "checkpoints", "config.yaml")])
        self.client.set_terminated(self.run_id, status)

    def discard(self) -> None:
        """Delete the run: training refused its input before the first step, so there is nothing to keep."""
        self.client.delete_run(self.run_id)
