"""Phoneme input: eSpeak NG's IPA with punctuation kept, its own symbol table, and a model that trains on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.config import ConfigError, config_from_dict, preset
from trainer.errors import UnknownCharacterError
from trainer.model.checkpoint import warm_start
from trainer.text.encode import phonemize, text_to_ids
from trainer.text.symbols import PHONEME_SYMBOLS, SYMBOLS, ids_to_text, symbol_set_id


def test_phonemes_keep_punctuation_and_stress_and_follow_the_cleaners() -> None:
    assert phonemize("hello, world.") == "həlˈoʊ, wˈɜːld."
    ids = text_to_ids("Hello, world! I have 3 cats.", frontend="phonemes")
    spoken = ids_to_text(ids, "phonemes")
    assert spoken.startswith("həlˈoʊ, wˈɜːld! ") and spoken.endswith(".")
    assert "θɹˈiː" in spoken  # the number was spelled out before eSpeak read it
    assert "dˈoʊnt" in ids_to_text(text_to_ids("Don't.", frontend="phonemes"), "phonemes")  # one word
    russian = ids_to_text(text_to_ids("Привет, мир.", lang="ru", frontend="phonemes"), "phonemes")
    assert russian == "prʲivʲˈet, mʲˈir."
    assert text_to_ids("Hello.", frontend="phonemes") == text_to_ids("Hello.", frontend="phonemes")


def test_both_frontends_accept_the_same_texts() -> None:
    with pytest.raises(UnknownCharacterError, match="€"):
        text_to_ids("It costs 5 €.", frontend="phonemes", utterance_id="u1")
    assert text_to_ids("It costs 5 €.", frontend="phonemes", on_unknown="drop")
    with pytest.raises(ValueError, match="unknown text_frontend 'graphemes'"):
        text_to_ids("x", frontend="graphemes")


def test_tables_and_their_ids() -> None:
    assert len(set(PHONEME_SYMBOLS)) == len(PHONEME_SYMBOLS) and PHONEME_SYMBOLS[0] == SYMBOLS[0] == "_"
    assert symbol_set_id("phonemes") != symbol_set_id("characters") == symbol_set_id()
    assert config_from_dict({"text_frontend": "phonemes"}).model.text_frontend == "phonemes"
    with pytest.raises(ConfigError, match="key 'text_frontend' must be one of characters, phonemes, nvidia, got 'ipa'"):
        config_from_dict({"model": {"text_frontend": "ipa"}})


def test_a_phoneme_model_trains_aligns_speaks_and_keeps_its_table(demo_corpus: Path, tmp_path: Path) -> None:
    from trainer.model.architectures import build_model
    from trainer.model.checkpoint import load_checkpoint
    from trainer.synthesis.infer import load_model, synthesize
    from trainer.training.loop import train

    micro = dict(symbols_embedding_dim=32, encoder_embedding_dim=32, attention_rnn_dim=64, attention_dim=16,
                 attention_location_n_filters=4, prenet_dim=32, decoder_rnn_dim=64, postnet_embedding_dim=16)
    config = preset("tiny").replace(**micro, text_frontend="phonemes", batch_size=4, val_size=4, max_steps=40,
                                    val_interval=20, checkpoint_interval=20, log_interval=1, warmup_steps=2,
                                    torch_threads=2, fr_asr="off", fr_utterances=2, learning_rate=3e-3)
    train(config, demo_corpus, tmp_path / "run", show_progress=False)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    vals = [r for r in map(json.loads, lines) if r["kind"] == "val"]
    losses = [r["train_total"] for r in map(json.loads, lines) if r["kind"] == "train"]
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5])  # it learns (steps to alignment: bench/alignment.py)
    assert [v["step"] for v in vals] == [20, 40]
    payload = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert payload["symbol_set"] == symbol_set_id("phonemes")
    assert payload["model"]["embedding.weight"].shape[0] == len(PHONEME_SYMBOLS)
    model, loaded = load_model(tmp_path / "run" / "checkpoints" / "best.pt")
    speech = synthesize(model, loaded, "the quick brown fox.", max_decoder_steps=60, griffin_lim_iters=4)
    assert speech.alignment.shape[1] == len(text_to_ids("the quick brown fox.", frontend="phonemes"))
    # A character model warm-started from it keeps everything but the embedding (another symbol table).
    characters = build_model(config.replace(text_frontend="characters"))
    report = warm_start(characters, tmp_path / "run" / "checkpoints" / "best.pt")
    assert report.skipped == {"embedding.weight": "symbol set differs"}


GERMAN = """\
Die Katze schläft auf dem Sofa.
Wir fahren am Montag nach Berlin.
Das Wetter ist heute schön.
Er hat 23 Äpfel gekauft.
Kommst du morgen zu mir?
Der Zug fährt um 8 Uhr ab.
"""


def test_a_german_corpus_trains_on_phonemes_and_speaks(tmp_path: Path) -> None:
    from trainer.corpora.make import make_corpus
    from trainer.synthesis.infer import load_model, synthesize
    from trainer.training.loop import train

    text = tmp_path / "de.txt"
    text.write_text(GERMAN, encoding="utf-8")
    corpus = tmp_path / "de"
    make_corpus(corpus, lang="de", utterances=6, text_file=text)
    rows = (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert rows[3].endswith("|er hat dreiundzwanzig äpfel gekauft.")  # num2words, kept umlaut
    micro = dict(symbols_embedding_dim=32, encoder_embedding_dim=32, attention_rnn_dim=64, attention_dim=16,
                 attention_location_n_filters=4, prenet_dim=32, decoder_rnn_dim=64, postnet_embedding_dim=16)
    config = preset("tiny").replace(**micro, lang="de", text_frontend="phonemes", batch_size=2, val_size=2,
                                    max_steps=2, val_interval=2, checkpoint_interval=2, log_interval=1,
                                    torch_threads=2, fr_asr="off", fr_utterances=1)
    result = train(config, corpus, tmp_path / "run", show_progress=False)
    assert result.step == 2
    model, loaded = load_model(tmp_path / "run" / "checkpoints" / "last.pt")
    speech = synthesize(model, loaded, "Guten Morgen, 5 Brötchen bitte.", max_decoder_steps=20, griffin_lim_iters=2)
    assert speech.alignment.shape[1] == len(text_to_ids("Guten Morgen, 5 Brötchen bitte.", lang="de",
                                                        frontend="phonemes"))


def test_a_language_the_character_tables_do_not_spell_needs_phonemes() -> None:
    assert preset("tiny").replace(lang="fr").model.text_frontend == "phonemes"  # the default reads every language
    with pytest.raises(ConfigError, match="key 'lang' 'fr' needs text_frontend: phonemes"):
        preset("tiny").replace(lang="fr", text_frontend="characters")
    with pytest.raises(ConfigError, match="key 'lang' must be one of en, ru, de, es, fr, got 'it'"):
        preset("tiny").replace(lang="it", text_frontend="phonemes")
    assert preset("tiny").replace(lang="es", text_frontend="phonemes").lang == "es"
