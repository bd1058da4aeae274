"""The CUDA path: mixed precision (bfloat16, and float16 with loss scaling), exact resume, batched
free-running inference (a study on ``--gpus 0``: tests/tuner/test_gpus.py).

Marked ``gpu``: skipped where no CUDA device is visible (tests/conftest.py). Run them whenever a
GPU is at hand: ``python -m pytest -m gpu``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from trainer.config import TrainConfig, preset
from trainer.data.corpus import read_corpus
from trainer.data.dataset import FeatureCache, TTSDataset
from trainer.evaluation.validate import band_range, free_running
from trainer.model.checkpoint import load_checkpoint
from trainer.synthesis.infer import load_model, synthesize
from trainer.training.loop import train
from trainer.training.losses import TacotronLoss

pytestmark = pytest.mark.gpu

ALIGNED = Path(__file__).resolve().parent.parent / "data" / "tiny-aligned.pt"


def cuda_config(name: str = "tiny", **overrides) -> TrainConfig:
    base = dict(max_steps=4, val_interval=4, checkpoint_interval=2, log_interval=1, val_size=4, fr_utterances=2,
                device="cuda", fr_asr="off", plots=False, warmup_steps=2, batch_size=8)
    return preset(name).replace(**{**base, **overrides})


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


@pytest.mark.parametrize("name", ["tiny", "base"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_presets_train_on_cuda_under_autocast_and_the_checkpoint_speaks_on_the_cpu(
        demo_corpus: Path, tmp_path: Path, name: str, dtype: str) -> None:
    if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    run = tmp_path / name
    result = train(cuda_config(name, amp_dtype=dtype), demo_corpus, run, show_progress=False)
    assert result.step == 4 and result.skipped_steps == 0
    assert records(run, "start")[0]["device"].startswith("cuda")
    assert all(math.isfinite(r["train_total"]) for r in records(run, "train"))
    val = records(run, "val")[-1]
    for key in ("val_mel_postnet_l1", "tf_diagonality", "fr_diagonality", "fr_stop_error"):
        assert math.isfinite(val[key]), key
    payload = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ("grad_scaler" in payload) == (dtype == "float16")  # only float16 scales the loss
    model, config = load_model(run / "checkpoints" / "last.pt", device="cpu")
    speech = synthesize(model, config, "a short test.", max_decoder_steps=40, griffin_lim_iters=2)
    assert speech.wav.numel() > 0 and torch.isfinite(speech.wav).all()


class _InfiniteGradient(torch.autograd.Function):
    """Identity forward; an infinite gradient backward: a finite loss whose step must be skipped."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad * math.inf


def test_float16_skips_an_overflowing_step_lowers_the_scale_and_goes_on(
        demo_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = TacotronLoss.forward
    calls = {"n": 0}

    def overflowing(self, *args, **kwargs):
        total, terms = original(self, *args, **kwargs)
        calls["n"] += 1
        return (_InfiniteGradient.apply(total), terms) if calls["n"] == 2 else (total, terms)

    monkeypatch.setattr(TacotronLoss, "forward", overflowing)
    run = tmp_path / "fp16"
    # Without the update after a skipped step, the next unscale_() raises "unscale_() has already been called".
    result = train(cuda_config(amp_dtype="float16", max_steps=3, val_interval=3), demo_corpus, run,
                   show_progress=False)
    assert result.step == 3 and result.skipped_steps == 1
    assert [e["step"] for e in records(run, "event") if e["event"] == "nonfinite_skip"] == [1]
    scale = load_checkpoint(run / "checkpoints" / "last.pt")["grad_scaler"]["scale"]
    assert scale == 2.0 ** 16 / 2  # the overflow halved the initial scale once


def test_resume_on_cuda_goes_on_like_the_straight_run(demo_corpus: Path, tmp_path: Path) -> None:
    # float16 so the loss scale travels in the checkpoint too; scheduled sampling makes the loss depend on the RNG.
    # Both runs validate at step 3 (the split one ends there, and the controller may act on that validation).
    config = cuda_config(amp_dtype="float16", max_steps=6, val_interval=3, checkpoint_interval=3,
                         tf_hold_steps=0, tf_decay_steps=1, tf_floor=0.5)
    train(config, demo_corpus, tmp_path / "straight", show_progress=False)
    train(config.replace(max_steps=3), demo_corpus, tmp_path / "split", show_progress=False)
    train(config, demo_corpus, tmp_path / "split", resume=True, show_progress=False)
    straight = {r["step"]: r["train_total"] for r in records(tmp_path / "straight", "train")}
    split = {r["step"]: r["train_total"] for r in records(tmp_path / "split", "train")}
    # GPU kernels (atomic adds in embedding and attention backward) are not bit-reproducible run to
    # run, so "exact" here is agreement far inside the step-to-step change of the loss.
    for step in (4, 5, 6):
        assert split[step] == pytest.approx(straight[step], rel=1e-3), step
    ends = [load_checkpoint(tmp_path / run / "checkpoints" / "last.pt") for run in ("straight", "split")]
    assert ends[0]["position"] == ends[1]["position"]
    assert ends[0]["grad_scaler"] == ends[1]["grad_scaler"]


def test_batched_free_running_on_cuda_stops_each_utterance_like_the_cpu(demo_corpus: Path) -> None:
    dataset = TTSDataset(read_corpus(demo_corpus)[:8], FeatureCache())
    figures = {}
    for device in ("cpu", "cuda"):
        model, config = load_model(ALIGNED, device=device)
        torch.manual_seed(0)
        figures[device], _ = free_running(model, dataset, list(range(len(dataset))), config.replace(amp=False),
                                          torch.device(device), float(model.frames_per_char), progress=1.0,
                                          band_range=band_range(dataset))
    cuda, cpu = figures["cuda"], figures["cpu"]
    assert cuda["fr_hit_max_rate"] == 0.0  # every utterance of the batch stopped on its own
    assert cuda["fr_diagonality"] > 0.8 and cuda["fr_stop_error"] < 0.25
    for key in ("fr_diagonality", "fr_length_ratio", "fr_stop_error"):
        assert cuda[key] == pytest.approx(cpu[key], abs=0.05), key
