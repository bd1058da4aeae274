"""Vocoders: log-mel (80, frames) -> waveform (samples,) at 22,050 Hz.

Two kinds, named by one string (``--vocoder`` of ``trainer synth``, the config key ``vocoder``):

- ``griffin-lim`` (the default): no weights, phase by iteration; fine to check alignment and
  stopping, misleading for judging a voice (metallic, smeared consonants).
- ``hifigan:GENERATOR``: a HiFi-GAN generator checkpoint in the public layout (the
  ``generator`` state dict of jik876/hifi-gan, as its V1/V2/V3 releases and most fine-tuning
  forks save it), built from its ``config.json`` (``vocoder_config``). Our mels follow the
  convention those generators were trained on (22,050 Hz, hop 256, 80 Slaney mels to 8 kHz,
  natural log of clamp(magnitude, 1e-5)), so a public LJSpeech generator vocodes them as is;
  fine-tuning it on teacher-forced mels (``trainer export-mels``) removes the mismatch
  between our predicted mels and the recordings'.

The generator is written here (the public layout is a state-dict format, not a dependency):
weight-normalised convolutions are folded into plain weights when loaded, since inference
never needs the split.

>>> import torch
>>> config = HifiGanConfig(resblock="2", upsample_rates=(8, 8, 4), upsample_kernel_sizes=(16, 16, 8),
...                        upsample_initial_channel=16, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),))
>>> HifiGanGenerator(config)(torch.zeros(1, 80, 5)).shape  # 5 frames x 256 samples
torch.Size([1, 1, 1280])
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from trainer.audio.format import SAMPLE_RATE
from trainer.audio.mel import HOP_LENGTH, N_MELS, griffin_lim
from trainer.errors import UserError
from trainer.model.checkpoint import load_any

GRIFFIN_LIM = "griffin-lim"
HIFIGAN_PREFIX = "hifigan:"
LRELU_SLOPE = 0.1  # the slope the public generators were trained with
DILATIONS_PER_KIND = {"1": 3, "2": 2}  # residual block kind -> dilated convolutions per kernel size

Vocoder = Callable[[torch.Tensor], torch.Tensor]  # log-mel (80, frames) -> wav (samples,) in [-1, 1]


@dataclass(frozen=True)
class HifiGanConfig:
    """The keys of a HiFi-GAN ``config.json`` that shape the generator (others are training settings)."""

    resblock: str  # "1" (V1, V3: two dilated convolutions per branch) | "2" (V2: one)
    upsample_rates: tuple[int, ...]  # their product is the hop length: 256 samples per mel frame
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]

    @classmethod
    def from_json(cls, path: str | Path) -> HifiGanConfig:
        """Read ``path``; UserError names the file and the missing or bad key, or a rate/hop/mel mismatch."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: vocoder config not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UserError(f"{path}: not a JSON vocoder config ({err})") from None
        if not isinstance(raw, dict):
            raise UserError(f"{path}: not a JSON vocoder config (expected an object)")
        for key, ours in (("sampling_rate", SAMPLE_RATE), ("hop_size", HOP_LENGTH), ("num_mels", N_MELS)):
            if key in raw and raw[key] != ours:
                raise UserError(f"{path}: key '{key}' is {raw[key]!r}; our mels need {ours}")
        try:
            config = cls(resblock=str(raw["resblock"]),
                         upsample_rates=tuple(int(v) for v in raw["upsample_rates"]),
                         upsample_kernel_sizes=tuple(int(v) for v in raw["upsample_kernel_sizes"]),
                         upsample_initial_channel=int(raw["upsample_initial_channel"]),
                         resblock_kernel_sizes=tuple(int(v) for v in raw["resblock_kernel_sizes"]),
                         resblock_dilation_sizes=tuple(tuple(int(d) for d in ds)
                                                       for ds in raw["resblock_dilation_sizes"]))
        except KeyError as err:
            raise UserError(f"{path}: vocoder config lacks key {err.args[0]!r}") from None
        except (TypeError, ValueError) as err:
            raise UserError(f"{path}: vocoder config has a bad value ({err})") from None
        if config.resblock not in DILATIONS_PER_KIND:
            raise UserError(f"{path}: key 'resblock' must be \"1\" or \"2\", got {raw['resblock']!r}")
        count = DILATIONS_PER_KIND[config.resblock]
        if any(len(dilations) != count for dilations in config.resblock_dilation_sizes):
            raise UserError(f"{path}: key 'resblock_dilation_sizes' must list {count} dilations per kernel "
                            f"for resblock {config.resblock}")
        if math.prod(config.upsample_rates) != HOP_LENGTH:
            raise UserError(f"{path}: key 'upsample_rates' multiplies to {math.prod(config.upsample_rates)}; "
                            f"our mels need {HOP_LENGTH} samples per frame")
        if len(config.upsample_kernel_sizes) != len(config.upsample_rates) or \
                len(config.resblock_dilation_sizes) != len(config.resblock_kernel_sizes):
            raise UserError(f"{path}: 'upsample_kernel_sizes' must pair with 'upsample_rates' and "
                            "'resblock_dilation_sizes' with 'resblock_kernel_sizes'")
        return config


def _padding(kernel: int, dilation: int) -> int:
    return (kernel * dilation - dilation) // 2


