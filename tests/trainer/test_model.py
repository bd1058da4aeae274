"""Tacotron2: shapes, masking, the fused location layer, dropout at train vs inference, scheduled sampling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer.config import preset
from trainer.data.batches import Batch
from trainer.model.tacotron2 import Prenet, Tacotron2

MICRO = dict(symbols_embedding_dim=32, encoder_embedding_dim=32, attention_rnn_dim=48, attention_dim=16,
             attention_location_n_filters=4, attention_location_kernel_size=7, prenet_dim=24, decoder_rnn_dim=48,
             postnet_embedding_dim=16)


def micro_model(r: int = 2, **overrides) -> Tacotron2:
    torch.manual_seed(0)
    return Tacotron2(preset("tiny").replace(reduction_factor=r, **{**MICRO, **overrides}))


def padded(text: torch.Tensor, lens: torch.Tensor, mels: torch.Tensor, r: int = 2) -> Batch:
    """Return the Batch of token ids, their lengths and target mels whose frames are a multiple of r."""
    steps = mels.shape[2] // r
    gate = torch.zeros(len(text), steps)
    gate[:, -1] = 1.0
    return Batch([str(i) for i in range(len(text))], text, lens, mels,
                 torch.full((len(text),), mels.shape[2]), torch.full((len(text),), steps), gate)


def batch(r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    text = torch.randint(1, 40, (2, 9))
    text[1, 6:] = 0
    lens = torch.tensor([9, 6])
    mels = torch.randn(2, 80, 6 * r)
    return text, lens, mels


@pytest.mark.parametrize("r", [1, 2, 3])
def test_forward_shapes_and_attention_rows(r: int) -> None:
    model = micro_model(r)
    text, lens, mels = batch(r)
    out = model(padded(text, lens, mels, r))
    assert out.mel.shape == out.mel_post.shape == (2, 80, 6 * r)
    assert out.gate.shape == (2, 6)
    assert out.att.shape == (2, 6, 9)
    assert torch.allclose(out.att.sum(-1), torch.ones(2, 6), atol=1e-5)
    assert float(out.att[1, :, 6:].detach().abs().max()) == 0.0  # no attention on padding


def test_short_utterance_in_padded_batch_matches_it_alone() -> None:
    model = micro_model(2, prenet_dropout_inference=0.0).eval()
    text, lens, mels = batch(2)
    together = model(padded(text, lens, mels))
    alone = model(padded(text[1:, :6], lens[1:], mels[1:]))
    assert torch.allclose(together.att[1, :, :6], alone.att[0], atol=1e-5)
    assert torch.allclose(together.mel[1], alone.mel[0], atol=1e-5)
    assert torch.allclose(together.gate[1], alone.gate[0], atol=1e-5)


def test_fused_location_layer_equals_conv_then_linear() -> None:
    attention = micro_model().decoder.attention
    weights_cat = torch.rand(3, 2, 11)
    reference = attention.location(attention.location_conv(weights_cat).transpose(1, 2))
    half = attention.location_conv.kernel_size[0] // 2
    windows = F.pad(weights_cat, (half, half)).unfold(2, 2 * half + 1, 1).permute(0, 2, 1, 3).reshape(3, 11, -1)
    assert torch.allclose(windows @ attention.location_kernel(), reference, atol=1e-6)


@pytest.mark.parametrize("teacher_forcing", [1.0, 0.5])
def test_cpu_cells_with_per_pass_gradients_match_the_lstm_modules(monkeypatch, teacher_forcing) -> None:
    """The CPU training pass's cells (trainer/model/recurrent.py) give the modules' values and gradients."""
    model = micro_model(2)
    text, lens, mels = batch(2)
    mels = mels.repeat(1, 1, 3)  # 18 decoder steps: enough for gradients to build up across steps
    probes = torch.randn(3, 80, 36), torch.randn(2, 18), torch.randn(2, 18, 9)

    def pass_grads() -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        torch.manual_seed(7)  # same dropout masks and scheduled-sampling draws in both passes
        model.zero_grad(set_to_none=True)
        out = model(padded(text, lens, mels), teacher_forcing)
        loss = (out.mel_post * probes[0][:2]).sum() + (out.gate * probes[1]).sum() + (out.att * probes[2]).sum()
        loss.backward()
        return [out.mel_post.detach(), out.att.detach()], {n: p.grad.clone() for n, p in model.named_parameters()}

    deferred_values, deferred = pass_grads()
    monkeypatch.setattr(type(model.decoder), "_cells", lambda self, device: (self.attention_rnn, self.decoder_rnn))
    module_values, modules = pass_grads()
    for got, want in zip(deferred_values, module_values, strict=True):
        assert torch.allclose(got, want, atol=1e-5)
    assert deferred.keys() == modules.keys()
    for name, want in modules.items():
        if (name.endswith(".0.bias") and "convs" in name) or name == "decoder.attention.v.bias":
            # True gradient 0 (BatchNorm removes a conv bias, softmax a constant energy): what they hold is rounding.
            continue
        assert torch.allclose(deferred[name], want, rtol=1e-4, atol=1e-5 * float(want.abs().max())), name
    assert modules["decoder.attention_rnn.weight_hh"].abs().sum() > 0


def test_prenet_dropout_rates_in_training_and_inference() -> None:
    torch.manual_seed(0)
    prenet = Prenet(80, 512, train_rate=0.6, inference_rate=0.3)
    x = torch.rand(64, 80)
    # Zeros after the last layer come from dropout (ReLU zeros too, so compare against no dropout).
    def zero_share(module: Prenet) -> float:
        with torch.no_grad():
            return float((module(x) == 0).float().mean())
    prenet.inference_rate = 0.0
    prenet.eval()
    relu_only = zero_share(prenet)
    assert torch.equal(prenet(x), prenet(x))  # rate 0 turns inference dropout off: deterministic
    prenet.inference_rate = 0.3
    eval_share = zero_share(prenet)
    prenet.train()
    train_share = zero_share(prenet)
    # About half the units are ReLU zeros; dropout zeroes a further share of the rest.
    assert relu_only + 0.08 < eval_share < relu_only + 0.25  # inference rate really applied
    assert train_share > eval_share + 0.08  # the training rate is the larger one
    prenet.eval()
    assert not torch.equal(prenet(x), prenet(x))


def test_scheduled_sampling_feeds_own_predictions() -> None:
    model = micro_model(2, prenet_dropout=0.0, attention_dropout=0.0, decoder_dropout=0.0, encoder_dropout=0.0,
                        postnet_dropout=0.0)
    text, lens, mels = batch(2)
    forced = model(padded(text, lens, mels), teacher_forcing=1.0)
    free = model(padded(text, lens, mels), teacher_forcing=0.0)
    assert torch.allclose(forced.mel[:, :, :2], free.mel[:, :, :2], atol=1e-6)  # step 0 has no previous frame
    assert not torch.allclose(forced.mel[:, :, 2:], free.mel[:, :, 2:], atol=1e-4)


def test_inference_stops_when_gate_fires() -> None:
    model = micro_model(2).eval()
    text, lens, _ = batch(2)
    with torch.no_grad():
        model.decoder.gate.bias.fill_(20.0)  # sigmoid ~ 1: stop at once
    out = model.infer(text, lens, max_decoder_steps=30, stop_threshold=0.5)
    assert out.out_lens.tolist() == [1, 1] and not out.hit_max.any()
    with torch.no_grad():
        model.decoder.gate.bias.fill_(-20.0)  # never stops
    out = model.infer(text, lens, max_decoder_steps=7, stop_threshold=0.5)
    assert out.out_lens.tolist() == [7, 7] and out.hit_max.all()
    assert out.mel_post.shape == (2, 80, 14) and out.att.shape == (2, 7, 9)
