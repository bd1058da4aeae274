"""eSpeak NG demo corpus: real audio, LJSpeech layout, deterministic output."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from trainer.audio.mel import SAMPLE_RATE
from trainer.cli import main as trainer_main
from trainer.corpora.make import DEFAULT_VOICES, SECOND_VOICES, CorpusSummary, make_corpus, trim_silence
from trainer.corpora.sentences import generate_sentences
from trainer.errors import CorpusError, UnknownCharacterError, UserError, VoiceError
from trainer.text.cleaners import clean_text
from trainer.text.encode import text_to_ids
from trainer.text.espeak import check_voice, list_voice_variants, synthesize

N = 5


def read_metadata(out_dir: Path) -> list[list[str]]:
    lines = (out_dir / "metadata.csv").read_text(encoding="utf-8").splitlines()
    return [line.split("|") for line in lines]


def read_wav(path: Path) -> np.ndarray:
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
    audio, _ = sf.read(path, dtype="int16")
    return audio


def frame_rms(audio: np.ndarray, frame: int = 220) -> np.ndarray:
    n = len(audio) // frame
    return np.sqrt((audio[: n * frame].astype(np.float64).reshape(n, frame) ** 2).mean(axis=1))


def quiet_edges_s(audio: np.ndarray, threshold_db: float = -40.0) -> tuple[float, float]:
    """Seconds of near-silence (below threshold_db re the loudest 10 ms) at each end."""
    rms = frame_rms(audio)
    loud = np.flatnonzero(rms > rms.max() * 10 ** (threshold_db / 20))
    head = loud[0] * 220 / SAMPLE_RATE
    tail = (len(audio) - (loud[-1] + 1) * 220) / SAMPLE_RATE
    return head, tail


def median_f0(audio: np.ndarray) -> float:
    """Autocorrelation pitch over the louder 40 ms frames, 60..400 Hz."""
    x = audio.astype(np.float64)
    size, hop = int(0.04 * SAMPLE_RATE), int(0.02 * SAMPLE_RATE)
    starts = range(0, len(x) - size, hop)
    energy = np.array([np.sqrt(np.mean(x[i:i + size] ** 2)) for i in starts])
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
    f0 = []
    for i, e in zip(starts, energy, strict=True):
        if e < 0.3 * energy.max():
            continue
        s = x[i:i + size] - x[i:i + size].mean()
        ac = np.correlate(s, s, "full")[size - 1:]
        f0.append(SAMPLE_RATE / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(f0))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, tuple[CorpusSummary, Path]]:
    root = tmp_path_factory.mktemp("corpora")
    out: dict[str, tuple[CorpusSummary, Path]] = {}
    out["en"] = (make_corpus(root / "en", utterances=N, seed=7), root / "en")
    out["f3"] = (make_corpus(root / "f3", utterances=N, seed=7, voice="en-us+f3"), root / "f3")
    out["ru"] = (make_corpus(root / "ru", lang="ru", utterances=3, seed=7), root / "ru")
    return out


# --- the sentence generator -------------------------------------------------


def test_generator_is_seeded_and_varied():
    a = generate_sentences("en", 60, seed=1)
    assert a == generate_sentences("en", 60, seed=1)
    assert a != generate_sentences("en", 60, seed=2)
    assert len(set(a)) > 50
    assert any(s.endswith("?") for s in a) and any("," in s for s in a)
    assert not any(ch.isdigit() for s in a for ch in s)  # numbers are words
    lengths = [len(s.split()) for s in a]
    assert min(lengths) >= 3 and max(lengths) <= 20


def test_generator_russian_is_cyrillic_and_encodable():
    sentences = generate_sentences("ru", 40, seed=3)
    for i, s in enumerate(sentences):
        assert any("а" <= ch <= "я" for ch in s.lower()), s
        text_to_ids(s, lang="ru", utterance_id=str(i))  # raises on a stray character


# --- audio --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["en", "f3", "ru"])
def test_audio_is_real_speech(corpora, name):
    summary, out_dir = corpora[name]
    wavs = sorted((out_dir / "wavs").glob("*.wav"))
    assert len(wavs) == summary.count
    total = 0.0
    for wav in wavs:
        audio = read_wav(wav)
        seconds = len(audio) / SAMPLE_RATE
        total += seconds
        assert 0.5 <= seconds <= 6.0, (wav.name, seconds)
        rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
        assert rms > 500, (wav.name, rms)  # int16 full scale is 32767
        assert np.mean(frame_rms(audio) > 300) > 0.4, wav.name  # mostly voiced, not a blip
    assert summary.total_seconds == pytest.approx(total, abs=1e-6)


@pytest.mark.parametrize("name", ["en", "f3", "ru"])
def test_silence_is_trimmed_to_margin(corpora, name):
    _, out_dir = corpora[name]
    for wav in sorted((out_dir / "wavs").glob("*.wav")):
        head, tail = quiet_edges_s(read_wav(wav))
        # 50 ms margin + one 10 ms analysis frame
        assert head <= 0.065 and tail <= 0.065, (wav.name, head, tail)


def test_trim_silence_removes_added_padding():
    speech = synthesize("Trim the edges of this one.", voice="en-us")
    rng = np.random.default_rng(0)
    hiss = lambda n: rng.normal(0, 20, n).astype(np.int16)  # noqa: E731 - about -64 dB re speech
    padded = np.concatenate([hiss(SAMPLE_RATE), speech, hiss(SAMPLE_RATE // 2)])
    trimmed = trim_silence(padded)
    assert len(trimmed) < len(speech) + 0.13 * SAMPLE_RATE
    head, tail = quiet_edges_s(trimmed)
    assert head <= 0.065 and tail <= 0.065
    assert trim_silence(np.zeros(1000, dtype=np.int16)).size == 0


def test_another_voice_sounds_different(corpora):
    (_, en_dir), (f3_summary, f3_dir) = corpora["en"], corpora["f3"]
    assert f3_summary.voice == "en-us+f3"
    assert read_metadata(en_dir) == read_metadata(f3_dir)  # same text, only the voice differs
    ratios = []
    for row in read_metadata(en_dir):
        a, b = read_wav(en_dir / "wavs" / f"{row[0]}.wav"), read_wav(f3_dir / "wavs" / f"{row[0]}.wav")
        assert a.tobytes() != b.tobytes()
        ratios.append(median_f0(b) / median_f0(a))
    assert np.median(ratios) > 1.5  # f3 is a female variant: about an octave up


# --- layout -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["en", "ru"])
def test_metadata_matches_wavs(corpora, name):
    summary, out_dir = corpora[name]
    rows = read_metadata(out_dir)
    assert summary.metadata_path == out_dir / "metadata.csv"
    assert [r[0] for r in rows] == [f"DEMO-{i:04d}" for i in range(1, summary.count + 1)]
    assert {p.stem for p in (out_dir / "wavs").iterdir()} == {r[0] for r in rows}
    lang = summary.lang
    assert rows[0][1] == generate_sentences(lang, summary.count, seed=7)[0]
    for uid, text, normalized in rows:
        assert normalized == clean_text(text, lang)
        text_to_ids(normalized, lang=lang, utterance_id=uid)
    assert summary.voice == DEFAULT_VOICES[lang]
    assert not [p for p in out_dir.rglob(".*")]  # no temp files left behind


def test_same_arguments_give_identical_bytes(tmp_path):
    args = dict(utterances=N, seed=11, voice="en-us+f3", vary_prosody=True)
    make_corpus(tmp_path / "a", **args)
    # Disturb this process's eSpeak state: make_corpus must not depend on it.
    synthesize("Something else entirely.", voice="en+m3", rate=300, pitch=90)
    make_corpus(tmp_path / "b", **args)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == N + 1
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_vary_prosody_changes_audio_not_text(corpora, tmp_path):
    _, en_dir = corpora["en"]
    varied = make_corpus(tmp_path / "v", utterances=N, seed=7, vary_prosody=True)
    assert read_metadata(varied.out_dir) == read_metadata(en_dir)
    lengths = [
        (sf.info(en_dir / "wavs" / f"{r[0]}.wav").frames, sf.info(varied.out_dir / "wavs" / f"{r[0]}.wav").frames)
        for r in read_metadata(en_dir)
    ]
    assert sum(a != b for a, b in lengths) >= N - 1  # a new speaking rate per utterance


def test_text_file_is_cycled_and_normalized(tmp_path):
    text_file = tmp_path / "lines.txt"
    text_file.write_text("\nI have 3 cats.\n\n  Dr. Smith arrived!  \n", encoding="utf-8")
    summary = make_corpus(tmp_path / "c", utterances=3, text_file=text_file)
    rows = read_metadata(summary.out_dir)
    assert rows == [
        ["DEMO-0001", "I have 3 cats.", "i have three cats."],
        ["DEMO-0002", "Dr. Smith arrived!", "doctor smith arrived!"],
        ["DEMO-0003", "I have 3 cats.", "i have three cats."],
    ]
    assert len(list((summary.out_dir / "wavs").glob("*.wav"))) == 3


def test_rerun_replaces_corpus(tmp_path):
    make_corpus(tmp_path / "c", utterances=3, seed=1)
    summary = make_corpus(tmp_path / "c", utterances=2, seed=2)
    assert len(read_metadata(tmp_path / "c")) == 2
    assert sorted(p.stem for p in (tmp_path / "c" / "wavs").iterdir()) == ["DEMO-0001", "DEMO-0002"]
    assert read_metadata(tmp_path / "c")[0][1] == generate_sentences("en", 2, seed=2)[0]
    assert summary.count == 2


def test_interrupted_run_leaves_no_metadata(tmp_path, monkeypatch):
    import trainer.corpora.make as corpus

    make_corpus(tmp_path / "c", utterances=2, seed=1)

    def crash(jobs, wav_dir):
        raise KeyboardInterrupt

    monkeypatch.setattr(corpus, "_render_in_fresh_process", crash)
    with pytest.raises(KeyboardInterrupt):
        make_corpus(tmp_path / "c", utterances=2, seed=2)
    # The old metadata.csv would describe wavs that may now be half replaced.
    assert not (tmp_path / "c" / "metadata.csv").exists()


# --- bad input ----------------------------------------------------------------


def test_bad_inputs_raise_before_writing(tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "missing.txt"
    with pytest.raises(CorpusError, match="missing.txt"):
        make_corpus(out, text_file=missing)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(CorpusError, match="empty.txt"):
        make_corpus(out, text_file=empty)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(CorpusError, match="latin1.txt is not UTF-8"):
        make_corpus(out, text_file=latin1)
    piped = tmp_path / "piped.txt"
    piped.write_text("one\ntwo|three\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"piped.txt:2: '\|' is the metadata.csv separator"):
        make_corpus(out, text_file=piped)
    silent = tmp_path / "silent.txt"
    silent.write_text("...\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="silent.txt:1: nothing to speak"):
        make_corpus(out, text_file=silent)
    strange = tmp_path / "strange.txt"
    strange.write_text("fine\n\nDie Straße\n", encoding="utf-8")
    with pytest.raises(UnknownCharacterError, match=r"strange.txt:3: unknown character 'ß'"):
        make_corpus(out, text_file=strange)
    with pytest.raises(CorpusError, match="lang 'de' has no built-in sentences"):
        make_corpus(out, lang="de")
    with pytest.raises(CorpusError, match="unknown lang 'it'"):
        make_corpus(out, lang="it")
    with pytest.raises(CorpusError, match="utterances"):
        make_corpus(out, utterances=0)
    with pytest.raises(VoiceError, match="xx-nope"):
        make_corpus(out, voice="xx-nope")
    with pytest.raises(VoiceError, match="nosuchvariant"):
        make_corpus(out, voice="en+nosuchvariant")  # eSpeak itself would ignore it silently
    assert not out.exists()


def test_an_out_folder_that_is_a_file_is_bad_input(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("not a folder\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="cannot create the corpus folder"):
        make_corpus(taken, utterances=1)
    assert taken.read_text(encoding="utf-8") == "not a folder\n"


def test_voice_and_language_errors_are_user_errors():
    check_voice("en-us+f3")  # known: no error
    with pytest.raises(VoiceError, match="xx-nope"):
        check_voice("xx-nope")
    with pytest.raises(VoiceError, match="xx-nope"):
        synthesize("Hello.", voice="xx-nope")
    with pytest.raises(CorpusError, match="no built-in sentences in 'de'"):
        generate_sentences("de", 3)
    assert issubclass(VoiceError, UserError) and issubclass(CorpusError, UserError)


def _write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


MAKE_CORPUS_BAD_INPUT = [
    ("missing-text", lambda tmp: ["--text", str(tmp / "nowhere.txt")], "text file not found"),
    ("text-not-utf8", lambda tmp: ["--text", str(_write(tmp / "t.txt", b"caf\xe9\n"))], "is not UTF-8"),
    ("text-with-separator", lambda tmp: ["--text", str(_write(tmp / "t.txt", "a|b\n"))],
     "'|' is the metadata.csv separator"),
    ("text-without-lines", lambda tmp: ["--text", str(_write(tmp / "t.txt", "\n \n"))], "has no non-empty lines"),
    ("text-unknown-character", lambda tmp: ["--text", str(_write(tmp / "t.txt", "Snow \u2603.\n"))],
     "unknown character"),
    ("utterances-zero", lambda tmp: ["--utterances", "0"], "--utterances must be >= 1"),
    ("unknown-voice", lambda tmp: ["--voice", "xx-nope"], "unknown eSpeak voice 'xx-nope'"),
    ("unknown-variant", lambda tmp: ["--voice", "en-us+nosuchvariant"], "unknown eSpeak voice variant"),
    ("unknown-lang", lambda tmp: ["--lang", "it"], "invalid choice: 'it'"),
    ("lang-without-sentences", lambda tmp: ["--lang", "de"], "lang 'de' has no built-in sentences"),
    ("lang-without-lexicon", lambda tmp: ["--lang", "de", "--open-vocabulary"],
     "no lexicon for language 'de': known languages are en, ru"),
    ("heldout-without-open-vocabulary", lambda tmp: ["--heldout-out", str(tmp / "h")], "needs --open-vocabulary"),
    ("open-vocabulary-and-text", lambda tmp: ["--open-vocabulary", "--text", str(_write(tmp / "t.txt", "a\n"))],
     "give one"),
]


@pytest.mark.parametrize(("args", "needle"), [case[1:] for case in MAKE_CORPUS_BAD_INPUT],
                         ids=[case[0] for case in MAKE_CORPUS_BAD_INPUT])
def test_make_corpus_command_answers_bad_input_in_one_line(tmp_path, capsys, args, needle):
    out = tmp_path / "out"
    try:
        code = trainer_main(["make-corpus", "--out", str(out), "--utterances", "2", *args(tmp_path)])
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("trainer") and "error: " in lines[0], captured.err
    assert needle in lines[0] and "Traceback" not in captured.err
    assert captured.out == "" and not out.exists()


def test_make_corpus_command_writes_and_reports(tmp_path, capsys):
    code = trainer_main(["make-corpus", "--out", str(tmp_path / "c"), "--utterances", "2", "--seed", "5",
                         "--voice", SECOND_VOICES["en"]])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("wrote 2 utterances, ") and f"(voice {SECOND_VOICES['en']})" in out
    assert [r[0] for r in read_metadata(tmp_path / "c")] == ["DEMO-0001", "DEMO-0002"]


def test_corpus_files_get_ordinary_permissions(tmp_path):
    # Written through temp files, but readable like any file the user creates (0666 less the umask).
    umask = os.umask(0o022)
    os.umask(umask)
    summary = make_corpus(tmp_path / "c", utterances=1, seed=2)
    for path in [summary.metadata_path, *(summary.out_dir / "wavs").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_variants_include_the_documented_second_voices():
    variants = list_voice_variants()
    assert {"f3", "m3"} <= set(variants)


def test_flite_corpus_is_deterministic_in_layout(flite_corpus: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    make_corpus(again, lang="en", utterances=12, seed=5, engine="flite")
    assert (again / "metadata.csv").read_bytes() == (flite_corpus / "metadata.csv").read_bytes()
    for wav in sorted((flite_corpus / "wavs").glob("*.wav")):
        assert (again / "wavs" / wav.name).read_bytes() == wav.read_bytes(), wav.name
        assert sf.info(str(wav)).samplerate == 22050


def test_flite_without_the_program_is_one_line_naming_the_package(tmp_path: Path, capsys,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code = trainer_main(["make-corpus", "--engine", "flite", "--out", str(tmp_path / "c"), "--utterances", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "install the Debian/Ubuntu package 'flite'" in err
    assert not (tmp_path / "c").exists()


def test_flite_speaks_english_only(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="flite engine speaks English only"):
        make_corpus(tmp_path / "c", lang="ru", utterances=2, engine="flite")


def test_open_vocabulary_corpora_hold_out_words_training_never_says(tmp_path, capsys):
    from trainer.corpora.lexicon import load_lexicon, split_lexicon, tokenize
    from trainer.corpora.lexicon.corpus_texts import HELDOUT_FRACTION, SPLIT_SEED

    code = trainer_main(["make-corpus", "--out", str(tmp_path / "train"), "--utterances", "12", "--seed", "3",
                         "--open-vocabulary", "--heldout-out", str(tmp_path / "held"), "--heldout-utterances", "4"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out[0].startswith("wrote 12 utterances") and out[1].startswith("wrote 4 utterances")
    train_words = {w for row in read_metadata(tmp_path / "train") for w in tokenize(row[1])}
    held_rows = read_metadata(tmp_path / "held")
    held_tokens = [w for row in held_rows for w in tokenize(row[1])]
    unseen = [w for w in held_tokens if w not in train_words]
    assert out[2] == (f"held-out sentences: {len(unseen)} of {len(held_tokens)} words "
                      f"({len(unseen) / len(held_tokens):.0%}) and {len(set(unseen))} of {len(set(held_tokens))} "
                      f"distinct words ({len(set(unseen)) / len(set(held_tokens)):.0%}) never occur in the training "
                      "sentences")
    # Whatever the training corpus's size or seed: at least half of every held-out sentence's
    # words are forms of lemmas no training sentence can use.
    train_lexicon, _ = split_lexicon(load_lexicon("en"), HELDOUT_FRACTION, SPLIT_SEED)
    for row in held_rows:
        words = tokenize(row[1])
        assert sum(w not in train_lexicon.word_forms() for w in words) >= 0.5 * len(words), row[1]
