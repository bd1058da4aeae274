"""The epoch planner: how long to train on a corpus, measured and explained.

epochs = base epochs of the corpus's size class × the voice's complexity factor, and
optimiser steps = ⌈epochs × utterances / (batch_size × grad_accum_steps)⌉.

Size classes by total audio duration (a small corpus needs more passes to be learnt at
all): < 30 min: 5000 epochs, 30–60 min: 4000, 1–3 h: 3000, 3–10 h: 2500, ≥ 10 h: 2000 (a
boundary belongs to the larger class).

Voice complexity is measured from the audio, on a deterministic sample of utterances:

* pitch spread: robust standard deviation (1.4826 × median absolute deviation) of the
  voiced F0, in semitones about the sample's median F0. F0 comes from
  ``torchaudio.functional.detect_pitch_frequency`` on audio resampled to 8 kHz and
  amplitude-normalised over 20 ms (that detector's correlation is scaled by the frames'
  energies, so a rising or falling loudness otherwise shows up as octave jumps). A frame
  counts as voiced when it is within 25 dB of the utterance's loudest frame and its F0 is
  within 60–500 Hz. The median-based spread shrugs off the octave errors that remain.
* energy spread: standard deviation of frame RMS level in dB over the active frames
  (within 40 dB of the utterance's loudest frame), each utterance centred on its own mean
  first, so recording level differences between files do not count as expressiveness.
* speaking rate: characters of normalised text (spaces and punctuation included) per
  second of audio, over all usable utterances (ratio of totals).

Each measure scores 0–3 points against the thresholds below (typical read speech, e.g.
LJSpeech at ~15 characters/s, scores 1 on each); the mean of the three points gives the
class: < 0.75 simple (×0.8), < 1.5 moderate (×1.0), < 2.25 complex (×1.3), else very
complex (×1.6).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
import torch
import torch.nn.functional as F
import torchaudio

from trainer.audio.mel import SAMPLE_RATE, load_audio
from trainer.data.corpus import Utterance, check_corpus
from trainer.errors import AudioError, CorpusError
from trainer.training.schedules import PHASES, phase_boundaries

__all__ = [
    "SIZE_CLASSES",
    "COMPLEXITY_CLASSES",
    "PITCH_THRESHOLDS",
    "ENERGY_THRESHOLDS",
    "RATE_THRESHOLDS",
    "VoiceMeasures",
    "TrainingPlan",
    "size_class",
    "measure_points",
    "complexity_class",
    "measure_signal",
    "measure_voice",
    "plan_from_measures",
    "plan_training",
]

# (upper bound in seconds, exclusive; class name; base epochs)
SIZE_CLASSES: tuple[tuple[float, str, int], ...] = (
    (30 * 60, "under 30 min", 5000),
    (60 * 60, "30-60 min", 4000),
    (3 * 3600, "1-3 h", 3000),
    (10 * 3600, "3-10 h", 2500),
    (math.inf, "over 10 h", 2000),
)

# (upper bound on mean points, exclusive; class name; epoch factor)
COMPLEXITY_CLASSES: tuple[tuple[float, str, float], ...] = (
    (0.75, "simple", 0.8),
    (1.5, "moderate", 1.0),
    (2.25, "complex", 1.3),
    (math.inf, "very complex", 1.6),
)

# A measure scores the number of thresholds it reaches (0..3).
PITCH_THRESHOLDS = (1.5, 3.0, 5.0)  # semitones: monotone < 1.5 <= read speech < 3 <= expressive < 5 <= very
ENERGY_THRESHOLDS = (5.0, 10.0, 14.0)  # dB: flat < 5 <= typical speech < 10 <= dynamic < 14 <= very
RATE_THRESHOLDS = (12.0, 17.0, 21.0)  # characters/s: slow < 12 <= typical < 17 <= fast < 21 <= very fast

PITCH_RATE = 8000  # Hz: F0 up to 500 Hz needs no more, and the detector's cost grows with the rate squared
F0_RANGE = (60.0, 500.0)  # Hz
VOICED_DB = 25.0  # frames within this of the loudest frame may carry F0
ACTIVE_DB = 40.0  # frames within this of the loudest frame are speech, not silence
AGC_SECONDS = 0.02


@dataclass
class VoiceMeasures:
    """What was measured on the audio; units in the names."""

    pitch_spread_semitones: float  # NaN when no voiced frame was found
    median_f0_hz: float
    energy_spread_db: float
    chars_per_second: float
    utterances_measured: int  # utterances whose audio was analysed for pitch and energy
    utterances_total: int  # utterances counted for the speaking rate
    voiced_frames: int

    def points(self) -> dict[str, int]:
        """Return {"pitch", "energy", "rate"}: each measure's complexity points (0..3)."""
        return measure_points(self.pitch_spread_semitones, self.energy_spread_db, self.chars_per_second)


