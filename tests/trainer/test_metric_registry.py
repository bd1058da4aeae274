"""The metrics registry: one declaration per metric, looked up by every reader; the doctests of small helpers."""

from __future__ import annotations

import doctest
import math

import pytest

import trainer.evaluation.asr
import trainer.evaluation.metrics
import trainer.model.masks
import trainer.model.recurrent
import trainer.synthesis.vocoder
import trainer.text.cleaners
import trainer.text.encode
import trainer.text.numbers
import trainer.training.alignment_losses
import trainer.training.mel_losses
from trainer.evaluation import metric_registry
from trainer.evaluation.metric_registry import MAXIMIZE, MINIMIZE, Metric, UnknownMetricError


def test_the_trainers_metrics_are_declared_with_directions_and_ranges() -> None:
    diag = metric_registry.get("tf_diagonality")
    assert diag.direction == MAXIMIZE and (diag.low, diag.high) == (0.0, 1.0) and diag.label == "diag"
    assert metric_registry.get("val_mel_postnet_l1").direction == MINIMIZE
    assert metric_registry.get("fr_stop_error").direction == MINIMIZE
    assert metric_registry.get("lr").direction is None  # informational, never an objective
    assert [m.name for m in metric_registry.shown()][:7] == ["tf_diagonality", "tf_focus",
                                                             "tf_gate_balanced_accuracy", "fr_mcd", "fr_mcd_sl",
                                                             "fr_wer", "val_mel_postnet_l1"]


def test_lookup_of_a_misspelt_name_suggests_the_close_ones() -> None:
    with pytest.raises(UnknownMetricError, match="did you mean tf_diagonality"):
        metric_registry.lookup("tf_diagonalty")
    with pytest.raises(UnknownMetricError, match="unknown metric 'quality'.*quality_score"):
        metric_registry.lookup("quality")


def test_goodness_maps_worst_to_0_and_best_to_1() -> None:
    assert metric_registry.goodness("tf_gate_balanced_accuracy", 0.5) == 0.0  # chance
    assert metric_registry.goodness("tf_gate_balanced_accuracy", 0.75) == pytest.approx(0.5)
    assert metric_registry.goodness("fr_stop_error", 0.25) == pytest.approx(0.75)
    assert metric_registry.goodness("fr_stop_error", 3.0) == 0.0
    assert metric_registry.goodness("tf_diagonality", math.nan) == 0.0
    with pytest.raises(ValueError, match="cannot be scored"):
        metric_registry.goodness("val_total", 1.0)


def test_a_metric_is_declared_once() -> None:
    toy = Metric("toy_metric_x", MAXIMIZE, "a test metric", low=0.0, high=1.0, label="toyx")
    try:
        metric_registry.register(toy)
        metric_registry.register(toy)  # the same declaration again is fine
        with pytest.raises(ValueError, match="already registered"):
            metric_registry.register(Metric("toy_metric_x", MINIMIZE, "another meaning"))
        assert "toyx" in [m.label for m in metric_registry.shown()]
        assert metric_registry.summary({"toy_metric_x": 0.123456789, "tf_diagonality": math.nan}) == {
            "toy_metric_x": 0.12346}
    finally:
        metric_registry.unregister("toy_metric_x")
    assert not metric_registry.is_known("toy_metric_x")


@pytest.mark.parametrize("bad", [dict(direction="up"), dict(low=1.0, high=0.0), dict(best=1.0),
                                 dict(best=1.0, worst=1.0), dict(name="no spaces")])
def test_a_malformed_declaration_is_refused(bad: dict) -> None:
    fields = {"name": "x", "direction": MAXIMIZE, "meaning": "m", **bad}
    with pytest.raises(ValueError):
        Metric(**fields)


@pytest.mark.parametrize("module", [trainer.training.alignment_losses, trainer.training.mel_losses,
                                    trainer.model.masks, trainer.evaluation.metrics, trainer.model.recurrent,
                                    trainer.text.numbers, trainer.text.cleaners, trainer.text.encode,
                                    trainer.synthesis.vocoder, trainer.evaluation.asr,
                                    trainer.model.contract, trainer.evaluation.validate])
def test_docstring_examples_hold(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
