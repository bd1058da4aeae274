"""Validation: teacher-forced losses and alignment (``val_*``, ``tf_*``) and free-running synthesis (``fr_*``).

Teacher-forced attention can look perfect while free-running inference babbles, so every
validation also synthesises the held-out sentences from text alone and measures the
inference attention with the same metrics (``trainer.evaluation.metrics``), plus where the stop gate
fired. Every name reported here is declared in ``trainer.evaluation.metric_registry``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from trainer.config import TrainConfig
from trainer.data.batches import Batch, collate
from trainer.data.dataset import TTSDataset
from trainer.evaluation.asr import AsrScorer
from trainer.evaluation.metrics import (
    alignment_metrics,
    gate_balanced_accuracy,
    mel_cepstral_distortion,
    mel_cepstral_distortion_sl,
    stop_metrics,
)
from trainer.model.contract import AcousticModel, ModelOutputs
from trainer.model.masks import masked_l1
from trainer.model.stopping import stop_threshold_fn

# The run's training loss of one teacher-forced batch: (total, {term: detached value}). Validation
# reports its terms as val_* without knowing what the loss is; the training loop hands it in.
LossFn = Callable[[ModelOutputs, Batch], tuple[torch.Tensor, dict[str, torch.Tensor]]]

EARLY_STOP_SHARE = 0.8  # stopped before 80% of the reference length
RUN_ON_SHARE = 1.2  # still going past 120% of it (or never stopped)


def utterance_seeds(utterance_ids: Sequence[str]) -> list[int]:
    """Return the seed each utterance is synthesised with at evaluation: 63 bits of sha256 of its id.

    Prenet dropout stays on at inference, so an unseeded score of the same checkpoint moves
    from one validation to the next. A seed per utterance, fixed by its id alone, makes a
    checkpoint's score a function of the checkpoint: whatever ran before, whichever other
    sentences share its batch, whatever the run's own seed (every trial then hears the same
    draws: common random numbers, so a difference between trials is the models' and not the dice's).

    >>> utterance_seeds(["a", "a", "b"])[0] == utterance_seeds(["a"])[0] != utterance_seeds(["b"])[0]
    True
    """
    return [int.from_bytes(hashlib.sha256(uid.encode("utf-8")).digest()[:8], "big") >> 1 for uid in utterance_ids]


@dataclass
class Sample:
    """One utterance's validation pictures: attention (S, N), mels (80, F), gate logits (S,)."""

    utterance: str
    tf_attention: torch.Tensor
    fr_attention: torch.Tensor
    target_mel: torch.Tensor
    tf_mel: torch.Tensor
    fr_mel: torch.Tensor
    tf_gate: torch.Tensor
    gate_target: torch.Tensor
    fr_gate: torch.Tensor


def amp_dtype(config: TrainConfig) -> torch.dtype:
    """Return the autocast dtype on CUDA: ``config.amp_dtype``, or for "auto" bfloat16 where supported, else float16.

    bfloat16 keeps float32's exponent range, so it needs no loss scaling; float16 (GPUs
    before Ampere) does, which is why the training step keeps a GradScaler for it.
    """
    if config.amp_dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if config.amp_dtype == "bfloat16" else torch.float16


def autocast(device: torch.device, config: TrainConfig) -> AbstractContextManager[object]:
    """Return autocast to ``amp_dtype(config)`` on CUDA when ``config.amp``; a no-op context on the CPU."""
    if device.type == "cuda" and config.amp:
        return torch.autocast("cuda", dtype=amp_dtype(config))
    return nullcontext()


def band_range(dataset: TTSDataset) -> torch.Tensor:
    """Return (2, 80): the lowest and highest value of each mel band over ``dataset``'s mels."""
    mels = torch.cat([example.mel for example in dataset.examples], dim=1)  # (80, all frames)
    return torch.stack([mels.amin(dim=1), mels.amax(dim=1)])


