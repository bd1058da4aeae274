"""Free-running synthesis from a checkpoint: text -> log-mel -> waveform (Griffin-Lim or a vocoder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from trainer.audio import mel as audio
from trainer.config import TrainConfig, config_from_stored
from trainer.errors import UserError
from trainer.model.architectures import build_model
from trainer.model.checkpoint import load_checkpoint
from trainer.model.contract import AcousticModel, StopThreshold
from trainer.model.stopping import stop_threshold_fn
from trainer.synthesis.enhance import EnhancerConfig, enhance
from trainer.synthesis.vocoder import Vocoder
from trainer.text.encode import text_to_ids


@dataclass
class Synthesis:
    """One synthesised utterance."""

    mel: torch.Tensor  # (80, frames) log-mel, trimmed at the stop step
    alignment: torch.Tensor  # (steps, tokens)
    wav: torch.Tensor  # (samples,) at 22,050 Hz
    hit_max: bool  # the stop gate never fired before max_decoder_steps


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[AcousticModel, TrainConfig]:
    """Return (model in eval mode, its config) from a checkpoint file."""
    payload = load_checkpoint(checkpoint, map_location=device)
    config = config_from_stored(payload["config"], source=str(checkpoint))
    model = build_model(config).to(device)
    model.load_state_dict(payload["model"])
    model.eval()
    return model, config


def synthesize(model: AcousticModel, config: TrainConfig, text: str, stop_threshold: float | None = None,
               max_decoder_steps: int | None = None, griffin_lim_iters: int = 32,
               enhancer: EnhancerConfig | None = None, vocoder: Vocoder | None = None) -> Synthesis:
    """Return the free-running synthesis of ``text`` (cleaned with the config's language).

    The stop threshold is ``stop_threshold`` when given; else the adaptive one (at full
    training progress, with the corpus's frames per character saved in the model) when the
    config asks for it; else the config's fixed threshold. ``enhancer`` post-processes the
    mel before it is vocoded (noise gate, loudness, smoothing; None: no enhancement); the
    returned ``mel`` is the enhanced one. ``vocoder`` turns the mel into audio (default:
    Griffin-Lim with ``griffin_lim_iters`` iterations).
    """
    device = next(model.parameters()).device
    ids = torch.tensor([text_to_ids(text, lang=config.lang, utterance_id="input", on_unknown=config.on_unknown_char,
                                    frontend=config.model.text_frontend)], dtype=torch.long, device=device)
    if ids.shape[1] == 0:
        raise UserError("input: text has no speakable characters")
    text_lens = torch.tensor([ids.shape[1]], device=device)
    threshold: StopThreshold
    if stop_threshold is not None:
        threshold = stop_threshold
    elif config.stop_gate == "adaptive" and float(model.frames_per_char) > 0:
        # A finished model: the threshold at full training progress.
        threshold = stop_threshold_fn(config, text_lens, float(model.frames_per_char), progress=1.0)
    else:
        threshold = config.stop_threshold
    out = model.infer(ids, text_lens, max_decoder_steps, threshold)
    steps = int(out.out_lens[0])
    mel = out.mel_post[0, :, : steps * config.model.reduction_factor].float().cpu()
    if enhancer is not None:
        mel = enhance(mel, enhancer)
    wav = vocoder(mel) if vocoder is not None else audio.griffin_lim(mel, griffin_lim_iters)
    return Synthesis(mel, out.att[0, :steps].float().cpu(), wav, bool(out.hit_max[0]))
