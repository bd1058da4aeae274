"""Free-running evaluation on a trained tiny checkpoint (shipped in tests/data, see bench/make_test_checkpoint.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.data.corpus import read_corpus
from trainer.data.dataset import FeatureCache, TTSDataset
from trainer.evaluation.validate import band_range, free_running
from trainer.synthesis.infer import load_model, synthesize

ALIGNED = Path(__file__).resolve().parent.parent / "data" / "tiny-aligned.pt"


@pytest.fixture(scope="module")
def aligned():
    return load_model(ALIGNED)


def test_trained_checkpoint_aligns_and_stops_without_teacher_forcing(aligned, demo_corpus: Path) -> None:
    model, config = aligned
    dataset = TTSDataset(read_corpus(demo_corpus)[:8], FeatureCache())  # sentences it never saw
    torch.manual_seed(0)
    metrics, first = free_running(model, dataset, list(range(len(dataset))), config, torch.device("cpu"),
                                  float(model.frames_per_char), progress=1.0, band_range=band_range(dataset))
    assert metrics["fr_diagonality"] > 0.8
    assert metrics["fr_monotonicity"] > 0.9
    assert metrics["fr_stop_error"] < 0.25
    assert metrics["fr_hit_max_rate"] == 0.0
    assert 0.8 < metrics["fr_length_ratio"] < 1.25
    assert metrics["fr_out_of_range"] < 0.05  # a trained model stays within the corpus's band ranges
    assert 0.0 < metrics["fr_mcd"] < 200.0
    assert first["attention"].shape[1] == len(dataset[0].text_ids)


def test_an_untrained_model_scores_worse_on_the_same_figures(aligned, demo_corpus: Path) -> None:
    from trainer.model.tacotron2 import Tacotron2

    _, config = aligned
    torch.manual_seed(0)
    untrained = Tacotron2(config).eval()
    dataset = TTSDataset(read_corpus(demo_corpus)[:4], FeatureCache())
    metrics, _ = free_running(untrained, dataset, list(range(len(dataset))), config.replace(stop_gate="fixed"),
                              torch.device("cpu"), 4.6, progress=0.0, band_range=band_range(dataset))
    assert metrics["fr_diagonality"] < 0.6
    assert metrics["fr_out_of_range"] > 0.05
    assert metrics["fr_stop_error"] > 0.25 or metrics["fr_hit_max_rate"] > 0


def test_synthesis_stops_near_the_expected_length(aligned) -> None:
    model, config = aligned
    text = "a small voice said hello to the quiet village."
    torch.manual_seed(0)
    speech = synthesize(model, config, text, griffin_lim_iters=8)
    assert not speech.hit_max
    expected_frames = len(text) * float(model.frames_per_char)
    assert 0.6 * expected_frames < speech.mel.shape[1] < 1.5 * expected_frames
    assert speech.wav.abs().max() > 0.1