@torch.no_grad()
def validate(model: AcousticModel, loss: LossFn, dataset: TTSDataset, config: TrainConfig,
             device: torch.device, frames_per_char: float, progress: float, band_range: torch.Tensor | None = None,
             asr: AsrScorer | None = None) -> tuple[dict[str, float], Sample | None]:
    """Return (metrics, sample): teacher-forced ``val_*``/``tf_*`` and free-running ``fr_*`` figures.

    ``loss`` is the run's training loss with the current step's weights (so ``val_total`` is
    comparable with the training loss); ``progress`` in [0, 1] moves the adaptive stop
    threshold; ``band_range`` (2, 80), the training corpus's lowest and highest value of each
    mel band (``band_range``), gives ``fr_out_of_range``; ``asr`` gives ``fr_wer`` and ``fr_cer``.

    ``val_mel_postnet_l1`` (masked L1 of the postnet mel) is computed whatever the training
    loss is, so studies comparing loss settings share one objective. Free-running runs on
    the first ``fr_utterances`` held-out sentences, each allowed ``fr_max_factor`` × its
    reference length (and at most ``max_decoder_steps``); ``fr_hit_max_rate`` is the share
    that never stopped within that limit. ``sample`` holds the first utterance's pictures.
    """
    # Validation draws random numbers (prenet dropout stays on at inference). Drawing them from
    # a forked, fixed-seed generator keeps validations comparable with each other and leaves
    # the training RNG untouched, so --resume stays exact whatever validation did.
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        return _validate(model, loss, dataset, config, device, frames_per_char, progress, band_range, asr)


def _validate(model: AcousticModel, loss: LossFn, dataset: TTSDataset, config: TrainConfig,
              device: torch.device, frames_per_char: float, progress: float, band_range: torch.Tensor | None,
              asr: AsrScorer | None) -> tuple[dict[str, float], Sample | None]:
    model.eval()
    lengths = dataset.frame_lengths()
    order = sorted(range(len(dataset)), key=lambda i: lengths[i])
    metrics, first_id, first = _teacher_forced(model, loss, dataset, order, config, device)
    sample = None
    if config.fr_utterances > 0:
        fr_metrics, fr_first = free_running(model, dataset, order[: config.fr_utterances], config, device,
                                            frames_per_char, progress, band_range, asr)
        metrics.update(fr_metrics)
        if first and fr_first is not None:
            sample = Sample(first_id, first["tf_attention"], fr_first["attention"], first["target_mel"],
                            first["tf_mel"], fr_first["mel"], first["tf_gate"], first["gate_target"], fr_first["gate"])
    model.train()
    return metrics, sample


def _teacher_forced(model: AcousticModel, loss: LossFn, dataset: TTSDataset, order: list[int], config: TrainConfig,
                    device: torch.device) -> tuple[dict[str, float], str, dict[str, torch.Tensor]]:
    """Return (utterance-weighted means of the val_*/tf_* figures, first utterance's id, its pictures).

    ``order`` lists the dataset indices in the order they are batched (shortest first).
    """
    sums: dict[str, float] = {}
    count = 0
    first_id = ""
    first: dict[str, torch.Tensor] = {}
    for start in range(0, len(order), config.batch_size):
        batch = collate([dataset[i] for i in order[start:start + config.batch_size]],
                        config.model.reduction_factor).to(device)
        with autocast(device, config):
            out = model(batch, 1.0)
            _, terms = loss(out, batch)
        for name, value in _batch_figures(out, terms, batch, config).items():
            sums[name] = sums.get(name, 0.0) + value * len(batch.ids)
        count += len(batch.ids)
        if not first:
            first_id, first = batch.ids[0], _first_pictures(out, batch)
    return {name: value / count for name, value in sums.items()}, first_id, first


def _batch_figures(out: ModelOutputs, terms: dict[str, torch.Tensor], batch: Batch,
                   config: TrainConfig) -> dict[str, float]:
    """Return one teacher-forced batch's figures: the loss terms (val_*), the objective and tf_* alignment/gate."""
    figures = {f"val_{name}": float(value) for name, value in terms.items()}
    figures["val_mel_postnet_l1"] = float(masked_l1(out.mel_post.float(), batch.mels, batch.mel_lens))
    figures.update({f"tf_{k}": v for k, v in alignment_metrics(out.att.float(), batch.text_lens,
                                                               batch.out_lens).items()})
    figures["tf_gate_balanced_accuracy"] = gate_balanced_accuracy(
        out.gate.float(), batch.gate_targets, batch.out_lens, config.stop_threshold)
    return figures


