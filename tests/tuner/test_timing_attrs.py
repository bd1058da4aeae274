"""The ``timing`` trial attribute: where a trial's wall time goes, on complete and pruned trials.

A miniature study on CPU (tiny preset, 8 steps, SQLite, no MLflow): trial 0 is the space's
defaults (learning rate 3e-3, completes), trial 1 a learning rate too small to align (1e-7),
queued by the test, which the diagonality gate prunes at step 4 (as in test_study_e2e.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tuner.cli import main

PARENT_KEYS = {"parent_before_child_s", "child_s", "parent_after_child_s", "objective_s"}
CHILD_KEYS = {"process_start_s", "worker_start_to_train_s", "train_s", "media_s", "report_s", "report_calls",
              "child_exit_s"}


@pytest.fixture(scope="module")
def trials(tmp_path_factory: pytest.TempPathFactory, short_corpus: Path, fast_space_writer) -> list:
    import optuna

    from tuner.space.load import load_space
    from tuner.study.storage import check_storage
    from tuner.study.studies import open_study

    folder = tmp_path_factory.mktemp("timing")
    home = folder / "home"
    space_path = fast_space_writer(folder, study="timing", samples=0)
    storage = f"sqlite:///{home}/optuna.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("SMART_TUNER_FAULT", raising=False)
        patch.delenv("SMART_TUNER_HOME", raising=False)
        check_storage(storage)
        opened = open_study(load_space(space_path), "timing", storage, 8, optuna.pruners.NopPruner())
        opened.study.enqueue_trial({"learning_rate": 1e-7})
        code = main(["run-study", "--space", str(space_path), "--data", str(short_corpus), "--home", str(home),
                     "--trials", "2", "--no-mlflow", "--quiet"])
    assert code == 0
    return optuna.load_study(study_name="timing", storage=storage).get_trials()


def test_complete_and_pruned_trials_carry_their_timing(trials: list) -> None:
    from optuna.trial import TrialState

    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED], [t.user_attrs for t in trials]
    for trial in trials:
        timing = trial.user_attrs.get("timing")
        assert isinstance(timing, dict), trial.user_attrs
        assert PARENT_KEYS | CHILD_KEYS <= set(timing), timing
        assert all(value > 0 for value in timing.values()), timing
        total = (trial.datetime_complete - trial.datetime_start).total_seconds()
        assert timing["train_s"] < timing["child_s"] < total, (timing, total)
        # The parent's parts tile the objective; the child's parts fit inside its life.
        parent = timing["parent_before_child_s"] + timing["child_s"] + timing["parent_after_child_s"]
        assert parent == pytest.approx(timing["objective_s"], abs=0.01)
        assert timing["objective_s"] <= total + 0.01
        inside = (timing["process_start_s"] + timing["worker_start_to_train_s"] + timing["train_s"]
                  + timing["media_s"] + timing["child_exit_s"])
        assert inside <= timing["child_s"] + 0.02, timing
        assert timing["report_s"] < timing["train_s"]
        assert isinstance(timing["report_calls"], int)
    complete, pruned = trials
    assert complete.user_attrs["timing"]["report_calls"] == 2  # validations at steps 4 and 8
    assert pruned.user_attrs["timing"]["report_calls"] == 1  # gated at step 4
