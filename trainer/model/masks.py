"""Length masks: the one place that turns per-utterance lengths into boolean masks over padded tensors.

Also the masked means built on them (masked L1 and MSE of mels), shared by the training loss
and validation's ``val_mel_postnet_l1``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["length_mask", "masked_l1", "masked_mean", "masked_mse", "time_mask_like"]


def length_mask(lens: Tensor, max_len: int, device: torch.device | None = None) -> Tensor:
    """Return a (B, max_len) bool mask, True at positions < lens[b].

    >>> length_mask(torch.tensor([1, 3]), 4)
    tensor([[ True, False, False, False],
            [ True,  True,  True, False]])
    """
    lens = torch.as_tensor(lens, device=device)
    return torch.arange(max_len, device=lens.device).unsqueeze(0) < lens.unsqueeze(1)


def time_mask_like(x: Tensor, lens: Tensor) -> Tensor:
    """Return a bool mask broadcastable to ``x`` (B, ..., T), True on the first lens[b] steps of the last axis."""
    mask = length_mask(lens, x.size(-1), x.device)
    return mask.view(mask.size(0), *([1] * (x.dim() - 2)), mask.size(1))


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Return the mean of ``values`` over the cells where the broadcast ``mask`` is True (0 when none)."""
    mask = mask.expand_as(values)
    values = torch.where(mask, values, torch.zeros_like(values))
    return values.sum() / mask.sum().clamp(min=1)


def masked_l1(pred: Tensor, target: Tensor, mel_lens: Tensor) -> Tensor:
    """Return the mean absolute error over valid frames, a scalar (log-mel units).

    ``pred``/``target`` are (B, ..., T) with time last, e.g. (B, n_mels, T_frames);
    frames t ≥ mel_lens[b] are excluded from both the sum and the count.
    """
    mask = time_mask_like(pred, mel_lens)
    diff = torch.where(mask, pred - target, torch.zeros_like(pred))
    return masked_mean(diff.abs(), mask)


def masked_mse(pred: Tensor, target: Tensor, mel_lens: Tensor) -> Tensor:
    """Return the mean squared error over valid frames, a scalar (log-mel units squared).

    Same shapes and masking as ``masked_l1``.
    """
    mask = time_mask_like(pred, mel_lens)
    diff = torch.where(mask, pred - target, torch.zeros_like(pred))
    return masked_mean(diff.pow(2), mask)
