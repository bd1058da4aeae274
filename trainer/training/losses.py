"""The composite training loss ``TacotronLoss(outputs, batch, weights)`` and the stop-gate term.

Every term is masked by the true lengths; the mel distances and attention terms have modules of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.model.masks import length_mask, masked_l1, masked_mean, masked_mse
from trainer.training.alignment_losses import guided_attention_kl_loss, guided_attention_loss, monotonic_alignment_loss
from trainer.training.mel_losses import SpectralMelLoss, gram_style_loss, structural_mel_loss

if TYPE_CHECKING:
    from trainer.data.batches import Batch
    from trainer.model.contract import ModelOutputs

__all__ = ["gate_loss", "LossWeights", "TERM_NAMES", "TacotronLoss"]


def gate_loss(gate_logits: Tensor, gate_targets: Tensor, out_lens: Tensor, pos_weight: float = 8.0) -> Tensor:
    """Return the masked binary cross-entropy of the stop gate, a scalar (nats per valid decoder step).

    ``gate_logits``/``gate_targets`` are (B, T_out); steps t ≥ out_lens[b] are excluded.
    ``pos_weight`` multiplies the loss on stop (positive) steps, because there is about
    one of them per utterance against hundreds of "continue" steps.
    """
    out_lens = torch.as_tensor(out_lens, device=gate_logits.device)
    mask = length_mask(out_lens, gate_logits.size(1), gate_logits.device)
    logits = torch.where(mask, gate_logits, torch.zeros_like(gate_logits))
    targets = torch.where(mask, gate_targets.to(gate_logits.dtype), torch.zeros_like(gate_logits))
    weight = torch.as_tensor(pos_weight, device=gate_logits.device, dtype=gate_logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none", pos_weight=weight)
    return masked_mean(bce, mask)


@dataclass(frozen=True)
class LossWeights:
    """The loss weights that change during training (schedules, phases, the quality controller): one step's values."""

    ga_weight: float = 0.0  # guided attention; 0 skips the term
    ga_sigma: float = 0.4  # its band width (share of the normalised axes)
    gate_weight: float = 1.0  # stop gate; 0 skips the term


# Every key ``TacotronLoss`` may return in its terms (which ones appear depends on its settings).
TERM_NAMES: tuple[str, ...] = (
    "total", "mel", "mel_postnet",
    "mel_freq_l1", "mel_multires", "mel_temporal",
    "mel_postnet_freq_l1", "mel_postnet_multires", "mel_postnet_temporal",
    "gate", "guided_attention", "monotonic", "structural", "gram_style",
)


