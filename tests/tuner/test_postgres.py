"""Two `tuner run-study` processes join one study on the real PostgreSQL server (127.0.0.1:5432)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PASSWORD = "pw-never-shown-4711"


def _server_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture()
def database() -> str:
    """Create a database of a random name; yield its URL (plain postgresql://, as users write it); drop it."""
    if not _server_up():
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    psycopg = pytest.importorskip("psycopg")
    name = f"tuner_test_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_two_processes_join_one_study(database: str, tmp_path: Path, short_corpus: Path, fast_space_writer) -> None:
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.trial import TrialState

    space = fast_space_writer(tmp_path, study="shared", max_steps=4, samples=0, gates="[]")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SMART_TUNER_FAULT")}
    # The server trusts local logins, so any password works: one that must never be seen anywhere.
    with_password = database.replace("postgres@", f"postgres:{PASSWORD}@")
    command = [sys.executable, "-m", "tuner.cli", "run-study", "--space", str(space), "--data", str(short_corpus),
               "--storage", with_password, "--home", str(home), "--trials", "2"]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
               for _ in range(2)]
    outputs = [w.communicate(timeout=400)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    study = optuna.load_study(study_name="shared", storage=database.replace("postgresql://", "postgresql+psycopg://"))
    trials = study.trials
    assert len(trials) >= 2 and all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    assert trials[0].params == {"learning_rate": 3e-3}  # the defaults, enqueued once
    workers_seen = {t.user_attrs["worker"] for t in trials}
    assert len(workers_seen) == 2, workers_seen  # each process ran a trial of the same study
    assert all("study 'shared'" in out for out in outputs)
    assert sum("(new)" in out for out in outputs) <= 1

    # Both processes logged into one MLflow parent run.
    client = MlflowClient(f"sqlite:///{home}/mlflow.db")
    experiment = client.get_experiment_by_name("shared")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("smart_tuner.role") == "study"]
    children = [r for r in runs if r.data.tags.get("smart_tuner.role") == "trial"]
    assert len(parents) == 1 and len(children) == len(trials)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert "postgres:***@" in parents[0].data.params["storage"]

    # The password reached neither the terminal, nor MLflow, nor the run folders, nor the study.
    assert all(PASSWORD not in out for out in outputs)
    for run in runs:
        assert PASSWORD not in repr((run.data.params, run.data.tags))
    for path in home.rglob("*"):
        if path.is_file() and path.suffix not in (".pt", ".db"):
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert PASSWORD.encode() not in (home / "mlflow.db").read_bytes()
    assert all(PASSWORD not in repr((t.user_attrs, t.system_attrs)) for t in trials)
    assert PASSWORD not in repr(study.user_attrs)
