"""When free-running inference stops: the adaptive stop threshold and the length estimate it needs.

Decoding stops at the first step whose stop probability, sigmoid(gate), exceeds a
threshold (``AcousticModel.infer``). A fixed threshold (``stop_gate: fixed``) is the config's
``stop_threshold``; the adaptive one (``stop_gate: adaptive``, the default) moves with
training progress and with each utterance's position against its expected length, the
text's length × the corpus's mel frames per character. Validation's free-running pass and
``trainer synth`` both ask ``stop_threshold_fn`` for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from trainer.config import TrainConfig
    from trainer.model.contract import StopThreshold

__all__ = ["estimate_frames_per_char", "expected_decoder_steps", "stop_threshold", "stop_threshold_fn"]



def stop_threshold(progress: float, decoder_step: int | Tensor, expected_steps: float | Tensor,
                   start: float = 0.3, end: float = 0.8, end_boost: float = 0.2, window: float = 0.2,
                   floor: float = 0.1, cap: float = 0.95) -> float | Tensor:
    """Return the inference stop threshold on sigmoid(gate): a float, or a tensor shaped like the broadcast inputs.

    Decoding stops at the first step whose stop probability exceeds the threshold, so a
    *higher* threshold makes stopping *harder*. Two things move it:

    1. Training progress (``progress`` in [0, 1], clipped): the base rises linearly from
       ``start`` (0.3) to ``end`` (0.8). A young gate is timid and rarely reaches a high
       probability, so a low bar lets it stop at all; a trained gate is confident at the
       true end, so a high bar costs nothing there and rejects stray mid-utterance spikes.
    2. Position relative to the expected end, p = decoder_step / expected_steps
       (``expected_decoder_steps``): the threshold is base + end_boost while p ≤ 1 − window,
       falls linearly to base at p = 1 and to base − end_boost at p ≥ 1 + window.

    Why this direction. Raising the threshold toward the end of the utterance (the
    intuitive reading of "stop more carefully near the end") is backwards on both
    failure modes: it keeps the bar lowest early on, where a
    spurious gate spike truncates the utterance (early stop), and highest after the
    expected end, where a gate that never quite fires lets decoding run on to the max
    steps (run-on). Making stopping hard well before the expected end and easy past it
    attacks both. The expected length is only an estimate (frames per character varies
    by speaker and sentence), so the change is a linear ramp ±``window`` (20%) wide around
    p = 1 rather than a step, and a confident gate still stops anywhere it crosses base +
    end_boost. The result is clipped to [floor, cap] so it stays a usable probability.
    """
    progress = min(max(float(progress), 0.0), 1.0)
    base = start + (end - start) * progress
    if isinstance(decoder_step, Tensor) or isinstance(expected_steps, Tensor):
        device = decoder_step.device if isinstance(decoder_step, Tensor) else expected_steps.device  # type: ignore[union-attr]
        step_t = torch.as_tensor(decoder_step, dtype=torch.float32, device=device)
        expected_t = torch.as_tensor(expected_steps, dtype=torch.float32, device=device)
        ramp_t = ((1.0 - step_t / expected_t.clamp(min=1.0)) / window).clamp(-1.0, 1.0)
        return (base + end_boost * ramp_t).clamp(floor, cap)
    position = float(decoder_step) / max(float(expected_steps), 1.0)
    ramp = min(max((1.0 - position) / window, -1.0), 1.0)
    return float(min(max(base + end_boost * ramp, floor), cap))


def expected_decoder_steps(text_len: int | float | Tensor, frames_per_char: float, r: int = 1) -> float | Tensor:
    """Return the expected number of decoder steps for a text: text_len · frames_per_char / r.

    ``text_len`` is in characters (or tokens, matching how ``frames_per_char`` was
    measured), ``frames_per_char`` is mel frames per character of the corpus
    (``estimate_frames_per_char``), ``r`` the reduction factor (frames per decoder step).
    A tensor ``text_len`` gives a float tensor of the same shape.
    """
    if isinstance(text_len, Tensor):
        return text_len.to(torch.float32) * (frames_per_char / r)
    return float(text_len) * frames_per_char / r


def estimate_frames_per_char(frame_counts: Sequence[int] | Tensor, char_counts: Sequence[int] | Tensor) -> float:
    """Return the corpus's mel frames per character, Σ frames / Σ characters.

    A ratio of totals, so long utterances weigh more.
    """
    frames = float(torch.as_tensor(frame_counts, dtype=torch.float64).sum())
    chars = float(torch.as_tensor(char_counts, dtype=torch.float64).sum())
    if chars <= 0:
        raise ValueError("char_counts must sum to > 0")
    return frames / chars


def stop_threshold_fn(config: TrainConfig, text_lens: Tensor, frames_per_char: float,
                      progress: float) -> StopThreshold:
    """Return the inference stop threshold for texts of ``text_lens`` (B,) tokens: the fixed one, or the adaptive one.

    The adaptive threshold (``stop_threshold``) rises with training ``progress`` in [0, 1]
    and depends on where the decoder is relative to each utterance's expected length,
    estimated as text length × the corpus's ``frames_per_char`` (mel frames per token) / r.
    """
    if config.stop_gate == "fixed":
        return config.stop_threshold
    expected = expected_decoder_steps(text_lens, frames_per_char, config.model.reduction_factor)

    def threshold(step: int) -> Tensor:  # (B,): a tensor, since ``expected`` is one
        return torch.as_tensor(stop_threshold(progress, step + 1, expected))

    return threshold
