"""The deployment of docker-compose.yml with real processes, on the real PostgreSQL server (127.0.0.1:5432).

Docker cannot run here, so the test builds the same topology from processes: a PostgreSQL-backed
``mlflow server`` (its own database) and ``tuner dashboard`` (optuna-dashboard) on loopback ports,
and two ``tuner run-study`` workers joining one study in another database of the same server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres

PASSWORD = "pw-never-shown-4711"


def _wait_http(url: str, process: subprocess.Popen, seconds: float) -> bytes:
    """Return the body of ``url`` once it answers 200; fail when ``process`` dies or time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if process.poll() is not None:
                raise AssertionError(f"{url}: the server exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"{url}: no answer within {seconds:g} s") from None
            time.sleep(0.5)


def _stop(process: subprocess.Popen) -> str:
    """Stop a server started by the test; return its output."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
    return process.stdout.read() if process.stdout else ""


def test_two_workers_through_mlflow_server_and_dashboard(database: str, mlflow_database: str, tmp_path: Path,
                                                        short_corpus: Path, fast_space_writer, free_port) -> None:
    import optuna
    import psycopg
    from mlflow.tracking import MlflowClient
    from optuna.trial import TrialState

    space = fast_space_writer(tmp_path, study="shared", max_steps=4, samples=0, gates="[]")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SMART_TUNER_FAULT")}
    # The server trusts local logins, so any password works: one that must never be seen anywhere.
    with_password = database.replace("postgres@", f"postgres:{PASSWORD}@")
    bin_dir = Path(sys.executable).parent
    mlflow_port, dashboard_port = free_port(), free_port()
    mlflow_uri = f"http://127.0.0.1:{mlflow_port}"
    # As in docker-compose.yml: the backend store URL (with its password) in the environment, the
    # artifacts served by the server, the Host headers it answers listed.
    mlflow_env = {**env, "MLFLOW_BACKEND_STORE_URI": mlflow_database.replace(
        "postgresql://postgres@", f"postgresql+psycopg://postgres:{PASSWORD}@")}
    mlflow_server = subprocess.Popen(
        [str(bin_dir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
         "--serve-artifacts", "--artifacts-destination", str(tmp_path / "mlartifacts"),
         "--allowed-hosts", f"127.0.0.1:{mlflow_port},localhost:{mlflow_port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=mlflow_env)
    dashboard = subprocess.Popen(
        [str(bin_dir / "tuner"), "dashboard", "--home", str(home), "--port", str(dashboard_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**env, "SMART_TUNER_STORAGE": with_password})
    workers: list[subprocess.Popen] = []
    try:
        _wait_http(f"{mlflow_uri}/health", mlflow_server, 180)
        worker_env = {**env, "MLFLOW_TRACKING_URI": mlflow_uri, "SMART_TUNER_STORAGE": with_password}
        command = [str(bin_dir / "tuner"), "run-study", "--space", str(space), "--data", str(short_corpus),
                   "--home", str(home), "--trials", "2"]
        workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env=worker_env) for _ in range(2)]
        outputs = [w.communicate(timeout=400)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], outputs

        study = optuna.load_study(study_name="shared",
                                  storage=database.replace("postgresql://", "postgresql+psycopg://"))
        trials = study.trials
        assert len(trials) >= 2 and all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
        assert trials[0].params == {"learning_rate": 3e-3}  # the defaults, enqueued once
        assert len({t.number for t in trials}) == len(trials)
        workers_seen = {t.user_attrs["worker"] for t in trials}
        assert len(workers_seen) == 2, workers_seen  # each process ran a trial of the same study
        assert all("study 'shared'" in out for out in outputs)
        assert sum("(new)" in out for out in outputs) <= 1
        assert all(t.user_attrs["mlflow_run"].startswith(f"{mlflow_uri}/#/experiments/") for t in trials)

        # The dashboard serves the study and its trials from the shared storage.
        _wait_http(f"http://127.0.0.1:{dashboard_port}/", dashboard, 60)
        summaries = json.loads(_wait_http(f"http://127.0.0.1:{dashboard_port}/api/studies", dashboard, 10))
        (summary,) = [s for s in summaries["study_summaries"] if s["study_name"] == "shared"]
        detail = json.loads(_wait_http(f"http://127.0.0.1:{dashboard_port}/api/studies/{summary['study_id']}",
                                       dashboard, 10))
        assert sorted(t["number"] for t in detail["trials"]) == [t.number for t in trials]
        assert {t["state"] for t in detail["trials"]} == {"Complete"}

        # Both processes logged into one MLflow parent run on the server, artifacts included.
        client = MlflowClient(mlflow_uri)
        experiment = client.get_experiment_by_name("shared")
        runs = client.search_runs([experiment.experiment_id])
        parents = [r for r in runs if r.data.tags.get("smart_tuner.role") == "study"]
        children = [r for r in runs if r.data.tags.get("smart_tuner.role") == "trial"]
        assert len(parents) == 1 and len(children) == len(trials)
        assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
        assert all(r.info.status == "FINISHED" and "val_mel_postnet_l1" in r.data.metrics for r in children)
        assert {a.path for a in client.list_artifacts(children[0].info.run_id)} >= {"config", "logs"}
        assert "postgres:***@" in parents[0].data.params["storage"]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=30)
        server_logs = _stop(mlflow_server) + _stop(dashboard)

    # The password reached neither the terminal, nor MLflow, nor the run folders, nor the study.
    assert all(PASSWORD not in out for out in outputs)
    assert PASSWORD not in server_logs
    for run in runs:
        assert PASSWORD not in repr((run.data.params, run.data.tags))
    with psycopg.connect(mlflow_database, autocommit=True) as mlflow_db:
        stored = mlflow_db.execute("SELECT string_agg(value, ' ') FROM params").fetchone()[0] + \
            mlflow_db.execute("SELECT string_agg(value, ' ') FROM tags").fetchone()[0]
    assert "postgres:***@" in stored and PASSWORD not in stored
    for folder in (home, tmp_path / "mlartifacts"):
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix not in (".pt",):
                assert PASSWORD.encode() not in path.read_bytes(), path
    assert all(PASSWORD not in repr((t.user_attrs, t.system_attrs)) for t in trials)
    assert PASSWORD not in repr(study.user_attrs)


def test_a_password_in_the_query_string_is_never_shown_or_stored(database: str, tmp_path: Path, short_corpus: Path,
                                                                 fast_space_writer) -> None:
    # libpq takes the password from the URL's query too (?password=..., ?sslpassword=...).
    import optuna
    from mlflow.tracking import MlflowClient

    space = fast_space_writer(tmp_path, study="query", max_steps=2, samples=0, gates="[]")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SMART_TUNER_FAULT",
                                                             "SMART_TUNER_STORAGE", "OPTUNA_STORAGE")}
    url = f"{database}?password={PASSWORD}&sslmode=prefer"
    command = [sys.executable, "-m", "tuner.cli", "run-study", "--space", str(space), "--data", str(short_corpus),
               "--home", str(home), "--trials", "1", "--storage", url]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    status = subprocess.run([sys.executable, "-m", "tuner.cli", "status", "--home", str(home), "--storage", url],
                            capture_output=True, text=True, env=env, timeout=120)
    printed = done.stdout + done.stderr + status.stdout + status.stderr
    assert PASSWORD not in printed and "password=***" in printed
    client = MlflowClient(f"sqlite:///{home}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("query").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("smart_tuner.role") == "study")
    assert parent.data.params["storage"].endswith("?password=***&sslmode=prefer")
    assert all(PASSWORD not in repr((r.data.params, r.data.tags)) for r in runs)
    for path in home.rglob("*"):
        if path.is_file() and path.suffix not in (".pt", ".db"):
            assert PASSWORD.encode() not in path.read_bytes(), path
    study = optuna.load_study(study_name="query", storage=database.replace("postgresql://", "postgresql+psycopg://"))
    assert PASSWORD not in repr((study.user_attrs, [(t.user_attrs, t.system_attrs) for t in study.trials]))


def _validations(run_dir: Path) -> int:
    try:
        return sum('"kind": "val"' in line for line in (run_dir / "metrics.jsonl").read_text().splitlines())
    except OSError:
        return 0


def test_workers_ride_out_a_postgres_restart(database: str, tmp_path: Path, short_corpus: Path,
                                             fast_space_writer, restart_postgres) -> None:
    import optuna
    from optuna.trial import TrialState

    space = fast_space_writer(tmp_path, study="restart", max_steps=16, samples=0, gates="[]")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SMART_TUNER_FAULT")}
    # Heartbeats every second: storage calls are sure to meet the downtime.
    env.update(SMART_TUNER_DB_RETRY_SECONDS="30", SMART_TUNER_HEARTBEAT_SECONDS="1", SMART_TUNER_GRACE_SECONDS="60")
    command = [sys.executable, "-m", "tuner.cli", "run-study", "--space", str(space), "--data", str(short_corpus),
               "--storage", database, "--home", str(home), "--trials", "2", "--no-mlflow"]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for _ in range(2)]
    try:
        # Restart once both trials have reported a validation (so both are mid-training).
        deadline = time.monotonic() + 240
        runs = home / "runs" / "restart"
        while not (runs.is_dir() and sum(_validations(d) >= 1 for d in runs.iterdir()) >= 2):
            assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
            assert time.monotonic() < deadline, "the trials never reached their first validation"
            time.sleep(0.3)
        assert all(_validations(d) < 4 for d in runs.iterdir())  # still training: the restart hits them mid-trial
        restart_postgres(down_seconds=4)
        results = [w.communicate(timeout=400) for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=30)
    assert [w.returncode for w in workers] == [0, 0], results
    logs = "".join(out + err for out, err in results) + "".join(
        (d / "worker.log").read_text() for d in runs.iterdir())
    assert "connection lost" in logs and "reconnected after" in logs  # the outage was met and survived
    assert "already finished" not in logs and "Traceback" not in logs

    study = optuna.load_study(study_name="restart", storage=database.replace("postgresql://", "postgresql+psycopg://"))
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * len(trials) and len(trials) == 2, [
        (t.state, t.user_attrs) for t in trials]
    assert sorted(t.number for t in trials) == [0, 1]
    for trial in trials:  # no intermediate value lost across the restart
        assert sorted(trial.intermediate_values) == [4, 8, 12, 16], trial.intermediate_values