def _first_pictures(out: ModelOutputs, batch: Batch) -> dict[str, torch.Tensor]:
    """Return the first utterance's teacher-forced attention (S, N), mels (80, F) and gate (S,), on the CPU."""
    steps, tokens, frames = int(batch.out_lens[0]), int(batch.text_lens[0]), int(batch.mel_lens[0])
    return {"tf_attention": out.att[0, :steps, :tokens].float().cpu(),
            "target_mel": batch.mels[0, :, :frames].cpu(), "tf_mel": out.mel_post[0, :, :frames].float().cpu(),
            "tf_gate": out.gate[0, :steps].float().cpu(), "gate_target": batch.gate_targets[0, :steps].cpu()}


@dataclass
class FreeRun:
    """What free-running synthesis of one batch produced, cut to each utterance's own limit.

    Shapes: B utterances, S decoder steps, N tokens, F frames; r mel frames per decoder step.
    """

    att: torch.Tensor  # (B, S, N) float32 inference attention
    pred: torch.Tensor  # (B,) long: decoder steps until the stop (at most the utterance's own limit)
    hit_max: torch.Tensor  # (B,) bool: never stopped within its own limit
    mel: torch.Tensor  # (B, 80, F) float32 postnet mel, on the CPU
    gate: torch.Tensor  # (B, S) gate logits
    r: int

    def mel_of(self, b: int) -> torch.Tensor:
        """Return utterance ``b``'s mel up to its stop, (80, pred[b]·r)."""
        return self.mel[b, :, : int(self.pred[b]) * self.r]


def _synthesise(model: AcousticModel, batch: Batch, config: TrainConfig, device: torch.device,
                frames_per_char: float, progress: float) -> FreeRun:
    """Synthesise ``batch`` from its text alone, each utterance allowed ``fr_max_factor`` × its reference length."""
    own_limit = (batch.out_lens.float() * config.fr_max_factor).ceil().long().clamp(max=config.max_decoder_steps)
    threshold = stop_threshold_fn(config, batch.text_lens, frames_per_char, progress)
    with autocast(device, config):
        out = model.infer(batch.text, batch.text_lens, own_limit, threshold, seeds=utterance_seeds(batch.ids))
    return FreeRun(out.att.float(), out.out_lens, out.hit_max, out.mel_post.float().cpu(), out.gate,
                   config.model.reduction_factor)


def utterance_scores(run: FreeRun, batch: Batch) -> list[dict[str, float | str]]:
    """Return each free-running utterance's own scores: ``id``, ``fr_mcd``, ``fr_mcd_sl`` (dB),
    ``fr_length_ratio`` (predicted / reference length) and ``fr_hit_max`` (1.0: never stopped)."""
    scores: list[dict[str, float | str]] = []
    for b, uid in enumerate(batch.ids):
        reference, produced = batch.mels[b, :, : int(batch.mel_lens[b])].cpu(), run.mel_of(b)
        scores.append({"id": uid, "fr_mcd": mel_cepstral_distortion(reference, produced),
                       "fr_mcd_sl": mel_cepstral_distortion_sl(reference, produced),
                       "fr_length_ratio": float(run.pred[b]) / float(batch.out_lens[b]),
                       "fr_hit_max": float(run.hit_max[b])})
    return scores


def _length_figures(run: FreeRun, batch: Batch, scores: list[dict[str, float | str]]) -> dict[str, float]:
    """Return the fr_* alignment, stop, length and MCD figures of one free-running batch (see ``free_running``)."""
    metrics = {f"fr_{k}": v for k, v in alignment_metrics(run.att, batch.text_lens, run.pred.clamp(min=1)).items()}
    stops = stop_metrics(run.pred, batch.out_lens, run.hit_max)
    ratio = run.pred.float() / batch.out_lens.float()
    metrics.update(fr_stop_error=stops["stop_error"], fr_hit_max_rate=stops["hit_max_rate"],
                   fr_early_stop_rate=float((ratio < EARLY_STOP_SHARE).float().mean()),
                   fr_run_on_rate=float(((ratio > RUN_ON_SHARE) | run.hit_max).float().mean()),
                   fr_length_ratio=float(ratio.mean()))
    for name in ("fr_mcd", "fr_mcd_sl"):
        metrics[name] = sum(float(score[name]) for score in scores) / len(scores)
    return metrics


