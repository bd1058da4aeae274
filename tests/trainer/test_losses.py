"""Losses against hand-computed values; padded cells hold garbage (100, NaN) to prove they are excluded."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from trainer.model.masks import masked_l1, masked_mse
from trainer.training.alignment_losses import (
    guided_attention_kl_loss,
    guided_attention_loss,
    guided_attention_weights,
    monotonic_alignment_loss,
)
from trainer.training.losses import LossWeights, TacotronLoss, gate_loss
from trainer.training.mel_losses import SpectralMelLoss, gaussian_blur, gram_style_loss, structural_mel_loss

GARBAGE = 100.0


def _w(rel: float, sigma: float) -> float:
    """Hand formula of one guided-attention weight."""
    return 1.0 - math.exp(-rel**2 / (2 * sigma**2))


def _two_utterance_attention(padding: float = GARBAGE) -> torch.Tensor:
    """B=2, T_out=2, T_in=3. Utterance 0: N=2, T=2. Utterance 1: N=3, T=1. Padding = ``padding``."""
    return torch.tensor([
        [[1.0, 0.0, padding], [0.5, 0.5, padding]],
        [[0.2, 0.3, 0.5], [padding, padding, padding]],
    ])


IN_LENS = torch.tensor([2, 3])
OUT_LENS = torch.tensor([2, 1])


# ------------------------------------------------------------------ guided attention


def test_guided_attention_weights_hand_values() -> None:
    sigma = 0.5
    w = guided_attention_weights(IN_LENS, OUT_LENS, sigma)
    expected = torch.tensor([
        # N=2, T=2: n/N in {0, 1/2}, t/T in {0, 1/2}; token 2 is padding
        [[0.0, _w(0.5, sigma), 0.0], [_w(0.5, sigma), 0.0, 0.0]],
        # N=3, T=1: n/N in {0, 1/3, 2/3}; step 1 is padding
        [[0.0, _w(1 / 3, sigma), _w(2 / 3, sigma)], [0.0, 0.0, 0.0]],
    ])
    assert w.shape == (2, 2, 3)
    torch.testing.assert_close(w, expected)


def test_guided_attention_weights_explicit_max_sizes() -> None:
    w = guided_attention_weights(IN_LENS, OUT_LENS, 0.4, max_in=5, max_out=4)
    assert w.shape == (2, 4, 5)
    assert w[:, :, 3:].abs().sum() == 0 and w[:, 2:, :].abs().sum() == 0


def test_guided_attention_loss_is_normalised_per_decoder_step() -> None:
    sigma = 0.5
    att = _two_utterance_attention()
    loss = guided_attention_loss(att, IN_LENS, OUT_LENS, sigma)
    penalty = (0.5 * _w(0.5, sigma)  # utterance 0, step 1 (step 0 sits on W=0)
               + 0.3 * _w(1 / 3, sigma) + 0.5 * _w(2 / 3, sigma))  # utterance 1, step 0
    expected = penalty / 3  # three valid decoder steps, not the 7 valid cells
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_guided_attention_loss_ignores_nan_padding_and_gives_it_no_gradient() -> None:
    att = _two_utterance_attention(padding=float("nan")).requires_grad_(True)
    loss = guided_attention_loss(att, IN_LENS, OUT_LENS, 0.5)
    reference = guided_attention_loss(_two_utterance_attention(), IN_LENS, OUT_LENS, 0.5)
    assert loss.item() == pytest.approx(reference.item())
    loss.backward()
    assert torch.isfinite(att.grad).all()
    assert att.grad[0, :, 2].abs().sum() == 0 and att.grad[1, 1].abs().sum() == 0
    assert att.grad[1, 0, 2] > 0  # a valid off-diagonal cell is pushed down


def test_guided_attention_loss_is_in_unit_interval_and_does_not_shrink_with_text_length() -> None:
    # Attention stuck on the first token is equally wrong for a short and a long text; the
    # per-step loss says so (≈ same value), where a cell mean would shrink by 1/N.
    def stuck(n: int, t: int) -> torch.Tensor:
        att = torch.zeros(1, t, n)
        att[0, :, 0] = 1.0
        return guided_attention_loss(att, torch.tensor([n]), torch.tensor([t]), 0.4)

    short, long = stuck(10, 20), stuck(80, 160)
    assert 0.0 < short.item() < 1.0 and 0.0 < long.item() < 1.0
    assert long.item() == pytest.approx(short.item(), rel=0.05)


def test_guided_attention_kl_hand_value_and_zero_at_prior() -> None:
    sigma = 0.5
    # one utterance, N=2, T=1: prior ∝ exp([0, -0.25/0.5]); padding token holds garbage
    p0 = 1.0 / (1.0 + math.exp(-0.5))
    prior = [p0, 1.0 - p0]
    att = torch.tensor([[[0.5, 0.5, GARBAGE], [GARBAGE, GARBAGE, GARBAGE]]])
    loss = guided_attention_kl_loss(att, torch.tensor([2]), torch.tensor([1]), sigma)
    expected = sum(p * math.log(p / 0.5) for p in prior)
    assert loss.item() == pytest.approx(expected, rel=1e-5)

    at_prior = torch.tensor([[[prior[0], prior[1], GARBAGE], [GARBAGE] * 3]])
    kl = guided_attention_kl_loss(at_prior, torch.tensor([2]), torch.tensor([1]), sigma)
    assert kl.item() == pytest.approx(0.0, abs=1e-6)


def test_guided_attention_kl_is_finite_with_zero_attention() -> None:
    att = torch.tensor([[[1.0, 0.0, 0.0]]], requires_grad=True)
    loss = guided_attention_kl_loss(att, torch.tensor([3]), torch.tensor([1]), 0.4)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 1.0
    assert torch.isfinite(att.grad).all()


# ------------------------------------------------------------- monotonic alignment


def _monotonic_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Utterance 0: N=4, T=4, peaks on tokens 0, 2, 1, 3. Utterance 1: N=2, T=2, peaks 1, 0."""
    att = torch.full((2, 4, 4), GARBAGE)
    att[0] = torch.eye(4)[[0, 2, 1, 3]]
    att[1, :2, :2] = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    return att, torch.tensor([4, 2]), torch.tensor([4, 2])


