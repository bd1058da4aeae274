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
from tuner.fleet.endings import StopReason
from tuner.fleet.lease import (
    HEARTBEAT_ATTR,
    OWNER_ATTR,
    Failed,
    fail_trial,
    holds,
    lost_trials,
    owner_alive,
    owner_token,
)
from tuner.study.optuna_api import storage_of, trial_id
from tuner.study.storage import sqlite_single_process
from tuner.study.timeouts import Timeouts, timeouts

# ------------------------------------------------------------------ the lease's parts


def test_an_owner_token_tells_a_live_process_from_a_gone_one() -> None:
    assert owner_alive(owner_token()) is True
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    token = owner_token(finished.pid)
    finished.wait()
    assert owner_alive(token) is False  # gone from this machine: its trials are taken over at once
    assert owner_alive("another-host:123:456") is None  # elsewhere: only the heartbeat can tell


def test_a_process_of_another_machine_with_this_host_name_is_not_judged_here() -> None:
    # Cloned VMs, or container replicas given one hostname, see other pids: their tokens say so.
    import socket

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    token = owner_token(finished.pid)
    finished.wait()
    place, pid, start = token.rsplit(":", 2)
    host, space = place.split("/")
    assert host == socket.gethostname() and len(space) == 12
    assert owner_alive(token) is False
    assert owner_alive(f"{host}/{'0' * 12}:{pid}:{start}") is None  # same name, another process space
    assert owner_alive(f"{host}:{pid}:{start}") is None  # a token of the earlier form names no space


def _running(study: optuna.Study, owner: str, heartbeat: float) -> optuna.trial.FrozenTrial:
    trial = study.ask({"x": FloatDistribution(0, 1)})
    storage_of(study).set_trial_system_attr(trial_id(trial), OWNER_ATTR, owner)
    storage_of(study).set_trial_system_attr(trial_id(trial), HEARTBEAT_ATTR, heartbeat)
    return storage_of(study).get_trial(trial_id(trial))


def test_lost_leases_and_their_one_retry() -> None:
    study = optuna.create_study()
    now = time.time()
    silent = _running(study, "another-host:1:1", now - 100)
    live = _running(study, "another-host:2:2", now - 1)
    mine = _running(study, owner_token(), now - 100)  # this process is alive: only its heartbeat speaks
    found = {trial.number: reason for trial, reason in lost_trials(study, grace=60, now=now)}
    assert set(found) == {silent.number, mine.number}
    assert found[silent.number].text().startswith("worker lost: no heartbeat for 100 s")
    assert found[silent.number].kind == "lease_lost"
    assert holds(storage_of(study), trial_id(live), "another-host:2:2")
    assert not holds(storage_of(study), trial_id(live), "someone else")

    first = fail_trial(study, silent, found[silent.number], max_retries=2)
    again = fail_trial(study, silent, found[silent.number], max_retries=2)  # a second worker, a moment later
    assert (first.by_us, first.retry, again.by_us) == (True, 2, False)
    (retry,) = study.get_trials(states=(TrialState.WAITING,))
    assert retry.params == silent.params and retry.system_attrs["retry_history"] == [silent.number]
    # Not transient: failed for good.
    broken = _running(study, "h:3:3", now)
    assert fail_trial(study, broken, StopReason.from_text("RuntimeError: a bug"), max_retries=2).retry is None
    # Retries spent: the second retry of a trial (two attempts before it) is not queued again.
    last_try = _running(study, "h:4:4", now)
    storage_of(study).set_trial_system_attr(trial_id(last_try), "retry_history", [7, 8])
    last_try = storage_of(study).get_trial(trial_id(last_try))
    waiting = len(study.get_trials(states=(TrialState.WAITING,)))
    lost = StopReason.from_text("worker lost: no heartbeat")
    assert fail_trial(study, last_try, lost, max_retries=2) == Failed(True, None)
    assert len(study.get_trials(states=(TrialState.WAITING,))) == waiting


