"""The trainer callback: reports, quality gates, Optuna's pruner, multi-objective rules (no training)."""

from __future__ import annotations

import math

import optuna
import pytest

from tuner.errors import TunerError
from tuner.space.samplers import build_pruner
from tuner.space.spec import Gate, Objective
from tuner.study.optuna_api import storage_of, trial_id
from tuner.trial.reporting import Reporter, TrialHandle

SINGLE = Objective(("val_mel_postnet_l1",), ("minimize",))
TWO = Objective(("val_mel_postnet_l1", "quality_score"), ("minimize", "maximize"))


def _metrics(loss: float, diag: float = 0.8) -> dict[str, float]:
    return {"val_mel_postnet_l1": loss, "tf_diagonality": diag, "tf_focus": 0.6, "tf_coverage": 0.9,
            "tf_gate_balanced_accuracy": 0.7, "tf_monotonicity": 0.99, "quality_score": 0.75, "lr": 1e-3}


def _study(pruner=None, directions=("minimize",)):
    return optuna.create_study(directions=list(directions), pruner=pruner or optuna.pruners.NopPruner())


def _handle(study: optuna.Study) -> TrialHandle:
    """A new trial of ``study``, reached by storage id as the trial's child process reaches it."""
    return TrialHandle(study, storage_of(study), trial_id(study.ask()))


def test_reports_each_validation_and_returns_the_best_value() -> None:
    study = _study()
    reporter = Reporter(_handle(study), SINGLE, (), max_steps=30)
    assert reporter(10, _metrics(2.0)) is False
    assert reporter(20, _metrics(1.5)) is False
    assert reporter(30, _metrics(1.7)) is False
    assert study.trials[0].intermediate_values == {10: 2.0, 20: 1.5, 30: 1.7}
    assert reporter.final_values() == [1.5] and reporter.best_step() == 20
    # last_metrics: the registry's shown metrics (plus objective and gates), as reported; nothing informational.
    last = study.trials[0].user_attrs["last_metrics"]
    assert last == {"tf_diagonality": 0.8, "tf_focus": 0.6, "tf_gate_balanced_accuracy": 0.7,
                    "val_mel_postnet_l1": 1.7, "quality_score": 0.75}


def test_the_quality_score_is_the_trainers_and_is_never_invented() -> None:
    study = _study(directions=("maximize",))
    reporter = Reporter(_handle(study), Objective(("quality_score",), ("maximize",)), (), max_steps=10)
    assert reporter(10, _metrics(1.0)) is False
    assert reporter.final_values() == [0.75]
    without = {k: v for k, v in _metrics(1.0).items() if k != "quality_score"}
    with pytest.raises(TunerError, match="objective metric 'quality_score' is not reported"):
        reporter(20, without)
    assert "quality" not in study.trials[0].user_attrs["last_metrics"]


def test_quality_gate_stops_training_with_its_reason() -> None:
    study = _study()
    reporter = Reporter(_handle(study), SINGLE, (Gate("tf_diagonality", min=0.5, after_step=20),), max_steps=40)
    assert reporter(10, _metrics(2.0, diag=0.1)) is False  # before the gate's start
    assert reporter.stop is None
    assert reporter(20, _metrics(1.9, diag=0.1)) is True
    assert (reporter.stop.kind, reporter.stop.step) == ("gated", 20)
    assert reporter.stop.text().startswith("quality gate: tf_diagonality 0.100 < 0.5 at step 20")


