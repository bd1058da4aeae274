"""LSTM cells whose weight and bias gradients are computed once per sequence, not once per step.

Backpropagation through a decoder loop of S steps computes, for every weight used at every
step, an (out, in) gradient product and adds it into the weight's gradient: S small
products and S full-size additions per weight, and for every bias S reductions and
additions. On a CPU those are overhead-bound and were the largest share of a tiny training
step after the loss terms. The gradient of a weight W and bias b used as
y_t = x_t Wᵀ + b at every step is Gᵀ X and the column sums of G, with G, X the steps' output
gradients and inputs stacked: one large product instead of S small ones.

``PassLinear(weight, bias)`` binds a linear map's parameters for one pass: each step's product
records its (input, output gradient) pair on the way back instead of forming the parameter
gradients, and an identity node placed before every step (so autograd runs it after all of
them) turns the records into the gradients. ``LSTMCellWeights(cell)`` is an ``nn.LSTMCell``
made of two of them. Values and gradients equal the modules' up to float rounding.

The attention's query, location and energy maps were made ``PassLinear``s too and measured
no faster (1.0 to 1.03x over four runs): their location and energy inputs cover every token
at every step, so those products were not overhead-bound and stacking them costs a copy.

The decoder uses these on the CPU only. On CUDA the same cells (under autocast, with
the fused cell kernel) were measured 0.95x the modules' speed on an H100: there the host
launching kernels bounds the step, and the Python autograd functions cost the host more
than the per-step launches they save (docs/PERFORMANCE.md).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class _Records:
    """The (input, output gradient) pairs the steps of one pass left for one product."""

    def __init__(self) -> None:
        self.inputs: list[Tensor] = []
        self.grads: list[Tensor] = []


class _Gather(torch.autograd.Function):
    """Identity on a weight (out, in) and optionally a bias (out,); its backward sums every recorded step at once."""

    @staticmethod
    def forward(ctx: Any, records: _Records, weight: Tensor, *bias: Tensor) -> Any:
        ctx.records = records
        outputs = (weight.view_as(weight), *(b.view_as(b) for b in bias))
        return outputs if bias else outputs[0]

    @staticmethod
    def backward(ctx: Any, *grads: Tensor | None) -> Any:
        records: _Records = ctx.records
        out: list[Tensor | None] = [None, *grads]
        if records.grads:
            stacked = torch.cat(records.grads)  # (S * B, out)
            parts = [stacked.t() @ torch.cat(records.inputs) if ctx.needs_input_grad[1] else None]  # (out, in)
            if len(grads) > 1:
                parts.append(stacked.sum(0) if ctx.needs_input_grad[2] else None)  # (out,)
            for index, part in enumerate(parts, start=1):
                if part is not None:
                    known = out[index]
                    out[index] = part if known is None else known + part
        records.inputs.clear()
        records.grads.clear()
        return tuple(out)


class _StepProduct(torch.autograd.Function):
    """x (B, in) @ weightᵀ (in, out) [+ bias (out,)] -> (B, out); backward gives x its gradient and records the pair."""

    @staticmethod
    def forward(ctx: Any, records: _Records, x: Tensor, weight: Tensor, *bias: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.records = records
        ctx.has_bias = bool(bias)
        return torch.addmm(bias[0], x, weight.t()) if bias else x @ weight.t()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Any:
        x, weight = ctx.saved_tensors
        if any(ctx.needs_input_grad[2:]):
            ctx.records.inputs.append(x)
            ctx.records.grads.append(grad)
        grad_x = grad @ weight if ctx.needs_input_grad[1] else None
        return (None, grad_x, None, *((None,) if ctx.has_bias else ()))


class PassLinear:
    """A linear map (weight (out, in), optional bias (out,)) bound for one pass, its gradients deferred.

    ``PassLinear(weight, bias)(x)`` is x @ weightᵀ + bias for x (B, in) -> (B, out), as
    ``F.linear``; the weight's and bias's gradients are formed once, after every call of the pass.

    >>> layer = nn.Linear(3, 2)
    >>> x = torch.randn(4, 3)
    >>> torch.allclose(PassLinear(layer.weight, layer.bias)(x), layer(x), atol=1e-6)
    True
    """

    def __init__(self, weight: Tensor, bias: Tensor | None = None) -> None:
        self.records = _Records()
        self.deferred = weight.requires_grad or (bias is not None and bias.requires_grad)
        params: tuple[Tensor, ...] = (weight,) if bias is None else (weight, bias)
        if self.deferred:
            gathered = _Gather.apply(self.records, *params)
            params = (gathered,) if bias is None else tuple(gathered)
        self.params = params

    def __call__(self, x: Tensor) -> Tensor:
        """Return x (B, in) @ weightᵀ + bias: (B, out)."""
        if self.deferred:
            return _StepProduct.apply(self.records, x, *self.params)
        weight, *bias = self.params
        return torch.addmm(bias[0], x, weight.t()) if bias else x @ weight.t()


class LSTMCellWeights:
    """An ``nn.LSTMCell``'s parameters bound for one pass over a sequence.

    >>> cell = nn.LSTMCell(3, 2)
    >>> x, h, c = torch.randn(4, 3), torch.zeros(4, 2), torch.zeros(4, 2)
    >>> h_ref, c_ref = cell(x, (h, c))
    >>> h_new, c_new = LSTMCellWeights(cell)(x, (h, c))
    >>> torch.allclose(h_new, h_ref, atol=1e-6) and torch.allclose(c_new, c_ref, atol=1e-6)
    True
    """

    def __init__(self, cell: nn.LSTMCell) -> None:
        """Bind ``cell``'s parameters for one pass (make a new one for every pass)."""
        # The two biases summed once per pass and carried by the input product: per step they
        # would be two more additions forward and two reductions backward.
        bias = cell.bias_ih + cell.bias_hh if cell.bias else None
        self.input = PassLinear(cell.weight_ih, bias)
        self.hidden = PassLinear(cell.weight_hh)

    def __call__(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Return (h, c) (B, H) of one step from x (B, in) and the previous (h, c) (B, H)."""
        h, c = state
        gates_x, gates_h = self.input(x), self.hidden(h)  # (B, 4H): input, forget, cell, output
        i, f, g, o = (gates_x + gates_h).chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c_new), c_new

