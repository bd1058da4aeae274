"""Quality metrics on alignments with known answers (padding holds garbage), and MCD-DTW against a slow reference."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.evaluation.metrics import (
    alignment_metrics,
    alignment_metrics_per_utterance,
    gate_balanced_accuracy,
    mel_cepstral_distortion,
    stop_metrics,
)

GARBAGE = 100.0


def _one(att: torch.Tensor) -> dict[str, float]:
    """Metrics of a single unpadded (T, N) alignment."""
    t, n = att.shape
    return alignment_metrics(att.unsqueeze(0), torch.tensor([n]), torch.tensor([t]))


def _path(steps: int, tokens: int, token_of_step: list[int]) -> torch.Tensor:
    """A hard alignment: step t attends only token token_of_step[t]."""
    att = torch.zeros(steps, tokens)
    att[torch.arange(steps), torch.tensor(token_of_step)] = 1.0
    return att


def test_identity_alignment_is_perfect() -> None:
    assert _one(torch.eye(10)) == {"diagonality": 1.0, "focus": 1.0, "monotonicity": 1.0, "coverage": 1.0}


def test_stretched_linear_alignment_is_perfect() -> None:
    # T = 3N: step t on token t // 3, a perfectly linear path for a slow speaker.
    for n in (5, 12):
        metrics = _one(_path(3 * n, n, [t // 3 for t in range(3 * n)]))
        assert metrics == pytest.approx({"diagonality": 1.0, "focus": 1.0, "monotonicity": 1.0, "coverage": 1.0})


def test_compressed_linear_alignment() -> None:
    # T = N/2: step t splits its attention between tokens 2t and 2t+1 (both 0.5/N from the diagonal).
    att = torch.zeros(5, 10)
    for t in range(5):
        att[t, 2 * t] = att[t, 2 * t + 1] = 0.5
    metrics = _one(att)
    assert metrics["diagonality"] == pytest.approx(1.0)
    assert metrics["focus"] == pytest.approx(0.5)
    assert metrics["monotonicity"] == 1.0  # ties go to the lower token: peaks 0, 2, 4, 6, 8
    assert metrics["coverage"] == pytest.approx(0.5)


def test_uniform_alignment() -> None:
    # T=4, N=5, every cell 0.2. Centres: steps .125 .375 .625 .875, tokens .1 .3 .5 .7 .9:
    # each step has exactly one token within 0.1, so diagonality = 4 · 0.2 / 4.
    metrics = _one(torch.full((4, 5), 0.2))
    assert metrics["diagonality"] == pytest.approx(0.2)
    assert metrics["focus"] == pytest.approx(0.2)
    assert metrics["monotonicity"] == 1.0  # every argmax is token 0
    assert metrics["coverage"] == pytest.approx(0.2)


def test_reversed_alignment() -> None:
    # anti-diagonal, N=T=10: |(t+.5) − (9−t+.5)|/10 ≤ .1 only for t = 4, 5.
    metrics = _one(torch.eye(10).flip(1))
    assert metrics == pytest.approx({"diagonality": 0.2, "focus": 1.0, "monotonicity": 0.0, "coverage": 1.0})


def test_monotonicity_and_coverage_count_steps_and_tokens() -> None:
    # peaks 0, 1, 0, 1, 3 over N=5: 1 of 4 moves goes back; tokens 2 and 4 never peak.
    metrics = _one(_path(5, 5, [0, 1, 0, 1, 3]))
    assert metrics["monotonicity"] == pytest.approx(0.75)
    assert metrics["coverage"] == pytest.approx(3 / 5)


def test_batch_is_mean_over_utterances_and_padding_is_ignored() -> None:
    att = torch.full((2, 12, 10), GARBAGE)
    att[0, :10, :10] = torch.eye(10).flip(1)  # reversed, T=N=10
    att[1] = 0.0
    att[1, :12, :4] = _path(12, 4, [t // 3 for t in range(12)])  # stretched, N=4, T=12
    att[1, :, 4:] = GARBAGE
    per = alignment_metrics_per_utterance(att, torch.tensor([10, 4]), torch.tensor([10, 12]))
    assert per["diagonality"].shape == (2,)
    torch.testing.assert_close(per["diagonality"], torch.tensor([0.2, 1.0]))
    torch.testing.assert_close(per["monotonicity"], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(per["coverage"], torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(per["focus"], torch.tensor([1.0, 1.0]))
    batch = alignment_metrics(att, torch.tensor([10, 4]), torch.tensor([10, 12]))
    assert batch["diagonality"] == pytest.approx(0.6)
    assert batch["monotonicity"] == pytest.approx(0.5)
    assert all(isinstance(value, float) for value in batch.values())


def test_one_step_utterance_is_monotone() -> None:
    assert _one(torch.tensor([[0.1, 0.9]]))["monotonicity"] == 1.0


# -------------------------------------------------------------------------- gate


def _gate_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logits = torch.tensor([
        [-3.0, 2.0, -1.0, 3.0],   # predictions at 0.5: 0 1 0 1
        [-2.0, -1.0, -GARBAGE, -GARBAGE],  # 0 0 | padding would be wrong if counted
    ])
    targets = torch.tensor([
        [0.0, 0.0, 0.0, 1.0],
        [0.0, 1.0, 1.0, 1.0],  # padding targets 1 (the NVIDIA collate pads the gate with 1)
    ])
    return logits, targets, torch.tensor([4, 2])


def test_gate_balanced_accuracy_hand_example_with_padding() -> None:
    logits, targets, lens = _gate_case()
    # positives (u0 t3 hit, u1 t1 missed): TPR 1/2; negatives (u0 t0 ok, t1 wrong, t2 ok; u1 t0 ok): TNR 3/4
    assert gate_balanced_accuracy(logits, targets, lens, threshold=0.5) == pytest.approx((0.5 + 0.75) / 2)
    # at 0.9, sigmoid(2) = .88 no longer fires, sigmoid(3) = .95 still does: TNR 1
    assert gate_balanced_accuracy(logits, targets, lens, threshold=0.9) == pytest.approx((0.5 + 1.0) / 2)


def test_gate_balanced_accuracy_is_half_for_never_stopping_gate() -> None:
    targets = torch.zeros(3, 100)
    targets[:, 99] = 1.0
    logits = torch.full((3, 100), -5.0)
    assert gate_balanced_accuracy(logits, targets, torch.tensor([100, 100, 100])) == pytest.approx(0.5)


def test_gate_balanced_accuracy_missing_class_uses_present_rate() -> None:
    logits = torch.tensor([[-1.0, 1.0, -1.0, -1.0]])
    targets = torch.zeros(1, 4)
    assert gate_balanced_accuracy(logits, targets, torch.tensor([4])) == pytest.approx(0.75)
    assert math.isnan(gate_balanced_accuracy(logits, targets, torch.tensor([0])))


def test_stop_metrics() -> None:
    result = stop_metrics(torch.tensor([110, 90, 200]), torch.tensor([100, 100, 100]),
                          torch.tensor([False, False, True]))
    assert result["stop_error"] == pytest.approx((0.1 + 0.1 + 1.0) / 3)
    assert result["hit_max_rate"] == pytest.approx(1 / 3)
    assert stop_metrics([50], [50], [False]) == {"stop_error": 0.0, "hit_max_rate": 0.0}


# --------------------------------------------------------------------------- MCD-DTW


def reference_mcd(reference: torch.Tensor, synthesized: torch.Tensor, n_coeffs: int = 13) -> float:
    """MCD-DTW computed the slow, obvious way: a DCT by its defining sum, DTW by a double loop."""
    bands = reference.shape[0]

    def cepstra(mel: torch.Tensor) -> list[list[float]]:
        frames = mel.double().T.tolist()
        return [[sum(math.sqrt(2.0 / bands) * x[m] * math.cos(math.pi * k * (2 * m + 1) / (2 * bands))
                     for m in range(bands)) for k in range(1, n_coeffs + 1)] for x in frames]

    a, b = cepstra(reference), cepstra(synthesized)
    inf = float("inf")
    cost = [[inf] * (len(b) + 1) for _ in range(len(a) + 1)]
    cells = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    cost[0][0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d = math.dist(a[i - 1], b[j - 1])
            options = [(cost[i - 1][j - 1], cells[i - 1][j - 1]), (cost[i - 1][j], cells[i - 1][j]),
                       (cost[i][j - 1], cells[i][j - 1])]
            best = min(options, key=lambda option: option[0])  # first of equal costs: the diagonal
            cost[i][j], cells[i][j] = d + best[0], best[1] + 1
    return 10.0 * math.sqrt(2.0) / math.log(10.0) * cost[-1][-1] / cells[-1][-1]


def test_mcd_matches_an_independent_computation() -> None:
    generator = torch.Generator().manual_seed(3)
    reference = torch.randn(80, 9, generator=generator) - 4.0
    synthesized = torch.randn(80, 13, generator=generator) - 4.0
    assert mel_cepstral_distortion(reference, synthesized) == pytest.approx(reference_mcd(reference, synthesized),
                                                                            rel=1e-9)
    assert mel_cepstral_distortion(reference, synthesized, n_coeffs=5) == pytest.approx(
        reference_mcd(reference, synthesized, 5), rel=1e-9)


def test_mcd_is_zero_for_the_same_speech_at_another_tempo() -> None:
    mel = torch.randn(80, 20, generator=torch.Generator().manual_seed(1)) - 4.0
    assert mel_cepstral_distortion(mel, mel) == 0.0
    assert mel_cepstral_distortion(mel, mel.repeat_interleave(2, dim=1)) == pytest.approx(0.0, abs=1e-6)
    assert mel_cepstral_distortion(mel.repeat_interleave(3, dim=1), mel) == pytest.approx(0.0, abs=1e-6)
    assert mel_cepstral_distortion(mel, mel + 2.5) == pytest.approx(0.0, abs=1e-6)  # loudness is c0: dropped


def test_mcd_of_a_known_cepstral_shift() -> None:
    # Shifting every frame along the first cepstral basis vector by delta moves c1 by delta and nothing else.
    bands = torch.arange(80, dtype=torch.float64)
    basis = math.sqrt(2.0 / 80) * torch.cos(math.pi * 1 * (2 * bands + 1) / 160)
    flat = torch.full((80, 10), -3.0, dtype=torch.float64)
    for delta in (0.5, 2.0):
        shifted = flat + delta * basis[:, None]
        expected = 10.0 * math.sqrt(2.0) / math.log(10.0) * delta  # every cell of the path is delta apart
        assert mel_cepstral_distortion(flat, shifted) == pytest.approx(expected, rel=1e-9)
    # c14 and above are not compared.
    basis14 = math.sqrt(2.0 / 80) * torch.cos(math.pi * 14 * (2 * bands + 1) / 160)
    assert mel_cepstral_distortion(flat, flat + 3.0 * basis14[:, None]) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("reference, synthesized, fragment", [
    (torch.zeros(79, 5), torch.zeros(80, 5),
     r"reference: expected a log-mel of shape \(80, frames > 0\), got \(79, 5\)"),
    (torch.zeros(80, 5), torch.zeros(80, 0), r"synthesized: .*got \(80, 0\)"),
    (torch.zeros(80, 5), torch.zeros(5), r"synthesized: .*got \(5,\)"),
    (torch.full((80, 5), math.nan), torch.zeros(80, 5), r"reference: log-mel of shape \(80, 5\) holds NaN"),
    (torch.zeros(80, 5), torch.full((80, 3), math.inf), r"synthesized: log-mel of shape \(80, 3\) holds NaN"),
])
def test_mcd_refuses_bad_input_naming_the_shapes(reference, synthesized, fragment) -> None:
    with pytest.raises(ValueError, match=fragment):
        mel_cepstral_distortion(reference, synthesized)