def test_optuna_pruner_is_asked_through_the_storage() -> None:
    pruner = build_pruner({"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0}, False, 30, 10)
    study = _study(pruner)
    good = study.ask()
    for step, loss in ((10, 1.0), (20, 0.9)):
        good.report(loss, step)
    study.tell(good, 0.9)
    reporter = Reporter(_handle(study), SINGLE, (), max_steps=30, pruner_name="median")
    assert reporter(10, _metrics(5.0)) is True
    assert reporter.stop.kind == "pruned"
    assert reporter.stop.text().startswith("pruner median: val_mel_postnet_l1 5.0000 at step 10")


def test_not_finite_objective_is_pruned() -> None:
    reporter = Reporter(_handle(_study()), SINGLE, (), max_steps=10)
    assert reporter(10, _metrics(math.nan)) is True
    assert reporter.stop.kind == "gated" and "not finite" in reporter.stop.text()


def test_two_objectives_report_nothing_but_keep_the_gates() -> None:
    assert isinstance(build_pruner({"name": "median"}, True, 30, 10), optuna.pruners.NopPruner)
    study = _study(directions=("minimize", "maximize"))
    reporter = Reporter(_handle(study), TWO, (Gate("tf_diagonality", min=0.5, after_step=20),), max_steps=30)
    assert reporter(10, _metrics(2.0)) is False
    assert reporter(20, _metrics(1.0)) is False
    assert reporter(25, {**_metrics(1.2), "quality_score": 0.9}) is False
    assert study.trials[0].intermediate_values == {}
    # Both values of the validation where the first objective was best (the trainer's best.pt).
    assert reporter.final_values() == [1.0, 0.75] and reporter.best_step() == 20
    assert reporter(30, _metrics(0.9, diag=0.2)) is True


def test_missing_objective_metric_is_named() -> None:
    reporter = Reporter(_handle(_study()), Objective(("val_bleu",), ("minimize",)), (), max_steps=10)
    with pytest.raises(TunerError, match="objective metric 'val_bleu' is not reported"):
        reporter(10, _metrics(1.0))


def test_two_objective_study_end_to_end(tmp_path, tuner_home, short_corpus, fast_space_writer, capsys) -> None:
    """A real run with two objectives: both values stored, nothing reported, the Pareto front shown."""
    from optuna.trial import TrialState

    from tuner.cli import main

    space = fast_space_writer(tmp_path, study="pareto", max_steps=2, samples=0, gates="[]")
    text = space.read_text().replace("objective: val_mel_postnet_l1", "objective: [val_mel_postnet_l1, quality_score]")
    space.write_text(text)
    assert main(["run-study", "--space", str(space), "--data", str(short_corpus), "--trials", "1", "--no-mlflow"]) == 0
    (trial,) = optuna.load_study(study_name="pareto", storage=f"sqlite:///{tuner_home}/optuna.db").trials
    assert trial.state == TrialState.COMPLETE and len(trial.values) == 2, trial.user_attrs
    assert trial.intermediate_values == {}
    assert 0.0 <= trial.values[1] <= 1.0
    assert "Pareto front (val_mel_postnet_l1, quality_score):" in capsys.readouterr().out
    assert main(["best", "--study", "pareto", "--export", str(tmp_path / "front")]) == 0
    assert (tmp_path / "front" / f"trial-{trial.number}" / "best.pt").is_file()


def test_a_free_running_objective_takes_the_final_evaluation_not_the_luckiest_validation() -> None:
    objective = Objective(("fr_mcd_sl",), ("minimize",))
    study = _study()
    reporter = Reporter(_handle(study), objective, (), max_steps=30)
    for step, value in ((10, 80.0), (20, 61.0), (30, 66.0)):  # 8 sentences each: 61 was partly luck
        reporter(step, {**_metrics(1.0), "fr_mcd_sl": value})
    final = {"fr_mcd_sl": 64.2, "fr_mcd": 50.0}  # best.pt (step 20) on every held-out sentence
    assert reporter.final_values(final) == [64.2]
    assert reporter.final_values() == [61.0]  # no final evaluation (turned off): the best validation's
    assert reporter.final_values({"fr_mcd": 50.0}) == [61.0]  # nor one without the objective's metric
    reporter.note_final("best.pt", 20, 32, final)
    assert study.trials[0].user_attrs["final_evaluation"] == {"checkpoint": "best.pt", "step": 20, "sentences": 32,
                                                               "metrics": {"fr_mcd": 50.0, "fr_mcd_sl": 64.2}}