def test_monotonic_loss_hand_value() -> None:
    att, in_lens, out_lens = _monotonic_case()
    # c (expected position / N): utterance 0 [0, .5, .25, .75] -> one step back of .25;
    # utterance 1 [.5, 0] -> one step back of .5. Valid pairs: 3 + 1.
    loss = monotonic_alignment_loss(att, in_lens, out_lens)
    assert loss.item() == pytest.approx((0.25 + 0.5) / 4)


def test_monotonic_loss_forward_jump_term() -> None:
    att, in_lens, out_lens = _monotonic_case()
    # max 1 token per step: utterance 0 jumps +2 tokens twice (+.5 each, limit .25 -> .25 excess each).
    loss = monotonic_alignment_loss(att, in_lens, out_lens, max_jump_tokens=1.0)
    assert loss.item() == pytest.approx((0.25 + 0.5 + 0.25 + 0.25) / 4)


def test_monotonic_loss_gradient_only_where_position_moves_backward() -> None:
    n = 4
    att = torch.tensor([
        [0.7, 0.3, 0.0, 0.0],  # c = .3 / 4
        [0.0, 0.2, 0.8, 0.0],  # c = 1.8 / 4
        [0.0, 0.9, 0.1, 0.0],  # c = 1.1 / 4  <- moved backward from step 1
        [0.0, 0.0, 0.2, 0.8],  # c = 2.8 / 4
    ]).unsqueeze(0).requires_grad_(True)
    loss = monotonic_alignment_loss(att, torch.tensor([n]), torch.tensor([4]))
    assert loss.item() == pytest.approx((1.8 - 1.1) / 4 / 3)
    loss.backward()
    positions = torch.arange(n, dtype=torch.float32) / n / 3  # d c_t / d A[t, n], over 3 pairs
    torch.testing.assert_close(att.grad[0, 1], positions)
    torch.testing.assert_close(att.grad[0, 2], -positions)
    assert att.grad[0, 0].abs().sum() == 0 and att.grad[0, 3].abs().sum() == 0


