"""Quality controller on scripted metric histories, and the composite quality score."""

from __future__ import annotations

import json
import math

import pytest

from trainer.evaluation.quality_score import quality_score
from trainer.training.quality import QualityController
from trainer.training.quality_state import ControllerConfig, Decision
from trainer.training.schedules import phase_boundaries


def healthy(step: int, **changes: float) -> dict[str, float]:
    """A validation of a run that is going well: falling losses, aligned, working gate."""
    values = {"train_loss": 2.0 - step / 10000, "val_total": 2.2 - step / 10000,
              "val_mel_postnet_l1": 1.0 - step / 10000, "tf_diagonality": 0.9, "tf_gate_balanced_accuracy": 0.95}
    values.update(changes)
    return values


def actions(decisions: list[Decision]) -> list[tuple[str, str]]:
    return [(d.detection, d.action) for d in decisions]


def make(**overrides) -> QualityController:
    base = {"alignment_warmup_steps": 0, "gate_judge_after_steps": 0, "cooldown": 0}
    return QualityController(ControllerConfig(**{**base, **overrides}))


def test_healthy_run_has_no_decisions_and_every_validation_is_good() -> None:
    controller = make()
    for step in range(100, 2100, 100):
        assert controller.observe(step, healthy(step)) == []
        assert controller.last_good_step == step
    assert controller.multipliers() == {"lr_scale": 1.0, "ga_boost": 1.0, "gate_boost": 1.0}
    assert not controller.stop_requested


def test_misalignment_waits_for_warmup_then_raises_guided_attention_up_to_its_limit() -> None:
    controller = make(alignment_warmup_steps=500, max_ga_boosts=2)
    assert controller.observe(400, healthy(400, tf_diagonality=0.1)) == []  # still warming up
    assert controller.last_good_step == 400
    first = controller.observe(500, healthy(500, tf_diagonality=0.3))
    assert actions(first) == [("misalignment", "raise_guided_attention")]
    assert first[0].parameters["ga_boost"] == 2.0
    assert first[0].evidence["tf_diagonality"] == 0.3
    assert controller.last_good_step == 500  # misaligned but healthy losses: still a rollback target
    assert controller.observe(600, healthy(600, tf_diagonality=0.69))[0].parameters["ga_boost"] == 4.0
    limited = controller.observe(700, healthy(700, tf_diagonality=0.5))
    assert actions(limited) == [("misalignment", "none_limit_reached")]
    assert limited[0].parameters == {"limit": "max_ga_boosts", "used": 2}
    assert controller.ga_boost == 4.0
    assert controller.observe(800, healthy(800, tf_diagonality=0.7)) == []  # at the threshold is aligned


def test_boost_is_capped() -> None:
    controller = make(ga_boost_factor=3.0, max_ga_boost=5.0, max_ga_boosts=5)
    assert controller.observe(100, healthy(100, tf_diagonality=0.1))[0].parameters["ga_boost"] == 3.0
    assert controller.observe(200, healthy(200, tf_diagonality=0.1))[0].parameters["ga_boost"] == 5.0
    capped = controller.observe(300, healthy(300, tf_diagonality=0.1))
    assert capped[0].action == "none_limit_reached" and controller.ga_boost == 5.0


def test_cooldown_spaces_repeated_boosts() -> None:
    controller = make(cooldown=2)
    got = [actions(controller.observe(s, healthy(s, tf_diagonality=0.2)))[0][1] for s in range(100, 800, 100)]
    assert got == ["raise_guided_attention", "none_cooldown", "none_cooldown", "raise_guided_attention",
                   "none_cooldown", "none_cooldown", "raise_guided_attention"]


def test_gate_failure_raises_gate_weight_but_defers_to_misalignment() -> None:
    controller = make(gate_judge_after_steps=300)
    assert controller.observe(200, healthy(200, tf_gate_balanced_accuracy=0.5)) == []
    raised = controller.observe(300, healthy(300, tf_gate_balanced_accuracy=0.6))
    assert actions(raised) == [("gate_failure", "raise_gate_weight")]
    assert controller.gate_boost == 2.0
    both = controller.observe(400, healthy(400, tf_gate_balanced_accuracy=0.6, tf_diagonality=0.2))
    assert actions(both) == [("misalignment", "raise_guided_attention"), ("gate_failure", "none_deferred")]
    assert controller.gate_boost == 2.0


