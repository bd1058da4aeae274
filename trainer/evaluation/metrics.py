"""Quality metrics: attention alignment, stop-gate balanced accuracy, free-running stop figures, MCD-DTW(-SL).

The tuner prunes on these and the dashboards show them, so each one is defined exactly in
its docstring and computed literally so (``trainer.evaluation.metric_registry`` declares their names,
directions and ranges). For one utterance, A is its attention restricted to its true
lengths: T decoder steps × N text tokens, each row summing to 1. A batch's figure is the
mean over its utterances (not over cells), so a long utterance counts as much as a short one.
Nothing here tracks gradients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from trainer.model.masks import length_mask

__all__ = [
    "DIAGONAL_BAND",
    "alignment_metrics_per_utterance",
    "alignment_metrics",
    "dtw_path_cost",
    "gate_balanced_accuracy",
    "mel_cepstral_distortion",
    "mel_cepstral_distortion_sl",
    "SPEECH_MARGIN",
    "trim_silence",
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
    in_lens = torch.as_tensor(in_lens, device=att.device).clamp(min=1)
    out_lens = torch.as_tensor(out_lens, device=att.device).clamp(min=1)
    steps = length_mask(out_lens, att.shape[1])  # (B, T_out)
    tokens = length_mask(in_lens, att.shape[2])  # (B, T_in)
    cells = steps.unsqueeze(2) & tokens.unsqueeze(1)
    a = torch.where(cells, att, torch.zeros_like(att)).to(torch.float64)
    big_t = out_lens.to(torch.float64)
    focus = a.amax(dim=2).sum(dim=1) / big_t  # padded rows are all zero, so their max adds 0
    monotonicity, coverage = _peak_figures(a, steps, tokens, in_lens)
    return {
        "diagonality": _diagonality(a, out_lens, in_lens).float(),
        "focus": focus.float(),
        "monotonicity": monotonicity.float(),
        "coverage": coverage.float(),
    }


def _diagonality(a: Tensor, out_lens: Tensor, in_lens: Tensor) -> Tensor:
    """Return (B,) float64: the attention mass inside the diagonal band per decoder step (cell centres).

    ``a`` (B, T_out, T_in) float64 is zero outside each utterance's lengths (clamped to ≥ 1).
    """
    _, max_out, max_in = a.shape
    big_t, big_n = out_lens.to(torch.float64), in_lens.to(torch.float64)
    t_pos = (torch.arange(max_out, device=a.device, dtype=torch.float64) + 0.5).view(1, -1, 1) / big_t.view(-1, 1, 1)
    n_pos = (torch.arange(max_in, device=a.device, dtype=torch.float64) + 0.5).view(1, 1, -1) / big_n.view(-1, 1, 1)
    band = (t_pos - n_pos).abs() <= DIAGONAL_BAND + _BAND_TOLERANCE
    return (a * band).sum(dim=(1, 2)) / big_t


def _peak_figures(a: Tensor, steps: Tensor, tokens: Tensor, in_lens: Tensor) -> tuple[Tensor, Tensor]:
    """Return (monotonicity, coverage), each (B,) float64, from each valid step's most attended valid token.

    ``a`` (B, T_out, T_in) is zero outside the lengths; ``steps`` (B, T_out) and ``tokens``
    (B, T_in) are the valid-position masks; ``in_lens`` (B,) the token counts (≥ 1).
    """
    # argmax over valid tokens only: invalid tokens can never win.
    peaks = torch.where(tokens.unsqueeze(1), a, torch.full_like(a, -1.0)).argmax(dim=2)  # (B, T_out)
    pairs = steps[:, 1:]
    forward = (peaks[:, 1:] >= peaks[:, :-1]) & pairs
    n_pairs = pairs.sum(dim=1)
    ones = torch.ones(a.shape[0], dtype=torch.float64, device=a.device)
    monotonicity = torch.where(n_pairs > 0, forward.sum(dim=1) / n_pairs.clamp(min=1), ones)
    hits = (F.one_hot(peaks, a.shape[2]).bool() & steps.unsqueeze(2)).any(dim=1)  # (B, T_in)
    coverage = (hits & tokens).sum(dim=1) / in_lens.to(torch.float64)
    return monotonicity, coverage


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


# ------------------------------------------------------------------ mel cepstral distortion

MCD_SCALE = 10.0 * math.sqrt(2.0) / math.log(10.0)  # dB per unit of Euclidean cepstral distance
MCD_BANDS = 80


def _dct_matrix(n_bands: int, n_coeffs: int) -> np.ndarray:
    """Return rows 1..n_coeffs of the orthonormal DCT-II over ``n_bands``: (n_coeffs, n_bands), float64.

    Row k is √(2/n)·cos(πk(2m+1)/(2n)) for m = 0..n−1 (row 0, the energy, which would be
    divided by √2, is left out).
    """
    m = np.arange(n_bands, dtype=np.float64)
    k = np.arange(1, n_coeffs + 1, dtype=np.float64)[:, None]
    return math.sqrt(2.0 / n_bands) * np.cos(np.pi * k * (2.0 * m + 1.0) / (2.0 * n_bands))


def _check_mel(name: str, mel: Tensor | np.ndarray) -> np.ndarray:
    array = np.asarray(mel.detach().cpu().double() if isinstance(mel, Tensor) else mel, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != MCD_BANDS or array.shape[1] == 0:
        raise ValueError(f"{name}: expected a log-mel of shape ({MCD_BANDS}, frames > 0), got {tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: log-mel of shape {tuple(array.shape)} holds NaN or infinite values")
    return array


def dtw_path_cost(distances: np.ndarray) -> tuple[float, int]:
    """Return (least summed distance, number of cells on that path) of dynamic time warping.

    ``distances`` (T, T') holds the frame distances; the path runs from (0, 0) to (T−1, T'−1)
    with steps (1, 0), (0, 1) and (1, 1). Of equal-cost predecessors the diagonal one wins
    (the shorter path), then (i−1, j), then (i, j−1). Vectorised along anti-diagonals: a
    cell depends only on the previous two diagonals.
    """
    rows, cols = distances.shape
    cost = np.full((rows + 1, cols + 1), np.inf)
    cost[0, 0] = 0.0
    length = np.zeros((rows + 1, cols + 1), dtype=np.int64)
    for diagonal in range(rows + cols - 1):
        i = np.arange(max(0, diagonal - cols + 1), min(diagonal, rows - 1) + 1)
        j = diagonal - i
        candidates = np.stack([cost[i, j], cost[i, j + 1], cost[i + 1, j]])  # diagonal, from above, from the left
        best = np.argmin(candidates, axis=0)
        cost[i + 1, j + 1] = distances[i, j] + candidates[best, np.arange(i.size)]
        previous = np.stack([length[i, j], length[i, j + 1], length[i + 1, j]])
        length[i + 1, j + 1] = previous[best, np.arange(i.size)] + 1
    return float(cost[rows, cols]), int(length[rows, cols])


def mel_cepstral_distortion(reference: Tensor | np.ndarray, synthesized: Tensor | np.ndarray,
                            n_coeffs: int = 13) -> float:
    """Return the mel cepstral distortion with DTW (MCD-DTW) between two natural-log mels, in dB.

    Both are (80, frames) in the trainer's convention (frames may differ). Each frame x
    becomes cepstra c = D·x (D the orthonormal DCT-II over the 80 bands) of which c_1..c_13
    are kept (c_0, the energy, is dropped); frames are compared by the Euclidean distance
    of those; the two sequences are aligned by dynamic time warping (``dtw_path_cost``);
    MCD = (10·√2 / ln 10) × (summed distance along the path / cells on the path).

    Identical mels give 0, and so does a copy stretched in time (DTW absorbs tempo), so
    this measures what is said and how it sounds, not how fast. ValueError (naming the
    shapes) for another band count, an empty mel or a non-finite value.

    >>> mel = torch.linspace(-5, 0, 80)[:, None] * torch.ones(80, 4)
    >>> round(mel_cepstral_distortion(mel, mel.repeat_interleave(3, dim=1)), 6)
    0.0
    """
    if not 1 <= n_coeffs < MCD_BANDS:
        raise ValueError(f"n_coeffs must be in 1..{MCD_BANDS - 1}, got {n_coeffs}")
    ref = _check_mel("reference", reference)
    syn = _check_mel("synthesized", synthesized)
    dct = _dct_matrix(MCD_BANDS, n_coeffs)
    ref_c, syn_c = torch.from_numpy((dct @ ref).T), torch.from_numpy((dct @ syn).T)  # (T, n), (T', n)
    # From the differences, not |a|² + |b|² − 2a·b, whose rounding would leave identical frames 1e-8 apart.
    distances = torch.cdist(ref_c, syn_c, compute_mode="donot_use_mm_for_euclid_dist").numpy()
    total, cells = dtw_path_cost(distances)
    return MCD_SCALE * total / cells


SPEECH_MARGIN = 4.0  # natural-log units below the loudest frame's band mean still counted as speech


def trim_silence(mel: Tensor | np.ndarray) -> np.ndarray:
    """Return the natural-log mel (80, frames) cut to its speech: from its first to its last speech frame.

    A frame is speech when its mean over the 80 bands exceeds the loudest frame's mean minus
    ``SPEECH_MARGIN`` (4.0, about 35 dB of power). A mel with no such frame (a flat one) keeps
    its first frame. ValueError as ``mel_cepstral_distortion``.

    >>> mel = torch.full((80, 6), -11.0)
    >>> mel[:, 2:4] = -2.0
    >>> trim_silence(mel).shape
    (80, 2)
    """
    array = _check_mel("mel", mel)
    level = array.mean(axis=0)  # (frames,)
    speech = np.flatnonzero(level > level.max() - SPEECH_MARGIN)
    if speech.size == 0:
        return array[:, :1]
    return array[:, speech[0]: speech[-1] + 1]


def mel_cepstral_distortion_sl(reference: Tensor | np.ndarray, synthesized: Tensor | np.ndarray,
                               n_coeffs: int = 13) -> float:
    """Return MCD-DTW-SL in dB: MCD-DTW of the silence-trimmed mels times their length ratio's penalty.

    Both mels are trimmed (``trim_silence``) to N_R and N_S frames; the score is
    ``mel_cepstral_distortion(trimmed R, trimmed S) × max(N_R / N_S, N_S / N_R)``. DTW alone
    forgives length: a decoder that never stops, or one that repeats a smeared average frame,
    matches a recording cheaply. The penalty charges every frame too many or too few in full,
    so output that stops after a few frames or runs on to the step limit ranks behind any
    output of the right length. Silence at either end is not charged (a pause is not an
    error); noise is (it is loud everywhere, so none of it is trimmed).

    >>> mel = torch.linspace(-5, 0, 80)[:, None] * torch.ones(80, 4)
    >>> mel_cepstral_distortion_sl(mel, mel)
    0.0
    >>> slower = (mel * 1.1).repeat_interleave(2, dim=1)  # a little off, and twice as long
    >>> round(mel_cepstral_distortion_sl(mel, slower) / mel_cepstral_distortion(mel, slower), 6)
    2.0
    """
    ref, syn = trim_silence(reference), trim_silence(synthesized)
    penalty = max(ref.shape[1] / syn.shape[1], syn.shape[1] / ref.shape[1])
    return mel_cepstral_distortion(ref, syn, n_coeffs) * penalty
