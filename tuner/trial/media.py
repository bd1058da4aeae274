"""Pictures and sounds of a finished trial: alignment and mel plots (PNG), synthesised samples (WAV).

Runs in the trial's child process after training, from the run's checkpoints and the held-out
validation utterances (the same split the trainer validates on), so the pictures show what
the metrics measured. The pictures are drawn by ``trainer.evaluation.plots``, as the trainer's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from trainer.audio.mel import write_wav
from trainer.config import TrainConfig
from trainer.data.batches import collate
from trainer.data.corpus import Utterance, check_corpus, split_train_val
from trainer.data.dataset import Example, TTSDataset
from trainer.evaluation.metrics import alignment_metrics
from trainer.evaluation.plots import plot_alignment, plot_mels
from trainer.synthesis.infer import load_model, synthesize
from trainer.synthesis.vocoder import make_vocoder


@dataclass
class TrialMedia:
    """Files made for one trial (paths inside ``run_dir/media``)."""

    plots: list[Path]
    samples: list[Path]

    def all(self) -> list[Path]:
        """Return every file, plots first."""
        return [*self.plots, *self.samples]


def _held_out(config: TrainConfig, data: str | Path, count: int) -> list[tuple[Utterance, Example]]:
    """Return up to ``count`` (utterance, example) pairs of the validation split."""
    report = check_corpus(data, lang=config.lang, min_seconds=config.min_seconds, max_seconds=config.max_seconds,
                          drop_unknown_chars=config.on_unknown_char == "drop")
    _, val_items = split_train_val(report.usable, config.val_size)
    items = val_items[:count] or report.usable[:count]
    dataset = TTSDataset.for_config(items, config)
    return list(zip(items, dataset.examples, strict=False))


@torch.no_grad()
def make_trial_media(run_dir: str | Path, data: str | Path, checkpoint: str | Path, samples: int,
                     label: str) -> TrialMedia:
    """Make the plots of ``checkpoint`` on the first held-out utterance, and ``samples`` synthesised WAVs.

    Plots: ``alignment.png`` (teacher-forced attention, with its diagonality) and ``mel.png``
    (target vs predicted). Samples: ``sample-K.wav`` plus ``sample-K-alignment.png``
    (free-running), decoding at most twice the reference length so an unaligned model ends quickly.
    """
    out = Path(run_dir) / "media"
    out.mkdir(parents=True, exist_ok=True)
    model, config = load_model(checkpoint, "cpu")
    vocoder = make_vocoder(config.vocoder, config.vocoder_config)  # the one the trial's validations used
    held_out = _held_out(config, data, max(1, samples))
    item, example = held_out[0]
    batch = collate([example], config.model.reduction_factor)
    result = model(batch, 1.0)
    steps, tokens = int(batch.out_lens[0]), int(batch.text_lens[0])
    att = result.att[0, :steps, :tokens].float()
    figures = alignment_metrics(result.att.float(), batch.text_lens, batch.out_lens)
    plots = [plot_alignment(att, out / "alignment.png",
                            f"{label} - teacher-forced, {item.id}: diagonality {figures['diagonality']:.2f}, "
                            f"focus {figures['focus']:.2f}")]
    frames = int(batch.mel_lens[0])
    plots.append(plot_mels(batch.mels[0, :, :frames], result.mel_post[0, :, :frames].float(), out / "mel.png",
                           f"{label} - {item.id}"))
    wavs: list[Path] = []
    for k, (item, example) in enumerate(held_out[:samples], start=1):
        limit = 2 * (example.mel.shape[-1] // config.model.reduction_factor + 1) + 10
        synthesis = synthesize(model, config, item.text, max_decoder_steps=limit, vocoder=vocoder)
        wav_path = out / f"sample-{k}.wav"
        write_wav(wav_path, synthesis.wav)
        wavs.append(wav_path)
        stop = "hit max steps" if synthesis.hit_max else "stopped"
        plots.append(plot_alignment(synthesis.alignment, out / f"sample-{k}-alignment.png",
                                    f"{label} - free-running: {item.text[:60]!r} ({stop})"))
    return TrialMedia(plots, wavs)
