"""Fixtures of the tuner tests: a corpus of short sentences (fast steps, quick to align), an isolated
tuner home, small space files, helpers to run the `tuner` command, and scratch databases on the
local PostgreSQL server (127.0.0.1:5432, trust auth) with a way to take it down for a while."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from trainer.corpora.make import make_corpus

SHORT_SENTENCES = """\
The cat sat.
A red boat.
Go home now.
She ran fast.
Big blue sky.
We eat bread.
Open the door.
Time to sleep.
"""

# The knobs that make a few-step trial on the short corpus meaningful: no warm-up, a strong
# guided-attention pull and 1e-7 vs 3e-3 learning rates. With them, the teacher-forced
# diagonality of a trial that learns rises above its random-init value (~0.19) within 4
# steps, and a trial at 1e-7 stays at it: the quality gate separates the two.
FAST_FIXED = """\
fixed:
  val_interval: 4
  val_size: 4
  batch_size: 6
  warmup_steps: 0
  ga_weight: 30.0
  torch_threads: 1
  fr_asr: "off"
"""


@pytest.fixture(scope="session")
def short_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a text file of short sentences, one a line."""
    path = tmp_path_factory.mktemp("text") / "short.txt"
    path.write_text(SHORT_SENTENCES, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def short_corpus(tmp_path_factory: pytest.TempPathFactory, short_text: Path) -> Path:
    """Return a 16-utterance eSpeak corpus of short sentences (read-only)."""
    out = tmp_path_factory.mktemp("short-corpus") / "en"
    make_corpus(out, lang="en", utterances=16, seed=3, text_file=short_text, vary_prosody=True)
    return out


@pytest.fixture()
def tuner_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return a fresh tuner home; MLflow uses its default store inside it."""
    home = tmp_path / "home"
    monkeypatch.setenv("SMART_TUNER_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SMART_TUNER_FAULT", raising=False)
    return home


def write_space(folder: Path, name: str, body: str) -> Path:
    """Write a space file ``folder/name`` from dedented ``body``; return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def fast_space(folder: Path, name: str = "fast.yaml", *, study: str = "fast", max_steps: int = 8,
               gates: str = "[{metric: tf_diagonality, min: 0.2, after_step: 4}]", samples: int = 1,
               extra_study: str = "", params: str | None = None) -> Path:
    """Write a from-scratch space of few-step trials on the short corpus; return its path."""
    params = params or "  learning_rate: {type: float, low: 1.0e-7, high: 3.0e-3, log: true, default: 3.0e-3}\n"
    body = (f"preset: tiny\nstudy:\n  name: {study}\n  objective: val_mel_postnet_l1\n  n_trials: 2\n"
            f"  max_steps: {max_steps}\n  sampler: {{name: random, seed: 1}}\n  pruner: {{name: none}}\n"
            f"  gates: {gates}\n  samples: {samples}\n{extra_study}" + FAST_FIXED + "params:\n" + params)
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``tuner ARGS`` in a fresh process; return the completed process (text output)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "tuner.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd)


@pytest.fixture(scope="session")
def space_writer():
    """Return ``write_space(folder, name, body)`` (pytest's importlib mode cannot import conftest helpers)."""
    return write_space


@pytest.fixture(scope="session")
def fast_space_writer():
    """Return ``fast_space(folder, name=..., **options)``, see the function of that name."""
    return fast_space


def small_runner(folder: Path, data: Path, study_name: str, **options):
    """Return (study, TrialRunner) of a 2-step fast space on the home's SQLite file; ``options`` go to the runner."""
    import optuna

    from tuner.paths import Home
    from tuner.space.load import load_space
    from tuner.study.storage import check_storage
    from tuner.study.studies import open_study
    from tuner.trial.observers import LiveView, Observers
    from tuner.trial.runner import TrialRunner
    from tuner.trial.setup import TrialSetup
    from tuner.trial.supervisor import Limits

    space = load_space(fast_space(folder, study=study_name, max_steps=2, samples=0, gates="[]"))
    url = f"sqlite:///{Home.resolve().optuna_db}"
    check_storage(url)
    study = open_study(space, study_name, url, 2, optuna.pruners.NopPruner()).study
    setup = TrialSetup.of(space, preset="tiny", max_steps=2, data=data)
    observers = Observers(LiveView(study, quiet=True), Home.resolve(), space)
    runner = TrialRunner(setup, study, Home.resolve(), url, observers, Limits(trial_timeout=120), **options)
    return study, runner


@pytest.fixture(scope="session")
def runner_builder():
    """Return ``small_runner(folder, data, study_name, **options)``, see the function of that name."""
    return small_runner


@pytest.fixture(scope="session")
def cli():
    """Return ``run_cli(args, env=None, timeout=300)`` running `tuner` in a fresh process."""
    return run_cli


# ---------------------------------------------------------------------- PostgreSQL

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _server_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture()
def postgres_server() -> str:
    """The administrative URL of the local PostgreSQL server; skips the test when none listens."""
    if not _server_up():
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    return ADMIN_URL


@contextmanager
def _scratch_database(prefix: str):
    """Create a database of a random name; yield its URL (plain postgresql://, as users write it); drop it."""
    if not _server_up():
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    psycopg = pytest.importorskip("psycopg")
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture()
def database() -> str:
    """The Optuna database of a test."""
    with _scratch_database("tuner_test") as url:
        yield url


@pytest.fixture()
def mlflow_database() -> str:
    """MLflow's own database on the same server (as in docker-compose.yml)."""
    with _scratch_database("tuner_mlflow") as url:
        yield url


def _cluster_control() -> list[str] | None:
    clusters = sorted(p.name for p in Path("/etc/postgresql").iterdir()) if Path("/etc/postgresql").is_dir() else []
    if not clusters or shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main"]


@pytest.fixture()
def restart_postgres():
    """Return ``restart(down_seconds)``: stop the local cluster, wait, start it again.

    A plain restart is over in a blink, between two storage calls; a real one, or a failover,
    leaves workers facing a refused connection for a while. Skips without pg_ctlcluster and root.
    """
    ctl = _cluster_control()
    if ctl is None:
        pytest.skip("cannot restart the local PostgreSQL cluster here (needs pg_ctlcluster and root)")

    def restart(down_seconds: float) -> None:
        subprocess.run([*ctl, "stop", "--mode", "fast"], check=True, capture_output=True, timeout=120)
        try:
            time.sleep(down_seconds)
        finally:
            subprocess.run([*ctl, "start"], check=True, capture_output=True, timeout=120)

    return restart
