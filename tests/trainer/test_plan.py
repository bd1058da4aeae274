"""Epoch planner: size classes, complexity measures on synthetic voices, the arithmetic of epochs and steps."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from trainer.training.plan import (
    VoiceMeasures,
    complexity_class,
    measure_points,
    measure_signal,
    measure_voice,
    plan_from_measures,
    plan_training,
    size_class,
)

RATE = 22050


def tone(seconds: float, f0: float = 150.0, vibrato_semitones: float = 0.0, level_swing_db: float = 0.0) -> np.ndarray:
    """A sine at ``f0`` whose pitch swings ±vibrato (1.5 Hz) and level ±swing dB (2 Hz) around -12 dBFS."""
    t = np.arange(int(seconds * RATE)) / RATE
    freq = f0 * 2.0 ** (vibrato_semitones / 12.0 * np.sin(2 * np.pi * 1.5 * t))
    phase = 2 * np.pi * np.cumsum(freq) / RATE
    level_db = -12.0 + level_swing_db * np.sin(2 * np.pi * 2.0 * t)
    return (10 ** (level_db / 20) * np.sin(phase)).astype(np.float32)


def text_of(length: int) -> str:
    """Return speakable text of exactly ``length`` characters."""
    return ("abc " * length)[: length - 1] + "d"


def write_corpus(folder: Path, clips: list[tuple[np.ndarray, int]]) -> Path:
    """Write an LJSpeech folder: each clip (samples, characters of text)."""
    (folder / "wavs").mkdir(parents=True)
    rows = []
    for index, (samples, chars) in enumerate(clips):
        sf.write(folder / "wavs" / f"u{index}.wav", samples, RATE, subtype="PCM_16")
        text = text_of(chars)
        rows.append(f"u{index}|{text}|{text}")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def test_size_classes_at_their_boundaries() -> None:
    minutes = 60.0
    assert size_class(29.9 * minutes) == ("under 30 min", 5000)
    assert size_class(30 * minutes)[1] == 4000
    assert size_class(59.9 * minutes)[1] == 4000
    assert size_class(60 * minutes)[1] == 3000
    assert size_class(3 * 3600 - 1)[1] == 3000
    assert size_class(3 * 3600)[1] == 2500
    assert size_class(10 * 3600 - 1)[1] == 2500
    assert size_class(10 * 3600)[1] == 2000
    assert size_class(100 * 3600) == ("over 10 h", 2000)


def test_points_and_complexity_classes() -> None:
    assert measure_points(1.0, 4.0, 11.0) == {"pitch": 0, "energy": 0, "rate": 0}
    assert measure_points(2.0, 8.0, 15.0) == {"pitch": 1, "energy": 1, "rate": 1}  # typical read speech
    assert measure_points(5.0, 14.0, 21.0) == {"pitch": 3, "energy": 3, "rate": 3}
    assert measure_points(math.nan, 4.0, 11.0)["pitch"] == 0
    assert complexity_class({"pitch": 0, "energy": 0, "rate": 2}) == ("simple", 0.8)  # mean 0.67
    assert complexity_class({"pitch": 1, "energy": 1, "rate": 0}) == ("simple", 0.8)  # 0.67
    assert complexity_class({"pitch": 1, "energy": 1, "rate": 1}) == ("moderate", 1.0)  # 1.0
    assert complexity_class({"pitch": 2, "energy": 1, "rate": 1}) == ("moderate", 1.0)  # 1.33
    assert complexity_class({"pitch": 2, "energy": 2, "rate": 1}) == ("complex", 1.3)  # 1.67
    assert complexity_class({"pitch": 3, "energy": 3, "rate": 1}) == ("very complex", 1.6)  # 2.33


def test_pitch_and_energy_spread_of_known_signals() -> None:
    f0, levels = measure_signal(torch.from_numpy(tone(1.5)), RATE)
    assert float(f0.median()) == pytest.approx(150.0, rel=0.03)
    assert float((12 * torch.log2(f0 / f0.median())).abs().max()) < 0.5
    assert float(levels.std()) < 0.5

    # ±4 semitones of sinusoidal vibrato: robust spread 1.4826 · 4 · sin(π/4) ≈ 4.2 semitones,
    # whatever the loudness does meanwhile (the detector is amplitude-normalised).
    f0, levels = measure_signal(torch.from_numpy(tone(2.0, vibrato_semitones=4.0, level_swing_db=10.0)), RATE)
    semitones = 12 * torch.log2(f0 / f0.median())
    spread = float(1.4826 * (semitones - semitones.median()).abs().median())
    assert spread == pytest.approx(4.2, abs=0.6)
    assert float(levels.std(correction=0)) == pytest.approx(10 / math.sqrt(2), abs=1.0)  # a ±10 dB sine


def test_steady_and_expressive_voices_land_in_opposite_classes(tmp_path: Path) -> None:
    steady = write_corpus(tmp_path / "steady", [(tone(1.5), 15)] * 3)  # 10 characters/s
    lively = write_corpus(tmp_path / "lively", [(tone(1.5, vibrato_semitones=8.0, level_swing_db=18.0), 36)] * 3)

    calm = measure_voice(steady)
    assert calm.chars_per_second == pytest.approx(10.0, rel=0.01)
    assert calm.pitch_spread_semitones < 0.5 and calm.energy_spread_db < 1.0
    assert calm.utterances_measured == calm.utterances_total == 3
    assert complexity_class(calm.points()) == ("simple", 0.8)

    busy = measure_voice(lively, max_utterances=2)
    assert busy.utterances_measured == 2 and busy.utterances_total == 3
    assert busy.chars_per_second == pytest.approx(24.0, rel=0.01)
    assert busy.pitch_spread_semitones > 5.0
    assert 10.0 < busy.energy_spread_db < 14.0  # a ±18 dB sine: 12.7 dB
    assert complexity_class(busy.points()) == ("very complex", 1.6)


def test_plan_training_end_to_end(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c", [(tone(1.5), 15)] * 3)
    plan = plan_training(corpus, batch_size=12, grad_accum_steps=3)
    assert (plan.size_class, plan.base_epochs, plan.complexity_class, plan.factor) == ("under 30 min", 5000,
                                                                                      "simple", 0.8)
    assert plan.total_seconds == pytest.approx(4.5, abs=0.01)
    assert plan.epochs == 4000
    assert plan.steps == math.ceil(4000 * 3 / 36)
    held_out = plan_training(corpus, batch_size=2, grad_accum_steps=1, val_size=1)
    assert held_out.utterances == 2 and held_out.steps == 4000
    text = "\n".join(plan.explain())
    for expected in ("under 30 min", "5000 epochs", "simple", "4000", "10.0 characters/s", str(plan.steps)):
        assert expected in text


def test_plan_from_measures_arithmetic() -> None:
    measures = VoiceMeasures(pitch_spread_semitones=4.0, median_f0_hz=120.0, energy_spread_db=11.0,
                             chars_per_second=15.0, utterances_measured=20, utterances_total=13100,
                             voiced_frames=1000)  # points 2, 2, 1 -> complex
    plan = plan_from_measures(24 * 3600, 13000, measures, batch_size=16, grad_accum_steps=2)
    assert (plan.size_class, plan.complexity_class, plan.epochs) == ("over 10 h", "complex", 2600)
    assert plan.steps == math.ceil(2600 * 13000 / 32)
    with pytest.raises(ValueError):
        plan_from_measures(10.0, 0, measures)


def test_unusable_corpus_is_an_error(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "short", [(tone(0.1), 5)])  # shorter than min_seconds
    with pytest.raises(ValueError, match="no usable"):
        plan_training(corpus)
