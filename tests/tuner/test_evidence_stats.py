"""The paired statistics against values worked out by hand and against SciPy's exact test."""

from __future__ import annotations

import random

import pytest

from tuner.evidence.stats import (
    compare_paired,
    hodges_lehmann,
    minimum_detectable_effect,
    signed_rank_distribution,
    wilcoxon_signed_rank,
)


def test_the_null_distribution_of_four_pairs() -> None:
    # 16 sign patterns of ranks 1..4: W+ from 0 to 10, symmetric, 2 ways to reach 3 (3 or 1+2), ...
    null = signed_rank_distribution([1, 2, 3, 4])
    assert sum(null.values()) == pytest.approx(1.0)
    assert null[0] == null[10] == 1 / 16 and null[3] == 2 / 16 and null[5] == 2 / 16


def test_one_sided_p_values_worked_out_by_hand() -> None:
    # All 8 pairs better: W+ = 0, the one pattern of 256.
    assert wilcoxon_signed_rank([-1, -2, -3, -4, -5, -6, -7, -8]) == (0.0, 1 / 256)
    # One worse pair, the smallest |d| (rank 1): W+ = 1, two patterns (W+ 0 or 1) of 256.
    assert wilcoxon_signed_rank([0.5, -1, -2, -3, -4, -5, -6, -7]) == (1.0, 2 / 256)
    assert wilcoxon_signed_rank([0.5, -1, -2, -3, -4, -5, -6, -7], "greater")[1] == pytest.approx(1 - 1 / 256)
    assert wilcoxon_signed_rank([0.0, 0.0]) == (0.0, 1.0)  # no signed difference: no evidence
    with pytest.raises(ValueError, match="alternative"):
        wilcoxon_signed_rank([1.0], "sideways")


def test_ties_share_their_rank() -> None:
    # |d| = 1, 1, 2: ranks 1.5, 1.5, 3; one positive of the tied pair: W+ = 1.5.
    w, p = wilcoxon_signed_rank([1.0, -1.0, -2.0])
    assert w == 1.5 and p == pytest.approx(3 / 8)  # W+ in {0, 1.5, 1.5} of 8 patterns


@pytest.mark.parametrize("n", [5, 8, 10, 12])
def test_p_values_match_scipys_exact_test(n: int) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = random.Random(n)
    for _ in range(5):
        differences = [rng.gauss(-0.4, 1.0) for _ in range(n)]
        expected = scipy_stats.wilcoxon(differences, alternative="less", method="exact")
        assert wilcoxon_signed_rank(differences) == pytest.approx((expected.statistic, expected.pvalue))


def test_hodges_lehmann_and_its_interval() -> None:
    # Walsh averages of 1, 2, 3: 1, 1.5, 2, 2, 2.5, 3: median 2; n = 3 is too few for 95 %: the whole range.
    assert hodges_lehmann([1.0, 2.0, 3.0]) == (2.0, 1.0, 3.0)
    # n = 8: 36 Walsh averages; P(W+ <= 3) = 5/256 <= 0.025 < P(W+ <= 4): the 4th smallest to the 4th largest.
    differences = [0.1, 0.5, -0.3, 0.9, 1.2, 0.4, 0.2, -0.1]
    walsh = sorted((a + b) / 2 for i, a in enumerate(differences) for b in differences[i:])
    estimate, low, high = hodges_lehmann(differences)
    assert (low, high) == (walsh[3], walsh[32])
    assert estimate == pytest.approx((walsh[17] + walsh[18]) / 2)
    assert low < estimate < high


def test_a_paired_comparison_of_a_clearly_better_candidate() -> None:
    reference = [70.0, 71.5, 69.8, 70.9, 72.0, 70.2, 71.1, 70.5]
    candidate = [r - 1.0 + 0.1 * (i % 3) for i, r in enumerate(reference)]
    result = compare_paired(candidate, reference, "minimize")
    assert result.better and result.p_value == 1 / 256
    assert result.low <= result.estimate <= result.high < 0
    assert result.as_dict()["ci95"] == [result.low, result.high]
    worse = compare_paired(reference, candidate, "minimize")
    assert not worse.better and worse.estimate > 0
    assert compare_paired(reference, candidate, "maximize").better  # higher is better there
    with pytest.raises(ValueError, match="one per seed"):
        compare_paired([1.0], [1.0, 2.0], "minimize")


def test_more_seeds_detect_smaller_effects() -> None:
    assert minimum_detectable_effect(1.0, 32) == pytest.approx(minimum_detectable_effect(1.0, 8) / 2)
    assert minimum_detectable_effect(0.0, 8) == 0.0