def test_nonfinite_loss_rolls_back_to_last_good_and_lowers_lr() -> None:
    controller = make()
    controller.observe(100, healthy(100))
    controller.observe(200, healthy(200, tf_diagonality=0.1))  # misaligned, healthy losses: still good
    decisions = controller.observe(300, healthy(300, val_total=math.nan))
    assert actions(decisions) == [("nonfinite_loss", "rollback"), ("nonfinite_loss", "lower_learning_rate")]
    assert decisions[0].parameters == {"to_step": 200}
    assert decisions[1].parameters["lr_scale"] == 0.5
    assert not controller.stop_requested
    assert controller.last_good_step == 200  # a broken validation never becomes the rollback target


def test_nonfinite_loss_without_good_checkpoint_stops() -> None:
    controller = make()
    decisions = controller.observe(100, healthy(100, train_loss=math.inf))
    assert actions(decisions) == [("nonfinite_loss", "none_no_checkpoint"), ("nonfinite_loss", "lower_learning_rate"),
                                  ("nonfinite_loss", "stop")]
    assert controller.stop_requested


def test_exploding_loss_against_best_recent() -> None:
    controller = make(explosion_factor=3.0, max_rollbacks=1)
    for step, loss in ((100, 2.0), (200, 1.0), (300, 1.5)):
        assert controller.observe(step, healthy(step, train_loss=loss)) == []
    assert controller.observe(400, healthy(400, train_loss=2.9)) == []  # 2.9 < 3 × best recent 1.0
    exploded = controller.observe(500, healthy(500, train_loss=3.5))
    assert actions(exploded) == [("exploding_loss", "rollback"), ("exploding_loss", "lower_learning_rate")]
    assert exploded[0].evidence == {"train_loss": 3.5, "train_loss_reference": 1.0}
    assert exploded[0].parameters == {"to_step": 400}
    # The exploded value stays out of the history: 3.2 is still judged against 1.0, and
    # the rollback limit (1) is now spent; exploding does not stop the run.
    again = controller.observe(600, healthy(600, train_loss=3.2))
    assert actions(again) == [("exploding_loss", "none_limit_reached"), ("exploding_loss", "lower_learning_rate")]
    assert again[0].parameters == {"limit": "max_rollbacks", "used": 1}
    assert controller.lr_scale == 0.25 and not controller.stop_requested


def test_reference_window_forgets_old_lows() -> None:
    controller = make(explosion_window=2)
    for step, loss in ((100, 0.4), (200, 1.0), (300, 1.0)):
        controller.observe(step, healthy(step, train_loss=loss))
    assert controller.observe(400, healthy(400, train_loss=2.5)) == []  # 0.4 is outside the window


def test_learning_rate_cuts_are_limited() -> None:
    controller = make(max_lr_cuts=2, max_rollbacks=10)
    controller.observe(100, healthy(100))
    scales = []
    for step in (200, 300, 400):
        decisions = controller.observe(step, healthy(step, val_total=math.nan))
        scales.append(controller.lr_scale)
        if step == 400:
            assert actions(decisions)[1] == ("nonfinite_loss", "none_limit_reached")
            assert decisions[1].parameters == {"limit": "max_lr_cuts", "used": 2}
    assert scales == [0.5, 0.25, 0.25]


def _overfit(step: int, k: int) -> dict[str, float]:
    return healthy(step, train_loss=1.0 - 0.05 * k, val_total=1.0 + 0.05 * k, val_mel_postnet_l1=0.5)


def test_overfitting_lowers_lr_then_stops() -> None:
    controller = make(overfit_window=4, cooldown=1, patience=100)
    got = [actions(controller.observe(100 * (k + 1), _overfit(100 * (k + 1), k))) for k in range(6)]
    assert got[:3] == [[], [], []]  # not enough history yet
    assert got[3] == [("overfitting", "lower_learning_rate")]
    assert got[4] == [("overfitting", "none_cooldown")]
    assert got[5] == [("overfitting", "stop")]
    assert controller.stop_requested and controller.lr_scale == 0.5


def test_rising_losses_on_both_sides_are_not_overfitting() -> None:
    controller = make(overfit_window=3, patience=100)
    for k in range(6):
        step = 100 * (k + 1)
        assert controller.observe(step, healthy(step, train_loss=1.0 + 0.05 * k, val_total=1.0 + 0.05 * k)) == []


