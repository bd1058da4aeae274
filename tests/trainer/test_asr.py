"""Intelligibility: error rates of known transcripts, flite speech heard by the recogniser, fr_wer in validation."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from trainer.audio.mel import load_audio
from trainer.config import preset
from trainer.data.corpus import read_corpus
from trainer.errors import ConfigError
from trainer.evaluation import metric_registry
from trainer.evaluation.asr import (
    error_rates,
    normalize,
    seen_unseen_rates,
    transcribe,
    unavailable_reason,
    vocabulary,
    word_hits,
)
from trainer.training.loop import train
from trainer.training.session import asr_scorer


def test_words_heard_in_training_and_new_words_are_scored_apart() -> None:
    seen = vocabulary(["The cat sat on the mat.", "A dog ran."])
    assert seen == frozenset({"the", "cat", "sat", "on", "mat", "a", "dog", "ran"})
    references = ["the cat sat on a zebra", "a quokka ran"]
    hypotheses = ["the bat sat on a zebra", "a quokka ran away"]  # one seen word missed; an insertion
    assert word_hits(references[:1], hypotheses[:1]) == [[("the", True), ("cat", False), ("sat", True),
                                                          ("on", True), ("a", True), ("zebra", True)]]
    rates = seen_unseen_rates(references, hypotheses, seen)
    assert rates == {"wer_seen": pytest.approx(1 / 7), "wer_unseen": 0.0}  # 7 seen words, 2 new ones
    # Insertions belong to no reference word: they raise the WER of all words only.
    assert error_rates(references, hypotheses)[0] == pytest.approx(2 / 9)
    # An empty transcript misses every word; a group absent from the sentences is left out.
    assert seen_unseen_rates(["the cat"], [""], seen) == {"wer_seen": 1.0}
    assert seen_unseen_rates(["zebra quokka"], ["zebra"], seen) == {"wer_unseen": 0.5}


def test_error_rates_of_known_transcripts() -> None:
    assert error_rates(["the cat sat"], ["the cat sat"]) == (0.0, 0.0)
    wer, cer = error_rates(["the cat sat"], ["the dog sat"])
    assert wer == pytest.approx(1 / 3) and cer == pytest.approx(3 / 11)  # c-a-t -> d-o-g in 11 characters
    # Punctuation and case are not errors: both sides are normalised alike.
    assert error_rates(["Hello, there!"], ["hello there"]) == (0.0, 0.0)
    # Corpus-level: errors over all reference words (2 of 5 here), not a mean of per-sentence rates.
    assert error_rates(["a b c", "d e"], ["a b c", "x y"])[0] == pytest.approx(2 / 5)
    # Nothing heard: every word deleted.
    assert error_rates(["the cat sat"], [""]) == (1.0, 1.0)
    assert normalize("Fifty-nine, O'Brien!") == "fifty nine o'brien"
    with pytest.raises(ValueError, match="no words"):
        error_rates(["?!"], ["x"])
    with pytest.raises(ValueError, match="as many hypotheses"):
        error_rates(["a", "b"], ["a"])


def test_the_recogniser_hears_flite_speech(flite_corpus: Path) -> None:
    items = read_corpus(flite_corpus)[:4]
    heard = [transcribe(load_audio(item.wav_path)[0], 22050) for item in items]
    wer, cer = error_rates([item.text for item in items], heard)
    assert wer < 0.3 and cer < 0.15, list(zip([i.text for i in items], heard, strict=True))
    # A babble of the same length is not: the figure measures what was said.
    noise = torch.randn(22050 * 2, generator=torch.Generator().manual_seed(0)) * 0.1
    assert error_rates([items[0].text], [transcribe(noise, 22050)])[0] > 0.8


def test_why_it_is_off_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    assert unavailable_reason("en") is None
    assert "understands en only, not 'ru'" in unavailable_reason("ru")
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # as if the extra were not installed
    reason = unavailable_reason("en")
    assert "pocketsphinx not installed" in reason and "[asr]" in reason and "\n" not in reason
    scorer, line = asr_scorer(preset("tiny").replace(fr_asr="auto"))
    assert scorer is None and line.startswith("intelligibility (fr_wer) is off: pocketsphinx not installed")
    with pytest.raises(ConfigError, match="fr_asr: on, but pocketsphinx not installed"):
        asr_scorer(preset("tiny").replace(fr_asr="on"))
    assert asr_scorer(preset("tiny").replace(fr_asr="off")) == (None, None)


MICRO = dict(symbols_embedding_dim=32, encoder_embedding_dim=32, attention_rnn_dim=64, attention_dim=16,
             attention_location_n_filters=4, attention_location_kernel_size=7, prenet_dim=32, decoder_rnn_dim=64,
             postnet_embedding_dim=16, batch_size=4, val_size=3, max_steps=2, val_interval=2, log_interval=1,
             torch_threads=2, fr_utterances=3, plots=False)


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("frontend", ["characters", "phonemes"])
def test_an_english_run_reports_intelligibility(flite_corpus: Path, tmp_path: Path, frontend: str) -> None:
    # Transcripts are scored against the text, not the model's ids (IPA when it reads phonemes).
    train(preset("tiny").replace(**MICRO, fr_asr="auto", text_frontend=frontend), flite_corpus, tmp_path / "run",
          show_progress=False)
    val = [r for r in _records(tmp_path / "run") if r["kind"] == "val"][-1]
    for name in ("fr_wer", "fr_cer", "fr_wer_ceiling", "fr_cer_ceiling"):
        assert name in val and math.isfinite(val[name]) and metric_registry.is_known(name), name
    assert val["fr_wer"] > 0.5  # two steps of training say nothing intelligible...
    assert val["fr_wer_ceiling"] < 0.5  # ...while the recordings, resynthesised alike, are understood


def test_a_russian_run_or_a_missing_extra_says_so_in_one_line(demo_corpus: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)
    train(preset("tiny").replace(**MICRO), demo_corpus, tmp_path / "run", show_progress=True)
    events = [r for r in _records(tmp_path / "run") if r.get("event") == "asr_off"]
    assert len(events) == 1 and "pocketsphinx not installed" in events[0]["reason"]
    assert "intelligibility (fr_wer) is off: pocketsphinx not installed" in capsys.readouterr().err
    val = [r for r in _records(tmp_path / "run") if r["kind"] == "val"][-1]
    assert "fr_wer" not in val and "fr_mcd" in val


def test_a_voice_the_recogniser_cannot_hear_turns_scoring_off_once(demo_corpus: Path, tmp_path: Path,
                                                                   capsys) -> None:
    # eSpeak NG: the recogniser misses most words of the recordings themselves, so fr_wer would measure it.
    config = preset("tiny").replace(**{**MICRO, "max_steps": 4}, fr_asr="on")
    train(config, demo_corpus, tmp_path / "run", show_progress=False)
    records = _records(tmp_path / "run")
    events = [r for r in records if r.get("event") == "asr_off"]
    assert len(events) == 1 and events[0]["step"] == 2
    assert "recogniser hears only" in events[0]["reason"] and "flite" in events[0]["reason"]
    assert all("fr_wer" not in r for r in records if r["kind"] == "val")
    assert capsys.readouterr().err.count("intelligibility (fr_wer) is off") == 1