class TacotronLoss(nn.Module):
    """The trainer's composite loss; every term switchable and logged.

    total = mel_weight · (mel(mel_out) + mel(mel_postnet))
          + gate_weight · gate                  (gate_weight per step, in LossWeights)
          + ga_weight · guided attention        (weight and σ per step, in LossWeights)
          + monotonic_weight · monotonic
          + perceptual_weight · structural      (1 − SSIM on log-mels, on the postnet output)
          + style_weight · gram_style           (Gram distance of mel bands, on the postnet output)

    A term with weight 0 (or ``ga_kind="off"``) is not computed and not logged. The
    constructor's arguments carry the same names as ``TrainConfig``'s fields, so
    ``TacotronLoss.from_config(config)`` builds it; the module holds no state that
    changes during training.
    """

    def __init__(self, mel_loss: str = "spectral", mel_weight: float = 1.0,
                 spectral_l1_weight: float = 1.0, spectral_multires_weight: float = 0.3,
                 spectral_temporal_weight: float = 0.1, spectral_band_floor: float = 0.2,
                 gate_pos_weight: float = 8.0, ga_kind: str = "per_step",
                 monotonic_weight: float = 0.1, max_jump_tokens: float | None = None,
                 perceptual_weight: float = 0.2, style_weight: float = 0.1) -> None:
        super().__init__()
        if mel_loss not in ("spectral", "l1", "mse"):
            raise ValueError(f"mel_loss must be 'spectral', 'l1' or 'mse', got {mel_loss!r}")
        if ga_kind not in ("per_step", "kl", "off"):
            raise ValueError(f"ga_kind must be 'per_step', 'kl' or 'off', got {ga_kind!r}")
        self.mel_loss = mel_loss
        self.mel_weight = mel_weight
        self.gate_pos_weight = gate_pos_weight
        self.ga_kind = ga_kind
        self.monotonic_weight = monotonic_weight
        self.max_jump_tokens = max_jump_tokens
        self.perceptual_weight = perceptual_weight
        self.style_weight = style_weight
        self.spectral = SpectralMelLoss(spectral_l1_weight, spectral_multires_weight, spectral_temporal_weight,
                                        band_floor=spectral_band_floor)

    @classmethod
    def from_config(cls, config: Any) -> TacotronLoss:
        """Return a TacotronLoss built from the same-named attributes of a TrainConfig-like object."""
        names = ("mel_loss", "mel_weight", "spectral_l1_weight", "spectral_multires_weight",
                 "spectral_temporal_weight", "spectral_band_floor", "gate_pos_weight", "ga_kind",
                 "monotonic_weight", "max_jump_tokens", "perceptual_weight", "style_weight")
        return cls(**{name: getattr(config, name) for name in names if hasattr(config, name)})

    def _mel_terms(self, pred: Tensor, target: Tensor, mel_lens: Tensor, prefix: str) -> dict[str, Tensor]:
        """Return {prefix: mel distance} plus, for the spectral loss, its sub-terms as prefix_<name>."""
        if self.mel_loss == "l1":
            return {prefix: masked_l1(pred, target, mel_lens)}
        if self.mel_loss == "mse":
            return {prefix: masked_mse(pred, target, mel_lens)}
        parts = self.spectral(pred, target, mel_lens)
        terms = {f"{prefix}_{name}": value for name, value in parts.items() if name != "total"}
        terms[prefix] = parts["total"]
        return terms

    def forward(self, outputs: ModelOutputs, batch: Batch,
                weights: LossWeights = LossWeights()) -> tuple[Tensor, dict[str, Tensor]]:
        """Return (total, terms) for a model's ``outputs`` on ``batch``: see ``compute``."""
        return self.compute(outputs.mel, outputs.mel_post, outputs.gate, batch.mels, batch.gate_targets,
                            batch.mel_lens, outputs.att, batch.text_lens, batch.out_lens, weights)

    def compute(self, mel_out: Tensor, mel_postnet: Tensor, gate_out: Tensor, mel_target: Tensor,
                gate_target: Tensor, mel_lens: Tensor, att: Tensor, in_lens: Tensor, out_lens: Tensor,
                weights: LossWeights = LossWeights()) -> tuple[Tensor, dict[str, Tensor]]:
        """Return (total, terms): the weighted scalar loss and each *unweighted* term, detached.

        Inputs: ``mel_out``/``mel_postnet``/``mel_target`` (B, n_mels, T_frames) with
        ``mel_lens`` (B,) frames; ``gate_out`` logits and ``gate_target`` (B, T_out) with
        ``out_lens`` (B,) decoder steps; ``att`` (B, T_out, T_in) with ``in_lens`` (B,)
        tokens; ``weights`` this step's scheduled weights (a zero weight skips its term).
        Keys of ``terms``: those of ``TERM_NAMES`` whose term is on.
        """
        # Losses run in float32 with autocast off: under bf16 autocast the SSIM statistics
        # and Gram products would lose most of their precision, and rfft rejects bf16.
        with torch.autocast(device_type=mel_out.device.type, enabled=False):
            mel_out, mel_postnet, mel_target = mel_out.float(), mel_postnet.float(), mel_target.float()
            gate_out, att = gate_out.float(), att.float()
            terms: dict[str, Tensor] = {}
            total = mel_out.new_zeros(())
            if self.mel_weight:
                terms.update(self._mel_terms(mel_out, mel_target, mel_lens, "mel"))
                terms.update(self._mel_terms(mel_postnet, mel_target, mel_lens, "mel_postnet"))
                total = total + self.mel_weight * (terms["mel"] + terms["mel_postnet"])
            if weights.gate_weight:
                terms["gate"] = gate_loss(gate_out, gate_target, out_lens, self.gate_pos_weight)
                total = total + weights.gate_weight * terms["gate"]
            if self.ga_kind != "off" and weights.ga_weight:
                ga = guided_attention_loss if self.ga_kind == "per_step" else guided_attention_kl_loss
                terms["guided_attention"] = ga(att, in_lens, out_lens, weights.ga_sigma)
                total = total + weights.ga_weight * terms["guided_attention"]
            if self.monotonic_weight:
                terms["monotonic"] = monotonic_alignment_loss(att, in_lens, out_lens, self.max_jump_tokens)
                total = total + self.monotonic_weight * terms["monotonic"]
            if self.perceptual_weight:
                terms["structural"] = structural_mel_loss(mel_postnet, mel_target, mel_lens)
                total = total + self.perceptual_weight * terms["structural"]
            if self.style_weight:
                terms["gram_style"] = gram_style_loss(mel_postnet, mel_target, mel_lens)
                total = total + self.style_weight * terms["gram_style"]
            terms["total"] = total
            return total, {name: value.detach() for name, value in terms.items()}

