"""The acoustic-model contract: all that training, validation, inference and the tuner ask of a model.

A model is a ``torch.nn.Module`` implementing ``AcousticModel``: ``forward`` on a padded
``Batch`` (teacher forcing, or scheduled sampling below ratio 1) returns ``ModelOutputs``;
``infer`` from token ids alone returns an ``Inference``. Nothing outside the model's own
module reaches into its layers: the loss reads ``ModelOutputs``, warm starts read
``parameter_roles``, and ``trainer.model.architectures.build_model`` is the one constructor call.

Shapes: B utterances, N text tokens, S decoder steps, F = S * r mel frames (r, the
reduction factor, is frames per decoder step), M = 80 mel bands. Mels are natural-log
magnitudes (``trainer.audio.mel``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from trainer.data.batches import Batch

__all__ = ["TEXT_EMBEDDING", "AcousticModel", "Inference", "ModelOutputs", "StopThreshold", "UtteranceNoise",
           "count_parameters"]

# Role of a parameter whose rows are indexed by the symbol set: a warm start from a
# checkpoint with another symbol set must skip it, whatever the model calls it.
TEXT_EMBEDDING = "text_embedding"

# A stop probability, or a function of the decoder step giving one per utterance (B,).
StopThreshold = float | Callable[[int], Tensor]


class UtteranceNoise:
    """Random draws at inference, one stream per utterance: row b's come from a generator seeded with ``seeds[b]``.

    With it an utterance's free-running output depends on its text and its seed alone: not
    on the other utterances of its batch, on the batch size, or on whatever used the global
    random number generator before. The streams live on the CPU whatever the model's device,
    so a seed means the same draws everywhere.
    """

    def __init__(self, seeds: Sequence[int]) -> None:
        self._generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]

    def dropout(self, x: Tensor, rate: float) -> Tensor:
        """Return ``x`` (B, D) with dropout at ``rate``, row b's mask drawn from stream b (inverted scaling).

        >>> noise = UtteranceNoise([7, 8])
        >>> x = torch.ones(2, 6)
        >>> a = noise.dropout(x, 0.5)
        >>> b = UtteranceNoise([7]).dropout(x[:1], 0.5)
        >>> bool(torch.equal(a[:1], b)), sorted(set(a.flatten().tolist())) == [0.0, 2.0]
        (True, True)
        """
        if rate <= 0.0:
            return x
        if x.shape[0] != len(self._generators):
            raise ValueError(f"UtteranceNoise has {len(self._generators)} streams, the batch {x.shape[0]} rows")
        keep = torch.stack([torch.rand(x.shape[1:], generator=g) >= rate for g in self._generators])
        return x * keep.to(device=x.device, dtype=x.dtype) / (1.0 - rate)


@dataclass
class ModelOutputs:
    """What a teacher-forced (or scheduled-sampling) pass returns. ``att`` rows are distributions over valid tokens."""

    mel: Tensor  # (B, M, F) decoder output before the postnet
    mel_post: Tensor  # (B, M, F) after the postnet
    gate: Tensor  # (B, S) stop-gate logits
    att: Tensor  # (B, S, N) attention weights


@dataclass
class Inference(ModelOutputs):
    """Free-running output plus where each utterance stopped; use each utterance's frames up to its stop."""

    out_lens: Tensor  # (B,) long: decoder steps until the stop gate fired (or the limit)
    hit_max: Tensor  # (B,) bool: never stopped before the limit


class AcousticModel(nn.Module, ABC):
    """Text to log-mel, with a stop gate and an attention (or duration-derived) alignment.

    Subclasses set ``reduction_factor``, ``max_decoder_steps`` and ``text_frontend`` (the
    symbol table their text ids index: ``trainer.text.symbols``) and implement ``forward``
    and ``infer``. The base registers the buffer ``frames_per_char`` (mel frames per text
    token of the training corpus, 0 while unknown): saved with the weights, because
    inference needs it to predict where an utterance should end (the adaptive stop gate).
    """

    reduction_factor: int
    max_decoder_steps: int
    text_frontend: str = "characters"
    frames_per_char: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("frames_per_char", torch.zeros(()))

    @abstractmethod
    def forward(self, batch: Batch, teacher_forcing: float = 1.0) -> ModelOutputs:
        """Decode ``batch`` against its target mels; with probability 1 − ``teacher_forcing`` per utterance
        and step, feed the model's own previous frame instead of the ground truth."""

    @abstractmethod
    def infer(self, text: Tensor, text_lens: Tensor, max_decoder_steps: int | Tensor | None = None,
              stop_threshold: StopThreshold = 0.5, seeds: Sequence[int] | None = None) -> Inference:
        """Synthesise from token ids ``text`` (B, N) with true lengths ``text_lens`` (B,), at most
        ``max_decoder_steps`` (default: the model's own; a (B,) tensor gives each utterance its
        own limit, so its output does not depend on its batch), stopping each utterance at the first step
        whose sigmoid(gate) exceeds ``stop_threshold``. With ``seeds`` (B,) every random draw of
        utterance b comes from its own stream (``UtteranceNoise``), so the same checkpoint, text
        and seed always give the same output; without, from the global generator."""

    def parameter_roles(self) -> dict[str, str]:
        """Return {state-dict name: role} for parameters with a role (``TEXT_EMBEDDING``); default none."""
        return {}

    def set_frames_per_char(self, value: float) -> None:
        """Store the training corpus's mel frames per text token (see the class docstring)."""
        with torch.no_grad():
            self.frames_per_char.fill_(value)


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