@dataclass
class TrainingPlan:
    """The planner's answer for one corpus; ``explain()`` says how it got there."""

    corpus: str
    size_class: str
    total_seconds: float
    base_epochs: int
    complexity_class: str
    factor: float
    measures: VoiceMeasures
    utterances: int  # training utterances per epoch
    batch_size: int
    grad_accum_steps: int
    epochs: int
    steps: int  # optimiser steps
    notes: list[str] = field(default_factory=list)

    def explain(self) -> list[str]:
        """Return the reasoning as human-readable lines (measured numbers, classes, arithmetic)."""
        m = self.measures
        points = m.points()
        mean_points = sum(points.values()) / 3
        lines = [
            f"corpus: {self.corpus}",
            f"total audio: {self.total_seconds / 60:.1f} min in {m.utterances_total} usable utterances "
            f"-> size class '{self.size_class}': {self.base_epochs} epochs",
            f"pitch spread: {m.pitch_spread_semitones:.2f} semitones (median F0 {m.median_f0_hz:.0f} Hz, "
            f"{m.voiced_frames} voiced frames in {m.utterances_measured} utterances) -> {points['pitch']} points "
            f"(thresholds {_fmt(PITCH_THRESHOLDS)})",
            f"energy spread: {m.energy_spread_db:.2f} dB -> {points['energy']} points "
            f"(thresholds {_fmt(ENERGY_THRESHOLDS)})",
            f"speaking rate: {m.chars_per_second:.1f} characters/s -> {points['rate']} points "
            f"(thresholds {_fmt(RATE_THRESHOLDS)})",
            f"complexity: mean {mean_points:.2f} points -> '{self.complexity_class}', factor {self.factor}",
            f"epochs: {self.base_epochs} x {self.factor} = {self.epochs}",
            f"steps: ceil({self.epochs} epochs x {self.utterances} utterances / "
            f"({self.batch_size} batch x {self.grad_accum_steps} accumulation)) = {self.steps}",
        ]
        bounds = phase_boundaries(max(self.steps, 1))
        lines.append("phases (steps): " + ", ".join(
            f"{name} {bounds[i]}-{bounds[i + 1]}" for i, (name, *_rest) in enumerate(PHASES)))
        lines.extend(self.notes)
        return lines


def _fmt(values: Sequence[float]) -> str:
    return "/".join(f"{v:g}" for v in values)


# ----------------------------------------------------------------- classifiers


def size_class(total_seconds: float) -> tuple[str, int]:
    """Return (size class name, base epochs) for a corpus of ``total_seconds`` of audio."""
    for upper, name, epochs in SIZE_CLASSES:
        if total_seconds < upper:
            return name, epochs
    raise AssertionError("unreachable")


def _points(value: float, thresholds: Sequence[float]) -> int:
    # NaN (nothing measurable) scores 0: no evidence of complexity.
    return sum(1 for threshold in thresholds if value >= threshold)