def test_monotonic_loss_zero_with_zero_gradient_for_monotone_alignment() -> None:
    att = torch.tensor([[  # moves forward or stays, never back; padding row is garbage
        [1.0, 0.0, 0.0],
        [1.0, 0.0, 0.0],
        [0.0, 0.5, 0.5],
        [0.0, 0.0, 1.0],
        [GARBAGE, GARBAGE, GARBAGE],
    ]], requires_grad=True)
    loss = monotonic_alignment_loss(att, torch.tensor([3]), torch.tensor([4]))
    loss.backward()
    assert loss.item() == 0.0
    assert att.grad.abs().sum() == 0


def test_monotonic_loss_single_step_utterances_cost_nothing() -> None:
    att = torch.tensor([[[1.0, 0.0]]])
    assert monotonic_alignment_loss(att, torch.tensor([2]), torch.tensor([1])).item() == 0.0


# ------------------------------------------------------------------- mel distances


def _mels() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """B=2, 2 bands, 3 frames; utterance 1 has 1 valid frame, the rest is garbage."""
    pred = torch.tensor([
        [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]],
        [[4.0, GARBAGE, GARBAGE], [-1.0, GARBAGE, GARBAGE]],
    ])
    target = torch.tensor([
        [[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]],
        [[2.0, 0.0, 0.0], [1.0, 0.0, 0.0]],
    ])
    return pred, target, torch.tensor([3, 1])


def test_masked_l1_and_mse_hand_values() -> None:
    pred, target, lens = _mels()
    # valid |diffs|: utterance 0: 0,1,2 / 0,1,0 ; utterance 1: 2 / 2  -> 8 values
    assert masked_l1(pred, target, lens).item() == pytest.approx((0 + 1 + 2 + 0 + 1 + 0 + 2 + 2) / 8)
    assert masked_mse(pred, target, lens).item() == pytest.approx((0 + 1 + 4 + 0 + 1 + 0 + 4 + 4) / 8)


def test_masked_l1_gives_padding_no_gradient() -> None:
    pred, target, lens = _mels()
    pred.requires_grad_(True)
    masked_l1(pred, target, lens).backward()
    assert pred.grad[1, :, 1:].abs().sum() == 0
    assert pred.grad[0].abs().sum() > 0


def test_spectral_band_weights_average_one_and_decay() -> None:
    w = SpectralMelLoss().band_weights(80)
    assert w.mean().item() == pytest.approx(1.0)
    assert (w[1] / w[0]).item() == pytest.approx(math.exp(-1 / 20))


def test_spectral_band_weights_keep_every_band_supervised() -> None:
    # The floor: the top bands weigh a fifth of band 0, not a fiftieth.
    w = SpectralMelLoss(band_floor=0.2).band_weights(80)
    assert w.mean().item() == pytest.approx(1.0)
    assert (w[79] / w[0]).item() == pytest.approx(0.2)
    assert (w[79] / w[0]).item() > 10 * math.exp(-79 / 20)
    # Without the floor, band 79 would count 0.02 as much as band 0.
    bare = SpectralMelLoss(band_floor=0.0).band_weights(80)
    assert (bare[79] / bare[0]).item() == pytest.approx(math.exp(-79 / 20))


