"""Warm starts from NVIDIA/tacotron2's and Coqui TTS's Tacotron2 checkpoints, in their key layouts.

The state dicts are generated here from the layouts their public model code defines
(NVIDIA/tacotron2 model.py/layers.py with hparams.py defaults; Coqui's tacotron2.py with
Tacotron2Config defaults, r = 2): their weights cannot be downloaded on these machines.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.config import preset
from trainer.model.architectures import build_model
from trainer.model.checkpoint import CheckpointError, warm_start
from trainer.text.symbols import NVIDIA_SYMBOLS

BN = ("weight", "bias", "running_mean", "running_var")


def _bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{name}": (channels,) for name in BN} | {f"{prefix}.num_batches_tracked": ()}


def _lstms(prefix: str, inputs: int, hidden: int, cell: bool) -> dict[str, tuple[int, ...]]:
    if cell:
        return {f"{prefix}.weight_ih": (4 * hidden, inputs), f"{prefix}.weight_hh": (4 * hidden, hidden),
                f"{prefix}.bias_ih": (4 * hidden,), f"{prefix}.bias_hh": (4 * hidden,)}
    shapes = {}
    for suffix in ("", "_reverse"):
        shapes |= {f"{prefix}.weight_ih_l0{suffix}": (4 * hidden, inputs), f"{prefix}.weight_hh_l0{suffix}":
                   (4 * hidden, hidden), f"{prefix}.bias_ih_l0{suffix}": (4 * hidden,),
                   f"{prefix}.bias_hh_l0{suffix}": (4 * hidden,)}
    return shapes


def nvidia_layout() -> dict[str, tuple[int, ...]]:
    """Key -> shape of NVIDIA/tacotron2's Tacotron2 with its hparams.py defaults (84 keys)."""
    shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (148, 512)}
    for i in range(3):
        shapes |= {f"encoder.convolutions.{i}.0.conv.weight": (512, 512, 5),
                   f"encoder.convolutions.{i}.0.conv.bias": (512,)} | _bn(f"encoder.convolutions.{i}.1", 512)
    shapes |= _lstms("encoder.lstm", 512, 256, cell=False)
    shapes |= {"decoder.prenet.layers.0.linear_layer.weight": (256, 80),
               "decoder.prenet.layers.1.linear_layer.weight": (256, 256)}
    shapes |= _lstms("decoder.attention_rnn", 768, 1024, cell=True)
    shapes |= {"decoder.attention_layer.query_layer.linear_layer.weight": (128, 1024),
               "decoder.attention_layer.memory_layer.linear_layer.weight": (128, 512),
               "decoder.attention_layer.v.linear_layer.weight": (1, 128),
               "decoder.attention_layer.location_layer.location_conv.conv.weight": (32, 2, 31),
               "decoder.attention_layer.location_layer.location_dense.linear_layer.weight": (128, 32)}
    shapes |= _lstms("decoder.decoder_rnn", 1536, 1024, cell=True)
    shapes |= {"decoder.linear_projection.linear_layer.weight": (80, 1536),
               "decoder.linear_projection.linear_layer.bias": (80,),
               "decoder.gate_layer.linear_layer.weight": (1, 1536), "decoder.gate_layer.linear_layer.bias": (1,)}
    for i, (out, inp) in enumerate([(512, 80), (512, 512), (512, 512), (512, 512), (80, 512)]):
        shapes |= {f"postnet.convolutions.{i}.0.conv.weight": (out, inp, 5),
                   f"postnet.convolutions.{i}.0.conv.bias": (out,)} | _bn(f"postnet.convolutions.{i}.1", out)
    return shapes


def coqui_layout(r: int = 2) -> dict[str, tuple[int, ...]]:
    """Key -> shape of Coqui TTS's Tacotron2 with Tacotron2Config defaults (graphemes: 67 tokens)."""
    shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (67, 512)}
    for i in range(3):
        shapes |= {f"encoder.convolutions.{i}.convolution1d.weight": (512, 512, 5),
                   f"encoder.convolutions.{i}.convolution1d.bias": (512,)}
        shapes |= _bn(f"encoder.convolutions.{i}.batch_normalization", 512)
    shapes |= _lstms("encoder.lstm", 512, 256, cell=False)
    shapes |= {"decoder.prenet.linear_layers.0.linear_layer.weight": (256, 80),
               "decoder.prenet.linear_layers.1.linear_layer.weight": (256, 256)}
    shapes |= _lstms("decoder.attention_rnn", 768, 1024, cell=True)
    shapes |= {"decoder.attention.query_layer.linear_layer.weight": (128, 1024),
               "decoder.attention.inputs_layer.linear_layer.weight": (128, 512),
               "decoder.attention.v.linear_layer.weight": (1, 128), "decoder.attention.v.linear_layer.bias": (1,),
               "decoder.attention.location_layer.location_conv1d.weight": (32, 2, 31),
               "decoder.attention.location_layer.location_dense.linear_layer.weight": (128, 32)}
    shapes |= _lstms("decoder.decoder_rnn", 1536, 1024, cell=True)
    shapes |= {"decoder.linear_projection.linear_layer.weight": (80 * r, 1536),
               "decoder.linear_projection.linear_layer.bias": (80 * r,),
               "decoder.stopnet.1.linear_layer.weight": (1, 1024 + 80 * r),
               "decoder.stopnet.1.linear_layer.bias": (1,)}
    for i, (out, inp) in enumerate([(512, 80), (512, 512), (512, 512), (512, 512), (80, 512)]):
        shapes |= {f"postnet.convolutions.{i}.convolution1d.weight": (out, inp, 5),
                   f"postnet.convolutions.{i}.convolution1d.bias": (out,)}
        shapes |= _bn(f"postnet.convolutions.{i}.batch_normalization", out)
    return shapes


