"""Paired comparisons on a few seeds: the exact Wilcoxon signed-rank test and the Hodges–Lehmann estimate.

A configuration is better than the defaults only if it wins on the same seeds (same initial
weights, same batch order) by more than seed-to-seed noise. With the 3 to 10 seeds a study can
afford, the exact signed-rank distribution is enumerated rather than approximated, and the
effect is reported as the Hodges–Lehmann estimate (the median of the Walsh averages of the
paired differences) with the confidence interval that inverts the same test. Pure functions of
lists of floats; nothing here knows about studies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

__all__ = ["PairedComparison", "compare_paired", "hodges_lehmann", "minimum_detectable_effect",
           "signed_rank_distribution", "wilcoxon_signed_rank"]


def _ranks(values: Sequence[float]) -> list[float]:
    """Return the ranks (1-based) of ``values``, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def signed_rank_distribution(ranks: Sequence[float]) -> dict[float, float]:
    """Return {W+: probability} of the sum of positive ranks when each sign is a fair coin (the null).

    Ranks may be halves (ties): the sums are counted on doubled ranks, which are integers.

    >>> signed_rank_distribution([1, 2])
    {0.0: 0.25, 1.0: 0.25, 2.0: 0.25, 3.0: 0.25}
    """
    doubled = [round(2 * r) for r in ranks]
    counts = {0: 1}
    for rank in doubled:
        step: dict[int, int] = {}
        for total, ways in counts.items():
            step[total] = step.get(total, 0) + ways
            step[total + rank] = step.get(total + rank, 0) + ways
        counts = step
    outcomes = 2 ** len(doubled)
    return {total / 2: ways / outcomes for total, ways in sorted(counts.items())}


def wilcoxon_signed_rank(differences: Sequence[float], alternative: str = "less") -> tuple[float, float]:
    """Return (W+, exact p-value) of the signed-rank test of ``differences`` (x − y, one per pair).

    ``alternative`` "less": the differences tend below 0 (x is smaller: better when minimised);
    "greater": above 0; "two-sided". Zero differences carry no sign and are dropped (Wilcoxon's
    convention); with none left the p-value is 1.

    >>> wilcoxon_signed_rank([-1.2, -0.4, -2.0, -0.9, 0.3, -1.1, -0.7, -1.5])
    (1.0, 0.0078125)
    """
    if alternative not in ("less", "greater", "two-sided"):
        raise ValueError(f"alternative must be less, greater or two-sided, got {alternative!r}")
    nonzero = [d for d in differences if d != 0 and not math.isnan(d)]
    if not nonzero:
        return 0.0, 1.0
    ranks = _ranks([abs(d) for d in nonzero])
    w_plus = sum(r for r, d in zip(ranks, nonzero, strict=True) if d > 0)
    null = signed_rank_distribution(ranks)
    low = sum(p for w, p in null.items() if w <= w_plus + 1e-9)
    high = sum(p for w, p in null.items() if w >= w_plus - 1e-9)
    p = {"less": low, "greater": high, "two-sided": min(1.0, 2 * min(low, high))}[alternative]
    return w_plus, min(1.0, p)


def hodges_lehmann(differences: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Return (estimate, low, high): the Hodges–Lehmann shift of paired ``differences`` and its interval.

    The estimate is the median of the n(n+1)/2 Walsh averages (d_i + d_j)/2, i ≤ j; the interval
    runs from the (c+1)-th smallest to the (c+1)-th largest of them, c the largest count of
    positive ranks with P(W+ ≤ c) ≤ (1 − confidence)/2 under the null: the values of the shift
    the two-sided signed-rank test would not reject. With too few pairs for that confidence
    (n < 6 at 95 %) the interval is the whole range of the Walsh averages.

    >>> hodges_lehmann([1.0, 2.0, 3.0])
    (2.0, 1.0, 3.0)
    """
    values = [d for d in differences if not math.isnan(d)]
    if not values:
        raise ValueError("hodges_lehmann needs at least one difference")
    walsh = sorted((values[i] + values[j]) / 2 for i in range(len(values)) for j in range(i, len(values)))
    m = len(walsh)
    estimate = (walsh[(m - 1) // 2] + walsh[m // 2]) / 2
    null = signed_rank_distribution(list(range(1, len(values) + 1)))
    tail, c = 0.0, -1
    for w, p in null.items():
        if tail + p > (1 - confidence) / 2 + 1e-12:
            break
        tail += p
        c = int(w)
    if c < 0:
        return estimate, walsh[0], walsh[-1]
    return estimate, walsh[c], walsh[m - 1 - c]


def minimum_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Return the smallest true mean paired difference a one-sided signed-rank test on ``n`` pairs detects
    with ``power``, for paired differences of standard deviation ``sd`` (normal approximation).

    The signed-rank test needs π/3 times the pairs of a t-test for normal differences (its
    asymptotic relative efficiency is 3/π), hence the factor.

    >>> round(minimum_detectable_effect(1.0, 8), 2)
    0.9
    """
    if n < 1 or sd < 0:
        raise ValueError(f"minimum_detectable_effect needs n >= 1 and sd >= 0, got n={n}, sd={sd}")
    z = NormalDist()
    return (z.inv_cdf(1 - alpha) + z.inv_cdf(power)) * sd * math.sqrt(math.pi / (3 * n))


@dataclass(frozen=True)
class PairedComparison:
    """A candidate against a reference on the same seeds (``differences`` = candidate − reference)."""

    differences: tuple[float, ...]
    direction: str  # "minimize" or "maximize": which sign is better
    w_plus: float
    p_value: float  # one-sided: the candidate is better
    estimate: float  # Hodges–Lehmann shift (candidate − reference)
    low: float
    high: float
    mde: float  # the minimum detectable effect at these seeds (same units)

    @property
    def better(self) -> bool:
        """True when the candidate is better at the 5 % level (one-sided)."""
        return self.p_value < 0.05

    def as_dict(self) -> dict[str, object]:
        """Return the comparison as plain values (for a study attribute or JSON)."""
        return {"differences": list(self.differences), "direction": self.direction, "w_plus": self.w_plus,
                "p_value": self.p_value, "estimate": self.estimate, "ci95": [self.low, self.high], "mde": self.mde,
                "better": self.better}


def compare_paired(candidate: Sequence[float], reference: Sequence[float], direction: str) -> PairedComparison:
    """Compare ``candidate``'s scores with ``reference``'s on the same seeds (in the same order).

    One-sided exact signed-rank test that the candidate is better (lower when ``direction`` is
    "minimize"), Hodges–Lehmann shift with its 95 % interval, and the minimum detectable effect
    at this many seeds for the observed spread of the differences.
    """
    if len(candidate) != len(reference) or not candidate:
        raise ValueError(f"paired scores need one per seed on both sides, got {len(candidate)} and {len(reference)}")
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be minimize or maximize, got {direction!r}")
    differences = tuple(c - r for c, r in zip(candidate, reference, strict=True))
    w_plus, p = wilcoxon_signed_rank(differences, "less" if direction == "minimize" else "greater")
    estimate, low, high = hodges_lehmann(differences)
    mean = sum(differences) / len(differences)
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / max(1, len(differences) - 1))
    return PairedComparison(differences, direction, w_plus, p, estimate, low, high,
                            minimum_detectable_effect(sd, len(differences)))
