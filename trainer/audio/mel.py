"""Audio I/O, log-mel features in the public Tacotron2/HiFi-GAN convention, and Griffin-Lim.

Convention (the one of the public Tacotron2 and HiFi-GAN checkpoints, so that their
vocoders read our mels): 22,050 Hz, n_fft 1024, hop 256, win 1024 (Hann), 80 mels, fmin 0,
fmax 8000, Slaney mel scale and area normalisation, magnitude (power 1), natural log of
clamp(x, 1e-5). Frames are centred with reflect padding as in NVIDIA/tacotron2's
TacotronSTFT, so a clip of S samples gives 1 + S // 256 frames.
"""

from __future__ import annotations

import functools
import io
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from trainer.audio.format import SAMPLE_RATE
from trainer.errors import AudioError

N_FFT = 1024
HOP_LENGTH = 256
WIN_LENGTH = 1024
N_MELS = 80
F_MIN = 0.0
F_MAX = 8000.0
LOG_CLAMP = 1e-5
GL_MIN_FRAMES = 4  # the fewest mel frames Griffin-Lim's STFT round trip takes (n_fft 1024, hop 256)


def load_audio(path: str | Path, target_rate: int = SAMPLE_RATE,
               peak_normalize: bool = False) -> tuple[torch.Tensor, int]:
    """Return ``(wav, original_rate)``: wav is float32 (samples,) in [-1, 1] at ``target_rate``.

    Multichannel audio is mixed to mono; another rate is resampled with torchaudio;
    ``peak_normalize`` scales the peak to 0.95.
    """
    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioError(f"{path}: unreadable audio ({str(err).splitlines()[0]})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio has no samples")
    wav = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    if rate != target_rate:
        wav = torchaudio.functional.resample(wav, rate, target_rate)
    if peak_normalize:
        peak = wav.abs().max()
        if peak > 0:
            wav = wav * (0.95 / peak)
    return wav, int(rate)


@functools.lru_cache(maxsize=8)
def _mel_transform(device: str) -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=SAMPLE_RATE,
        n_fft=N_FFT,
        win_length=WIN_LENGTH,
        hop_length=HOP_LENGTH,
        f_min=F_MIN,
        f_max=F_MAX,
        n_mels=N_MELS,
        power=1.0,
        center=True,
        pad_mode="reflect",
        norm="slaney",
        mel_scale="slaney",
    ).to(device)


def mel_spectrogram(wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Return the log-mel spectrogram (..., 80, frames) of ``wav`` (..., samples).

    Values are natural log of clamp(mel magnitude, 1e-5); frames = 1 + samples // 256 at
    22,050 Hz. Audio at another ``sample_rate`` is resampled to 22,050 Hz first.
    """
    wav = wav.to(torch.float32)
    if sample_rate != SAMPLE_RATE:
        wav = torchaudio.functional.resample(wav, sample_rate, SAMPLE_RATE)
    if wav.shape[-1] <= N_FFT // 2:
        # Reflect padding needs more samples than it pads; such a clip (<= 23 ms) has no speech anyway.
        raise AudioError(f"audio too short for mel features: {wav.shape[-1]} samples (need > {N_FFT // 2})")
    mel = _mel_transform(str(wav.device))(wav)
    return torch.log(torch.clamp(mel, min=LOG_CLAMP))


@functools.lru_cache(maxsize=1)
def mel_band_centres() -> torch.Tensor:
    """Return the (80,) centre frequency of each mel band in Hz (the centroid of its filter)."""
    fbank = _mel_transform("cpu").mel_scale.fb  # (n_freqs, n_mels)
    freqs = torch.linspace(0.0, SAMPLE_RATE / 2, fbank.shape[0])
    return (fbank * freqs[:, None]).sum(0) / fbank.sum(0).clamp(min=1e-12)


@functools.lru_cache(maxsize=2)
def _mel_pseudo_inverse(device: str) -> torch.Tensor:
    fbank = _mel_transform(device).mel_scale.fb  # (n_freqs, n_mels)
    return torch.linalg.pinv(fbank.T)  # (n_freqs, n_mels)


def griffin_lim(log_mel: torch.Tensor, n_iter: int = 32) -> torch.Tensor:
    """Return a waveform (samples,) at 22,050 Hz from a log-mel (80, frames) by Griffin-Lim.

    The linear magnitude is estimated with the filterbank's pseudo-inverse (clamped at 0);
    the phase by ``n_iter`` Griffin-Lim iterations. Good enough to listen to, not a vocoder.
    A mel of F frames gives (F - 1) × 256 samples (at least 256).
    The random initial phase comes from a private, fixed-seed generator: the same mel gives
    the same wav, and the caller's random numbers (a training run's) are left untouched.
    """
    log_mel = log_mel.detach().float().cpu()
    frames = log_mel.shape[-1]
    if frames < GL_MIN_FRAMES:
        # A sentence that stopped after a decoder step or two: the STFT's reflect padding needs
        # more samples than so few frames give, so pad with silence and keep the frames' own length.
        silence = torch.full((log_mel.shape[0], GL_MIN_FRAMES - frames), math.log(LOG_CLAMP))
        wav = griffin_lim(torch.cat([log_mel, silence], dim=-1), n_iter)
        return wav[: max(frames - 1, 1) * HOP_LENGTH]
    magnitude = torch.clamp(_mel_pseudo_inverse("cpu") @ torch.exp(log_mel), min=0.0)
    transform = torchaudio.transforms.GriffinLim(
        n_fft=N_FFT, n_iter=n_iter, win_length=WIN_LENGTH, hop_length=HOP_LENGTH, power=1.0
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        wav = transform(magnitude)
    peak = wav.abs().max()
    return wav * (0.95 / peak) if peak > 0 else wav


def write_wav(path: str | Path, wav: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> None:
    """Write ``wav`` (samples,) as 16-bit PCM mono to ``path`` atomically."""
    from trainer.fileio import atomic_write_bytes

    buffer = io.BytesIO()
    sf.write(buffer, wav.detach().cpu().clamp(-1, 1).numpy(), sample_rate, subtype="PCM_16", format="WAV")
    atomic_write_bytes(Path(path), buffer.getvalue())
