"""The final evaluation: one checkpoint's free-running figures on every held-out sentence.

A validation during training scores the first ``fr_utterances`` held-out sentences: enough
to prune on and cheap to repeat. The figure that ranks a trained model is this one: every
held-out sentence synthesised from text alone, each with its own fixed seed
(``validate.utterance_seeds``), so the same checkpoint on the same sentences always gets the
same score, whatever ran before and however the sentences are batched. ``trainer train``
ends with it (the ``final`` record), the tuner ranks trials by it and ``trainer evaluate``
prints it for any checkpoint.

Shapes: the held-out set of ``TTSDataset`` examples; mels (80, frames), natural log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trainer.evaluation.validate import free_running

if TYPE_CHECKING:
    import torch

    from trainer.config import TrainConfig
    from trainer.data.dataset import TTSDataset
    from trainer.evaluation.asr import AsrScorer
    from trainer.model.contract import AcousticModel

__all__ = ["FINAL_BATCH", "Evaluation", "evaluate_sentences"]

FINAL_BATCH = 32  # sentences synthesised together; the figures do not depend on it (seeds are per sentence)


@dataclass
class Evaluation:
    """A checkpoint's final evaluation: the fr_* figures (utterance means) and each sentence's own scores."""

    checkpoint: str
    step: int
    metrics: dict[str, float]
    per_sentence: list[dict[str, float | str]] = field(default_factory=list)

    @property
    def sentences(self) -> int:
        """Return how many held-out sentences were scored."""
        return len(self.per_sentence)

    def record(self) -> dict[str, Any]:
        """Return metrics.jsonl's ``final`` record: where it was measured and the figures (no per-sentence list)."""
        return {"kind": "final", "step": self.step, "checkpoint": self.checkpoint, "sentences": self.sentences,
                **self.metrics}

    def to_json(self) -> dict[str, Any]:
        """Return the record with each sentence's scores (what ``trainer evaluate`` prints)."""
        return {**self.record(), "per_sentence": self.per_sentence}


def evaluate_sentences(model: AcousticModel, dataset: TTSDataset, config: TrainConfig, device: torch.device,
                       frames_per_char: float, progress: float, *, sentences: int | None = None,
                       band_range: torch.Tensor | None = None,
                       asr: AsrScorer | None = None) -> tuple[dict[str, float], list[dict[str, float | str]]]:
    """Return (fr_* figures as utterance means, each sentence's scores) of free-running ``model`` on ``dataset``.

    All of ``dataset``'s sentences, or its first ``sentences`` in corpus order; synthesised
    ``FINAL_BATCH`` at a time, shortest first, each with its own seed. ``progress`` is the stop
    gate's (``TrainState.gate_progress``); ``band_range`` and ``asr`` add ``fr_out_of_range``
    and ``fr_wer``/``fr_cer`` as at validation (each batch's, weighted by its sentences). The
    model is left in eval mode.
    """
    if sentences is not None and sentences < 1:
        raise ValueError(f"sentences must be >= 1, got {sentences}")
    chosen = list(range(len(dataset)))[: sentences if sentences is not None else None]
    lengths = dataset.frame_lengths()
    order = sorted(chosen, key=lambda i: lengths[i])
    model.eval()
    sums: dict[str, float] = {}
    scores: list[dict[str, float | str]] = []
    for start in range(0, len(order), FINAL_BATCH):
        part = order[start:start + FINAL_BATCH]
        metrics, _ = free_running(model, dataset, part, config, device, frames_per_char, progress, band_range,
                                  asr, per_utterance=scores)
        for name, value in metrics.items():
            sums[name] = sums.get(name, 0.0) + value * len(part)
    return {name: total / len(order) for name, total in sums.items()}, scores