def test_an_interrupted_trial_resumes_without_using_up_its_retries() -> None:
    # Rolling restarts or reclaimed spot machines stop trials on request, each time after saving the step.
    from tuner.fleet.lease import RETRIES_USED_ATTR

    study = optuna.create_study()
    trial = _running(study, "h:1:1", time.time())
    outcomes = []
    for reason in ("interrupted at step 10 (checkpoint saved)", "interrupted at step 20 (checkpoint saved)",
                   "worker lost: no heartbeat for 200 s", "out of memory", "worker lost: no heartbeat for 200 s"):
        failed = fail_trial(study, trial, StopReason.from_text(reason), max_retries=2)
        outcomes.append((failed.retry, failed.retries_left))
        if failed.retry is None:
            break
        nxt = study.ask()  # the queued retry (WAITING trials come first)
        storage_of(study).set_trial_system_attr(trial_id(nxt), OWNER_ATTR, "h:1:1")
        trial = storage_of(study).get_trial(trial_id(nxt))
    assert outcomes == [(2, 2), (3, 2), (4, 1), (5, 0), (None, None)]
    assert trial.system_attrs[RETRIES_USED_ATTR] == 2 and len(trial.system_attrs["retry_history"]) == 4


def _failed(study: optuna.Study, reason: str, ago: float, history: list[int] | None = None) -> int:
    import datetime

    from optuna.trial import create_trial

    trial = create_trial(state=TrialState.FAIL, params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
                         user_attrs={"fail_reason": reason},
                         system_attrs={"retry_history": history} if history else None)
    trial.datetime_start = datetime.datetime.now() - datetime.timedelta(seconds=ago + 10)
    trial.datetime_complete = datetime.datetime.now() - datetime.timedelta(seconds=ago)
    study.add_trial(trial)
    return study.trials[-1].number


def test_a_retry_lost_between_failing_and_queuing_is_queued_later_exactly_once() -> None:
    # Failing a trial and queuing its retry are two writes; a database lost between them must not lose the trial.
    from tuner.fleet.lease import unqueued_retries
    from tuner.fleet.worker import Worker

    study = optuna.create_study()
    orphan = _failed(study, "worker lost: no heartbeat for 200 s", ago=300)
    fresh = _failed(study, "out of memory", ago=5)  # its worker may be queuing the retry right now
    _failed(study, "RuntimeError: a bug", ago=300)  # not transient: failed for good
    _failed(study, "stalled: no progress", ago=300, history=[70, 71])  # its retries were spent
    retried = _failed(study, "worker lost: no heartbeat", ago=300)
    _failed(study, "RuntimeError: a bug", ago=300, history=[retried])  # ...and this is its retry
    owed = [(t.number, stop.text()) for t, stop in unqueued_retries(study, max_retries=2, settle=120)]
    assert owed == [(orphan, "worker lost: no heartbeat for 200 s")]
    assert fresh not in [n for n, _ in owed]

    said: list[str] = []
    worker = Worker(study, lambda trial, lease: None, target=1, timeouts=timeouts(), say=said.append)  # runs nothing
    worker.recover()
    worker.recover()  # a second look (or another worker under the same lock) finds it queued
    (waiting,) = study.get_trials(states=(TrialState.WAITING,))
    assert waiting.system_attrs["retry_history"] == [orphan] and waiting.params == {"x": 0.5}
    assert len([line for line in said if "its retry was never queued" in line]) == 1


class _LostAcknowledgement:
    """Make the next commit succeed in the database but raise as if its answer died with the connection."""

    def __init__(self) -> None:
        self.armed, self.fired = False, 0

    def __call__(self, connection) -> None:
        from sqlalchemy import exc

        if self.armed:
            self.armed, self.fired = False, self.fired + 1
            connection.connection.dbapi_connection.commit()  # the server commits...
            raise exc.OperationalError("COMMIT", {}, ConnectionResetError("server closed the connection"))  # ...unheard