def _random(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {k: (torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(s, generator=generator))
            for k, s in shapes.items()}


def test_layouts_have_the_documented_sizes() -> None:
    assert len(nvidia_layout()) == 84 and len(coqui_layout()) == 85


def test_nvidia_checkpoint_loads_whole_into_the_base_preset_reading_their_symbols(tmp_path: Path) -> None:
    state = _random(nvidia_layout())
    torch.save({"iteration": 1000, "state_dict": state, "optimizer": {}, "learning_rate": 1e-3},
               tmp_path / "checkpoint_1000")
    model = build_model(preset("base").replace(text_frontend="nvidia"))
    report = warm_start(model, tmp_path / "checkpoint_1000")
    assert report.skipped == {} and report.loaded == 84 + 1  # every tensor, and the attention bias they lack
    ours = model.state_dict()
    pairs = {"embedding.weight": "embedding.weight",
             "decoder.attention.memory.weight": "decoder.attention_layer.memory_layer.linear_layer.weight",
             "decoder.attention.location_conv.weight":
                 "decoder.attention_layer.location_layer.location_conv.conv.weight",
             "encoder.convs.1.1.running_var": "encoder.convolutions.1.1.running_var",
             "decoder.gate.weight": "decoder.gate_layer.linear_layer.weight",
             "postnet.convs.4.0.weight": "postnet.convolutions.4.0.conv.weight",
             "decoder.prenet.layers.1.weight": "decoder.prenet.layers.1.linear_layer.weight"}
    for mine, theirs in pairs.items():
        assert torch.equal(ours[mine], state[theirs]), mine
    assert torch.equal(ours["decoder.attention.v.bias"], torch.zeros(1))
    assert len(NVIDIA_SYMBOLS) == 148
    # A model reading our own characters keeps its embedding: their rows mean other symbols.
    characters = build_model(preset("base"))
    assert warm_start(characters, tmp_path / "checkpoint_1000").skipped == {"embedding.weight": "symbol set differs"}


def test_coqui_checkpoint_loads_what_fits_and_names_the_rest(tmp_path: Path) -> None:
    state = _random(coqui_layout(r=2))
    state["decoder.attention.ta.weight"] = torch.zeros(1, 1664)  # transition agent: no counterpart
    torch.save({"config": {"r": 2}, "model": state, "optimizer": {}, "step": 5000, "epoch": 3}, tmp_path / "model.pth")
    model = build_model(preset("base"))
    report = warm_start(model, tmp_path / "model.pth")
    assert report.skipped == {
        "embedding.weight": "symbol set differs",
        "decoder.attention.ta.weight": "no counterpart in our Tacotron2",
        "decoder.projection.weight": "shape (160, 1536) != (80, 1536)",  # r = 2 against our r = 1
        "decoder.projection.bias": "shape (160,) != (80,)",
        "decoder.gate.weight": "shape (1, 1184) != (1, 1536)",  # their stopnet reads the mel, ours the context
    }
    ours = model.state_dict()
    assert torch.equal(ours["decoder.attention.v.bias"], state["decoder.attention.v.linear_layer.bias"])
    assert torch.equal(ours["encoder.convs.2.0.weight"], state["encoder.convolutions.2.convolution1d.weight"])
    assert torch.equal(ours["postnet.convs.0.1.running_mean"],
                       state["postnet.convolutions.0.batch_normalization.running_mean"])
    assert "decoder.gate.weight" in report.line() and "\n" not in report.line()


def test_an_unknown_layout_is_one_line(tmp_path: Path, demo_corpus: Path, capsys) -> None:
    from trainer.cli import main

    torch.save({"weights": {"x": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint of ours, of NVIDIA/tacotron2"):
        warm_start(build_model(preset("tiny")), tmp_path / "other.pt")
    assert main(["train", str(demo_corpus), "--out", str(tmp_path / "run"), "--warm-start", str(tmp_path / "other.pt"),
                 "--max-steps", "1", "--quiet", "--set", "fr_asr=off"]) == 2
    assert "not a checkpoint of ours" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything was written
