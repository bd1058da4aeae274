"""Quality metrics: attention alignment, stop-gate balanced accuracy and free-running stop figures.

The tuner prunes on these and the dashboards show them, so each one is defined exactly in
its docstring and computed literally so (``trainer.metric_registry`` declares their names,
directions and ranges). For one utterance, A is its attention restricted to its true
lengths: T decoder steps × N text tokens, each row summing to 1. A batch's figure is the
mean over its utterances (not over cells), so a long utterance counts as much as a short one.
Nothing here tracks gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from trainer.masks import length_mask

__all__ = [
    "DIAGONAL_BAND",
    "alignment_metrics_per_utterance",
    "alignment_metrics",
    "gate_balanced_accuracy",
    "stop_metrics",
]

DIAGONAL_BAND = 0.1  # half-width of the diagonal band, as a share of the normalised axes

# Float tolerance on the band edge: |t/T − n/N| lands on exactly 0.1 for many (T, N)
# pairs, and rounding must not decide whether such a cell is in the band.
_BAND_TOLERANCE = 1e-9


@torch.no_grad()
def alignment_metrics_per_utterance(att: Tensor, in_lens: Tensor, out_lens: Tensor) -> dict[str, Tensor]:
    """Return {"diagonality", "focus", "monotonicity", "coverage"}, each a float tensor (B,) in [0, 1].

    ``att`` is (B, T_out, T_in); utterance b uses only its first out_lens[b] steps and
    in_lens[b] tokens (lengths ≥ 1 assumed; 0 is treated as 1).

    * diagonality = Σ_{t,n} A[t,n]·1(|t/T − n/N| ≤ 0.1) / T. Index convention: positions
      are taken at cell centres, t/T := (t + ½)/T and n/N := (n + ½)/N with t = 0..T−1,
      n = 0..N−1, so both axes span (0, 1) symmetrically. Then a perfectly linear
      alignment scores 1.0 however the lengths relate: the identity (T = N) is exactly on
      the diagonal, and a path stretched k-fold (step t on token ⌊t/k⌋) stays within
      (k−1)/(2kN) of it. (With left edges, t/T and n/N, the stretched path drifts up to
      (k−1)/(kN) to one side and a short text would fall out of the band.)
    * focus = mean over t of max_n A[t, n].
    * monotonicity = share of steps t ≥ 1 with argmax_n A[t] ≥ argmax_n A[t−1];
      1.0 for a one-step utterance (nothing can go backward).
    * coverage = share of the N tokens that are the argmax of at least one step.

    Ties in argmax go to the lowest token index (torch's rule).
    """
    b, max_out, max_in = att.shape
    in_lens = torch.as_tensor(in_lens, device=att.device).clamp(min=1)
    out_lens = torch.as_tensor(out_lens, device=att.device).clamp(min=1)
    steps = length_mask(out_lens, max_out)  # (B, T_out)
    tokens = length_mask(in_lens, max_in)  # (B, T_in)
    cells = steps.unsqueeze(2) & tokens.unsqueeze(1)
    a = torch.where(cells, att, torch.zeros_like(att)).to(torch.float64)
    big_t = out_lens.to(torch.float64)
    big_n = in_lens.to(torch.float64)

    t_pos = (torch.arange(max_out, device=att.device, dtype=torch.float64) + 0.5).view(1, -1, 1) / big_t.view(-1, 1, 1)
    n_pos = (torch.arange(max_in, device=att.device, dtype=torch.float64) + 0.5).view(1, 1, -1) / big_n.view(-1, 1, 1)
    band = (t_pos - n_pos).abs() <= DIAGONAL_BAND + _BAND_TOLERANCE
    diagonality = (a * band).sum(dim=(1, 2)) / big_t

    focus = a.amax(dim=2).sum(dim=1) / big_t  # padded rows are all zero, so their max adds 0

    # argmax over valid tokens only: invalid tokens can never win.
    peaks = torch.where(tokens.unsqueeze(1), a, torch.full_like(a, -1.0)).argmax(dim=2)  # (B, T_out)
    pairs = steps[:, 1:]
    forward = (peaks[:, 1:] >= peaks[:, :-1]) & pairs
    n_pairs = pairs.sum(dim=1)
    monotonicity = torch.where(n_pairs > 0, forward.sum(dim=1) / n_pairs.clamp(min=1), torch.ones_like(big_t))

    hits = (F.one_hot(peaks, max_in).bool() & steps.unsqueeze(2)).any(dim=1)  # (B, T_in)
    coverage = (hits & tokens).sum(dim=1) / big_n

    return {
        "diagonality": diagonality.float(),
        "focus": focus.float(),
        "monotonicity": monotonicity.float(),
        "coverage": coverage.float(),
    }


def alignment_metrics(att: Tensor, in_lens: Tensor, out_lens: Tensor) -> dict[str, float]:
    """Return {"diagonality", "focus", "monotonicity", "coverage"} as floats: batch means of the per-utterance values.

    See ``alignment_metrics_per_utterance`` for the definitions and shapes.
    """
    per_utterance = alignment_metrics_per_utterance(att, in_lens, out_lens)
    return {name: float(values.mean()) for name, values in per_utterance.items()}


@torch.no_grad()
def gate_balanced_accuracy(gate_logits: Tensor, gate_targets: Tensor, lengths: Tensor,
                           threshold: float = 0.5) -> float:
    """Return the balanced accuracy of the stop gate, a float in [0, 1] (NaN if no valid step).

    A step is predicted "stop" when sigmoid(logit) > ``threshold``; ``gate_logits`` and
    ``gate_targets`` are (B, T_out) and steps t ≥ lengths[b] are excluded. The value is
    the mean of the true-positive rate (stop steps predicted stop) and the true-negative
    rate (other steps predicted continue), so always answering "continue" scores 0.5,
    not the ~99% plain accuracy would give. A class with no valid sample has no rate and
    is left out of the mean (as sklearn's balanced_accuracy_score does), so the value is
    then the rate of the class that is present.
    """
    lengths = torch.as_tensor(lengths, device=gate_logits.device)
    valid = length_mask(lengths, gate_logits.size(1))
    predicted = torch.sigmoid(gate_logits.float()) > threshold
    actual = gate_targets > 0.5
    rates = []
    for positive in (True, False):
        in_class = valid & (actual == positive)
        if in_class.any():
            rates.append(float((predicted[in_class] == positive).float().mean()))
    return sum(rates) / len(rates) if rates else float("nan")


def stop_metrics(pred_lengths: Tensor | Sequence[float], ref_lengths: Tensor | Sequence[float],
                 hit_max: Tensor | Sequence[bool]) -> dict[str, float]:
    """Return {"stop_error", "hit_max_rate"} for free-running synthesis of a batch.

    ``pred_lengths``/``ref_lengths`` (B,) are in the same unit (frames or decoder steps);
    ``hit_max`` (B,) is True where decoding ran to the max decoder steps without stopping.
    stop_error is the mean of |pred − ref| / ref (a relative error, 0.1 = 10% off);
    hit_max_rate the share of utterances that hit the maximum.
    """
    pred = torch.as_tensor(pred_lengths, dtype=torch.float64)
    ref = torch.as_tensor(ref_lengths, dtype=torch.float64).clamp(min=1e-9)
    hit = torch.as_tensor(hit_max, dtype=torch.bool)
    return {
        "stop_error": float(((pred - ref).abs() / ref).mean()),
        "hit_max_rate": float(hit.to(torch.float64).mean()),
    }
