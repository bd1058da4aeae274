"""The model contract: another acoustic model, declared in one module, trains, saves, resumes and speaks."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch
from torch import nn

from trainer.audio.mel import N_MELS
from trainer.config import TrainConfig, preset
from trainer.data.batches import Batch
from trainer.errors import ConfigError
from trainer.model.architectures import build_model, register_architecture, unregister_architecture
from trainer.model.checkpoint import load_checkpoint, warm_start
from trainer.model.contract import TEXT_EMBEDDING, AcousticModel, Inference, ModelOutputs, StopThreshold
from trainer.model.masks import length_mask
from trainer.synthesis.infer import load_model, synthesize
from trainer.text.symbols import symbols
from trainer.training.loop import train


class ToyModel(AcousticModel):
    """Every frame is a projection of the mean token embedding; attention is uniform; the gate rises with time."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.reduction_factor = config.model.reduction_factor
        self.max_decoder_steps = config.max_decoder_steps
        self.text_frontend = config.model.text_frontend  # the table the data's ids index
        self.table = nn.Embedding(len(symbols(self.text_frontend)), 8)
        self.to_mel = nn.Linear(8, N_MELS)
        self.gate_scale = nn.Parameter(torch.tensor(4.0))

    def parameter_roles(self) -> dict[str, str]:
        return {"table.weight": TEXT_EMBEDDING}

    def _decode(self, text: torch.Tensor, text_lens: torch.Tensor, steps: int) -> ModelOutputs:
        valid = length_mask(text_lens, text.shape[1]).float()  # (B, N)
        mean = (self.table(text) * valid[..., None]).sum(1) / text_lens[:, None]  # (B, 8)
        mel = self.to_mel(mean)[:, :, None].expand(-1, -1, steps * self.reduction_factor)  # (B, M, F)
        att = (valid / text_lens[:, None])[:, None, :].expand(-1, steps, -1)  # (B, S, N)
        position = torch.arange(steps, dtype=torch.float32) / max(steps - 1, 1)
        gate = (self.gate_scale * (position - 0.9))[None, :].expand(text.shape[0], -1)  # (B, S)
        return ModelOutputs(mel, mel + 0.0, gate, att)

    def forward(self, batch: Batch, teacher_forcing: float = 1.0) -> ModelOutputs:
        return self._decode(batch.text, batch.text_lens, batch.mels.shape[2] // self.reduction_factor)

    def infer(self, text: torch.Tensor, text_lens: torch.Tensor, max_decoder_steps: int | torch.Tensor | None = None,
              stop_threshold: StopThreshold = 0.5, seeds: Sequence[int] | None = None) -> Inference:
        limit = int(torch.as_tensor(max_decoder_steps).max()) if max_decoder_steps is not None else None
        steps = min(limit or self.max_decoder_steps, 4 * int(text_lens.max()))
        out = self._decode(text, text_lens, steps)
        lens = torch.full((text.shape[0],), steps, dtype=torch.long)
        return Inference(out.mel, out.mel_post, out.gate, out.att, lens, torch.zeros_like(lens, dtype=torch.bool))


@pytest.fixture
def toy() -> Iterator[None]:
    register_architecture("toy", ToyModel, replace=True)
    yield
    unregister_architecture("toy")


def toy_config(**overrides) -> TrainConfig:
    base = dict(architecture="toy", batch_size=4, val_size=4, max_steps=3, val_interval=3, checkpoint_interval=3,
                log_interval=1, warmup_steps=1, fr_utterances=2, torch_threads=2, learning_rate=1e-2, fr_asr="off")
    return preset("tiny").replace(**{**base, **overrides})


def test_a_toy_model_trains_saves_resumes_and_speaks(toy: None, demo_corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = train(toy_config(), demo_corpus, run, show_progress=False)
    assert result.step == 3
    payload = load_checkpoint(run / "checkpoints" / "last.pt")
    assert payload["model_config"]["architecture"] == "toy"
    assert set(payload["model"]) == {"frames_per_char", "table.weight", "to_mel.weight", "to_mel.bias",
                                     "gate_scale"}
    train(toy_config(max_steps=5, val_interval=5, checkpoint_interval=5), demo_corpus, run, resume=True,
          show_progress=False)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5]  # the resumed run goes on from step 4
    assert all(math.isfinite(r["train_total"]) for r in records if r["kind"] == "train")
    model, config = load_model(run / "checkpoints" / "last.pt")
    assert isinstance(model, ToyModel) and float(model.frames_per_char) > 0
    speech = synthesize(model, config, "hello there.", griffin_lim_iters=2)
    assert speech.mel.shape[0] == N_MELS and speech.wav.numel() > 0


def test_warm_start_skips_what_the_model_declares_symbol_bound(toy: None, demo_corpus: Path, tmp_path: Path) -> None:
    train(toy_config(max_steps=1, val_interval=1), demo_corpus, tmp_path / "run", show_progress=False)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.pt"
    payload = load_checkpoint(checkpoint)
    payload["symbol_set"] = "another symbol set"
    torch.save(payload, tmp_path / "foreign.pt")
    report = warm_start(build_model(toy_config()), tmp_path / "foreign.pt")
    assert set(report.skipped) == {"table.weight"} and "symbol set differs" in report.line()


def test_an_unknown_architecture_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="key 'architecture' must be one of tacotron2"):
        preset("tiny").replace(architecture="fastspeech9")
