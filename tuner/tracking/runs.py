"""MLflow runs (one parent run per study, a nested run per trial) and the Optuna artifact store.

Only the parent process talks to MLflow: it streams each trial's ``metrics.jsonl`` into the
trial's run while the child trains, then logs the child's plots, samples and config. One
client per study process keeps MLflow's slow start-up (seconds) out of every trial.

Tracking URI: ``$MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<home>/mlflow.db`` with
artifacts under ``<home>/mlartifacts``. MLflow and Optuna must never share one PostgreSQL
database (both keep an ``alembic_version`` table); ``check_separate`` refuses that.

The study's parent run carries the search-space file (``space/NAME.yaml``) and the declaration
of every metric the trainer reports (``metric_definitions.json``: name, direction, range,
meaning, from ``trainer.evaluation.metric_registry``), so the numbers in the runs can be read later.

MLflow itself is imported inside the functions that use it: it takes over a second to import,
and only ``run-study`` with tracking on needs it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from trainer.evaluation import metric_registry
from trainer.fileio import file_lock
from trainer.tracking import BATCH, EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, log_renamed, quiet_mlflow, record_metrics
from tuner import env
from tuner.errors import TunerError
from tuner.fleet.endings import INTERRUPTED, LEASE_LOST, StopReason
from tuner.paths import Home, safe_name
from tuner.study.urls import mask_url, normalize_url

if TYPE_CHECKING:
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient
    from optuna import Study

    from tuner.space.spec import SearchSpace


ROLE_TAG = "smart_tuner.role"


STUDY_TAG = "smart_tuner.study"


TRIAL_TAG = "smart_tuner.trial"


PARENT_TAG = "mlflow.parentRunId"  # what the MLflow UI nests runs by
STOP_KIND_TAG = "stop_kind"  # how a trial ended (tuner.fleet.endings.KINDS)
STOP_REASON_TAG = "stop_reason"  # ... and why, in words


CHECKPOINT_FOLDER = "checkpoints"  # a complete trial's inference checkpoint and config: what a model version holds


METRIC_DEFINITIONS = "metric_definitions.json"  # parent run artifact: trainer.evaluation.metric_registry.definitions()


EXPERIMENT_ID_ATTR = "mlflow_experiment_id"  # study user attribute: the MLflow experiment of its runs
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default


DESCRIPTION_TAG = "mlflow.note.content"  # the run's description, shown on its page


def study_description(name: str, storage_url: str) -> str:
    """Return the study run's description (Markdown): where its trials, dashboard and report are."""
    storage = mask_url(storage_url)
    return (f"Optuna study **{name}**. Each trial is a run nested under this one (the runs table, with "
            f"the trials' parameters and figures). The study's dashboard: `tuner dashboard --storage {storage}` "
            f"(optuna-dashboard, history, importances, each trial's stop reason and media). Its one-page report: "
            f"`tuner report --study {name} --storage {storage} --out DIR`. Trials' state and reasons: "
            f"`tuner status --storage {storage} --study {name}`.")


def runs_table_url(uri: str, experiment_id: str) -> str:
    """Return the address of an experiment's runs table: on the tracking server, or on a local ``mlflow ui``.

    MLflow 3 opens an experiment on its GenAI overview (traces, token usage), empty for a study;
    the runs table is where the trials are.

    >>> runs_table_url("sqlite:///studies/mlflow.db", "3"), runs_table_url("http://u:pw@host:5000/", "3")
    ('http://127.0.0.1:5000/#/experiments/3/runs', 'http://u:***@host:5000/#/experiments/3/runs')
    """
    base = mask_url(uri).rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_UI
    return f"{base}/#/experiments/{experiment_id}/runs"


def tracking_uri(home: Home) -> str:
    """Return the MLflow tracking URI: ``$MLFLOW_TRACKING_URI``, else the home's SQLite store."""
    return os.environ.get(env.MLFLOW_TRACKING_URI) or f"sqlite:///{home.mlflow_db}"