def test_spectral_loss_pulls_a_wild_top_band_down() -> None:
    # A prediction with bogus high bands (log 10.5 where the target is -4) gets a gradient
    # on those bands at least a fifth as strong as the same error on band 0.
    target = torch.full((1, 80, 32), -4.0)
    pred = target.clone()
    pred[0, 70:] = 10.5
    pred[0, 0] = 10.5
    pred.requires_grad_(True)
    SpectralMelLoss(multires_weight=0.0, temporal_weight=0.0)(pred, target, torch.tensor([32]))["total"].backward()
    assert pred.grad[0, 79].abs().mean() >= 0.2 * pred.grad[0, 0].abs().mean() - 1e-9


def test_spectral_freq_l1_hand_value() -> None:
    torch.manual_seed(0)
    target = torch.randn(1, 80, 12)
    pred = target.clone()
    pred[0, 0] += 1.0  # error 1 on band 0 only, every frame
    parts = SpectralMelLoss()(pred, target, torch.tensor([12]))
    w0 = 80 / sum(max(math.exp(-k / 20), 0.2) for k in range(80))
    assert parts["freq_l1"].item() == pytest.approx(w0 / 80, rel=1e-5)
    assert parts["temporal"].item() == pytest.approx(0.0, abs=1e-6)  # constant offset: Δ_t unchanged


def test_spectral_temporal_term_hand_value() -> None:
    target = torch.zeros(2, 4, 6)
    ramp = 0.5 * torch.arange(6, dtype=torch.float32)  # slope 0.5 per frame
    pred = target + ramp
    pred[1, :, 3:] = GARBAGE  # utterance 1 has 3 valid frames
    parts = SpectralMelLoss()(pred, target, torch.tensor([6, 3]))
    assert parts["temporal"].item() == pytest.approx(0.5)


def test_spectral_loss_zero_for_identical_positive_otherwise() -> None:
    torch.manual_seed(1)
    target = torch.randn(2, 80, 40) - 5.0
    lens = torch.tensor([40, 25])
    loss = SpectralMelLoss()
    same = loss(target, target.clone(), lens)
    assert all(value.item() == 0.0 for value in same.values())
    other = loss(target + 0.3 * torch.randn_like(target), target, lens)
    assert all(value.item() > 0.0 for value in other.values())
    weighted = 1.0 * other["freq_l1"] + 0.3 * other["multires"] + 0.1 * other["temporal"]
    assert other["total"].item() == pytest.approx(weighted.item())


def test_spectral_loss_finite_on_three_frame_clip() -> None:
    torch.manual_seed(2)
    pred = torch.randn(1, 80, 3, requires_grad=True)
    target = torch.randn(1, 80, 3)
    parts = SpectralMelLoss()(pred, target, torch.tensor([3]))
    assert all(torch.isfinite(value) for value in parts.values())
    assert parts["multires"].item() == 0.0  # every scale (4, 8, 16) is longer than the clip
    assert parts["total"].item() > 0.0
    parts["total"].backward()
    assert torch.isfinite(pred.grad).all()


def test_spectral_loss_respects_masking() -> None:
    torch.manual_seed(3)
    target = torch.randn(2, 80, 32)
    pred = (target + 0.2 * torch.randn_like(target)).requires_grad_(True)
    lens = torch.tensor([32, 10])
    loss = SpectralMelLoss()
    clean = loss(pred, target, lens)["total"]
    clean.backward()
    assert pred.grad[1, :, 10:].abs().sum() == 0  # padding gets no gradient
    assert pred.grad[1, :, :10].abs().sum() > 0

    dirty_pred, dirty_target = pred.detach().clone(), target.clone()
    dirty_pred[1, :, 10:] = GARBAGE
    dirty_target[1, :, 10:] = -GARBAGE
    dirty = loss(dirty_pred, dirty_target, lens)
    assert dirty["total"].item() == pytest.approx(clean.item(), rel=1e-6)


