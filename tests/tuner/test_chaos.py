"""Trials are never lost and never trained twice: workers killed at random, a database outage longer
than the grace period, and workers starting together, on the real PostgreSQL server and on a journal
file.

Real processes throughout: ``tuner run-study`` workers (each with its trial's child process), the
local PostgreSQL cluster stopped and started (root and pg_ctlcluster, as in CI). The lease's
timeouts are shortened through the environment. "Trained twice" is read from the runs' own
records: every training step's record carries its wall-clock time, so a trial and its retry
overlap exactly when the predecessor wrote a step after the retry wrote its first.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tuner.fleet.audit import audit_trials

# ---------------------------------------------------------------------- helpers

def _workers_children(home: Path) -> list[int]:
    """Return the pids of trial processes whose job lies under ``home`` (there must be none at the end)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if "tuner.trial.child" in command and str(home) in command and state != "Z":
            found.append(int(entry.name))
    return found


def _study(url: str, name: str):
    import optuna

    from tuner.paths import Home
    from tuner.study.storage import open_storage, resolve_storage

    storage = open_storage(resolve_storage(url, Home(Path("unused"))))
    return optuna.load_study(study_name=name, storage=storage)


def _chaos_space(fast_space_writer, folder: Path, study: str, max_steps: int) -> Path:
    space = fast_space_writer(folder, study=study, max_steps=max_steps, samples=0, gates="[]",
                              extra_study="  max_retries: 20\n")
    # A checkpoint every 2 steps, so most kills land after one.
    space.write_text(space.read_text().replace("fixed:\n", "fixed:\n  checkpoint_interval: 2\n"))
    return space


def _environment(**timeouts: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SMART_TUNER_FAULT")}
    env.update({f"SMART_TUNER_{name.upper()}_SECONDS": value for name, value in timeouts.items()})
    env["OMP_NUM_THREADS"] = "1"
    return env


# ---------------------------------------------------------------------- the tests

@pytest.mark.postgres
def test_random_kills_lose_no_trial_and_train_none_twice(database: str, tmp_path: Path, short_corpus: Path,
                                                          fast_space_writer) -> None:
    from optuna.trial import TrialState

    space = _chaos_space(fast_space_writer, tmp_path, "chaos", max_steps=16)
    home = tmp_path / "home"
    env = _environment(heartbeat="1", grace="10")
    command = [sys.executable, "-m", "tuner.cli", "run-study", "--space", str(space), "--data", str(short_corpus),
               "--storage", database, "--home", str(home), "--trials", "6", "--no-mlflow", "--quiet"]
    logs = tmp_path / "logs"
    logs.mkdir()
    spawned = 0

    def spawn() -> subprocess.Popen:
        nonlocal spawned
        spawned += 1
        with open(logs / f"worker-{spawned}.log", "w") as log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    rng = random.Random(7)
    workers = [spawn() for _ in range(3)]
    kills, deadline = 0, time.monotonic() + 600
    try:
        # Kill once trials have checkpoints to lose; every kill is replaced at once.
        runs = home / "runs" / "chaos"
        while not (runs.is_dir() and any((d / "checkpoints" / "last.pt").is_file() for d in runs.iterdir())):
            assert time.monotonic() < deadline, "no checkpoint was ever written"
            time.sleep(0.2)
        while kills < 8:
            time.sleep(rng.uniform(1.5, 4.0))
            alive = [w for w in workers if w.poll() is None]
            if not alive:
                break  # the study finished before all kills were spent: the count below says so
            victim = rng.choice(alive)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)  # reaped: a supervisor would, and a zombie's pid still exists
            kills += 1
            workers.append(spawn())
        for worker in workers:
            worker.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=30)
    text = "\n".join(p.read_text(errors="replace") for p in sorted(logs.iterdir()))
    assert kills >= 8, f"only {kills} kills before the study ended"
    survivors = [w for w in workers if w.returncode != -signal.SIGKILL]
    assert survivors and all(w.returncode == 0 for w in survivors), text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    time.sleep(1)
    assert _workers_children(home) == []  # every trial process died with its worker

    trials = _study(database, "chaos").get_trials(deepcopy=False)
    audit = audit_trials(trials)
    assert audit.finished >= 6 and not audit.lost, audit
    assert not audit.trained_twice and not audit.wrong_resume, audit
    assert not audit.duplicate_params, audit  # three workers of one seeded sampler: distinct draws
    # Every failure was a kill, and every one was retried.
    retried = {int(n) for t in trials for n in t.system_attrs.get("retry_history", [])}
    assert {t.number for t in trials if t.state == TrialState.FAIL} <= retried
    assert audit.retries >= 1 and audit.resumed_steps > 0, audit  # the kills met running trials


