"""Audio enhancer: each step on synthetic log-mels, and the whole chain."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.audio.mel import mel_spectrogram
from trainer.corpora.make import synthesize
from trainer.synthesis.enhance import (
    FLOOR,
    EnhancerConfig,
    enhance,
    limit_peaks,
    loudness,
    noise_gate,
    normalize_loudness,
    smooth_boundaries,
    smooth_spectrum,
    speech_frames,
    speech_reference,
)

DB60 = math.log(1e-3)  # −60 dB in natural-log magnitude


def random_mel(frames: int = 50, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(80, frames, generator=generator) * (2.0 - FLOOR) + FLOOR  # uniform in [floor, 2]


def test_gate_changes_exactly_the_cells_below_minus_60_db() -> None:
    mel = random_mel()
    reference = speech_reference(mel)
    mel[70, 4] = reference + DB60  # exactly at the gate: kept (band 70 is not a speech band, so the level stays)
    gated = noise_gate(mel, -60.0)
    below = mel < reference + DB60
    assert below.any() and (~below).any()
    assert torch.equal(gated[~below], mel[~below])  # nothing else changes, bit for bit
    assert torch.all(gated[below] == FLOOR)
    assert gated[70, 4] == mel[70, 4]


def test_absolute_gate_uses_magnitude_one_as_reference() -> None:
    mel = random_mel()
    gated = noise_gate(mel, -60.0, relative=False)
    below = mel < DB60
    assert torch.equal(gated[~below], mel[~below]) and torch.all(gated[below] == FLOOR)


def test_spectral_smoothing_reduces_band_to_band_variation_and_keeps_the_mean() -> None:
    mel = random_mel(frames=20)
    smooth = smooth_spectrum(mel, sigma=0.7)
    assert smooth.shape == mel.shape
    roughness = lambda m: float(m.diff(dim=0).pow(2).mean())  # noqa: E731
    assert roughness(smooth) < 0.5 * roughness(mel)
    assert torch.allclose(smooth.mean(dim=0), mel.mean(dim=0), atol=1e-5)  # per frame, edges included
    flat = torch.full((80, 5), -3.0)
    assert torch.allclose(smooth_spectrum(flat, sigma=1.5), flat)


def test_normalisation_reaches_its_target_within_the_gain_bound() -> None:
    mel = random_mel() * 0.5 - 3.0  # in [floor/2 - 3, -2]: all above the floor, room for any gain
    mel[:, :5] = FLOOR  # silent frames stay silent
    out = normalize_loudness(mel, target=-2.0, max_gain_db=40.0)
    assert loudness(out) == pytest.approx(-2.0, abs=1e-3)
    assert torch.all(out[:, :5] == FLOOR)
    bounded = normalize_loudness(mel, target=loudness(mel) + 5.0, max_gain_db=12.0)
    gain = 12.0 / 20.0 * math.log(10.0)
    assert torch.allclose(bounded[:, 5:], mel[:, 5:] + gain, atol=1e-5)


def speech_with_gap() -> torch.Tensor:
    """A flat 'speech' mel at log level 0 with frames 20..29 silent (floor) and 60 frames in all."""
    mel = torch.zeros(80, 60)
    mel[:, 20:30] = FLOOR
    return mel


def test_boundaries_ramp_at_edges_and_around_pauses() -> None:
    mel = speech_with_gap()
    out = smooth_boundaries(mel, fade_frames=4, silence_db=-40.0, min_silence_frames=3)
    level = out.mean(dim=0)
    for ramp in (level[0:4], level[30:34]):  # fade-ins: start and after the pause
        assert torch.all(ramp.diff() > 0) and float(ramp[-1]) < 0.0
    for ramp in (level[16:20], level[56:60]):  # fade-outs: before the pause and at the end
        assert torch.all(ramp.diff() < 0) and float(ramp[0]) < 0.0
    assert torch.equal(out[:, 4:16], mel[:, 4:16]) and torch.equal(out[:, 34:56], mel[:, 34:56])
    assert torch.equal(out[:, 20:30], mel[:, 20:30])  # silence is never lifted
    assert float(out.min()) >= FLOOR


def test_short_pause_is_not_a_boundary() -> None:
    mel = torch.zeros(80, 40)
    mel[:, 20:22] = FLOOR  # 2 frames < min_silence_frames
    assert bool(speech_frames(mel, min_silence_frames=3).all())
    out = smooth_boundaries(mel, fade_frames=3, min_silence_frames=3)
    assert torch.equal(out[:, 3:37], mel[:, 3:37])


def test_all_steps_off_is_identity_and_input_is_untouched() -> None:
    mel = random_mel()
    original = mel.clone()
    assert torch.equal(enhance(mel, EnhancerConfig.off()), mel)
    enhance(mel, EnhancerConfig())
    assert torch.equal(mel, original)


def test_full_chain_on_a_real_mel() -> None:
    rate = 22050
    t = torch.arange(rate) / rate
    burst = 0.3 * torch.sin(2 * math.pi * 220 * t) * ((t > 0.2) & (t < 0.8))
    mel = mel_spectrogram(burst, rate)
    without_fades = enhance(mel, EnhancerConfig(boundaries=False, max_gain_db=24.0))
    assert without_fades.shape == mel.shape and torch.isfinite(without_fades).all()
    assert loudness(without_fades) == pytest.approx(EnhancerConfig().target_loudness, abs=1e-3)
    kept = without_fades[without_fades > FLOOR]
    assert float(kept.min()) >= speech_reference(without_fades) + DB60 - 1e-5  # a gain does not undo the gate
    assert (without_fades == FLOOR).sum() > (mel <= FLOOR).sum()  # and gated something

    out = enhance(mel, EnhancerConfig(max_gain_db=24.0))
    assert float(out.min()) >= FLOOR
    changed = (out != without_fades).any(dim=0).nonzero().flatten().tolist()
    speech = speech_frames(without_fades).int()
    edges = [0, mel.shape[1]] + (speech.diff().nonzero().flatten() + 1).tolist()
    assert changed and all(min(abs(f - e) for e in edges) <= 3 for f in changed)  # fades only near boundaries


def speech_mel() -> torch.Tensor:
    """The log-mel (80, frames) of a real eSpeak NG sentence."""
    samples = synthesize("The quick brown fox jumps over the lazy dog.", voice="en-us")
    return mel_spectrogram(torch.from_numpy(samples.astype("float32") / 32768.0), 22050)


def test_speech_level_ignores_absurd_high_bands_and_single_cells() -> None:
    mel = speech_mel()
    bogus = mel.clone()
    bogus[62:] = 10.5  # what an undertrained model predicted above 4 kHz
    assert speech_reference(bogus) == pytest.approx(speech_reference(mel), abs=1e-6)
    bogus[5, 10] = 30.0  # one wild cell moves it by one frame's rank at most
    assert speech_reference(bogus) == pytest.approx(speech_reference(mel), abs=0.1)
    assert float(bogus.max()) - speech_reference(bogus) > 25.0


def test_enhancer_keeps_speech_when_the_model_predicts_absurd_high_bands() -> None:
    # A gate 60 dB below the loudest cell (10.5) would silence every real speech cell below 4 kHz.
    mel = speech_mel()
    bogus = mel.clone()
    bogus[62:] = 10.5
    clean_out, bogus_out = enhance(mel), enhance(bogus)
    speech = slice(0, 60)  # bands well below 4 kHz, out of the smoothing's reach of band 62
    audible = lambda out: float((out[speech] > FLOOR).float().mean())  # noqa: E731
    assert audible(clean_out) > 0.3
    assert audible(bogus_out) == pytest.approx(audible(clean_out), abs=0.02)
    assert torch.allclose(bogus_out[speech], clean_out[speech], atol=0.5)
    # The absurd bands come down from about 75 dB above the loudest real cell to the ceiling, 10 dB over
    # the speech level (which the band smoothing then leaves a few dB above the smoothed real peaks).
    assert float(bogus_out[62:].max()) <= float(clean_out.max()) + 0.75 * math.log(10)


def test_ceiling_lowers_only_cells_far_above_the_speech_level() -> None:
    mel = speech_mel()
    assert torch.equal(limit_peaks(mel, 10.0), mel)  # real speech has no such cell
    bogus = mel.clone()
    bogus[70:] = 10.5
    limited = limit_peaks(bogus, 10.0)
    assert torch.equal(limited[:70], bogus[:70])
    assert float(limited[70:].max()) == pytest.approx(speech_reference(mel) + 0.5 * math.log(10.0), abs=1e-5)
