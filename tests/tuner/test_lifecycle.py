"""The trial lease: its pure parts on an in-memory study, and a real worker stopped, fenced and refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from tuner.cli import main
from tuner.lease import (
    HEARTBEAT_ATTR,
    OWNER_ATTR,
    Failed,
    fail_trial,
    holds,
    lost_trials,
    owner_alive,
    owner_token,
)
from tuner.study import sqlite_single_process
from tuner.timeouts import Timeouts, timeouts

# ------------------------------------------------------------------ the lease's parts


def test_an_owner_token_tells_a_live_process_from_a_gone_one() -> None:
    assert owner_alive(owner_token()) is True
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    token = owner_token(finished.pid)
    finished.wait()
    assert owner_alive(token) is False  # gone from this machine: its trials are taken over at once
    assert owner_alive("another-host:123:456") is None  # elsewhere: only the heartbeat can tell


def _running(study: optuna.Study, owner: str, heartbeat: float) -> optuna.trial.FrozenTrial:
    trial = study.ask({"x": FloatDistribution(0, 1)})
    study._storage.set_trial_system_attr(trial._trial_id, OWNER_ATTR, owner)
    study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, heartbeat)
    return study._storage.get_trial(trial._trial_id)


def test_lost_leases_and_their_one_retry() -> None:
    study = optuna.create_study()
    now = time.time()
    silent = _running(study, "another-host:1:1", now - 100)
    live = _running(study, "another-host:2:2", now - 1)
    mine = _running(study, owner_token(), now - 100)  # this process is alive: only its heartbeat speaks
    found = {trial.number: reason for trial, reason in lost_trials(study, grace=60, now=now)}
    assert set(found) == {silent.number, mine.number}
    assert found[silent.number].startswith("worker lost: no heartbeat for 100 s")
    assert holds(study._storage, live._trial_id, "another-host:2:2")
    assert not holds(study._storage, live._trial_id, "someone else")

    first = fail_trial(study, silent, found[silent.number], max_retries=2)
    again = fail_trial(study, silent, found[silent.number], max_retries=2)  # a second worker, a moment later
    assert (first.by_us, first.retry, again.by_us) == (True, 2, False)
    (retry,) = study.get_trials(states=(TrialState.WAITING,))
    assert retry.params == silent.params and retry.system_attrs["retry_history"] == [silent.number]
    # Not transient: failed for good.
    broken = _running(study, "h:3:3", now)
    assert fail_trial(study, broken, "RuntimeError: a bug", max_retries=2).retry is None
    # Retries spent: the second retry of a trial (two attempts before it) is not queued again.
    last_try = _running(study, "h:4:4", now)
    study._storage.set_trial_system_attr(last_try._trial_id, "retry_history", [7, 8])
    last_try = study._storage.get_trial(last_try._trial_id)
    waiting = len(study.get_trials(states=(TrialState.WAITING,)))
    assert fail_trial(study, last_try, "worker lost: no heartbeat", max_retries=2) == Failed(True, None)
    assert len(study.get_trials(states=(TrialState.WAITING,))) == waiting


def test_timeouts_keep_a_lost_worker_from_overlapping_its_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    assert timeouts() == Timeouts(heartbeat=30, grace=120, retry=60)  # retry derived: grace - 2 x heartbeat
    with pytest.raises(Exception, match="must be shorter than"):
        Timeouts(heartbeat=30, grace=120, retry=90)
    monkeypatch.setenv("SMART_TUNER_DB_RETRY_SECONDS", "100")
    with pytest.raises(Exception, match="DB_RETRY_SECONDS \\(100 s\\) must be shorter"):
        timeouts()


def test_broken_timeouts_are_refused_before_anything_is_written(tmp_path: Path, short_corpus: Path, capsys,
                                                                 fast_space_writer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    space = fast_space_writer(tmp_path, study="bad-timeouts")
    monkeypatch.setenv("SMART_TUNER_GRACE_SECONDS", "10")
    monkeypatch.setenv("SMART_TUNER_HEARTBEAT_SECONDS", "5")
    monkeypatch.setenv("SMART_TUNER_DB_RETRY_SECONDS", "8")
    code = main(["run-study", "--space", str(space), "--data", str(short_corpus), "--home", str(tmp_path / "home"),
                 "--no-mlflow"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "must be shorter than" in err
    assert not (tmp_path / "home").exists()


def test_a_second_process_on_an_sqlite_study_is_refused(tmp_path: Path, short_corpus: Path, capsys,
                                                        fast_space_writer) -> None:
    space = fast_space_writer(tmp_path, study="single")
    home = tmp_path / "home"
    home.mkdir()
    with sqlite_single_process(f"sqlite:///{home / 'optuna.db'}"):  # as a running worker holds it
        code = main(["run-study", "--space", str(space), "--data", str(short_corpus), "--home", str(home),
                     "--no-mlflow"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "is running a study on this SQLite file" in err and "use PostgreSQL" in err
    assert not (home / "runs").exists() and not (home / "optuna.db").exists()


# ------------------------------------------------------------------ a real worker


def _records(run_dir: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    except OSError:
        return []


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _worker(space: Path, corpus: Path, trials: int, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "tuner.cli", "run-study", "--space", str(space), "--data", str(corpus),
               "--trials", str(trials), "--no-mlflow"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_sigterm_saves_the_step_and_the_next_worker_resumes_it(tmp_path: Path, tuner_home: Path, short_corpus: Path,
                                                              fast_space_writer) -> None:
    space = fast_space_writer(tmp_path, study="term", max_steps=16, samples=0, gates="[]")
    space.write_text(space.read_text().replace("fixed:\n", "fixed:\n  checkpoint_interval: 100\n  log_interval: 1\n"))
    env = {**os.environ, "SMART_TUNER_HEARTBEAT_SECONDS": "1", "SMART_TUNER_GRACE_SECONDS": "600"}
    run0 = tuner_home / "runs" / "term" / "trial-0000"
    worker = _worker(space, short_corpus, 1, env)
    try:
        _wait(lambda: sum(r["kind"] == "train" for r in _records(run0)) >= 3 or worker.poll() is not None, 240,
              "trial 0 never trained 3 steps")
        assert worker.poll() is None, worker.communicate()
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert time.monotonic() - signalled < 30 and worker.returncode == 0, out + err
    assert "SIGTERM: stopping" in out + err
    study = optuna.load_study(study_name="term", storage=f"sqlite:///{tuner_home}/optuna.db")
    stopped, queued = study.trials
    assert stopped.state == TrialState.FAIL and stopped.user_attrs["fail_reason"].startswith("interrupted at step ")
    step = int(stopped.user_attrs["fail_reason"].split()[3])
    from trainer.checkpoint import load_checkpoint

    assert load_checkpoint(run0 / "checkpoints" / "last.pt")["position"]["step"] == step >= 3  # no step lost
    assert queued.state == TrialState.WAITING and queued.system_attrs["retry_history"] == [0]

    again = subprocess.run([sys.executable, "-m", "tuner.cli", "run-study", "--space", str(space), "--data",
                            str(short_corpus), "--trials", "1", "--no-mlflow"], capture_output=True, text=True,
                           env=env, timeout=400)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"trial 1 retries trial 0: resuming from its last.pt at step {step}" in again.stdout
    retry = optuna.load_study(study_name="term", storage=f"sqlite:///{tuner_home}/optuna.db").trials[1]
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["resumed_from"]["step"] == step


def test_a_worker_whose_trial_was_taken_stops_training_it_and_goes_on(tmp_path: Path, tuner_home: Path,
                                                                      short_corpus: Path, fast_space_writer) -> None:
    space = fast_space_writer(tmp_path, study="fenced", max_steps=40, samples=0, gates="[]")
    env = {**os.environ, "SMART_TUNER_HEARTBEAT_SECONDS": "1", "SMART_TUNER_GRACE_SECONDS": "600"}
    run0 = tuner_home / "runs" / "fenced" / "trial-0000"
    worker = _worker(space, short_corpus, 1, env)
    try:
        _wait(lambda: any(r["kind"] == "val" for r in _records(run0)) or worker.poll() is not None, 240,
              "trial 0 never validated")
        assert worker.poll() is None, worker.communicate()
        # Another worker decides trial 0 is lost and fails it (as after a network partition).
        storage = optuna.storages.RDBStorage(f"sqlite:///{tuner_home}/optuna.db")
        trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name("fenced"), 0)
        storage.set_trial_user_attr(trial_id, "fail_reason", "worker lost: taken over by a test")
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        taken_at = time.time()
        out, err = worker.communicate(timeout=400)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, out + err
    assert "trial 0: lease lost" in err and "goes on" in err
    trials = optuna.load_study(study_name="fenced", storage=f"sqlite:///{tuner_home}/optuna.db").trials
    assert trials[0].state == TrialState.FAIL  # left as the other worker set it: nothing told over it
    assert trials[0].user_attrs["fail_reason"] == "worker lost: taken over by a test"
    assert trials[1].state == TrialState.COMPLETE
    # Fencing: the trainer of trial 0 stopped within a heartbeat or two and wrote nothing after.
    last = max(r["time"] for r in _records(run0))
    assert last < taken_at + 5, (last - taken_at)
    assert not any(r["kind"] == "train" and r["step"] >= 40 for r in _records(run0))