def test_early_stop_after_patience_without_improvement() -> None:
    controller = make(patience=3, min_delta=0.01)
    assert controller.observe(100, healthy(100, val_mel_postnet_l1=1.0)) == []
    assert controller.observe(200, healthy(200, val_mel_postnet_l1=0.995)) == []  # within min_delta: no improvement
    assert controller.observe(300, healthy(300, val_mel_postnet_l1=1.2)) == []
    stop = controller.observe(400, healthy(400, val_mel_postnet_l1=0.999))
    assert actions(stop) == [("no_improvement", "stop")]
    assert stop[0].evidence["best"] == 1.0 and stop[0].evidence["validations_without_improvement"] == 3
    assert controller.observe(500, healthy(500, val_mel_postnet_l1=1.0)) == []  # does not stop twice


def test_improvement_resets_patience() -> None:
    controller = make(patience=2)
    for step, value in ((100, 1.0), (200, 1.1), (300, 0.9), (400, 1.0)):
        assert controller.observe(step, healthy(step, val_mel_postnet_l1=value)) == []
    assert actions(controller.observe(500, healthy(500, val_mel_postnet_l1=0.95))) == [("no_improvement", "stop")]


def test_early_stop_can_be_disabled() -> None:
    controller = make(patience=1, early_stop=False)
    controller.observe(100, healthy(100, val_mel_postnet_l1=1.0))
    decisions = controller.observe(200, healthy(200, val_mel_postnet_l1=1.0))
    assert actions(decisions) == [("no_improvement", "none_limit_reached")]
    assert not controller.stop_requested


def test_state_dict_round_trip_keeps_counts() -> None:
    controller = make(max_ga_boosts=3, patience=3)
    for step in (100, 200):
        controller.observe(step, healthy(step, tf_diagonality=0.2, val_mel_postnet_l1=1.0))
    state = json.loads(json.dumps(controller.state_dict()))  # plain values only
    resumed = QualityController(controller.config)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == controller.state_dict()


def test_resumed_controller_honours_limits_and_patience() -> None:
    controller = make(max_ga_boosts=3, patience=2)
    for step in (100, 200):
        controller.observe(step, healthy(step, tf_diagonality=0.2, val_mel_postnet_l1=1.0))
    resumed = QualityController(controller.config)
    resumed.load_state_dict(json.loads(json.dumps(controller.state_dict())))
    third = resumed.observe(300, healthy(300, tf_diagonality=0.2, val_mel_postnet_l1=1.0))
    assert actions(third) == [("misalignment", "raise_guided_attention"), ("no_improvement", "stop")]
    assert resumed.ga_boost == 8.0
    assert actions(resumed.observe(400, healthy(400, tf_diagonality=0.2)))[0][1] == "none_limit_reached"


def test_the_controller_remembers_why_it_asked_to_stop_across_a_resume() -> None:
    controller = make(patience=2)
    for step in (100, 200):
        assert not controller.stop_requested
        controller.observe(step, healthy(step, val_mel_postnet_l1=1.0))
    controller.observe(300, healthy(300, val_mel_postnet_l1=1.0))
    assert controller.stop_requested and controller.stop_detection == "no_improvement"
    assert controller.stop_reason.startswith("val_mel_postnet_l1 not better than 1 (step 100)")
    resumed = QualityController(controller.config)
    resumed.load_state_dict(json.loads(json.dumps(controller.state_dict())))
    assert (resumed.stop_detection, resumed.stop_reason) == (controller.stop_detection, controller.stop_reason)
    older = {k: v for k, v in controller.state_dict().items() if not k.startswith("stop_")}  # before stops were said
    resumed.load_state_dict(older)
    assert resumed.stop_detection == "" and not resumed.stop_requested


def test_a_stop_that_is_not_taken_leaves_no_reason() -> None:
    controller = make(patience=1, early_stop=False)
    for step in (100, 200, 300):
        controller.observe(step, healthy(step, val_mel_postnet_l1=1.0))
    assert not controller.stop_requested and controller.stop_reason == ""


# ------------------------------------------------------------------ knobs the tuner owns