@pytest.mark.parametrize("kind", [pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"])
def test_a_retry_is_queued_once_when_its_creation_is_retried_or_queued_twice(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    # A lost acknowledgement makes the storage (ours, and Optuna's own tries) create the retry again;
    # two copies would train the same configuration twice.
    from sqlalchemy import event

    from tuner.fleet.lease import queue_retry
    from tuner.study.storage import open_storage

    url = request.getfixturevalue("database") if kind == "postgresql" else f"sqlite:///{tmp_path}/study.db"
    url = url.replace("postgresql://", "postgresql+psycopg://")
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="keyed")
    failed = _failed(study, "worker lost: no heartbeat for 200 s", ago=300)
    frozen = study.trials[failed]
    lost = _LostAcknowledgement()
    event.listen(storage.engine, "commit", lost)
    try:
        lost.armed = True
        gone = StopReason.from_text("worker lost: no heartbeat for 200 s")
        first = queue_retry(study, frozen, gone, max_retries=2)
        again = queue_retry(study, frozen, gone, max_retries=2)  # a second worker
    finally:
        event.remove(storage.engine, "commit", lost)
    assert lost.fired == 1  # the creation really was answered with a lost connection, after its commit
    assert first.retry == again.retry == 2
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["retry_history"] for t in waiting] == [[failed]]
    # A retry of another trial is a trial of its own.
    other = _failed(study, "out of memory", ago=300)
    queue_retry(study, study.trials[other], StopReason.from_text("out of memory"), max_retries=2)
    assert sorted(t.system_attrs["retry_history"] for t in study.get_trials(states=(TrialState.WAITING,))) == [
        [failed], [other]]


def test_the_audit_names_two_retries_of_one_trial_that_both_trained(tmp_path: Path) -> None:
    from optuna.trial import create_trial

    from tuner.fleet.audit import audit_trials

    def trial(number: int, state: TrialState, history: list[int] | None, steps: range) -> optuna.trial.FrozenTrial:
        run_dir = tmp_path / f"trial-{number}"
        run_dir.mkdir()
        (run_dir / "metrics.jsonl").write_text("".join(
            json.dumps({"kind": "train", "step": s, "time": 1000.0 * (number + 1) + s}) + "\n" for s in steps))
        made = create_trial(state=state, value=1.0 if state == TrialState.COMPLETE else None,
                            user_attrs={"run_dir": str(run_dir), "fail_reason": "worker lost: no heartbeat"},
                            system_attrs={"retry_history": history} if history else None)
        made.number = number
        return made

    lost = trial(0, TrialState.FAIL, None, range(1, 5))
    once = [lost, trial(1, TrialState.COMPLETE, [0], range(1, 9))]
    assert audit_trials(once).trained_twice == []
    twice = audit_trials([*once, trial(2, TrialState.COMPLETE, [0], range(1, 9))])
    assert twice.trained_twice == ["trial 0 was retried by 2 trials that all trained: 1, 2"]


class _SlowWrites:
    """A real in-memory storage whose heartbeat writes take ``delay`` seconds (a flapping network)."""

    def __init__(self, storage, delay: float) -> None:
        self._storage, self.delay, self.entered = storage, delay, []

    def set_trial_system_attr(self, trial_id, key, value) -> None:
        self.entered.append(time.monotonic())
        time.sleep(self.delay)
        self._storage.set_trial_system_attr(trial_id, key, value)

    def __getattr__(self, name):
        return getattr(self._storage, name)


def test_the_lease_clock_starts_when_the_heartbeat_is_stamped_not_when_its_write_returns() -> None:
    # Other workers judge the stored stamp; a clock started after a slow write would keep this
    # worker's child training past the moment they take the trial over.
    from tuner.fleet.lease import LeaseKeeper, claim

    study = optuna.create_study()
    trial = study.ask({"x": FloatDistribution(0, 1)})
    slow = _SlowWrites(storage_of(study), delay=0.3)
    moment = claim(slow, trial_id(trial), owner_token())
    assert moment <= slow.entered[0] and time.monotonic() - moment >= 0.6  # two slow writes after the stamp
    with LeaseKeeper(slow, trial_id(trial), owner_token(), heartbeat=0.05, retry=5, claimed_at=moment) as keeper:
        assert keeper._last_ok == moment
        deadline = time.monotonic() + 10
        while len(slow.entered) < 4 and time.monotonic() < deadline:  # claim's two writes, then two beats
            time.sleep(0.05)
    assert len(slow.entered) >= 4 and not keeper.lost.is_set()
    assert keeper._last_ok <= slow.entered[-1]  # the last beat's clock: before its write began


def test_an_unreadable_live_process_is_not_called_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    # /proc mounted with hidepid hides other users' processes: alive, but their start time unreadable.
    import tuner.fleet.lease

    monkeypatch.setattr(tuner.fleet.lease, "_start_ticks", lambda pid: None)
    assert owner_alive(owner_token(os.getpid())) is None  # exists (os.kill says so): only the heartbeat speaks
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    token = owner_token(finished.pid)
    finished.wait()
    assert owner_alive(token) is False  # gone for os.kill too


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


def test_two_spellings_of_one_sqlite_file_share_its_lock(tmp_path: Path) -> None:
    # Before: a symbolic link (or another relative spelling) to the same file took a lock of its own,
    # so two processes ran one SQLite study at once.
    from tuner.errors import StorageError

    real = tmp_path / "studies" / "optuna.db"
    real.parent.mkdir()
    (tmp_path / "elsewhere").symlink_to(real.parent)
    with sqlite_single_process(f"sqlite:///{real}"):
        with pytest.raises(StorageError, match="is running a study on this SQLite file"):
            with sqlite_single_process(f"sqlite:///{tmp_path / 'elsewhere' / 'optuna.db'}"):
                pass


def test_the_loser_of_a_race_to_fail_a_trial_never_overwrites_the_winners_reason() -> None:
    study = optuna.create_study()
    trial = _running(study, "h:1:1", time.time())
    first = fail_trial(study, trial, StopReason.from_text("worker lost: no heartbeat for 130 s"), max_retries=2)
    late = fail_trial(study, trial, StopReason.from_text("timed out: still running after 600 s"), max_retries=2)
    assert (first.by_us, late.by_us) == (True, False)
    assert StopReason.of(study.trials[trial.number]).text() == "worker lost: no heartbeat for 130 s"


def test_a_run_folder_is_claimed_once_however_many_workers_make_it_at_once(tmp_path: Path) -> None:
    import threading

    from tuner.trial.runner import claim_run_dir

    base = tmp_path / "runs" / "s" / "trial-0000"
    claimed: list[Path] = []
    start = threading.Barrier(8)

    def claim() -> None:
        start.wait()
        for _ in range(5):
            claimed.append(claim_run_dir(base))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == len(set(claimed)) == 40 and all(path.is_dir() for path in claimed)


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
    stop = StopReason.of(stopped)
    assert stopped.state == TrialState.FAIL and stop.kind == "interrupted"
    assert stop.text().startswith("interrupted at step ")
    step = int(stop.text().split()[3])
    from trainer.model.checkpoint import load_checkpoint

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


# Two trial slots in one worker, as `--gpus 0,1` makes (the CLI refuses --gpus without CUDA, so the
# script wires the same parts as tuner.commands.run_study; on this CPU machine each child trains on the CPU).
TWO_SLOTS = """
import sys
from pathlib import Path
import optuna
from tuner.commands.run_study import stop_on_signals
from tuner.paths import Home
from tuner.trial.observers import LiveView, Observers
from tuner.trial.runner import TrialRunner
from tuner.trial.setup import TrialSetup
from tuner.space.load import load_space
from tuner.study.storage import check_storage
from tuner.study.studies import open_study
from tuner.study.timeouts import timeouts
from tuner.fleet.worker import Worker

def say(line):
    print(line, file=sys.stderr, flush=True)

space, home = load_space(Path(sys.argv[1])), Home(Path(sys.argv[3]))
url = f"sqlite:///{home.root}/optuna.db"
check_storage(url)
study = open_study(space, "slots", url, 400, optuna.pruners.NopPruner()).study
setup = TrialSetup.of(space, preset="tiny", max_steps=400, data=Path(sys.argv[2]))
observers = Observers(LiveView(study, quiet=True), home, space)
runner = TrialRunner(setup, study, home, url, observers, gpus=["0", "1"])
worker = Worker(study, runner, target=2, timeouts=timeouts(), jobs=2, stopping=runner.stopping, say=say)
with stop_on_signals(runner.stopping, say):
    result = worker.run()
say(result.reason)
sys.exit(result.exit_code)
"""


def _trial_processes(home: Path) -> list[int]:
    """Return the pids of live trial processes whose job lies under ``home``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if "tuner.trial.child" in command and str(home) in command and state != "Z":
            found.append(int(entry.name))
    return found


def test_ctrl_c_with_two_trial_slots_saves_both_and_leaves_no_child(tmp_path: Path, short_corpus: Path,
                                                                    fast_space_writer) -> None:
    space = fast_space_writer(tmp_path, study="slots", max_steps=400, samples=0, gates="[]")
    space.write_text(space.read_text().replace("fixed:\n", "fixed:\n  checkpoint_interval: 1000\n"))
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("SMART_TUNER_FAULT",)}
    env.update(SMART_TUNER_HEARTBEAT_SECONDS="1", SMART_TUNER_GRACE_SECONDS="600")
    worker = subprocess.Popen([sys.executable, "-c", TWO_SLOTS, str(space), str(short_corpus), str(home)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    runs = [home / "runs" / "slots" / f"trial-{n:04d}" for n in (0, 1)]
    try:
        _wait(lambda: all(any(r["kind"] == "train" for r in _records(run)) for run in runs)
              or worker.poll() is not None, 300, "the two trials never trained side by side")
        assert worker.poll() is None, worker.communicate()
        assert len(_trial_processes(home)) == 2
        signalled = time.monotonic()
        worker.send_signal(signal.SIGINT)  # Ctrl-C: the worker's main thread gets it, not the slot threads
        out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert time.monotonic() - signalled < 30 and worker.returncode == 0, err
    assert "SIGINT: stopping" in err and "stopped on request" in err, err
    assert _trial_processes(home) == []  # no child survived its worker's stop
    from trainer.model.checkpoint import load_checkpoint

    trials = optuna.load_study(study_name="slots", storage=f"sqlite:///{home}/optuna.db").trials
    stopped = [t for t in trials if t.state == TrialState.FAIL]
    assert sorted(t.number for t in stopped) == [0, 1], [(t.number, t.state) for t in trials]
    for trial in stopped:  # each saved the step it was stopped at, and is queued to resume from it
        step = int(StopReason.of(trial).text().split()[3])
        run = Path(trial.user_attrs["run_dir"])
        assert load_checkpoint(run / "checkpoints" / "last.pt")["position"]["step"] == step >= 1
    queued = [t for t in trials if t.state == TrialState.WAITING]
    assert sorted(t.system_attrs["retry_history"] for t in queued) == [[0], [1]]


def test_a_failing_follow_up_after_a_stored_trial_does_not_end_the_worker(tmp_path: Path, fast_space_writer) -> None:
    # after_trial (the live view's line) runs once the end is stored; its failure must not cost the study its slot.
    import io

    from tuner.fleet.endings import Verdict
    from tuner.fleet.worker import Worker
    from tuner.paths import Home
    from tuner.space.load import load_space
    from tuner.trial.observers import LiveView, Observers

    study = optuna.create_study()
    said: list[str] = []
    broken = io.StringIO()
    broken.close()  # every line the live view prints fails
    view = LiveView(study, stream=broken)
    view.say = lambda line: said.append(line) if "could not be printed" in line else print(line, file=broken)
    observers = Observers(view, Home(tmp_path), load_space(fast_space_writer(tmp_path)))

    def run_trial(trial, lease) -> Verdict:
        return Verdict("complete", StopReason("completed"), [trial.suggest_float("x", 0, 1)])

    worker = Worker(study, run_trial, target=3, timeouts=timeouts(), after_trial=observers.after_trial, say=said.append)
    result = worker.run()
    assert (result.exit_code, result.reason) == (0, "done")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert sum("stored, but its line could not be printed (ValueError" in line for line in said) == 3


def test_a_stop_during_an_outage_does_not_claim_the_trial_was_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    from tuner.fleet.endings import Verdict
    from tuner.fleet.worker import Worker

    study = optuna.create_study()
    said: list[str] = []
    done = Verdict("complete", StopReason("completed"), [0.0])
    worker = Worker(study, lambda trial, lease: done, target=1, timeouts=timeouts(), say=said.append)

    def stop_then_lose_the_database(trial, lease) -> Verdict:
        worker.stopping.set()  # a SIGTERM while the trial ends...
        monkeypatch.setattr(study, "tell", lambda *a, **k: (_ for _ in ()).throw(
            OperationalError("UPDATE", {}, Exception("server closed the connection"))))  # ...and no database
        return Verdict("complete", StopReason("completed"), [0.5])

    worker.run_trial = stop_then_lose_the_database
    result = worker.run()
    assert result.exit_code == 0 and "the end of 1 trial(s) could not be recorded" in result.reason
    assert study.trials[0].state == TrialState.RUNNING  # left for the next worker's recovery, not lost


def test_an_outage_past_the_limit_ends_the_worker_with_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: the worker thread died with a traceback, the process exited 0 and a supervisor with
    # restart: on-failure never restarted it.
    import threading

    from sqlalchemy.exc import OperationalError

    import tuner.fleet.worker as worker_module
    from tuner.fleet.worker import Worker

    study = optuna.create_study()
    monkeypatch.setattr(worker_module, "OUTAGE_LIMIT", 0.3)
    died: list = []
    monkeypatch.setattr(threading, "excepthook", died.append)

    def unreachable(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(study, "get_trials", unreachable)
    said: list[str] = []
    worker = Worker(study, lambda trial, lease: None, target=1, timeouts=Timeouts(0.1, 5, 1), jobs=2,
                    say=said.append)
    result = worker.run()
    assert not died, died  # no thread died
    assert result.exit_code == 1
    assert result.reason.startswith("the study storage was unreachable for longer than 0.3 s")
    assert "\n" not in result.reason and "resumes from its checkpoint" in result.reason