def test_spectral_loss_padded_equals_unpadded() -> None:
    # Only windows wholly inside the valid frames count: padding a clip (with garbage) must
    # not add windows that straddle its end.
    torch.manual_seed(8)
    target = torch.randn(1, 80, 10)
    pred = target + 0.3 * torch.randn_like(target)
    pad = torch.full((1, 80, 22), GARBAGE)
    lens = torch.tensor([10])
    loss = SpectralMelLoss()
    padded_pred, padded_target = torch.cat([pred, pad], -1), torch.cat([target, -pad], -1)
    for name, value in loss(padded_pred, padded_target, lens).items():
        assert value.item() == pytest.approx(loss(pred, target, lens)[name].item(), rel=1e-5), name
    assert loss.multires(padded_pred, padded_target, lens).item() == pytest.approx(
        loss.multires(pred, target, lens).item(), rel=1e-5)
    nan_pred = torch.cat([pred, torch.full_like(pad, float("nan"))], -1).requires_grad_(True)
    loss.multires(nan_pred, padded_target, lens).backward()
    assert torch.isfinite(nan_pred.grad).all() and nan_pred.grad[..., 10:].abs().sum() == 0


def test_spectral_multires_is_per_band_along_time() -> None:
    # Permuting the bands of both mels leaves a per-band, along-time distance unchanged
    # (an STFT over the flattened mel would not be).
    torch.manual_seed(4)
    target = torch.randn(1, 80, 20)
    pred = target + 0.5 * torch.randn_like(target)
    lens = torch.tensor([20])
    loss = SpectralMelLoss()
    perm = torch.randperm(80)
    before = loss.multires(pred, target, lens)
    after = loss.multires(pred[:, perm], target[:, perm], lens)
    assert before.item() > 0
    assert after.item() == pytest.approx(before.item(), rel=1e-5)


# --------------------------------------------------------- "perceptual" and "style"


def test_structural_loss_constant_images_hand_value() -> None:
    # Constant images a and b: variances and covariance are 0, so SSIM = (2ab + C1)/(a² + b² + C1).
    a, b, data_range = -2.0, -3.0, 14.0
    c1 = (0.01 * data_range) ** 2
    pred = torch.full((2, 8, 10), a)
    target = torch.full((2, 8, 10), b)
    pred[1, :, 6:] = GARBAGE
    target[1, :, 6:] = -GARBAGE
    loss = structural_mel_loss(pred, target, torch.tensor([10, 6]), data_range=data_range)
    assert loss.item() == pytest.approx(1.0 - (2 * a * b + c1) / (a * a + b * b + c1), rel=1e-4)


def test_structural_loss_zero_for_identical_positive_otherwise_and_finite_when_short() -> None:
    torch.manual_seed(5)
    target = torch.randn(2, 80, 30) - 4.0
    lens = torch.tensor([30, 2])
    assert structural_mel_loss(target, target.clone(), lens).item() == pytest.approx(0.0, abs=1e-6)
    pred = (target + torch.randn_like(target)).requires_grad_(True)
    loss = structural_mel_loss(pred, target, lens)
    loss.backward()
    assert 0.0 < loss.item() <= 2.0
    assert torch.isfinite(pred.grad).all() and pred.grad[1, :, 2:].abs().sum() == 0


@pytest.mark.parametrize("shape", [(2, 80, 37), (1, 5, 3), (3, 2, 9)])
def test_separable_blur_equals_the_2d_convolution_values_and_gradients(shape) -> None:
    torch.manual_seed(6)
    window = torch.tensor([0.05, 0.1, 0.2, 0.3, 0.15, 0.12, 0.08])  # asymmetric: orientation counts
    kernel = torch.outer(window, window)[None, None]  # (1, 1, 7, 7)
    z = torch.randn(*shape, requires_grad=True)
    z_ref = z.detach().clone().requires_grad_(True)
    upstream = torch.randn(*shape)
    out = gaussian_blur(z, window)
    ref = F.conv2d(z_ref.unsqueeze(1), kernel, padding=3).squeeze(1)
    (out * upstream).sum().backward()
    (ref * upstream).sum().backward()
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(z.grad, z_ref.grad, atol=1e-5)