def uses_default_store(uri: str, home: Home) -> bool:
    """True when ``uri`` is the home's own SQLite store (artifacts then go to ``<home>/mlartifacts``)."""
    return uri == f"sqlite:///{home.mlflow_db}"


# The tracking URI schemes MLflow's own stores accept (a bare path is a file store).
TRACKING_SCHEMES = ("", "file", "http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks")


def check_separate(uri: str, storage_url: str) -> None:
    """Raise TunerError for a tracking URI MLflow cannot use, or one that is the Optuna database.

    MLflow and Optuna must not share one database: both keep an ``alembic_version`` table.
    """
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme not in TRACKING_SCHEMES:
        raise TunerError(f"${env.MLFLOW_TRACKING_URI} {mask_url(uri)}: MLflow cannot track to a {scheme}:// URI "
                         f"(use one of {', '.join(s for s in TRACKING_SCHEMES if s)}, or a folder path)")

    def identity(url: str) -> tuple | None:
        try:
            parsed = make_url(normalize_url(url))
        except (ArgumentError, ValueError):  # not a database URL (an http:// tracking server): nothing to share
            return None
        if parsed.drivername.startswith("sqlite"):
            return ("sqlite", str(Path(parsed.database or "").resolve()))
        return (parsed.drivername.split("+")[0], parsed.host, parsed.port or 5432, parsed.database)

    if identity(uri) is not None and identity(uri) == identity(storage_url):
        raise TunerError(f"MLflow tracking URI {mask_url(uri)} is the Optuna storage database; "
                         "give MLflow its own database (both use an alembic_version table)")


