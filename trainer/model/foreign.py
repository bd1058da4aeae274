"""Checkpoints of other Tacotron2 implementations, renamed to our parameters for a warm start.

Users fine-tune from what they already have: NVIDIA/tacotron2's public LJSpeech checkpoint
(``{"state_dict": ..., "optimizer": ..., "iteration": ...}``) or a Coqui TTS Tacotron2
``.pth`` (``{"model": ..., "config": ..., "step": ...}``). Both are the architecture of our
``base`` preset with other attribute names; the rules below rename each tensor, and the warm
start then loads every tensor whose shape matches and reports the rest in one line.

The text embedding carries over only when the symbol table is the same: NVIDIA's 148
symbols are ours with ``text_frontend: nvidia``; Coqui's character sets are configured per
model, so its embedding is skipped.
"""

from __future__ import annotations

import re
from typing import Any

import torch

SMART_TUNER, NVIDIA, COQUI = "smart-tuner", "nvidia", "coqui"

# (foreign name pattern, our name template): first match wins; a name no rule matches is reported.
_RULES: dict[str, list[tuple[str, str]]] = {
    NVIDIA: [
        (r"embedding\.weight", "embedding.weight"),
        (r"encoder\.convolutions\.(\d+)\.0\.conv\.(weight|bias)", r"encoder.convs.\1.0.\2"),
        (r"encoder\.convolutions\.(\d+)\.1\.(\w+)", r"encoder.convs.\1.1.\2"),
        (r"encoder\.lstm\.(\w+)", r"encoder.lstm.\1"),
        (r"decoder\.prenet\.layers\.(\d+)\.linear_layer\.weight", r"decoder.prenet.layers.\1.weight"),
        (r"decoder\.(attention_rnn|decoder_rnn)\.(\w+)", r"decoder.\1.\2"),
        (r"decoder\.attention_layer\.query_layer\.linear_layer\.weight", "decoder.attention.query.weight"),
        (r"decoder\.attention_layer\.memory_layer\.linear_layer\.weight", "decoder.attention.memory.weight"),
        (r"decoder\.attention_layer\.v\.linear_layer\.weight", "decoder.attention.v.weight"),
        (r"decoder\.attention_layer\.location_layer\.location_conv\.conv\.weight",
         "decoder.attention.location_conv.weight"),
        (r"decoder\.attention_layer\.location_layer\.location_dense\.linear_layer\.weight",
         "decoder.attention.location.weight"),
        (r"decoder\.linear_projection\.linear_layer\.(weight|bias)", r"decoder.projection.\1"),
        (r"decoder\.gate_layer\.linear_layer\.(weight|bias)", r"decoder.gate.\1"),
        (r"postnet\.convolutions\.(\d+)\.0\.conv\.(weight|bias)", r"postnet.convs.\1.0.\2"),
        (r"postnet\.convolutions\.(\d+)\.1\.(\w+)", r"postnet.convs.\1.1.\2"),
    ],
    COQUI: [
        (r"embedding\.weight", "embedding.weight"),
        (r"encoder\.convolutions\.(\d+)\.convolution1d\.(weight|bias)", r"encoder.convs.\1.0.\2"),
        (r"encoder\.convolutions\.(\d+)\.batch_normalization\.(\w+)", r"encoder.convs.\1.1.\2"),
        (r"encoder\.lstm\.(\w+)", r"encoder.lstm.\1"),
        (r"decoder\.prenet\.linear_layers\.(\d+)\.linear_layer\.weight", r"decoder.prenet.layers.\1.weight"),
        (r"decoder\.(attention_rnn|decoder_rnn)\.(\w+)", r"decoder.\1.\2"),
        (r"decoder\.attention\.query_layer\.linear_layer\.weight", "decoder.attention.query.weight"),
        (r"decoder\.attention\.inputs_layer\.linear_layer\.weight", "decoder.attention.memory.weight"),
        (r"decoder\.attention\.v\.linear_layer\.(weight|bias)", r"decoder.attention.v.\1"),
        (r"decoder\.attention\.location_layer\.location_conv1d\.weight", "decoder.attention.location_conv.weight"),
        (r"decoder\.attention\.location_layer\.location_dense\.linear_layer\.weight",
         "decoder.attention.location.weight"),
        (r"decoder\.linear_projection\.linear_layer\.(weight|bias)", r"decoder.projection.\1"),
        (r"decoder\.stopnet\.1\.linear_layer\.(weight|bias)", r"decoder.gate.\1"),
        (r"postnet\.convolutions\.(\d+)\.convolution1d\.(weight|bias)", r"postnet.convs.\1.0.\2"),
        (r"postnet\.convolutions\.(\d+)\.batch_normalization\.(\w+)", r"postnet.convs.\1.1.\2"),
    ],
}
# Biases ours has and theirs lack: the attention energy's (adding a constant to every energy
# leaves the softmax unchanged, so zero is exactly their model).
_ZERO_IF_ABSENT = {NVIDIA: ("decoder.attention.v.bias",), COQUI: ()}


def layout_of(payload: Any) -> str | None:
    """Return which implementation saved ``payload`` (a loaded checkpoint), or None when unknown."""
    if not isinstance(payload, dict):
        return None
    if "format_version" in payload and "model" in payload and "config" in payload:
        return SMART_TUNER
    state = payload.get("state_dict")
    if isinstance(state, dict) and any(str(k).startswith("decoder.attention_layer.") for k in state):
        return NVIDIA
    state = payload.get("model")
    if isinstance(state, dict) and any(str(k).startswith(("encoder.convolutions.0.convolution1d",
                                                           "decoder.attention.inputs_layer")) for k in state):
        return COQUI
    return None


def rename(payload: dict[str, Any], layout: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Return (our-named tensors, {foreign name: why it has no counterpart}) of a foreign checkpoint."""
    state = payload["state_dict"] if layout == NVIDIA else payload["model"]
    renamed: dict[str, torch.Tensor] = {}
    unmapped: dict[str, str] = {}
    for name, tensor in state.items():
        name = name.removeprefix("module.")  # saved from DataParallel/DistributedDataParallel
        for pattern, target in _RULES[layout]:
            if re.fullmatch(pattern, name):
                renamed[re.sub(pattern, target, name)] = tensor
                break
        else:
            unmapped[name] = "no counterpart in our Tacotron2"
    for ours in _ZERO_IF_ABSENT[layout]:
        renamed.setdefault(ours, torch.zeros(1))
    return renamed, unmapped
