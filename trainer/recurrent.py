"""An LSTM cell whose weight gradients are computed once per sequence, not once per step.

Backpropagation through a decoder loop of S steps computes, for every weight used at every
step, an (out, in) gradient product and adds it into the weight's gradient: S small
products and S full-size additions per weight. On a CPU those are overhead-bound and were
the largest share of a tiny training step after the loss terms. The gradient of a weight W
used as y_t = x_t Wᵀ at every step is Σ_t g_tᵀ x_t = Gᵀ X with G, X the steps' output
gradients and inputs stacked: one large product instead of S small ones.

``LSTMCellWeights.bind`` wraps a cell's weights for one pass: each step's product records its
(input, output gradient) pair on the way back instead of forming the weight gradient, and
an identity node placed before every step (so autograd runs it after all of them) turns
the records into the weight's gradient. Values and gradients equal ``nn.LSTMCell``'s up to
float rounding. The fused CUDA cell kernel is worth more there, so the decoder uses this
on the CPU only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class _Records:
    """The (input, output gradient) pairs the steps of one pass left for one weight."""

    def __init__(self) -> None:
        self.inputs: list[Tensor] = []
        self.grads: list[Tensor] = []


class _GatherWeightGrad(torch.autograd.Function):
    """Identity on a weight (out, in); its backward sums every recorded step at once."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, records: _Records) -> Tensor:
        ctx.records = records
        return weight.view_as(weight)

    @staticmethod
    def backward(ctx: Any, grad: Tensor | None) -> tuple[Tensor | None, None]:
        records: _Records = ctx.records
        total = grad
        if records.grads:
            stacked = torch.cat(records.grads).t() @ torch.cat(records.inputs)  # (out, in)
            total = stacked if total is None else total + stacked
        records.inputs.clear()
        records.grads.clear()
        return total, None


class _StepProduct(torch.autograd.Function):
    """x (B, in) @ weightᵀ (in, out) -> (B, out); backward gives x its gradient and records the pair."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, records: _Records) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.records = records
        return x @ weight.t()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        x, weight = ctx.saved_tensors
        if ctx.needs_input_grad[1]:
            ctx.records.inputs.append(x)
            ctx.records.grads.append(grad)
        return (grad @ weight if ctx.needs_input_grad[0] else None), None, None


class _BoundWeight:
    """One weight (out, in) of one pass: ``product(x)`` is x @ weightᵀ with the gradient deferred."""

    def __init__(self, weight: Tensor) -> None:
        self.records = _Records()
        self.weight = _GatherWeightGrad.apply(weight, self.records) if weight.requires_grad else weight

    def product(self, x: Tensor) -> Tensor:
        if not self.weight.requires_grad:
            return x @ self.weight.t()
        return _StepProduct.apply(x, self.weight, self.records)


class LSTMCellWeights:
    """An ``nn.LSTMCell``'s parameters bound for one pass over a sequence.

    >>> cell = nn.LSTMCell(3, 2)
    >>> x, h, c = torch.randn(4, 3), torch.zeros(4, 2), torch.zeros(4, 2)
    >>> h_ref, c_ref = cell(x, (h, c))
    >>> h_new, c_new = LSTMCellWeights.bind(cell)(x, (h, c))
    >>> torch.allclose(h_new, h_ref, atol=1e-6) and torch.allclose(c_new, c_ref, atol=1e-6)
    True
    """

    def __init__(self, cell: nn.LSTMCell) -> None:
        self.input = _BoundWeight(cell.weight_ih)
        self.hidden = _BoundWeight(cell.weight_hh)
        # Summed once per pass: the per-step additions of two biases would be autograd nodes too.
        self.bias = cell.bias_ih + cell.bias_hh if cell.bias else None

    @classmethod
    def bind(cls, cell: nn.LSTMCell) -> LSTMCellWeights:
        """Return the cell's weights bound for one pass (bind again for every pass)."""
        return cls(cell)

    def __call__(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Return (h, c) (B, H) of one step from x (B, in) and the previous (h, c) (B, H)."""
        h, c = state
        gates = self.input.product(x) + self.hidden.product(h)  # (B, 4H): input, forget, cell, output
        if self.bias is not None:
            gates = gates + self.bias
        i, f, g, o = gates.chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c_new), c_new
