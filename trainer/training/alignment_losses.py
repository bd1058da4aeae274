"""Attention losses: the length-masked guided-attention penalty and the differentiable monotonic term.

Guided attention is offered per decoder step (the default) or as a KL divergence to a Gaussian prior.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from trainer.model.masks import length_mask

__all__ = ["guided_attention_weights", "guided_attention_loss", "guided_attention_kl_loss", "monotonic_alignment_loss"]


def _attention_mask(in_lens: Tensor, out_lens: Tensor, max_in: int, max_out: int,
                    device: torch.device) -> Tensor:
    """Return a (B, max_out, max_in) bool mask of the valid (step, token) cells."""
    steps = length_mask(out_lens, max_out, device)
    tokens = length_mask(in_lens, max_in, device)
    return steps.unsqueeze(2) & tokens.unsqueeze(1)


def _relative_positions(in_lens: Tensor, out_lens: Tensor, max_in: int, max_out: int,
                        device: torch.device) -> Tensor:
    """Return (n/N − t/T) as a float32 tensor (B, max_out, max_in), integer indices from 0."""
    n = torch.arange(max_in, device=device, dtype=torch.float32).view(1, 1, -1)
    t = torch.arange(max_out, device=device, dtype=torch.float32).view(1, -1, 1)
    # clamp(min=1): an empty utterance must not divide by zero (its cells are masked anyway)
    big_n = torch.as_tensor(in_lens, device=device).clamp(min=1).to(torch.float32).view(-1, 1, 1)
    big_t = torch.as_tensor(out_lens, device=device).clamp(min=1).to(torch.float32).view(-1, 1, 1)
    return n / big_n - t / big_t


def guided_attention_weights(in_lens: Tensor, out_lens: Tensor, sigma: float,
                             max_in: int | None = None, max_out: int | None = None) -> Tensor:
    """Return the guided-attention penalty W, float32 (B, max_out, max_in).

    W[b, t, n] = 1 − exp(−(n/N − t/T)² / (2σ²)) with N = in_lens[b] and T = out_lens[b]
    (decoder steps), and 0 outside the valid region t < T, n < N (Tachibana et al. 2017).

    Index convention: n = 0..N−1 and t = 0..T−1 enter as n/N and t/T, so the first cell
    (0, 0) costs exactly 0 and the diagonal is the line from the first token at the first
    step to the last token at the last step, up to a constant offset of ½(1/N − 1/T) between
    cell centres, which is negligible next to σ. ``max_in``/``max_out`` default to the
    largest lengths in the batch.

    A batch of two utterances, 3 tokens over 4 steps and 2 tokens over 2 steps (in
    hundredths): cheap along each one's own diagonal, 0 on the padding.

    >>> W = guided_attention_weights(torch.tensor([3, 2]), torch.tensor([4, 2]), sigma=0.4)
    >>> (100 * W[0]).round().int()
    tensor([[ 0, 29, 75],
            [18,  2, 42],
            [54,  8,  8],
            [83, 42,  2]], dtype=torch.int32)
    >>> (100 * W[1]).round().int()
    tensor([[ 0, 54,  0],
            [54,  0,  0],
            [ 0,  0,  0],
            [ 0,  0,  0]], dtype=torch.int32)
    """
    in_lens = torch.as_tensor(in_lens)
    out_lens = torch.as_tensor(out_lens, device=in_lens.device)
    max_in = int(in_lens.max()) if max_in is None else max_in
    max_out = int(out_lens.max()) if max_out is None else max_out
    rel = _relative_positions(in_lens, out_lens, max_in, max_out, in_lens.device)
    weights = 1.0 - torch.exp(-rel.pow(2) / (2.0 * sigma**2))
    mask = _attention_mask(in_lens, out_lens, max_in, max_out, in_lens.device)
    return torch.where(mask, weights, torch.zeros_like(weights))


def _valid_steps(out_lens: Tensor, max_out: int) -> Tensor:
    """Return the number of valid decoder steps in the batch (at least 1, so it can divide)."""
    return out_lens.clamp(max=max_out).sum().clamp(min=1)


def guided_attention_loss(att: Tensor, in_lens: Tensor, out_lens: Tensor, sigma: float) -> Tensor:
    """Return the guided-attention loss, a scalar in [0, 1): the expected penalty of one decoder step.

    loss = Σ_{b,t,n} A·W over valid cells / Σ_b out_lens[b]  (W from ``guided_attention_weights``).

    Why per decoder step and not the usual mean over cells (ESPnet, Coqui): the cell mean
    divides by N once more, so the same weight pulls less the longer the text, and on a
    batch of sentences the pull toward the diagonal is too weak to matter. Measured on a
    2.8 M-parameter prototype (r = 2, batch 16, weight 2.5, σ 0.4, an eSpeak corpus): with
    the cell mean, diagonality was 0.20 after 850 steps; per step, 0.85 at step 200.
    Since each valid row of A sums to 1 and W < 1, the value lies in [0, 1).
    """
    b, max_out, max_in = att.shape
    in_lens = torch.as_tensor(in_lens, device=att.device)
    out_lens = torch.as_tensor(out_lens, device=att.device)
    mask = _attention_mask(in_lens, out_lens, max_in, max_out, att.device)
    weights = guided_attention_weights(in_lens, out_lens, sigma, max_in, max_out).to(att.dtype)
    att = torch.where(mask, att, torch.zeros_like(att))
    return (att * weights).sum() / _valid_steps(out_lens, max_out)


def guided_attention_kl_loss(att: Tensor, in_lens: Tensor, out_lens: Tensor, sigma: float,
                             eps: float = 1e-8) -> Tensor:
    """Return KL(prior ‖ att) summed over valid cells per decoder step, a non-negative scalar (nats/step).

    The prior of step t is the Gaussian exp(−(n/N − t/T)² / (2σ²)) normalised over the
    valid tokens n < N, so it is a distribution like each row of ``att``. ``att`` is used
    as is: it already is a distribution, and a second softmax would flatten it before
    the comparison. log(att) is clamped at log(eps) so a zero
    attention weight gives a large but finite penalty. Same index convention and
    per-step normalisation as ``guided_attention_loss``.
    """
    b, max_out, max_in = att.shape
    in_lens = torch.as_tensor(in_lens, device=att.device)
    out_lens = torch.as_tensor(out_lens, device=att.device)
    mask = _attention_mask(in_lens, out_lens, max_in, max_out, att.device)
    rel = _relative_positions(in_lens, out_lens, max_in, max_out, att.device)
    # Invalid tokens get a very negative logit so the row softmax puts no mass there;
    # rows past T become a harmless uniform that the mask removes below.
    logits = torch.where(mask, -rel.pow(2) / (2.0 * sigma**2), torch.full_like(rel, -1e4))
    log_prior = torch.log_softmax(logits, dim=-1).to(att.dtype)
    prior = log_prior.exp()
    att = torch.where(mask, att, torch.ones_like(att))  # log(1) = 0 in padding, then masked
    kl = prior * (log_prior - att.clamp(min=eps).log())
    kl = torch.where(mask, kl, torch.zeros_like(kl))
    return kl.sum() / _valid_steps(out_lens, max_out)


def monotonic_alignment_loss(att: Tensor, in_lens: Tensor, out_lens: Tensor,
                             max_jump_tokens: float | None = None) -> Tensor:
    """Return the differentiable monotonic-alignment penalty, a non-negative scalar.

    The expected position of step t is c_t = Σ_n n·A[t, n] / N (n = 0..N−1, so c_t is in
    [0, 1)). The loss is the mean over valid consecutive step pairs (t−1, t), t < T, of
    ReLU(c_{t−1} − c_t): how far attention moved backward, as a share of the text.
    Unlike a penalty on the argmax position (which has no gradient) this has a gradient, non-zero
    only on pairs where c moves backward (ReLU'(0) = 0, so a monotone alignment,
    including one that stays put, gets exactly zero gradient).

    With ``max_jump_tokens`` set, ReLU(c_t − c_{t−1} − max_jump_tokens/N) is added per
    pair, penalising forward skips of more than that many tokens in one decoder step.
    """
    b, max_out, max_in = att.shape
    in_lens = torch.as_tensor(in_lens, device=att.device)
    out_lens = torch.as_tensor(out_lens, device=att.device)
    mask = _attention_mask(in_lens, out_lens, max_in, max_out, att.device)
    att = torch.where(mask, att, torch.zeros_like(att))
    big_n = in_lens.clamp(min=1).to(att.dtype).view(-1, 1)  # (B, 1)
    positions = torch.arange(max_in, device=att.device, dtype=att.dtype).view(1, 1, -1)
    expected = (att * positions).sum(-1) / big_n  # (B, T_out)
    delta = expected[:, 1:] - expected[:, :-1]  # (B, T_out − 1): c_t − c_{t−1}
    # A pair (t−1, t) is valid when t is a valid step (then t−1 is too).
    pair_mask = length_mask(out_lens, max_out, att.device)[:, 1:]
    penalty = F.relu(-delta)
    if max_jump_tokens is not None:
        penalty = penalty + F.relu(delta - max_jump_tokens / big_n)
    penalty = torch.where(pair_mask, penalty, torch.zeros_like(penalty))
    # clamp(min=1): a batch of one-step utterances has no pairs and costs 0.
    return penalty.sum() / pair_mask.sum().clamp(min=1)

