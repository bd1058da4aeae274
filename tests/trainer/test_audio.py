"""Audio I/O and log-mel features, checked against an independent numpy implementation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from trainer.audio import mel as audio
from trainer.audio.mel import AudioError, griffin_lim, load_audio, mel_spectrogram

SR = 22050


# --------------------------------------------------------------------------- independent reference
# Written from the definitions (librosa's Slaney formulas, a plain numpy STFT), sharing no code
# with trainer.audio.mel, so a wrong scale, norm, window, padding, power or log shows up here.


def slaney_hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp  # 15
    logstep = math.log(6.4) / 27.0
    linear = hz / f_sp
    log = min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log, linear)


def slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def slaney_filterbank(sr: int = SR, n_fft: int = 1024, n_mels: int = 80, fmin: float = 0.0,
                      fmax: float = 8000.0) -> np.ndarray:
    """Return (n_mels, 1 + n_fft // 2) triangular filters with area normalisation 2 / (f[m+2] - f[m])."""
    fft_freqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    mel_f = slaney_mel_to_hz(np.linspace(slaney_hz_to_mel(fmin), slaney_hz_to_mel(fmax), n_mels + 2))
    weights = np.zeros((n_mels, fft_freqs.size))
    for m in range(n_mels):
        left, centre, right = mel_f[m], mel_f[m + 1], mel_f[m + 2]
        rising = (fft_freqs - left) / (centre - left)
        falling = (right - fft_freqs) / (right - centre)
        weights[m] = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (right - left))
    return weights


