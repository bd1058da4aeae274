"""Length masks: the one place that turns per-utterance lengths into boolean masks over padded tensors."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["length_mask"]


def length_mask(lens: Tensor, max_len: int, device: torch.device | None = None) -> Tensor:
    """Return a (B, max_len) bool mask, True at positions < lens[b].

    >>> length_mask(torch.tensor([1, 3]), 4)
    tensor([[ True, False, False, False],
            [ True,  True,  True, False]])
    """
    lens = torch.as_tensor(lens, device=device)
    return torch.arange(max_len, device=lens.device).unsqueeze(0) < lens.unsqueeze(1)