class _ResBlock(nn.Module):
    """A residual stack of dilated 1-D convolutions over (B, C, samples), as the public generators name it.

    Kind "1" (V1, V3): per dilation, a dilated then an undilated convolution (``convs1``,
    ``convs2``); kind "2" (V2): one dilated convolution (``convs``).
    """

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...], kind: str) -> None:
        super().__init__()
        count = DILATIONS_PER_KIND[kind]
        if len(dilations) != count:
            raise ValueError(f"resblock {kind} takes {count} dilations per kernel, got {list(dilations)}")
        dilated = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d, padding=_padding(kernel, d))
                                for d in dilations)
        self.kind = kind
        if kind == "1":
            self.convs1 = dilated
            self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, padding=_padding(kernel, 1))
                                        for _ in range(count))
        else:
            self.convs = dilated

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, conv in enumerate(self.convs1 if self.kind == "1" else self.convs):
            branch = conv(F.leaky_relu(x, LRELU_SLOPE))
            if self.kind == "1":
                branch = self.convs2[index](F.leaky_relu(branch, LRELU_SLOPE))
            x = x + branch
        return x


class HifiGanGenerator(nn.Module):
    """HiFi-GAN's generator: log-mel (B, 80, frames) -> waveform (B, 1, frames x 256) in [-1, 1].

    Parameter names follow the public checkpoints (``conv_pre``, ``ups.I``, ``resblocks.J``,
    ``conv_post``) so their state dicts load after folding weight normalisation.
    """

    def __init__(self, config: HifiGanConfig) -> None:
        super().__init__()
        self.num_kernels = len(config.resblock_kernel_sizes)
        channels = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(N_MELS, channels, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for index, (rate, kernel) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True)):
            out = channels // 2 ** (index + 1)
            self.ups.append(nn.ConvTranspose1d(channels // 2 ** index, out, kernel, rate, padding=(kernel - rate) // 2))
            for size, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True):
                self.resblocks.append(_ResBlock(out, size, dilations, config.resblock))
        self.conv_post = nn.Conv1d(channels // 2 ** len(config.upsample_rates), 1, 7, padding=3)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for index, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[index * self.num_kernels:(index + 1) * self.num_kernels]
            x = sum((block(x) for block in blocks), torch.zeros_like(x)) / self.num_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))  # torch's default slope here, as trained


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return ``state`` with weight-normalised pairs folded into plain ``weight`` tensors.

    Accepts both spellings torch has saved: ``NAME.weight_g``/``NAME.weight_v`` (the old
    ``weight_norm``, as in the public releases) and ``NAME.parametrizations.weight.original0``/
    ``original1`` (the newer parametrisation). weight = g · v / ‖v‖, the norm over every
    dimension but the first (the default ``dim=0`` of both).
    """
    pairs = {"weight_g": "weight_v", "parametrizations.weight.original0": "parametrizations.weight.original1"}
    folded: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for g_name, v_name in pairs.items():
            if key.endswith("." + g_name):
                base = key[: -len(g_name)]
                v = state[base + v_name]
                norm = v.flatten(1).norm(dim=1).reshape(-1, *([1] * (v.dim() - 1)))
                folded[base + "weight"] = value * v / norm
                break
            if key.endswith("." + v_name):
                break
        else:
            folded[key] = value
    return folded


def load_hifigan(generator: str | Path, config: str | Path, device: str | torch.device = "cpu") -> HifiGanGenerator:
    """Return the generator of checkpoint ``generator`` built from ``config``, in eval mode on ``device``.

    UserError (one line) when a file is missing or unreadable, the checkpoint has no
    ``generator`` state dict, or its weights do not fit the config (the first key that differs).
    """
    path = Path(generator)
    if not path.is_file():
        raise UserError(f"{path}: vocoder checkpoint not found")
    model = HifiGanGenerator(HifiGanConfig.from_json(config))
    payload = load_any(path)
    state = payload.get("generator") if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"{path}: no 'generator' state dict (the public HiFi-GAN layout saves {{'generator': ...}})")
    state = fold_weight_norm(state)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        first = f"lacks {missing[0]}" if missing else f"has {unexpected[0]} that the config does not build"
        raise UserError(f"{path}: does not match {config}: the checkpoint {first} "
                        f"({len(missing)} missing, {len(unexpected)} unexpected)")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise UserError(f"{path}: does not match {config}: {key} is {tuple(state[key].shape)} in the checkpoint, "
                            f"{tuple(tensor.shape)} by the config")
    model.load_state_dict(state)
    return model.to(device).eval()


def make_vocoder(name: str = GRIFFIN_LIM, config: str | Path | None = None,
                 device: str | torch.device = "cpu") -> Vocoder:
    """Return the vocoder ``name`` (``griffin-lim`` or ``hifigan:GENERATOR``, with ``config`` its JSON)."""
    if name == GRIFFIN_LIM:
        return griffin_lim
    if not name.startswith(HIFIGAN_PREFIX) or not name[len(HIFIGAN_PREFIX):]:
        raise UserError(f"vocoder {name!r}: expected {GRIFFIN_LIM} or {HIFIGAN_PREFIX}GENERATOR")
    if config is None:
        raise UserError(f"vocoder {name}: a HiFi-GAN generator needs its config.json (--vocoder-config, "
                        "or the config key vocoder_config)")
    generator = load_hifigan(name[len(HIFIGAN_PREFIX):], config, device)

    @torch.no_grad()
    def vocode(log_mel: torch.Tensor) -> torch.Tensor:
        """(80, frames) log-mel -> (frames x 256,) wav, as the generator produced it (no renormalising)."""
        mel = log_mel.detach().float().to(next(generator.parameters()).device)
        return generator(mel[None])[0, 0].cpu()

    return vocode
