"""A crashing, raising or hung trial fails alone, with its reason on the trial; the study goes on.

Faults are injected with ``SMART_TUNER_FAULT`` (read only by ``tuner.trial.child``).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from tuner.cli import main
from tuner.fleet.endings import StopReason


def _reason(trial) -> str:
    """The trial's stop reason in words ('' when it has none)."""
    stop = StopReason.of(trial)
    return stop.text() if stop is not None else ""


def _kind(trial) -> str | None:
    stop = StopReason.of(trial)
    return stop.kind if stop is not None else None


def _trials(home: Path, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{home}/optuna.db").trials


def test_crashing_and_raising_trials_fail_alone(tmp_path: Path, tuner_home: Path, short_corpus: Path,
                                                fast_space_writer, monkeypatch: pytest.MonkeyPatch) -> None:
    from optuna.trial import TrialState

    space = fast_space_writer(tmp_path, study="faults", max_steps=2, samples=0,
                              gates="[]")
    monkeypatch.setenv("SMART_TUNER_FAULT", "crash@0,raise@1")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run-study", "--space", str(space), "--data", str(short_corpus), "--trials", "3", "--no-mlflow"])
    assert code == 0, out.getvalue()
    trials = _trials(tuner_home, "faults")
    # The study ends holding the 3 finished trials asked for: the failures were replaced.
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL] + [TrialState.COMPLETE] * 3, [
        (t.state, t.user_attrs) for t in trials]
    crashed, raised, *fine = trials
    # A crash is transient (an out-of-memory kill looks the same): it is retried, as trial 1...
    assert _reason(crashed).startswith("crashed: worker exited with status 86 without an outcome")
    assert _kind(crashed) == "crashed"
    assert raised.system_attrs["retry_history"] == [0] and raised.user_attrs["origin"].startswith("retry of trial 0")
    # ...whose injected exception is not transient: no retry of it.
    assert _reason(raised).startswith("RuntimeError: injected fault") and _kind(raised) == "failed"
    assert all("retry_history" not in t.system_attrs for t in fine)
    assert all(t.value is not None and _kind(t) == "completed" for t in fine)
    assert "trial 0 FAILED crashed: worker exited with status 86" in out.getvalue()
    assert "done 3, pruned 0, failed 2" in out.getvalue()


def test_hung_trial_is_killed_at_its_time_limit_retried_then_the_worker_stops(
        tmp_path: Path, tuner_home: Path, short_corpus: Path, fast_space_writer, monkeypatch: pytest.MonkeyPatch,
        capsys) -> None:
    from optuna.trial import TrialState

    space = fast_space_writer(tmp_path, study="hang", max_steps=2, samples=0, gates="[]")
    monkeypatch.setenv("SMART_TUNER_FAULT", "hang")  # every trial hangs: a fault outside the trials
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run-study", "--space", str(space), "--data", str(short_corpus), "--trials", "1", "--no-mlflow",
                     "--trial-timeout", "6"])
    # A timeout is transient: the trial is retried twice (max_retries 2); three failures in a row stop the worker.
    assert code == 1
    trials = _trials(tuner_home, "hang")
    assert [t.state for t in trials] == [TrialState.FAIL] * 3, [(t.state, t.user_attrs) for t in trials]
    assert all(_reason(t).startswith("timed out: still running after 6 s") for t in trials)
    assert {_kind(t) for t in trials} == {"timed_out"}
    assert [t.system_attrs.get("retry_history") for t in trials] == [None, [0], [0, 1]]
    assert all((t.datetime_complete - t.datetime_start).total_seconds() < 60 for t in trials)
    err = capsys.readouterr().err
    assert "tuner: 3 trials failed in a row (the last: timed out: still running after 6 s" in err


def test_training_faults_each_end_in_their_own_state(tmp_path: Path, tuner_home: Path, short_corpus: Path,
                                                     fast_space_writer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-finite loss, an out-of-memory error and a data-loader crash: each fails its trial with its reason."""
    from optuna.trial import TrialState

    space = fast_space_writer(tmp_path, study="training-faults", max_steps=2, samples=0, gates="[]",
                              extra_study="  max_consecutive_failures: 4\n")
    monkeypatch.setenv("SMART_TUNER_FAULT", "nonfinite@0,oom@1,dataloader@2")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run-study", "--space", str(space), "--data", str(short_corpus), "--trials", "1", "--no-mlflow"])
    assert code == 0, out.getvalue()
    trials = _trials(tuner_home, "training-faults")
    assert [t.state for t in trials] == [TrialState.FAIL] * 3 + [TrialState.COMPLETE], [
        (t.state, t.user_attrs) for t in trials]
    nonfinite, oom, loader, fine = trials
    assert _reason(nonfinite).startswith("NonFiniteLossError: loss or gradient non-finite")
    assert _reason(oom).startswith("out of memory (try a smaller batch_size or preset): "
                                                    "OutOfMemoryError: CUDA out of memory")
    assert _reason(loader).startswith("OSError: data loader: could not read the next batch")
    assert [_kind(t) for t in trials] == ["failed", "out_of_memory", "failed", "completed"]
    assert fine.value is not None
    # Out of memory is transient (retried: trial 2 is its retry); a non-finite loss and a broken loader are not.
    assert loader.system_attrs.get("retry_history") == [1]
    assert "retry_history" not in fine.system_attrs


def test_a_storage_outage_on_the_tuner_side_of_a_trial_is_a_transient_failure(
        tmp_path: Path, tuner_home: Path, short_corpus: Path, runner_builder,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # An outage longer than one call's retry window is the database's fault, not the trial's:
    # the trial fails as lease_lost, which the lease retries, not as a permanent failure.
    from sqlalchemy.exc import OperationalError

    from tuner.study.optuna_api import storage_of

    study, runner = runner_builder(tmp_path, short_corpus, "outage")
    trial = study.ask()
    storage = storage_of(study)
    write = storage.set_trial_user_attr

    def unreachable(trial_id, key, value):
        if key == "worker":
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return write(trial_id, key, value)

    monkeypatch.setattr(storage, "set_trial_user_attr", unreachable)
    ended = runner(trial)
    assert ended.state == "failed" and ended.stop.kind == "lease_lost" and ended.stop.retried
    assert ended.stop.text().startswith("lease lost: the study storage was unreachable (tuner: OperationalError")


def test_a_full_disk_queues_its_trial_for_another_worker_and_stops_this_one(
        tmp_path: Path, tuner_home: Path, short_corpus: Path, fast_space_writer, monkeypatch: pytest.MonkeyPatch,
        capsys) -> None:
    # Before: disk full failed the trial for good and the worker went on failing trials on its full disk.
    from optuna.trial import TrialState

    space = fast_space_writer(tmp_path, study="full", max_steps=2, samples=0, gates="[]")
    monkeypatch.setenv("SMART_TUNER_FAULT", "diskfull@0")
    args = ["run-study", "--space", str(space), "--data", str(short_corpus), "--trials", "1", "--no-mlflow"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(args) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tuner: disk full")]
    assert len(err) == 1 and "stopping this worker: trial 0 is queued to resume" in err[0]
    full, queued = _trials(tuner_home, "full")
    assert full.state == TrialState.FAIL and _kind(full) == "disk_full"
    assert queued.state == TrialState.WAITING and queued.system_attrs["retry_history"] == [0]
    monkeypatch.delenv("SMART_TUNER_FAULT")  # another worker, with room on its disk, takes it on
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(args) == 0
    assert _trials(tuner_home, "full")[1].state == TrialState.COMPLETE