def measure_points(pitch_semitones: float, energy_db: float, chars_per_second: float) -> dict[str, int]:
    """Return {"pitch", "energy", "rate"}: points 0..3, the number of each measure's thresholds reached."""
    return {"pitch": _points(pitch_semitones, PITCH_THRESHOLDS),
            "energy": _points(energy_db, ENERGY_THRESHOLDS),
            "rate": _points(chars_per_second, RATE_THRESHOLDS)}


def complexity_class(points: Mapping[str, int]) -> tuple[str, float]:
    """Return (complexity class name, epoch factor) for the mean of ``points``' values."""
    mean = sum(points.values()) / max(len(points), 1)
    for upper, name, factor in COMPLEXITY_CLASSES:
        if mean < upper:
            return name, factor
    raise AssertionError("unreachable")


# ------------------------------------------------------------------ measuring


def _frame_levels_db(wav: torch.Tensor, frames: int) -> torch.Tensor:
    """Return (frames,) RMS levels in dB of ``wav`` cut into ``frames`` near-equal chunks."""
    chunks = torch.tensor_split(wav, frames)
    rms = torch.stack([c.pow(2).mean().sqrt() if c.numel() else wav.new_zeros(()) for c in chunks])
    return 20.0 * torch.log10(rms.clamp(min=1e-5))