def test_gram_style_hand_values() -> None:
    pred = torch.tensor([[[1.0, 2.0, GARBAGE], [0.0, 1.0, GARBAGE]]])  # 2 bands, 2 valid frames
    target = torch.zeros(1, 2, 3)
    lens = torch.tensor([2])
    # uncentred: G = x xᵀ / 2 = [[2.5, 1], [1, .5]] -> mean |G| = 1.25
    assert gram_style_loss(pred, target, lens, center=False).item() == pytest.approx(1.25)
    # centred: both bands become [-.5, .5] -> G = [[.25, .25], [.25, .25]]
    assert gram_style_loss(pred, target, lens, center=True).item() == pytest.approx(0.25)


def test_gram_style_is_length_normalised_and_zero_for_identical() -> None:
    torch.manual_seed(6)
    pred, target = torch.randn(1, 10, 16), torch.randn(1, 10, 16)
    once = gram_style_loss(pred, target, torch.tensor([16]))
    twice = gram_style_loss(pred.repeat(1, 1, 2), target.repeat(1, 1, 2), torch.tensor([32]))
    assert once.item() > 0
    assert twice.item() == pytest.approx(once.item(), rel=1e-5)
    assert gram_style_loss(pred, pred.clone(), torch.tensor([16])).item() == 0.0


# ---------------------------------------------------------------------------- gate


def test_gate_loss_hand_value_with_pos_weight_and_padding() -> None:
    logits = torch.tensor([[0.0, 2.0, -1.0], [1.0, GARBAGE, -GARBAGE]])
    targets = torch.tensor([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])  # padding targets 1, as collates often pad
    pos_weight = 4.0
    loss = gate_loss(logits, targets, torch.tensor([3, 1]), pos_weight)
    expected = (math.log(2.0)                           # y=0, x=0
                + math.log(1 + math.exp(2.0))           # y=0, x=2
                + pos_weight * math.log(1 + math.exp(1.0))   # y=1, x=-1
                + pos_weight * math.log(1 + math.exp(-1.0))  # y=1, x=1
                ) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------------------- composite


def _batch(seed: int = 7) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    b, n_mels, frames, steps, tokens = 2, 80, 24, 12, 8
    target = torch.randn(b, n_mels, frames) - 5.0
    att = torch.softmax(torch.randn(b, steps, tokens), dim=-1)
    gate_target = torch.zeros(b, steps)
    gate_target[0, 11] = gate_target[1, 7] = 1.0
    return {
        "mel_out": (target + 0.3 * torch.randn_like(target)).requires_grad_(True),
        "mel_postnet": (target + 0.2 * torch.randn_like(target)).requires_grad_(True),
        "gate_out": torch.randn(b, steps, requires_grad=True),
        "mel_target": target,
        "gate_target": gate_target,
        "mel_lens": torch.tensor([24, 16]),
        "att": att.requires_grad_(True),
        "in_lens": torch.tensor([8, 5]),
        "out_lens": torch.tensor([12, 8]),
    }