@pytest.mark.postgres
def test_an_outage_longer_than_the_grace_costs_steps_not_trials(database: str, tmp_path: Path, short_corpus: Path,
                                                                fast_space_writer, restart_postgres) -> None:
    from optuna.trial import TrialState

    space = _chaos_space(fast_space_writer, tmp_path, "outage", max_steps=24)
    home = tmp_path / "home"
    # Heartbeat 1 s, grace 8 s, storage retry 6 s (derived): a 14 s outage outlasts all three.
    env = _environment(heartbeat="1", grace="8")
    command = [sys.executable, "-m", "tuner.cli", "run-study", "--space", str(space), "--data", str(short_corpus),
               "--storage", database, "--home", str(home), "--trials", "2", "--no-mlflow", "--quiet"]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
               for _ in range(2)]
    try:
        runs, deadline = home / "runs" / "outage", time.monotonic() + 300
        while not (runs.is_dir() and sum((d / "checkpoints" / "last.pt").is_file() for d in runs.iterdir()) >= 2):
            assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
            assert time.monotonic() < deadline, "the trials never wrote a checkpoint"
            time.sleep(0.2)
        restart_postgres(down_seconds=14)
        outputs = [w.communicate(timeout=400)[0] for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=30)
    text = "\n".join(outputs)
    assert [w.returncode for w in workers] == [0, 0], text[-4000:]
    assert "Traceback" not in text and "connection lost" in text, text[-4000:]  # the outage was met
    assert "resume from its checkpoint" in text, text[-4000:]
    assert _workers_children(home) == []

    trials = _study(database, "outage").get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2 and all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials), [
        (t.number, t.state, t.user_attrs.get("stop_reason")) for t in trials]
    for trial in complete:  # the whole run's validations, across the outage
        assert sorted(trial.intermediate_values) == [4, 8, 12, 16, 20, 24], trial.intermediate_values
    audit = audit_trials(trials)
    assert not audit.lost and not audit.trained_twice and not audit.wrong_resume, audit
    assert audit.retries >= 1 and audit.resumed_steps > 0, audit


# A worker opening the study, slowed between deciding to enqueue the defaults and doing it (so
# that, without the lock, every one of them would decide before any has enqueued).
OPEN_STUDY = """
import sys, time
from pathlib import Path
import optuna
_add_trial = optuna.Study.add_trial
def slow_add_trial(self, trial):
    time.sleep(1.0)
    return _add_trial(self, trial)
optuna.Study.add_trial = slow_add_trial
from tuner.space.load import load_space
from tuner.paths import Home
from tuner.study.storage import resolve_storage
from tuner.study.studies import open_study
space = load_space(Path(sys.argv[1]))
go = Path(sys.argv[3])
while not go.exists():
    time.sleep(0.01)
open_study(space, "together", resolve_storage(sys.argv[2], Home(Path("unused"))), 8, optuna.pruners.NopPruner())
"""