def measure_signal(wav: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (voiced F0 in Hz (V,), active-frame levels in dB centred on their mean (A,)) of one utterance.

    ``wav`` is mono (samples,). Frames are 10 ms. See the module docstring for what counts
    as voiced and active.
    """
    wav = torchaudio.functional.resample(wav.float(), sample_rate, PITCH_RATE)
    window = int(AGC_SECONDS * PITCH_RATE) | 1
    envelope = F.avg_pool1d(wav.pow(2)[None, None], window, 1, window // 2, count_include_pad=False)[0, 0]
    flattened = wav / envelope[: wav.numel()].sqrt().clamp(min=1e-4)
    f0 = torchaudio.functional.detect_pitch_frequency(flattened, PITCH_RATE, frame_time=0.01, win_length=5,
                                                      freq_low=int(F0_RANGE[0]), freq_high=int(F0_RANGE[1]))
    levels = _frame_levels_db(wav, f0.numel())
    loudest = levels.max()
    voiced = (levels > loudest - VOICED_DB) & (f0 >= F0_RANGE[0]) & (f0 <= F0_RANGE[1])
    active = levels[levels > loudest - ACTIVE_DB]
    return f0[voiced], active - active.mean()


def _sample(items: Sequence[Utterance], count: int) -> list[Utterance]:
    """Return up to ``count`` items evenly spread over ``items`` (deterministic, keeps order)."""
    if count >= len(items):
        return list(items)
    return [items[(i * len(items)) // count] for i in range(count)]


def measure_voice(corpus: str | Path | Sequence[Utterance], max_utterances: int = 20,
                  durations: Mapping[str, float] | None = None, lang: str = "en") -> VoiceMeasures:
    """Return the VoiceMeasures of a corpus path or a list of utterances.

    Pitch and energy are measured on ``max_utterances`` utterances spread evenly over the
    corpus (deterministic); the speaking rate uses all of them, with ``durations`` (id ->
    seconds, e.g. ``CorpusReport.durations``) or the files' headers. A corpus path is
    checked with ``check_corpus`` (``lang``) and only its usable utterances count.
    Unreadable audio is skipped. Raises CorpusError when there is no utterance.
    """
    if isinstance(corpus, (str, Path)):
        report = check_corpus(corpus, lang=lang, min_seconds=0.0, max_seconds=math.inf)
        items: Sequence[Utterance] = report.usable
        durations = report.durations
    else:
        items = corpus
    if not items:
        raise CorpusError("measure_voice: no usable utterances")
    seconds = {u.id: (durations[u.id] if durations and u.id in durations else _seconds(u.wav_path))
               for u in items}
    total_seconds = sum(seconds.values())
    total_chars = sum(len(u.text) for u in items)

    f0_parts, level_parts, measured = [], [], 0
    for item in _sample(items, max(max_utterances, 1)):
        try:
            wav, _ = load_audio(item.wav_path)
            f0, levels = measure_signal(wav, SAMPLE_RATE)
        except (AudioError, RuntimeError, ValueError, IndexError):
            continue  # a file the corpus check let through but that cannot be analysed
        f0_parts.append(f0)
        level_parts.append(levels)
        measured += 1
    f0 = torch.cat(f0_parts) if f0_parts else torch.empty(0)
    levels = torch.cat(level_parts) if level_parts else torch.empty(0)
    if f0.numel():
        median_f0 = float(f0.median())
        semitones = 12.0 * torch.log2(f0 / median_f0)
        pitch_spread = float(1.4826 * (semitones - semitones.median()).abs().median())
    else:
        median_f0 = pitch_spread = math.nan
    energy_spread = float(levels.std(correction=0)) if levels.numel() > 1 else 0.0
    return VoiceMeasures(pitch_spread_semitones=pitch_spread, median_f0_hz=median_f0, energy_spread_db=energy_spread,
                         chars_per_second=total_chars / total_seconds if total_seconds > 0 else math.nan,
                         utterances_measured=measured, utterances_total=len(items), voiced_frames=int(f0.numel()))


def _seconds(path: Path) -> float:
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError):
        return 0.0
    return info.frames / info.samplerate if info.samplerate > 0 else 0.0


# ------------------------------------------------------------------- planning


def plan_from_measures(total_seconds: float, utterances: int, measures: VoiceMeasures, batch_size: int = 12,
                       grad_accum_steps: int = 3, corpus: str = "") -> TrainingPlan:
    """Return the TrainingPlan for already measured figures (``utterances`` per epoch, ``total_seconds`` of audio)."""
    if batch_size < 1 or grad_accum_steps < 1:
        raise ValueError("batch_size and grad_accum_steps must be >= 1")
    if utterances < 1:
        raise ValueError(f"utterances must be >= 1, got {utterances}")
    size_name, base_epochs = size_class(total_seconds)
    complexity_name, factor = complexity_class(measures.points())
    epochs = max(1, round(base_epochs * factor))
    steps = math.ceil(epochs * utterances / (batch_size * grad_accum_steps))
    notes = []
    if math.isnan(measures.pitch_spread_semitones):
        notes.append("note: no voiced frames found; pitch scored 0 points")
    return TrainingPlan(corpus, size_name, total_seconds, base_epochs, complexity_name, factor, measures,
                        utterances, batch_size, grad_accum_steps, epochs, steps, notes)


def plan_training(corpus_path: str | Path, batch_size: int = 12, grad_accum_steps: int = 3, *, val_size: int = 0,
                  lang: str = "en", min_seconds: float = 0.3, max_seconds: float = 12.0,
                  drop_unknown_chars: bool = False, max_utterances: int = 20) -> TrainingPlan:
    """Return the TrainingPlan (epochs, optimiser steps, reasoning) for the corpus at ``corpus_path``.

    The corpus is checked as for training (``lang``, ``min_seconds``, ``max_seconds``,
    ``drop_unknown_chars``); the size class uses the usable utterances' total duration
    and an epoch is the usable utterances minus the ``val_size`` held out (at least one
    stays). Raises CorpusError when nothing is usable.
    """
    report = check_corpus(corpus_path, lang=lang, min_seconds=min_seconds, max_seconds=max_seconds,
                          drop_unknown_chars=drop_unknown_chars)
    if not report.usable:
        raise CorpusError(f"{corpus_path}: no usable utterances ({len(report.blocking)} blocking problems)")
    measures = measure_voice(report.usable, max_utterances=max_utterances, durations=report.durations)
    train_count = len(report.usable) - min(max(val_size, 0), len(report.usable) - 1)
    plan = plan_from_measures(report.total_seconds, train_count, measures, batch_size, grad_accum_steps,
                              corpus=str(corpus_path))
    if report.blocking:
        plan.notes.append(f"note: {len(report.blocking)} utterances with blocking problems left out "
                          f"(see `trainer check-data`)")
    return plan