def test_a_frozen_guided_attention_weight_is_left_to_the_tuner_and_an_unfrozen_one_is_raised() -> None:
    history = [(step, healthy(step, tf_diagonality=0.2)) for step in range(100, 600, 100)]
    free, frozen = make(), make(frozen_keys=("ga_weight",))
    for step, metrics in history:
        assert actions(free.observe(step, metrics))[0][1] in ("raise_guided_attention", "none_limit_reached")
        left = frozen.observe(step, metrics)
        assert actions(left) == [("misalignment", "none_left_to_tuner")]  # never limited: nothing was spent
        assert left[0].parameters == {"key": "ga_weight", "action": "raise_guided_attention"}
        assert "ga_weight is left to the tuner (the study samples it)" in left[0].reason
    assert free.ga_boost == 8.0 and frozen.ga_boost == 1.0
    assert frozen.ga_boosts == 0 and frozen.cooldowns == {}
    assert json.loads(json.dumps(left[0].to_record()))["action"] == "none_left_to_tuner"


def test_a_frozen_gate_weight_is_left_to_the_tuner() -> None:
    controller = make(frozen_keys=("gate_weight", "ga_weight"))
    left = controller.observe(300, healthy(300, tf_gate_balanced_accuracy=0.6))
    assert actions(left) == [("gate_failure", "none_left_to_tuner")] and left[0].parameters["key"] == "gate_weight"
    both = controller.observe(400, healthy(400, tf_gate_balanced_accuracy=0.6, tf_diagonality=0.2))
    assert actions(both) == [("misalignment", "none_left_to_tuner"), ("gate_failure", "none_deferred")]
    assert controller.multipliers() == {"lr_scale": 1.0, "ga_boost": 1.0, "gate_boost": 1.0}


def test_a_frozen_learning_rate_still_rolls_back_and_still_stops() -> None:
    controller = make(frozen_keys=("learning_rate",))
    controller.observe(100, healthy(100))
    broken = controller.observe(200, healthy(200, val_total=math.nan))
    assert actions(broken) == [("nonfinite_loss", "rollback"), ("nonfinite_loss", "none_left_to_tuner")]
    assert broken[0].parameters == {"to_step": 100} and controller.lr_scale == 1.0
    lost = make(frozen_keys=("learning_rate",)).observe(100, healthy(100, train_loss=math.inf))
    assert actions(lost) == [("nonfinite_loss", "none_no_checkpoint"), ("nonfinite_loss", "none_left_to_tuner"),
                             ("nonfinite_loss", "stop")]


def test_overfitting_with_a_frozen_learning_rate_stops_where_it_would_have() -> None:
    def overfitting(controller: QualityController) -> list[list[tuple[str, str]]]:
        return [actions(controller.observe(step, healthy(step, train_loss=3.0 - step / 1000,
                                                         val_total=1.0 + step / 1000, val_mel_postnet_l1=0.5)))
                for step in range(100, 1100, 100)]

    free, frozen = overfitting(make(cooldown=2, patience=100)), overfitting(make(cooldown=2, patience=100,
                                                                                 frozen_keys=("learning_rate",)))
    cut = [i for i, found in enumerate(free) if ("overfitting", "lower_learning_rate") in found]
    assert cut and [i for i, found in enumerate(frozen) if ("overfitting", "none_left_to_tuner") in found] == cut
    stops = [i for i, found in enumerate(free) if ("overfitting", "stop") in found]
    assert stops and [i for i, found in enumerate(frozen) if ("overfitting", "stop") in found] == stops


def test_decision_record_is_strict_json() -> None:
    controller = make()
    decision = controller.observe(100, healthy(100, val_total=math.nan))[0]
    record = decision.to_record()
    text = json.dumps(record, allow_nan=False)
    assert json.loads(text)["evidence"] == {"val_total": "nan"}
    assert record["kind"] == "quality" and record["step"] == 100 and record["reason"]


def test_for_budget_follows_phases() -> None:
    config = ControllerConfig.for_budget(7000, patience=4)
    bounds = phase_boundaries(7000)
    assert (config.alignment_warmup_steps, config.gate_judge_after_steps, config.patience) == (bounds[1], bounds[2], 4)


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        ControllerConfig(lr_cut_factor=1.5)
    with pytest.raises(ValueError):
        ControllerConfig(overfit_window=2)


# ------------------------------------------------------------------ quality score

PERFECT = {"tf_diagonality": 1.0, "tf_focus": 1.0, "tf_monotonicity": 1.0, "tf_coverage": 1.0,
           "tf_gate_balanced_accuracy": 1.0}


def test_quality_score_bounds() -> None:
    assert quality_score(PERFECT) == 1.0
    worst = {"tf_diagonality": 0.0, "tf_focus": 0.0, "tf_monotonicity": 0.0, "tf_coverage": 0.0,
             "tf_gate_balanced_accuracy": 0.5, "fr_stop_error": 3.0, "fr_hit_max_rate": 1.0}
    assert quality_score(worst) == 0.0