@dataclass
class StudyTracker:
    """The study's MLflow parent run; makes, feeds and closes one nested run per trial. Thread-safe."""

    client: MlflowClient
    uri: str
    experiment_id: str
    parent_run_id: str
    study_name: str

    @classmethod
    def open(cls, home: Home, study: Study, space: SearchSpace | None, storage_url: str,
             extra_params: dict[str, Any], mark_running: bool = True) -> StudyTracker:
        """Return the tracker of ``study``: its experiment (named after the study) and parent run.

        The parent run is found again by its tags (and the id stored on the study), so a resumed
        or joined study keeps one parent run. A new parent run gets the space file (when
        ``space`` is given) and the metric definitions as artifacts. ``mark_running`` marks the
        parent run RUNNING (trials are coming); a run added later (``tuner train-best``) leaves
        its state alone.
        """
        quiet_mlflow()
        from mlflow.exceptions import MlflowException  # lazy: mlflow takes over a second to import
        from mlflow.tracking import MlflowClient  # lazy: as above

        uri = tracking_uri(home)
        check_separate(uri, storage_url)
        name = study.study_name
        with file_lock(home.root / ".mlflow.lock"):
            client = MlflowClient(uri)
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                location = (home.mlflow_artifacts / safe_name(name)).as_uri() if uses_default_store(uri, home) else None
                experiment_id = client.create_experiment(name, artifact_location=location,
                                                         tags={STUDY_TAG: name, EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
            else:
                experiment_id = experiment.experiment_id
                if experiment.lifecycle_stage == "deleted":
                    client.restore_experiment(experiment_id)
                if EXPERIMENT_KIND_TAG not in experiment.tags:  # made by an earlier version
                    client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
            parent_id = study.user_attrs.get("mlflow_parent_run_id")
            if parent_id is not None:
                try:
                    if client.get_run(parent_id).info.experiment_id != experiment_id:
                        parent_id = None
                except MlflowException:  # a run deleted or a store swapped since: make a new one
                    parent_id = None
            if parent_id is None:
                found = client.search_runs([experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'study'",
                                           max_results=1, order_by=["attributes.start_time ASC"])
                if found:
                    parent_id = found[0].info.run_id
                else:
                    run = client.create_run(experiment_id, run_name=f"study {name}",
                                            tags={ROLE_TAG: "study", STUDY_TAG: name,
                                                  DESCRIPTION_TAG: study_description(name, storage_url)})
                    parent_id = run.info.run_id
                    params = {"storage": mask_url(storage_url), **extra_params}
                    if space is not None:
                        params.update(space=space.path.name, objective=space.study.objective.describe(),
                                      sampler=space.study.sampler["name"], pruner=space.study.pruner["name"],
                                      preset=space.preset)
                        client.log_text(parent_id, space.text, f"space/{space.path.name}")
                    client.log_batch(parent_id, params=_params(params))
                    client.log_text(parent_id, json.dumps(metric_registry.definitions(), indent=1),
                                    METRIC_DEFINITIONS)
                study.set_user_attr("mlflow_parent_run_id", parent_id)
                study.set_user_attr(EXPERIMENT_ID_ATTR, experiment_id)
        if mark_running:
            client.update_run(parent_id, status="RUNNING")
        return cls(client, uri, experiment_id, parent_id, name)

    def run_link(self, run_id: str) -> str:
        """Return a link to a run: an URL for an MLflow server, else ``mlflow ui`` coordinates."""
        if self.uri.startswith(("http://", "https://")):
            # Stored on the trial, shown by the dashboard and exported: never with a password in it.
            return f"{mask_url(self.uri).rstrip('/')}/#/experiments/{self.experiment_id}/runs/{run_id}"
        return f"mlflow ui --backend-store-uri {mask_url(self.uri)} -> experiment {self.experiment_id}, run {run_id}"

    def start_trial(self, trial_number: int, params: dict[str, Any], config: dict[str, Any],
                    extra_tags: dict[str, str], run_name: str | None = None) -> str:
        """Create the nested run of trial ``trial_number``; return its id. Params are the sampled ones."""
        run = self.client.create_run(self.experiment_id, run_name=run_name or f"trial {trial_number}",
                                     tags={PARENT_TAG: self.parent_run_id, ROLE_TAG: "trial",
                                           STUDY_TAG: self.study_name, TRIAL_TAG: str(trial_number),
                                           "state": "RUNNING", **extra_tags})
        run_id = run.info.run_id
        self.client.log_batch(run_id, params=_params(params))
        self.client.log_text(run_id, _yaml(config), "config/config.yaml")
        return run_id

    def log_records(self, run_id: str, records: list[dict[str, Any]]) -> None:
        """Log metrics.jsonl records (train and val) as MLflow metrics at their steps."""
        metrics = record_metrics(records, int(time.time() * 1000))
        for start in range(0, len(metrics), BATCH):
            self.client.log_batch(run_id, metrics=metrics[start:start + BATCH])

    def log_files(self, run_id: str, files: list[tuple[Path, str, str]]) -> None:
        """Log each (local file, artifact folder, artifact name) to the run; missing files are skipped."""
        log_renamed(self.client, run_id, files)

    def log_checkpoint(self, run_id: str, checkpoint: Path, config: Path) -> None:
        """Log ``checkpoint`` without its resume-only state, and ``config``, under ``checkpoints/``.

        What ``tuner best --export`` fetches when the run folder is on another machine, and
        what ``tuner best --register`` makes a model version of.
        """
        from trainer.model.checkpoint import save_inference_checkpoint  # lazy: torch

        with tempfile.TemporaryDirectory() as staging:
            slim = save_inference_checkpoint(checkpoint, Path(staging) / "best.pt")
            self.log_files(run_id, [(slim, CHECKPOINT_FOLDER, "best.pt"), (config, CHECKPOINT_FOLDER, "config.yaml")])

    def register(self, model_name: str, run_id: str, trial_number: int, value: float | None) -> tuple[str, str]:
        """Register run ``run_id``'s ``checkpoints/`` as a new version of ``model_name``; return (version, source)."""
        from mlflow.exceptions import MlflowException  # lazy: mlflow takes over a second to import

        if not any(a.path == f"{CHECKPOINT_FOLDER}/best.pt" for a in self.client.list_artifacts(run_id,
                                                                                               CHECKPOINT_FOLDER)):
            raise TunerError(f"trial {trial_number}: its MLflow run {run_id} holds no {CHECKPOINT_FOLDER}/best.pt "
                             "(it finished before checkpoints were logged); nothing to register")
        try:
            self.client.create_registered_model(model_name, tags={STUDY_TAG: self.study_name},
                                                description="Tacotron2 checkpoints chosen by Smart Tuner studies")
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        source = f"{self.client.get_run(run_id).info.artifact_uri.rstrip('/')}/{CHECKPOINT_FOLDER}"
        tags = {STUDY_TAG: self.study_name, TRIAL_TAG: str(trial_number)}
        if value is not None:
            tags["objective"] = repr(value)
        version = self.client.create_model_version(model_name, source, run_id=run_id, tags=tags,
                                                   description=f"study {self.study_name}, trial {trial_number}")
        return str(version.version), source

    def download(self, run_id: str, out: Path) -> list[Path]:
        """Fetch a trial run's checkpoint, config, samples and plots into ``out`` (flat); return the files."""
        written = []
        for folder in (CHECKPOINT_FOLDER, "samples", "plots"):
            for item in self.client.list_artifacts(run_id, folder):
                if item.is_dir:
                    continue
                local = Path(self.client.download_artifacts(run_id, item.path, str(out)))
                target = out / Path(item.path).name
                if local != target:
                    local.replace(target)
                written.append(target)
        for folder in (CHECKPOINT_FOLDER, "samples", "plots"):
            if (out / folder).is_dir() and not any((out / folder).iterdir()):
                (out / folder).rmdir()
        return written

    def finish_trial(self, run_id: str, state: str, stop: StopReason | None, value: list[float] | None,
                     files: list[tuple[Path, str]]) -> None:
        """Log a trial's artifacts, final tags (its state and stop reason) and status.

        The status is FINISHED for a complete trial, FAILED for a failed one, KILLED for a pruned one
        and for one stopped from outside that goes on as a retry (interrupted, lease lost).
        """
        for path, folder in files:
            if path.is_file():
                self.client.log_artifact(run_id, str(path), folder)
        tags = {"state": state}
        if stop is not None:
            tags.update({STOP_KIND_TAG: stop.kind, STOP_REASON_TAG: stop.text()[:4000]})
        for key, tag in tags.items():
            self.client.set_tag(run_id, key, tag)
        if value:
            for i, v in enumerate(value):
                if math.isfinite(v):
                    self.client.log_metric(run_id, "objective" if len(value) == 1 else f"objective_{i}", v)
        status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(state, "FAILED")
        if state == "FAIL" and stop is not None and stop.kind in (INTERRUPTED, LEASE_LOST):
            status = "KILLED"  # stopped from outside; the trial goes on as a retry
        self.client.set_terminated(run_id, status)

    def finish_study(self, study: Study) -> None:
        """Record the study's counts and best trial on the parent run and mark it finished."""
        trials = study.get_trials(deepcopy=False)
        counts = {state.name.lower(): sum(t.state == state for t in trials)
                  for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        for key, count in counts.items():
            self.client.log_metric(self.parent_run_id, f"trials_{key}", count)
        if len(study.directions) == 1 and counts["complete"]:
            best = study.best_trial
            self.client.set_tag(self.parent_run_id, "best_trial", str(best.number))
            if best.value is not None:
                self.client.log_metric(self.parent_run_id, "best_value", best.value)
            self.client.set_tag(self.parent_run_id, "best_params", json.dumps(best.params, sort_keys=True))
        self.client.set_terminated(self.parent_run_id, "FINISHED")


def _params(values: dict[str, Any]) -> list[Param]:
    from mlflow.entities import Param  # lazy: mlflow takes over a second to import

    return [Param(str(k), str(v)[:6000]) for k, v in values.items()]


def _yaml(values: dict[str, Any]) -> str:
    return yaml.safe_dump(values, sort_keys=False)