@pytest.mark.parametrize("kind", [pytest.param("postgresql", marks=pytest.mark.postgres), "journal"])
def test_the_defaults_are_enqueued_once_by_workers_starting_together(kind: str, request: pytest.FixtureRequest,
                                                                     tmp_path: Path, fast_space_writer) -> None:
    from optuna.trial import TrialState

    url = request.getfixturevalue("database") if kind == "postgresql" else f"journal://{tmp_path}/study.log"
    space = fast_space_writer(tmp_path, study="together")
    go = tmp_path / "go"
    starters = [subprocess.Popen([sys.executable, "-c", OPEN_STUDY, str(space), url, str(go)],
                                 stderr=subprocess.PIPE, text=True) for _ in range(4)]
    time.sleep(6)  # all four are past their imports and polling for the start
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in starters]
    assert [p.returncode for p in starters] == [0] * 4, errors
    trials = _study(url, "together").get_trials(deepcopy=False)
    assert [(t.state, t.user_attrs.get("origin")) for t in trials] == [(TrialState.WAITING, "space defaults")]


def test_two_workers_share_a_journal_file(tmp_path: Path, short_corpus: Path, fast_space_writer) -> None:
    from optuna.trial import TrialState

    space = fast_space_writer(tmp_path, study="journal", max_steps=4, samples=0, gates="[]")
    url = f"journal://{tmp_path}/study.log"
    command = [sys.executable, "-m", "tuner.cli", "run-study", "--space", str(space), "--data", str(short_corpus),
               "--storage", url, "--home", str(tmp_path / "home"), "--trials", "3", "--no-mlflow", "--quiet"]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=_environment()) for _ in range(2)]
    outputs = [w.communicate(timeout=400)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    trials = _study(url, "journal").get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == [0, 1, 2], [(t.number, t.state) for t in trials]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all(sorted(t.intermediate_values) == [4] for t in trials)  # the children's reports went through


# A worker whose machine's clock runs ahead: every time.time() it (and Optuna inside it) reads is shifted.
SKEWED_WORKER = """
import sys, time
_real = time.time
time.time = lambda: _real() + float(sys.argv[1])
from tuner.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.postgres
@pytest.mark.parametrize("skew", [600.0, -600.0])
def test_a_worker_whose_clock_is_off_by_minutes_takes_no_live_trial(skew: float, database: str, tmp_path: Path,
                                                                    short_corpus: Path, fast_space_writer) -> None:
    # Heartbeats are stamped and judged by the database server's clock, so the judging worker's own
    # clock, ten minutes ahead or behind, cannot make a live trial look silent (grace 20 s).
    space = _chaos_space(fast_space_writer, tmp_path, "skew", max_steps=24)
    home = tmp_path / "home"
    env = _environment(heartbeat="2", grace="20")
    args = ["run-study", "--space", str(space), "--data", str(short_corpus), "--storage", database,
            "--home", str(home), "--trials", "3", "--no-mlflow", "--quiet"]
    script = tmp_path / "skewed.py"
    script.write_text(SKEWED_WORKER)
    logs = [tmp_path / "steady.log", tmp_path / "skewed.log"]
    with open(logs[0], "w") as steady_log:
        steady = subprocess.Popen([sys.executable, "-m", "tuner.cli", *args], stdout=steady_log,
                                  stderr=subprocess.STDOUT, env=env)
    skewed = None
    try:
        first = home / "runs" / "skew" / "trial-0000" / "metrics.jsonl"
        deadline = time.monotonic() + 300
        while not (first.is_file() and '"kind": "train"' in first.read_text()):  # trial 0 is training
            assert time.monotonic() < deadline and steady.poll() is None, logs[0].read_text()
            time.sleep(0.2)
        with open(logs[1], "w") as skewed_log:
            skewed = subprocess.Popen([sys.executable, str(script), str(skew), *args], stdout=skewed_log,
                                      stderr=subprocess.STDOUT, env=env)
        assert steady.wait(timeout=600) == 0 and skewed.wait(timeout=600) == 0, [p.read_text() for p in logs]
    finally:
        for worker in (steady, skewed):
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait(timeout=30)
    trials = _study(database, "skew").get_trials(deepcopy=False)
    taken = [(t.number, t.user_attrs.get("stop_reason")) for t in trials if t.state.name == "FAIL"]
    assert taken == [], taken  # no live trial was failed as silent
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2  # both worked on the study
    audit = audit_trials(trials)
    assert audit.finished == 3 and not audit.trained_twice and not audit.lost, audit