def _out_of_range(run: FreeRun, band_range: torch.Tensor) -> float:
    """Return the share of predicted mel values outside the training corpus's range of their band.

    ``band_range`` is (2, 80); each utterance counts within its predicted length (at least one step).
    """
    low, high = band_range[0].cpu()[:, None], band_range[1].cpu()[:, None]  # (80, 1) each
    outside = [((m < low) | (m > high)).float().mean() for m in
               (run.mel[b, :, : max(int(run.pred[b]), 1) * run.r] for b in range(run.mel.shape[0]))]
    return float(torch.stack(outside).mean())


@torch.no_grad()
def free_running(model: AcousticModel, dataset: TTSDataset, indices: list[int], config: TrainConfig,
                 device: torch.device, frames_per_char: float, progress: float,
                 band_range: torch.Tensor | None = None, asr: AsrScorer | None = None,
                 per_utterance: list[dict[str, float | str]] | None = None,
                 ) -> tuple[dict[str, float], dict[str, torch.Tensor] | None]:
    """Return (fr_* metrics, first utterance's attention/mel/gate) from synthesis without teacher forcing.

    Metrics: the alignment metrics on the inference attention (restricted to the
    predicted length), ``fr_stop_error`` (mean |predicted − reference| / reference length),
    ``fr_hit_max_rate``, ``fr_early_stop_rate`` (< 0.8 × reference) and ``fr_run_on_rate``
    (> 1.2 × reference, or never stopped); ``fr_mcd``, the mean MCD-DTW (dB) of each
    synthesised mel against its recording's (``metrics.mel_cepstral_distortion``; an
    utterance that never stopped is scored on what it produced up to its limit), and
    ``fr_length_ratio``, the mean predicted / reference length (1 is right); with
    ``band_range``, ``fr_out_of_range``: the share of predicted mel values (within each
    utterance's predicted length) outside the training corpus's range of their band; with
    ``asr``, ``fr_wer``/``fr_cer``, what an English recogniser hears of the synthesised
    sentences, and ``fr_wer_ceiling``/``fr_cer_ceiling``, the same for the recordings' mels
    vocoded alike (``trainer.evaluation.asr``). ``fr_mcd_sl`` is MCD-DTW-SL
    (``metrics.mel_cepstral_distortion_sl``). Each utterance is synthesised with its own seed
    (``utterance_seeds``), so the figures are a function of the model and the sentences. With
    ``per_utterance``, each utterance's own scores (``utterance_scores``) are appended to it.
    """
    if not indices:
        return {}, None
    batch = collate([dataset[i] for i in indices], config.model.reduction_factor).to(device)
    run = _synthesise(model, batch, config, device, frames_per_char, progress)
    scores = utterance_scores(run, batch)
    metrics = _length_figures(run, batch, scores)
    if per_utterance is not None:
        per_utterance.extend(scores)
    if band_range is not None:
        metrics["fr_out_of_range"] = _out_of_range(run, band_range)
    if asr is not None:
        texts = [dataset[i].text for i in indices]  # the cleaned text, not the ids: they may be phonemes
        references = [batch.mels[b, :, : int(batch.mel_lens[b])].cpu() for b in range(len(indices))]
        metrics.update(asr.score(batch.ids, texts, [run.mel_of(b) for b in range(len(indices))], references))
    steps, tokens = int(run.pred[0]), int(batch.text_lens[0])
    first = {"attention": run.att[0, :steps, :tokens].cpu(), "mel": run.mel_of(0),
             "gate": run.gate[0, :steps].float().cpu()}
    return metrics, first
