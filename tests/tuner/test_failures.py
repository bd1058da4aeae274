"""A crashing, raising or hung trial fails alone, with its reason on the trial; the study goes on.

Faults are injected with ``SMART_TUNER_FAULT`` (read only by ``tuner.trial_worker``).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from tuner.cli import main


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
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE], [
        (t.state, t.user_attrs) for t in trials]
    crashed, raised, fine = trials
    assert "worker exited with status 86 without an outcome" in crashed.user_attrs["fail_reason"]
    assert raised.user_attrs["fail_reason"].startswith("RuntimeError: injected fault")
    assert fine.value is not None and "fail_reason" not in fine.user_attrs
    assert "trial 0 FAILED worker exited with status 86" in out.getvalue()
    assert "done 1, pruned 0, failed 2" in out.getvalue()


def test_hung_trial_is_killed_at_its_time_limit(tmp_path: Path, tuner_home: Path, short_corpus: Path,
                                                fast_space_writer, monkeypatch: pytest.MonkeyPatch) -> None:
    from optuna.trial import TrialState

    space = fast_space_writer(tmp_path, study="hang", max_steps=2, samples=0, gates="[]")
    monkeypatch.setenv("SMART_TUNER_FAULT", "hang")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run-study", "--space", str(space), "--data", str(short_corpus), "--trials", "1", "--no-mlflow",
                     "--trial-timeout", "6"])
    assert code == 0
    (trial,) = _trials(tuner_home, "hang")
    assert trial.state == TrialState.FAIL, trial.user_attrs
    assert trial.user_attrs["fail_reason"].startswith("timed out: still running after 6 s")
    assert (trial.datetime_complete - trial.datetime_start).total_seconds() < 60


def test_training_faults_each_end_in_their_own_state(tmp_path: Path, tuner_home: Path, short_corpus: Path,
                                                     fast_space_writer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-finite loss, an out-of-memory error and a data-loader crash: each fails its trial with its reason."""
    from optuna.trial import TrialState

    space = fast_space_writer(tmp_path, study="training-faults", max_steps=2, samples=0, gates="[]")
    monkeypatch.setenv("SMART_TUNER_FAULT", "nonfinite@0,oom@1,dataloader@2")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run-study", "--space", str(space), "--data", str(short_corpus), "--trials", "4", "--no-mlflow"])
    assert code == 0, out.getvalue()
    trials = _trials(tuner_home, "training-faults")
    assert [t.state for t in trials] == [TrialState.FAIL] * 3 + [TrialState.COMPLETE], [
        (t.state, t.user_attrs) for t in trials]
    nonfinite, oom, loader, fine = trials
    assert nonfinite.user_attrs["fail_reason"].startswith("NonFiniteLossError: loss or gradient non-finite")
    assert oom.user_attrs["fail_reason"].startswith("out of memory (try a smaller batch_size or preset): "
                                                    "OutOfMemoryError: CUDA out of memory")
    assert loader.user_attrs["fail_reason"].startswith("OSError: data loader: could not read the next batch")
    assert fine.value is not None
