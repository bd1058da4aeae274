"""Teacher-forced mels of a corpus, for fine-tuning a vocoder on what the acoustic model predicts.

A vocoder trained on recordings hears our predicted mels as slightly off (smoother, a little
misplaced in time); fine-tuning it on mels predicted with teacher forcing, which stay aligned
frame for frame with the recordings, removes that mismatch. The files follow what HiFi-GAN's
fine-tuning reads: ``OUT/<utterance id>.npy``, float32 (80, frames), one frame per 256 samples
of the corpus's own wav (the same frame count as the mel of the recording).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer.data.batches import collate
from trainer.data.corpus import DataError, check_corpus
from trainer.data.dataset import TTSDataset
from trainer.fileio import atomic_write_bytes
from trainer.synthesis.infer import load_model


@dataclass(frozen=True)
class ExportSummary:
    """What ``export_mels`` wrote."""

    out: Path
    utterances: int
    frames: int
    skipped: int  # utterances the corpus check blocks (listed by ``trainer check-data``)

    def __str__(self) -> str:
        skipped = f"; {self.skipped} unusable utterance(s) left out (trainer check-data lists them)" \
            if self.skipped else ""
        return f"{self.utterances} teacher-forced mels ({self.frames} frames) in {self.out}{skipped}"


@torch.no_grad()
def export_mels(checkpoint: str | Path, data: str | Path, out: str | Path, device: str = "cpu",
                batch_size: int = 16) -> ExportSummary:
    """Write the teacher-forced postnet mel of every usable utterance of ``data`` under ``out``.

    The model reads the recording's own mel as its previous frames (teacher forcing 1), so
    the prediction has the recording's length; frames past it (padding to a multiple of the
    reduction factor) are cut. Raises DataError when no utterance is usable.
    """
    model, config = load_model(checkpoint, device)
    report = check_corpus(data, lang=config.lang, min_seconds=config.min_seconds, max_seconds=config.max_seconds,
                          drop_unknown_chars=config.on_unknown_char == "drop")
    if not report.usable:
        raise DataError(report)
    dataset = TTSDataset.for_config(report.usable, config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frames = 0
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))],
                        config.model.reduction_factor).to(device)
        mel_post = model(batch, teacher_forcing=1.0).mel_post.float().cpu()  # (B, 80, F)
        for row, utterance in enumerate(batch.ids):
            length = int(batch.mel_lens[row])
            buffer = io.BytesIO()
            np.save(buffer, mel_post[row, :, :length].numpy(), allow_pickle=False)
            atomic_write_bytes(out / f"{utterance}.npy", buffer.getvalue())
            frames += length
    return ExportSummary(out, len(dataset), frames, report.utterances - len(report.usable))
