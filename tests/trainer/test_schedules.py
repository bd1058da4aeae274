"""Schedules: values at chosen steps, computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.config import LR_PROFILES
from trainer.model.stopping import estimate_frames_per_char, expected_decoder_steps, stop_threshold
from trainer.training.schedules import (
    guided_attention_sigma,
    guided_attention_weight,
    lr_at,
    phase_at,
    phase_boundaries,
    teacher_forcing_ratio,
)

BASE, MIN = 1e-3, 1e-6


def _cosine(fraction: float) -> float:
    return MIN + (BASE - MIN) * (1 + math.cos(math.pi * fraction)) / 2


def test_lr_warmup() -> None:
    assert lr_at(0, BASE, warmup_steps=2000) == pytest.approx(BASE / 2000)
    assert lr_at(999, BASE, warmup_steps=2000) == pytest.approx(BASE / 2)
    assert lr_at(1999, BASE, warmup_steps=2000) == pytest.approx(BASE)
    assert lr_at(2000, BASE, warmup_steps=2000) == pytest.approx(BASE)  # first cosine cycle starts at base
    assert lr_at(500, BASE) < lr_at(1500, BASE)


def test_lr_cosine_with_fixed_restarts() -> None:
    kw = {"warmup_steps": 2000, "restart_period": 100, "restart_mult": 1.0, "min_lr": MIN}
    assert lr_at(2050, BASE, **kw) == pytest.approx(_cosine(0.5))
    assert lr_at(2099, BASE, **kw) == pytest.approx(_cosine(99 / 100))
    assert lr_at(2100, BASE, **kw) == pytest.approx(BASE)  # restart
    assert lr_at(2375, BASE, **kw) == pytest.approx(_cosine(0.75))
    values = [lr_at(s, BASE, **kw) for s in range(2000, 2100)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    assert min(values) > MIN


def test_lr_cosine_with_growing_restarts() -> None:
    # cycles of 100, 200, 400 steps after a 2000-step warm-up: restarts at 2100 and 2300
    kw = {"warmup_steps": 2000, "restart_period": 100, "restart_mult": 2.0, "min_lr": MIN}
    assert lr_at(2100, BASE, **kw) == pytest.approx(BASE)
    assert lr_at(2200, BASE, **kw) == pytest.approx(_cosine(0.5))
    assert lr_at(2299, BASE, **kw) == pytest.approx(_cosine(199 / 200))
    assert lr_at(2300, BASE, **kw) == pytest.approx(BASE)
    assert lr_at(2400, BASE, **kw) == pytest.approx(_cosine(0.25))


def test_lr_profiles_and_floor() -> None:
    assert LR_PROFILES == {"finetune": 1e-5, "scratch": 1e-3}
    # a base below the floor is never raised
    assert lr_at(5000, 5e-7, warmup_steps=0, restart_period=100, min_lr=1e-6) == pytest.approx(5e-7)
    with pytest.raises(ValueError):
        lr_at(0, BASE, restart_period=0)


def test_teacher_forcing_ratio() -> None:
    expected = {0: 1.0, 999: 1.0, 1000: 1.0, 6000: 0.85, 11000: 0.7, 20000: 0.7}
    for step, ratio in expected.items():
        assert teacher_forcing_ratio(step) == pytest.approx(ratio), step


def test_guided_attention_sigma() -> None:
    assert guided_attention_sigma(0) == pytest.approx(0.4)
    assert guided_attention_sigma(5000, anneal_steps=10000) == pytest.approx(0.3)
    assert guided_attention_sigma(10000, anneal_steps=10000) == pytest.approx(0.2)
    assert guided_attention_sigma(50000, anneal_steps=10000) == pytest.approx(0.2)


def test_guided_attention_weight_decay_and_floor() -> None:
    assert guided_attention_weight(0) == pytest.approx(2.5)
    assert guided_attention_weight(1) == pytest.approx(2.5 * 0.9999)
    assert guided_attention_weight(10000) == pytest.approx(2.5 * 0.9999**10000)  # ≈ 0.92
    assert guided_attention_weight(10000) == pytest.approx(0.9196, abs=1e-3)
    assert guided_attention_weight(100000, floor=0.1) == pytest.approx(0.1)
    assert guided_attention_weight(100000) < 1e-3


@pytest.mark.parametrize(("total", "bounds"), [
    (3500, (0, 500, 2000, 3000, 3500)),
    (1000, (0, 142, 571, 857, 1000)),
    (7, (0, 1, 4, 6, 7)),
])
def test_phase_boundaries(total: int, bounds: tuple[int, ...]) -> None:
    assert phase_boundaries(total) == bounds
    names = ["pre_alignment", "alignment_learning", "quality_optimization", "fine_tuning"]
    for index, name in enumerate(names):
        first, last = bounds[index], bounds[index + 1] - 1
        assert phase_at(first, total).name == name
        assert phase_at(last, total).name == name
    assert phase_at(total + 10, total).name == "fine_tuning"


def test_phase_settings() -> None:
    phases = [phase_at(step, 3500) for step in (0, 500, 2000, 3000)]
    assert [p.ga_weight for p in phases] == [10.0, 3.0, 1.0, 0.5]
    assert [p.lr_mult for p in phases] == [1.0, 0.8, 0.5, 0.3]
    assert (phases[1].start, phases[1].end, phases[1].index) == (500, 2000, 1)
    with pytest.raises(ValueError):
        phase_at(0, 0)


def test_stop_threshold_values() -> None:
    # progress 0 (base .3): well before the expected end .5, at it .3, 10% past .2, far past .1
    assert stop_threshold(0.0, 10, 100) == pytest.approx(0.5)
    assert stop_threshold(0.0, 80, 100) == pytest.approx(0.5)
    assert stop_threshold(0.0, 100, 100) == pytest.approx(0.3)
    assert stop_threshold(0.0, 110, 100) == pytest.approx(0.2)
    assert stop_threshold(0.0, 300, 100) == pytest.approx(0.1)
    # progress .5 (base .55) and 1 (base .8, capped at .95 before the end)
    assert stop_threshold(0.5, 100, 100) == pytest.approx(0.55)
    assert stop_threshold(1.0, 10, 100) == pytest.approx(0.95)
    assert stop_threshold(1.0, 100, 100) == pytest.approx(0.8)
    assert stop_threshold(1.0, 150, 100) == pytest.approx(0.6)
    assert stop_threshold(2.0, 100, 100) == pytest.approx(0.8)  # progress is clipped


def test_stop_threshold_is_harder_before_the_end_than_after() -> None:
    for progress in (0.0, 0.3, 0.7, 1.0):
        values = [stop_threshold(progress, step, 100) for step in range(0, 200, 5)]
        assert all(a >= b for a, b in zip(values, values[1:], strict=False))  # never harder later in the utterance
        assert values[0] > values[-1]


def test_stop_threshold_tensor_matches_scalar() -> None:
    steps = torch.tensor([0, 50, 90, 100, 105, 130])
    expected_steps = torch.tensor([100.0, 100.0, 100.0, 100.0, 100.0, 100.0])
    out = stop_threshold(0.4, steps, expected_steps)
    assert isinstance(out, torch.Tensor) and out.shape == (6,)
    scalar = [stop_threshold(0.4, int(s), 100.0) for s in steps]
    torch.testing.assert_close(out, torch.tensor(scalar, dtype=torch.float32))
    per_utterance = stop_threshold(0.0, 100, torch.tensor([100.0, 50.0]))
    torch.testing.assert_close(per_utterance, torch.tensor([0.3, 0.1]))


def test_expected_decoder_steps_and_frames_per_char() -> None:
    assert expected_decoder_steps(20, 6.0, 2) == pytest.approx(60.0)
    torch.testing.assert_close(expected_decoder_steps(torch.tensor([10, 30]), 6.0, 3), torch.tensor([20.0, 60.0]))
    assert estimate_frames_per_char([100, 300], [20, 30]) == pytest.approx(8.0)
    with pytest.raises(ValueError):
        estimate_frames_per_char([1], [0])