def test_quality_score_formula_by_hand() -> None:
    metrics = {"tf_diagonality": 0.8, "tf_focus": 0.6, "tf_monotonicity": 0.9, "tf_coverage": 0.5,
               "tf_gate_balanced_accuracy": 0.75, "fr_stop_error": 0.2, "fr_hit_max_rate": 0.5}
    expected = (0.3 * 0.8 + 0.15 * 0.6 + 0.1 * 0.9 + 0.15 * 0.5 + 0.3 * 0.5 + 0.15 * 0.8 + 0.1 * 0.5) / 1.25
    assert quality_score(metrics) == pytest.approx(expected)


def test_quality_score_missing_and_nonfinite() -> None:
    assert quality_score({"tf_diagonality": 0.4}) == pytest.approx(0.4)  # renormalised over what is there
    assert quality_score({"tf_diagonality": 0.4, "tf_focus": math.nan}) == pytest.approx(0.3 * 0.4 / 0.45)
    assert quality_score({"fr_diagonality": 0.6, "fr_stop_error": 0.0}, prefix="fr_") == pytest.approx(
        (0.3 * 0.6 + 0.15) / 0.45)
    with pytest.raises(ValueError):
        quality_score({"val_total": 1.0})


def test_no_improvement_follows_the_selection_metric_not_the_teacher_forced_loss() -> None:
    # The teacher-forced loss plateaus while what the model says keeps getting better: not a stop.
    controller = make(patience=2, objective_metric="fr_mcd_sl", objective_is_loss=False)
    for k, step in enumerate(range(100, 1100, 100)):
        assert controller.observe(step, healthy(step, val_mel_postnet_l1=1.0, fr_mcd_sl=80.0 - k)) == []
    # The reverse: the loss falls, the selection metric stalls: stopped.
    controller = make(patience=2, objective_metric="fr_mcd_sl", objective_is_loss=False)
    decisions = [controller.observe(step, healthy(step, val_mel_postnet_l1=1.0 - step / 1e4, fr_mcd_sl=80.0))
                 for step in (100, 200, 300)]
    assert actions(decisions[-1]) == [("no_improvement", "stop")]
    assert decisions[-1][0].reason.startswith("fr_mcd_sl not better than 80")


def test_a_maximised_selection_metric_improves_upwards() -> None:
    controller = make(patience=2, objective_metric="tf_focus", objective_maximized=True, objective_is_loss=False)
    for step, focus in ((100, 0.3), (200, 0.4), (300, 0.5), (400, 0.6)):
        assert controller.observe(step, healthy(step, tf_focus=focus)) == []
    controller.observe(500, healthy(500, tf_focus=0.55))
    stop = controller.observe(600, healthy(600, tf_focus=0.6))
    assert actions(stop) == [("no_improvement", "stop")] and stop[0].evidence["best"] == 0.6


def test_the_selection_metric_drives_the_controller_and_a_free_running_one_is_not_watched_for_explosions() -> None:
    from trainer.config import preset
    from trainer.errors import ConfigError
    from trainer.training.session import quality_config

    tiny = preset("tiny")
    assert tiny.best_metric == "auto" and tiny.selection_metric == "fr_mcd_sl"
    chosen = quality_config(tiny)
    assert (chosen.objective_metric, chosen.objective_maximized, chosen.objective_is_loss) == ("fr_mcd_sl", False,
                                                                                               False)
    assert quality_config(tiny.replace(fr_utterances=0)).objective_metric == "val_mel_postnet_l1"
    assert quality_config(tiny.replace(fr_utterances=0)).objective_is_loss
    assert quality_config(tiny.replace(best_metric="fr_diagonality")).objective_maximized
    with pytest.raises(ConfigError, match="best_metric.*fr_mcd.*fr_utterances is 0"):
        tiny.replace(best_metric="fr_mcd", fr_utterances=0)
    # A free-running figure that jumps (one sentence stopped early) is no "exploding loss".
    controller = make(objective_metric="fr_mcd_sl", objective_is_loss=False)
    for step in (100, 200, 300):
        controller.observe(step, healthy(step, fr_mcd_sl=70.0))
    assert controller.observe(400, healthy(400, fr_mcd_sl=700.0)) == []