def numpy_log_mel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (log-mel, linear mel) of a mono signal at 22,050 Hz, (80, 1 + len // 256)."""
    x = np.asarray(x, dtype=np.float64)
    n_fft, hop = 1024, 256
    padded = np.pad(x, n_fft // 2, mode="reflect")
    frames = 1 + x.size // hop
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    stack = np.stack([padded[i * hop:i * hop + n_fft] * window for i in range(frames)], axis=1)
    magnitude = np.abs(np.fft.rfft(stack, axis=0))  # power 1
    mel = slaney_filterbank() @ magnitude
    return np.log(np.maximum(mel, 1e-5)), mel


def sine_mix(seconds: float = 1.3, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return 0.4 * np.sin(2 * np.pi * 440.0 * t) + 0.2 * np.sin(2 * np.pi * 3000.0 * t)


def test_reference_filterbank_is_sane():
    """Guard the reference itself: 1000 Hz is mel 15, and the mapping inverts."""
    assert slaney_hz_to_mel(1000.0) == pytest.approx(15.0)
    assert slaney_hz_to_mel(500.0) == pytest.approx(7.5)
    hz = np.array([0.0, 300.0, 999.0, 1000.0, 4321.0, 8000.0])
    np.testing.assert_allclose(slaney_mel_to_hz(slaney_hz_to_mel(hz)), hz, rtol=1e-12, atol=1e-9)
    fb = slaney_filterbank()
    assert fb.shape == (80, 513) and (fb >= 0).all()
    assert fb[:, np.linspace(0, SR / 2, 513) > 8000.0].max() == 0.0


# --------------------------------------------------------------------------- mel features


@pytest.mark.parametrize("signal", ["sines", "noise"])
def test_mel_matches_independent_numpy_reference(signal):
    if signal == "sines":
        x = sine_mix()
    else:
        x = 0.1 * np.random.default_rng(0).standard_normal(20_000)
    ref_log, ref_mel = numpy_log_mel(x)
    out = mel_spectrogram(torch.tensor(x, dtype=torch.float32), SR)
    assert out.dtype == torch.float32
    assert out.shape == ref_log.shape == (80, 1 + x.size // 256)
    out = out.numpy().astype(np.float64)
    audible = ref_mel > 1e-3
    assert audible.mean() > 0.2  # the comparison covers a real share of the cells
    np.testing.assert_allclose(out[audible], ref_log[audible], atol=1e-3, rtol=0)
    # Where the reference is far below the floor, the output sits exactly on log(1e-5).
    silent = ref_mel < 1e-7
    if silent.any():
        np.testing.assert_allclose(out[silent], math.log(1e-5), atol=1e-4)
    assert out.min() >= math.log(1e-5) - 1e-6


def test_mel_peaks_in_the_bands_of_the_tones():
    """Two tones light up the mel bands whose centres are nearest 440 Hz and 3 kHz."""
    out = mel_spectrogram(torch.tensor(sine_mix(), dtype=torch.float32), SR)
    profile = out[:, 10:-10].mean(dim=1).numpy()
    centres = slaney_mel_to_hz(np.linspace(slaney_hz_to_mel(0), slaney_hz_to_mel(8000), 82))[1:-1]
    band_440 = int(np.abs(centres - 440).argmin())
    band_3k = int(np.abs(centres - 3000).argmin())
    low = centres < 1500.0
    assert abs(int(profile[low].argmax()) - band_440) <= 1
    assert abs(int(np.flatnonzero(~low)[profile[~low].argmax()]) - band_3k) <= 1
    assert profile.argmax() == profile[low].argmax()  # the louder tone is the 440 Hz one


@pytest.mark.parametrize("samples", [513, 2000, 22050, 22050 + 255, 22050 + 256])
def test_frame_count_is_one_plus_samples_over_hop(samples):
    wav = torch.randn(samples) * 0.1
    assert mel_spectrogram(wav, SR).shape == (80, 1 + samples // 256)


def test_batched_input_matches_one_at_a_time():
    wavs = torch.randn(2, 3, 6000) * 0.1
    out = mel_spectrogram(wavs, SR)
    assert out.shape == (2, 3, 80, 1 + 6000 // 256)
    torch.testing.assert_close(out[1, 2], mel_spectrogram(wavs[1, 2], SR), atol=1e-5, rtol=0)
    assert not torch.allclose(out[0, 0], out[1, 2])


def test_other_rate_is_resampled_to_22050():
    sr16 = 16_000
    t = np.arange(sr16) / sr16  # 1 s at 16 kHz
    x16 = torch.tensor(0.5 * np.sin(2 * np.pi * 440.0 * t), dtype=torch.float32)
    out16 = mel_spectrogram(x16, sr16)
    resampled = torchaudio.functional.resample(x16, sr16, SR)
    assert resampled.shape[-1] == SR
    torch.testing.assert_close(out16, mel_spectrogram(resampled, SR))
    assert out16.shape == (80, 1 + SR // 256)
    # And independently: the same tone synthesised directly at 22,050 Hz gives (nearly) the same
    # mel away from the edges (the resampler's filter ramps the ends).
    ref_log, ref_mel = numpy_log_mel(0.5 * np.sin(2 * np.pi * 440.0 * np.arange(SR) / SR))
    inner = slice(8, -8)
    loud = ref_mel[:, inner] > 1e-1
    assert loud.sum() > 50
    np.testing.assert_allclose(out16.numpy()[:, inner][loud], ref_log[:, inner][loud], atol=0.02)


def test_silence_is_the_log_floor():
    out = mel_spectrogram(torch.zeros(4000), SR)
    torch.testing.assert_close(out, torch.full_like(out, math.log(1e-5)))


# --------------------------------------------------------------------------- reading audio


def test_load_audio_mono_wav_round_trip(tmp_path: Path):
    x = (0.5 * np.sin(2 * np.pi * 220.0 * np.arange(5000) / SR)).astype(np.float32)
    path = tmp_path / "a.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    wav, rate = load_audio(path)
    assert rate == SR and wav.dtype == torch.float32 and wav.shape == (5000,)
    np.testing.assert_allclose(wav.numpy(), x, atol=1e-7)


def test_stereo_is_mixed_to_mono(tmp_path: Path):
    left = (0.6 * np.sin(2 * np.pi * 300.0 * np.arange(4000) / SR)).astype(np.float32)
    right = np.full(4000, 0.2, dtype=np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="FLOAT")
    wav, rate = load_audio(path)
    assert wav.shape == (4000,) and rate == SR
    np.testing.assert_allclose(wav.numpy(), (left + right) / 2, atol=1e-6)


def test_flac_is_read(tmp_path: Path):
    x = (0.5 * np.sin(2 * np.pi * 330.0 * np.arange(6000) / SR)).astype(np.float32)
    path = tmp_path / "clip.flac"
    sf.write(path, x, SR, format="FLAC", subtype="PCM_16")
    wav, rate = load_audio(path)
    assert rate == SR and wav.shape == (6000,)
    np.testing.assert_allclose(wav.numpy(), x, atol=2 / 32768)


def test_load_resamples_and_reports_original_rate(tmp_path: Path):
    sr16 = 16_000
    x = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(sr16) / sr16)).astype(np.float32)
    path = tmp_path / "16k.flac"
    sf.write(path, x, sr16, format="FLAC", subtype="PCM_24")
    wav, rate = load_audio(path)
    assert rate == sr16
    assert wav.shape == (SR,)
    spectrum = np.abs(np.fft.rfft(wav.numpy()))
    assert np.fft.rfftfreq(SR, 1 / SR)[spectrum.argmax()] == pytest.approx(440.0, abs=2.0)
    # At the target rate nothing is resampled.
    same, rate = load_audio(path, target_rate=sr16)
    assert rate == sr16 and same.shape == (sr16,)


def test_peak_normalisation(tmp_path: Path):
    x = (0.1 * np.sin(2 * np.pi * 200.0 * np.arange(4000) / SR)).astype(np.float32)
    path = tmp_path / "quiet.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    plain, _ = load_audio(path)
    loud, _ = load_audio(path, peak_normalize=True)
    assert float(plain.abs().max()) == pytest.approx(0.1, abs=1e-4)
    assert float(loud.abs().max()) == pytest.approx(0.95, abs=1e-5)
    np.testing.assert_allclose(loud.numpy(), plain.numpy() * (0.95 / float(plain.abs().max())), atol=1e-6)
    # Digital silence stays silence (no division by zero).
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(1000, dtype=np.float32), SR, subtype="FLOAT")
    wav, _ = load_audio(silent, peak_normalize=True)
    assert torch.isfinite(wav).all() and float(wav.abs().max()) == 0.0


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEgarbage", b"\x00\x01" * 500])
def test_corrupt_file_raises_audio_error_naming_it(tmp_path: Path, content: bytes):
    path = tmp_path / "broken-clip.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert "broken-clip.wav" in str(info.value)


def test_missing_file_raises_audio_error_naming_it(tmp_path: Path):
    with pytest.raises(AudioError, match="nowhere.wav"):
        load_audio(tmp_path / "nowhere.wav")


def test_file_without_samples_raises_audio_error(tmp_path: Path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR, subtype="PCM_16")
    with pytest.raises(AudioError, match="empty.wav"):
        load_audio(path)


# --------------------------------------------------------------------------- Griffin-Lim and writing


def test_griffin_lim_gives_audible_wave_of_the_right_length_and_pitch():
    t = np.arange(SR) / SR
    x = torch.tensor(0.5 * np.sin(2 * np.pi * 440.0 * t), dtype=torch.float32)
    mel = mel_spectrogram(x, SR)
    wav = griffin_lim(mel, n_iter=16)
    assert wav.ndim == 1
    expected = (mel.shape[-1] - 1) * audio.HOP_LENGTH
    assert abs(wav.shape[0] - expected) <= audio.HOP_LENGTH
    assert abs(wav.shape[0] - SR) <= 2 * audio.HOP_LENGTH
    assert torch.isfinite(wav).all()
    assert float(wav.abs().max()) == pytest.approx(0.95, abs=1e-4)
    assert float(wav.pow(2).mean().sqrt()) > 0.1
    spectrum = np.abs(np.fft.rfft(wav.numpy()))
    peak_hz = np.fft.rfftfreq(wav.shape[0], 1 / SR)[spectrum.argmax()]
    assert peak_hz == pytest.approx(440.0, abs=40.0)


def test_write_wav_is_16_bit_mono_and_reads_back(tmp_path: Path):
    wav = torch.linspace(-1.5, 1.5, 3000)  # out-of-range samples are clipped, not wrapped
    path = tmp_path / "out.wav"
    audio.write_wav(path, wav)
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (SR, 1, "PCM_16", 3000)
    back, _ = load_audio(path)
    np.testing.assert_allclose(back.numpy(), wav.clamp(-1, 1).numpy(), atol=2 / 32768)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_griffin_lim_is_repeatable_and_leaves_the_callers_random_numbers_alone() -> None:
    mel = torch.randn(80, 30, generator=torch.Generator().manual_seed(2)) - 4.0
    torch.manual_seed(5)
    first = griffin_lim(mel, n_iter=4)
    after = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(griffin_lim(mel, n_iter=4), first)
    assert torch.equal(torch.rand(3), after)  # a training run's stream does not depend on what was vocoded


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 9])
def test_griffin_lim_takes_the_few_frames_of_a_sentence_that_stopped_at_once(frames: int) -> None:
    # A free-running sentence can stop after one decoder step: validation must score it, not crash.
    wav = griffin_lim(torch.randn(80, frames) - 4.0, n_iter=4)
    assert wav.shape == (max(frames - 1, 1) * 256,) and torch.isfinite(wav).all()
