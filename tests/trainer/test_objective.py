"""The default objective, fr_mcd_sl: broken outputs rank behind an aligned model, and a checkpoint's score is fixed.

The aligned model is the trained tiny checkpoint shipped in tests/data; the broken outputs are
what the SPEC's validity check names (a never-aligning model, silence, output that never
stops, output that stops after a few frames, noise), made for the same held-out sentences.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainer.data.batches import collate
from trainer.data.corpus import read_corpus
from trainer.data.dataset import FeatureCache, TTSDataset
from trainer.evaluation import final as final_module
from trainer.evaluation.final import evaluate_sentences
from trainer.evaluation.metrics import mel_cepstral_distortion, mel_cepstral_distortion_sl, trim_silence
from trainer.evaluation.validate import FreeRun, _synthesise
from trainer.model.tacotron2 import Tacotron2
from trainer.synthesis.infer import load_model

ALIGNED = Path(__file__).resolve().parent.parent / "data" / "tiny-aligned.pt"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def outputs(demo_corpus: Path) -> tuple[list[torch.Tensor], dict[str, list[torch.Tensor]]]:
    """Return (the recordings' mels, {kind: that kind's output for each}) for 6 sentences the model never saw."""
    model, config = load_model(ALIGNED)
    dataset = TTSDataset(read_corpus(demo_corpus)[:6], FeatureCache())
    batch = collate([dataset[i] for i in range(len(dataset))], config.model.reduction_factor)
    aligned = _synthesise(model, batch, config, CPU, float(model.frames_per_char), 1.0)
    torch.manual_seed(0)
    never_aligned = _synthesise(Tacotron2(config).eval(), batch, config.replace(stop_gate="fixed"), CPU, 4.6, 0.0)
    references = [batch.mels[b, :, : int(batch.mel_lens[b])] for b in range(len(dataset))]

    def each(make) -> list[torch.Tensor]:
        return [make(b, reference) for b, reference in enumerate(references)]

    def produced(run: FreeRun, b: int) -> torch.Tensor:
        return run.mel_of(b) if int(run.pred[b]) > 0 else run.mel[b]

    generator = torch.Generator().manual_seed(1)
    low, high = min(float(r.min()) for r in references), max(float(r.max()) for r in references)
    return references, {
        "aligned": each(lambda b, r: produced(aligned, b)),
        "never_aligned": each(lambda b, r: produced(never_aligned, b)),
        "silence": each(lambda b, r: torch.full_like(r, low)),
        "never_stops": each(lambda b, r: torch.cat([produced(aligned, b),
                                                    produced(aligned, b)[:, -1:].repeat(1, 2 * r.shape[1])], 1)),
        "stops_after_a_few_frames": each(lambda b, r: produced(aligned, b)[:, :4]),
        "noise": each(lambda b, r: low + (high - low) * torch.rand(r.shape, generator=generator)),
    }


BROKEN = ("never_aligned", "silence", "never_stops", "stops_after_a_few_frames", "noise")


@pytest.mark.parametrize("kind", BROKEN)
def test_every_broken_output_scores_worse_than_the_aligned_model_on_every_sentence(outputs, kind: str) -> None:
    references, produced = outputs
    for b, reference in enumerate(references):
        aligned = mel_cepstral_distortion_sl(reference, produced["aligned"][b])
        broken = mel_cepstral_distortion_sl(reference, produced[kind][b])
        assert broken > aligned, (kind, b, broken, aligned)


def test_plain_mcd_dtw_ranks_output_that_never_stops_ahead_of_the_aligned_model(outputs) -> None:
    # Why fr_mcd is not the objective: DTW matches the frames repeated after the sentence cheaply.
    references, produced = outputs
    ahead = [mel_cepstral_distortion(r, produced["never_stops"][b]) < mel_cepstral_distortion(r, produced["aligned"][b])
             for b, r in enumerate(references)]
    assert all(ahead)


def test_silence_at_either_end_is_not_charged_and_every_missing_frame_is() -> None:
    speech = torch.linspace(-6.0, -1.0, 80)[:, None] + torch.sin(torch.arange(20.0))[None, :]  # (80, 20)
    quiet = torch.full((80, 7), -11.5)
    padded = torch.cat([quiet, speech, quiet], dim=1)
    assert trim_silence(padded).shape == (80, 20)
    assert mel_cepstral_distortion_sl(speech, padded) == pytest.approx(0.0, abs=1e-9)
    slightly_off = speech * 1.05
    half = mel_cepstral_distortion_sl(speech, slightly_off[:, ::2])
    assert half == pytest.approx(2.0 * mel_cepstral_distortion(speech, slightly_off[:, ::2]))
    with pytest.raises(ValueError, match=r"\(80, frames > 0\)"):
        mel_cepstral_distortion_sl(speech, torch.zeros(80, 0))


def test_the_same_checkpoint_gets_the_same_score_whatever_ran_before_and_however_batched(
        demo_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, config = load_model(ALIGNED)
    dataset = TTSDataset(read_corpus(demo_corpus)[:6], FeatureCache())

    def score(sentences: int | None = None) -> tuple[dict[str, float], dict[str, dict]]:
        metrics, scores = evaluate_sentences(model, dataset, config, CPU, float(model.frames_per_char), 1.0,
                                             sentences=sentences)
        return metrics, {str(s["id"]): s for s in scores}

    torch.manual_seed(0)
    first, first_scores = score()
    torch.manual_seed(123)
    torch.rand(1000)  # whatever drew from the global generator before
    again, again_scores = score()
    assert again == first and again_scores == first_scores  # to the bit
    # Other sentences beside each one: the same draws and lengths; float32 products of another
    # batch shape round differently, which the decoder's feedback carries on (a 1e-3 effect).
    monkeypatch.setattr(final_module, "FINAL_BATCH", 2)
    rebatched, rebatched_scores = score()
    assert set(rebatched_scores) == set(first_scores)
    for uid, scores in first_scores.items():
        assert rebatched_scores[uid]["fr_length_ratio"] == scores["fr_length_ratio"], uid
        assert rebatched_scores[uid]["fr_mcd_sl"] == pytest.approx(scores["fr_mcd_sl"], rel=1e-3), uid
    subset, subset_scores = score(sentences=3)
    assert len(subset_scores) == 3 and set(subset_scores) < set(first_scores)
    for uid, scores in subset_scores.items():
        assert scores["fr_mcd_sl"] == pytest.approx(first_scores[uid]["fr_mcd_sl"], rel=1e-3), uid


def test_unseeded_inference_would_not_be_repeatable(demo_corpus: Path) -> None:
    # The property the per-sentence seeds buy: prenet dropout stays on at inference.
    model, config = load_model(ALIGNED)
    dataset = TTSDataset(read_corpus(demo_corpus)[:2], FeatureCache())
    batch = collate([dataset[0], dataset[1]], config.model.reduction_factor)
    torch.manual_seed(1)
    one = model.infer(batch.text, batch.text_lens, 60).mel_post
    two = model.infer(batch.text, batch.text_lens, 60).mel_post
    seeded = [model.infer(batch.text, batch.text_lens, 60, seeds=[5, 6]).mel_post for _ in range(2)]
    assert not torch.equal(one, two)
    assert torch.equal(seeded[0], seeded[1])


def test_trainer_evaluate_prints_json_and_refuses_a_missing_file_in_one_line(demo_corpus: Path, capsys) -> None:
    from trainer.cli import main

    assert main(["evaluate", "--checkpoint", str(ALIGNED), str(demo_corpus), "--all", "--sentences", "3",
                 "--device", "cpu", "--asr", "off"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["sentences"] == 3 and len(printed["per_sentence"]) == 3
    assert printed["fr_mcd_sl"] == pytest.approx(
        sum(s["fr_mcd_sl"] for s in printed["per_sentence"]) / 3)
    assert {"fr_mcd", "fr_stop_error", "fr_diagonality", "step", "checkpoint"} <= set(printed)
    assert main(["evaluate", "--checkpoint", "missing.pt", str(demo_corpus)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["trainer: error: missing.pt: checkpoint not found"]
    assert main(["evaluate", "--checkpoint", str(ALIGNED), str(demo_corpus), "--sentences", "0"]) == 2
    assert "--sentences must be >= 1" in capsys.readouterr().err
