"""Statistics the benches report: medians and spreads over runs, per-seed summaries, ranks and their correlation."""

from __future__ import annotations

import math
import statistics
from typing import TypedDict


class Spread(TypedDict):
    """Median and range over the runs that got a value; ``missing``: runs that did not (never reached)."""

    median: float | None
    min: float | None
    max: float | None
    n: int
    missing: int


class SeedStats(TypedDict):
    """Mean, sample standard deviation and range of per-seed figures."""

    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    n: int


def spread(values: list[float | None]) -> Spread:
    """Return {"median", "min", "max", "n", "missing"} over the values that are not None (None: never reached)."""
    present = [v for v in values if v is not None]
    missing = len(values) - len(present)
    if not present:
        return {"median": None, "min": None, "max": None, "n": 0, "missing": missing}
    return {"median": round(statistics.median(present), 4), "min": min(present), "max": max(present),
            "n": len(present), "missing": missing}


def seed_stats(values: list[float | None]) -> SeedStats:
    """Return {"mean", "std" (sample, 0 for one value), "min", "max", "n"} of per-seed figures (Nones dropped)."""
    present = [v for v in values if v is not None and math.isfinite(v)]
    if not present:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": round(statistics.fmean(present), 4),
            "std": round(statistics.stdev(present), 4) if len(present) > 1 else 0.0,
            "min": round(min(present), 4), "max": round(max(present), 4), "n": len(present)}


def median(values: list[float], digits: int = 3) -> float | None:
    """Return the rounded median of ``values`` (None when empty)."""
    return round(statistics.median(values), digits) if values else None


def p90(values: list[float], digits: int = 3) -> float | None:
    """Return the rounded 90th percentile of ``values`` (nearest rank; None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, -(-9 * len(ordered) // 10) - 1))], digits)


def rounded(value: float | None, digits: int) -> float | None:
    """Return ``value`` rounded to ``digits`` decimals (None stays None)."""
    return None if value is None else round(value, digits)


def average_ranks(values: list[float]) -> list[float]:
    """Return the 1-based ranks of ``values`` (n,), ties sharing the average of the ranks they span."""
    import numpy as np

    array = np.asarray(values, dtype=float)
    order = np.argsort(array, kind="stable")
    ranks = np.empty(len(array), dtype=float)
    position = 0
    while position < len(order):
        end = position
        while end + 1 < len(order) and array[order[end + 1]] == array[order[position]]:
            end += 1
        ranks[order[position:end + 1]] = (position + end) / 2 + 1  # mean of ranks position+1 .. end+1
        position = end + 1
    return ranks.tolist()


def spearman(x: list[float], y: list[float]) -> float | None:
    """Return Spearman's rank correlation of paired ``x`` and ``y`` (pairs with a non-finite value dropped).

    The Pearson correlation of the average ranks. None with fewer than 3 pairs or when one
    side is constant (no ranking to agree with).
    """
    import numpy as np

    pairs = [(a, b) for a, b in zip(x, y, strict=True) if math.isfinite(a) and math.isfinite(b)]
    if len(pairs) < 3:
        return None
    rx = np.asarray(average_ranks([a for a, _ in pairs]))
    ry = np.asarray(average_ranks([b for _, b in pairs]))
    dx, dy = rx - rx.mean(), ry - ry.mean()
    scale = math.sqrt(float((dx * dx).sum()) * float((dy * dy).sum()))
    return None if scale == 0 else float((dx * dy).sum()) / scale