def test_tacotron_loss_total_is_weighted_sum_of_logged_terms() -> None:
    batch = _batch()
    loss = TacotronLoss(mel_loss="l1", gate_pos_weight=8.0, max_jump_tokens=3.0)
    total, terms = loss.compute(**batch, weights=LossWeights(ga_weight=2.5, ga_sigma=0.4))
    expected_terms = {
        "mel": masked_l1(batch["mel_out"], batch["mel_target"], batch["mel_lens"]),
        "mel_postnet": masked_l1(batch["mel_postnet"], batch["mel_target"], batch["mel_lens"]),
        "gate": gate_loss(batch["gate_out"], batch["gate_target"], batch["out_lens"], 8.0),
        "guided_attention": guided_attention_loss(batch["att"], batch["in_lens"], batch["out_lens"], 0.4),
        "monotonic": monotonic_alignment_loss(batch["att"], batch["in_lens"], batch["out_lens"], 3.0),
        "structural": structural_mel_loss(batch["mel_postnet"], batch["mel_target"], batch["mel_lens"]),
        "gram_style": gram_style_loss(batch["mel_postnet"], batch["mel_target"], batch["mel_lens"]),
    }
    assert set(terms) == set(expected_terms) | {"total"}
    for name, value in expected_terms.items():
        assert terms[name].item() == pytest.approx(value.item(), rel=1e-6), name
        assert not terms[name].requires_grad
    weighted = (1.0 * (expected_terms["mel"] + expected_terms["mel_postnet"]) + 1.0 * expected_terms["gate"]
                + 2.5 * expected_terms["guided_attention"] + 0.1 * expected_terms["monotonic"]
                + 0.2 * expected_terms["structural"] + 0.1 * expected_terms["gram_style"])
    assert total.item() == pytest.approx(weighted.item(), rel=1e-6)
    total.backward()
    for name in ("mel_out", "mel_postnet", "gate_out", "att"):
        assert batch[name].grad is not None and torch.isfinite(batch[name].grad).all(), name


def test_tacotron_loss_terms_switch_off_by_weight() -> None:
    batch = _batch()
    loss = TacotronLoss(mel_loss="mse", monotonic_weight=0.0, perceptual_weight=0.0, style_weight=0.0)
    total, terms = loss.compute(**batch, weights=LossWeights(ga_weight=0.0))
    assert set(terms) == {"mel", "mel_postnet", "gate", "total"}
    assert total.item() == pytest.approx((terms["mel"] + terms["mel_postnet"] + terms["gate"]).item(), rel=1e-6)
    _, terms = TacotronLoss(ga_kind="off").compute(**batch, weights=LossWeights(ga_weight=5.0))
    assert "guided_attention" not in terms


def test_tacotron_loss_spectral_and_kl_terms_are_logged() -> None:
    batch = _batch()
    total, terms = TacotronLoss(ga_kind="kl").compute(**batch, weights=LossWeights(ga_weight=1.0, ga_sigma=0.3))
    for name in ("mel_freq_l1", "mel_multires", "mel_temporal", "mel_postnet_freq_l1", "guided_attention"):
        assert name in terms and terms[name].item() > 0
    expected_ga = guided_attention_kl_loss(batch["att"], batch["in_lens"], batch["out_lens"], 0.3)
    assert terms["guided_attention"].item() == pytest.approx(expected_ga.item(), rel=1e-6)
    assert torch.isfinite(total)


def test_tacotron_loss_from_config_and_validation() -> None:
    config = SimpleNamespace(mel_loss="l1", mel_weight=2.0, perceptual_weight=0.0,
                             style_weight=0.0, monotonic_weight=0.0, ga_kind="off", unrelated=1)
    loss = TacotronLoss.from_config(config)
    batch = _batch()
    total, terms = loss.compute(**batch, weights=LossWeights(gate_weight=0.0))
    assert set(terms) == {"mel", "mel_postnet", "total"}
    assert total.item() == pytest.approx(2.0 * (terms["mel"] + terms["mel_postnet"]).item(), rel=1e-6)
    with pytest.raises(ValueError):
        TacotronLoss(mel_loss="stft")


def test_tacotron_loss_runs_in_float32_under_bf16_autocast() -> None:
    batch = _batch()
    reference, _ = TacotronLoss().compute(**batch, weights=LossWeights(ga_weight=1.0))
    half = {name: (value.detach().to(torch.bfloat16) if value.is_floating_point() else value)
            for name, value in batch.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, terms = TacotronLoss().compute(**half, weights=LossWeights(ga_weight=1.0))
    assert total.dtype == torch.float32 and all(torch.isfinite(v) for v in terms.values())
    assert total.item() == pytest.approx(reference.item(), rel=0.05)  # only the bf16 rounding of the inputs differs
