"""The audio enhancer: post-processing of inference log-mels before vocoding.

Input and output are natural-log mel magnitudes (80, frames) in the trainer's convention
(``trainer.audio.mel``: log of clamp(x, 1e-5)), so "silence" is the floor ln(1e-5) ≈ −11.51.

Every level decision is keyed on the utterance's *speech level* (``speech_reference``):
the 95th percentile over frames of each frame's loudest band below 4 kHz, where voiced
speech puts its energy. Not on the loudest cell: an acoustic model early in training can
predict absurd values in a few bands (log 10.5 in the top bands, where speech lies between
about −4 and 0), and a gate 60 dB below such a peak silences all of the real speech.

Steps, each switchable in ``EnhancerConfig``, run in this order:

1. ceiling: cells more than ``ceiling_db`` (10 dB) above the speech level are lowered to
   it. Real speech has no such cell (on 100 utterances of the demo corpus the loudest
   cell lies 3.8 dB above the speech level at the median, 8.1 dB at most, and the bands
   above 4 kHz 18 dB or more below it); such cells are model errors, and left alone they
   dominate Griffin-Lim's peak normalisation.
2. spectral smoothing: a small Gaussian across neighbouring mel bands, in the log domain,
   with half-sample symmetric edges so every frame keeps its mean log level exactly.
3. noise gate: every cell more than ``gate_db`` (60 dB) below the speech level (or below
   magnitude 1.0 with ``gate_relative=False``) is set to the floor. −60 dB is a magnitude
   ratio of 1e-3, a log difference of ln(1e-3) ≈ −6.91. After the smoothing, so no gated
   cell is lifted off the floor again.
4. dynamic-range normalisation: a gain (a constant added in the log domain, i.e. the
   magnitudes scaled) that brings the utterance's loudness, the 95th percentile over
   frames of log(mean magnitude of the speech bands), to ``target_loudness``; the gain is
   bounded to ±``max_gain_db``. Floor cells stay at the floor. After the gate, so the
   loudness it sets is the one the vocoder gets; a relative gate does not depend on the
   gain, so the gated cells are the same either way.
5. boundary smoothing: gain fades over ``fade_frames`` at the start and end of the
   utterance and at each silence↔speech transition, so the vocoder gets no abrupt onset
   or cut (clicks in Griffin-Lim and neural vocoders alike). A frame is speech when its
   loudest speech band is within ``silence_db`` of the speech level; pauses shorter than
   ``min_silence_frames`` are not boundaries. Fades act on the speech side only (silence
   is never lifted) and never push a cell below the floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from trainer.audio.mel import LOG_CLAMP, mel_band_centres

__all__ = ["EnhancerConfig", "FLOOR", "SPEECH_MAX_HZ", "enhance", "limit_peaks", "loudness", "noise_gate",
           "normalize_loudness", "smooth_spectrum", "smooth_boundaries", "speech_frames", "speech_reference"]

FLOOR = math.log(LOG_CLAMP)  # ln(1e-5): the log-mel value of silence
SPEECH_MAX_HZ = 4000.0  # voiced speech's strongest energy (the first three formants) lies below this
REFERENCE_PERCENTILE = 95.0  # of frame peaks: the loudest voiced frames, not a stray cell


def _speech_rows(log_mel: Tensor) -> Tensor:
    """Return the bands of ``log_mel`` (bands, frames) whose centre is at most ``SPEECH_MAX_HZ``.

    A mel with another band count than the trainer's 80 is taken whole.
    """
    centres = mel_band_centres()
    if log_mel.shape[0] != centres.numel():
        return log_mel
    return log_mel[: int((centres <= SPEECH_MAX_HZ).sum())]


def speech_reference(log_mel: Tensor, percentile: float = REFERENCE_PERCENTILE) -> float:
    """Return the speech level of ``log_mel`` (bands, frames) in log units.

    The ``percentile`` over frames of each frame's loudest band below ``SPEECH_MAX_HZ``:
    the level of the loudest voiced frames, which neither a few absurd cells nor absurd
    high bands can move. Silent frames lower it only when fewer than 100 − ``percentile``
    per cent of the frames are speech. An empty mel gives the floor.
    """
    _check(log_mel)
    if log_mel.shape[1] == 0:
        return FLOOR
    peaks = _speech_rows(log_mel).max(dim=0).values.double()
    return float(torch.quantile(peaks, percentile / 100.0))


def _db_to_log(db: float) -> float:
    """Return the natural-log magnitude difference of ``db`` decibels (20·log10 convention)."""
    return db / 20.0 * math.log(10.0)


@dataclass
class EnhancerConfig:
    """Which enhancement steps run, and their settings."""

    ceiling: bool = True
    ceiling_db: float = 10.0  # above the speech level

    smoothing: bool = True
    smoothing_sigma: float = 0.7  # mel bands (Gaussian σ); the kernel spans ±ceil(2σ) bands

    gate: bool = True
    gate_db: float = -60.0
    gate_relative: bool = True  # reference: the utterance's speech level (True) or magnitude 1.0 (False)

    normalize: bool = True
    # ``loudness()`` units: log(mean magnitude of the speech bands), 95th percentile over frames.
    # -1.75 is the median of the eSpeak demo corpus (-1.94..-1.57); set it from your corpus's mels.
    target_loudness: float = -1.75
    loudness_percentile: float = 95.0
    max_gain_db: float = 12.0

    boundaries: bool = True
    fade_frames: int = 3  # ≈ 35 ms at hop 256 / 22,050 Hz
    silence_db: float = -40.0  # a frame whose loudest speech band is this far below the speech level is silence
    min_silence_frames: int = 3

    @classmethod
    def off(cls) -> EnhancerConfig:
        """Return a config with every step switched off (``enhance`` is then the identity)."""
        return cls(ceiling=False, smoothing=False, normalize=False, gate=False, boundaries=False)


def _check(log_mel: Tensor) -> None:
    if log_mel.dim() != 2:
        raise ValueError(f"expected a log-mel of shape (bands, frames), got {tuple(log_mel.shape)}")


def smooth_spectrum(log_mel: Tensor, sigma: float = 0.7) -> Tensor:
    """Return ``log_mel`` (bands, frames) smoothed across bands by a Gaussian of ``sigma`` bands; same shape.

    Edges use half-sample symmetric padding (band −1 mirrors band 0, −2 mirrors 1, ...).
    With a symmetric kernel that makes the smoothing matrix symmetric and row-stochastic,
    hence also column-stochastic, so each frame's mean over bands is unchanged.
    """
    _check(log_mel)
    if sigma <= 0:
        return log_mel.clone()
    radius = max(1, math.ceil(2 * sigma))
    radius = min(radius, log_mel.shape[0])  # the mirror needs this many bands
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(log_mel.dtype)
    padded = torch.cat([log_mel[:radius].flip(0), log_mel, log_mel[-radius:].flip(0)], dim=0)
    # conv1d over bands: frames become the batch, bands the length.
    out = F.conv1d(padded.T.unsqueeze(1), kernel.view(1, 1, -1))
    return out.squeeze(1).T.contiguous()


def limit_peaks(log_mel: Tensor, ceiling_db: float = 10.0) -> Tensor:
    """Return ``log_mel`` (bands, frames) with every cell above speech level + ``ceiling_db`` lowered to it."""
    _check(log_mel)
    if log_mel.shape[1] == 0:
        return log_mel.clone()
    return log_mel.clamp(max=speech_reference(log_mel) + _db_to_log(ceiling_db))


def loudness(log_mel: Tensor, percentile: float = 95.0) -> float:
    """Return the utterance's loudness in log units: the ``percentile`` over frames of log(mean magnitude)
    of the speech bands (centre at most ``SPEECH_MAX_HZ``).

    Compute the same figure on training mels (e.g. the median over a corpus) to set
    ``EnhancerConfig.target_loudness`` for another voice.
    """
    _check(log_mel)
    rows = _speech_rows(log_mel).double()
    frame_level = torch.logsumexp(rows, dim=0) - math.log(rows.shape[0])
    return float(torch.quantile(frame_level, percentile / 100.0))


def normalize_loudness(log_mel: Tensor, target: float = -1.75, percentile: float = 95.0,
                       max_gain_db: float = 12.0) -> Tensor:
    """Return ``log_mel`` (bands, frames) with a gain that brings ``loudness`` to ``target``; same shape.

    The gain g = clip(target − loudness, ±max_gain_db in log units) is added to every cell
    above the floor (cells at the floor stay silent) and the result is clamped at the floor.
    """
    _check(log_mel)
    bound = _db_to_log(max_gain_db)
    gain = min(max(target - loudness(log_mel, percentile), -bound), bound)
    above = log_mel > FLOOR
    return torch.where(above, (log_mel + gain).clamp(min=FLOOR), log_mel)


def noise_gate(log_mel: Tensor, gate_db: float = -60.0, relative: bool = True) -> Tensor:
    """Return ``log_mel`` (bands, frames) with every cell below the gate set to the floor ln(1e-5); same shape.

    The gate is ``gate_db`` below the speech level (``speech_reference``, when ``relative``)
    or below magnitude 1.0 (log 0); a cell exactly at the gate is kept. No other cell changes.
    """
    _check(log_mel)
    if log_mel.shape[1] == 0:
        return log_mel.clone()
    reference = speech_reference(log_mel) if relative else 0.0
    threshold = reference + _db_to_log(gate_db)
    return torch.where(log_mel < threshold, torch.full_like(log_mel, FLOOR), log_mel)


def speech_frames(log_mel: Tensor, silence_db: float = -40.0, min_silence_frames: int = 3) -> Tensor:
    """Return a (frames,) bool mask on the input's device: True on speech frames.

    A frame is speech when its loudest speech band is within ``silence_db`` of the speech
    level (``speech_reference``); silent runs shorter than ``min_silence_frames`` between
    speech frames count as speech.
    """
    _check(log_mel)
    if log_mel.shape[1] == 0:
        return torch.zeros(0, dtype=torch.bool, device=log_mel.device)
    frame_peak = _speech_rows(log_mel).max(dim=0).values
    # The run-length pass below is a Python loop over frames: do it on the CPU.
    speech = (frame_peak >= speech_reference(log_mel) + _db_to_log(silence_db)).cpu()
    # Short pauses inside speech (a stop closure) are not segment boundaries.
    frames = speech.numel()
    start = None
    for index in range(frames + 1):
        silent = index < frames and not bool(speech[index])
        if silent and start is None:
            start = index
        elif not silent and start is not None:
            inner = start > 0 and index < frames
            if inner and index - start < min_silence_frames:
                speech[start:index] = True
            start = None
    return speech.to(log_mel.device)


def _fade(length: int) -> Tensor:
    """Return (length,) gains rising from near 0 to near 1: sin² of a quarter period, never exactly 0 or 1."""
    position = torch.arange(1, length + 1, dtype=torch.float64) / (length + 1)
    return torch.sin(0.5 * math.pi * position) ** 2


def smooth_boundaries(log_mel: Tensor, fade_frames: int = 3, silence_db: float = -40.0,
                      min_silence_frames: int = 3) -> Tensor:
    """Return ``log_mel`` (bands, frames) with fade-in/out gains at the utterance edges and segment boundaries.

    Each speech segment (``speech_frames``) and the utterance as a whole get a rising gain
    over their first ``fade_frames`` frames and a falling one over their last (halved for
    segments too short for both); a frame under several fades takes the smallest gain.
    Gains apply in the log domain (log g added) to cells above the floor, clamped at the floor.
    """
    _check(log_mel)
    frames = log_mel.shape[1]
    if fade_frames <= 0 or frames == 0:
        return log_mel.clone()
    gain = torch.ones(frames, dtype=torch.float64)

    def apply(start: int, end: int) -> None:  # fade in and out over [start, end)
        length = min(fade_frames, (end - start) // 2)
        if length <= 0:
            return
        ramp = _fade(length)
        gain[start:start + length] = torch.minimum(gain[start:start + length], ramp)
        gain[end - length:end] = torch.minimum(gain[end - length:end], ramp.flip(0))

    apply(0, frames)
    speech = speech_frames(log_mel, silence_db, min_silence_frames).cpu()
    start = None
    for index in range(frames + 1):
        inside = index < frames and bool(speech[index])
        if inside and start is None:
            start = index
        elif not inside and start is not None:
            apply(start, index)
            start = None
    shift = torch.log(gain).to(device=log_mel.device, dtype=log_mel.dtype).unsqueeze(0)
    above = log_mel > FLOOR
    return torch.where(above, (log_mel + shift).clamp(min=FLOOR), log_mel)


def enhance(log_mel: Tensor, config: EnhancerConfig | None = None) -> Tensor:
    """Return the enhanced log-mel (80, frames) of ``log_mel`` (80, frames); steps and order in the module docstring.

    The input is not modified; with every step off the result equals the input. Works on
    any device; the output has the input's dtype and device.
    """
    _check(log_mel)
    config = config or EnhancerConfig()
    out = log_mel.detach().clone()
    if out.shape[1] == 0:
        return out
    if config.ceiling:
        out = limit_peaks(out, config.ceiling_db)
    if config.smoothing:
        out = smooth_spectrum(out, config.smoothing_sigma)
    if config.gate:
        out = noise_gate(out, config.gate_db, config.gate_relative)
    if config.normalize:
        out = normalize_loudness(out, config.target_loudness, config.loudness_percentile, config.max_gain_db)
    if config.boundaries:
        out = smooth_boundaries(out, config.fade_frames, config.silence_db, config.min_silence_frames)
    return out
