"""eSpeak NG demo corpus: real audio, LJSpeech layout, deterministic output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from trainer.corpus import (
    DEFAULT_VOICES,
    SAMPLE_RATE,
    CorpusSummary,
    generate_sentences,
    list_voice_variants,
    make_corpus,
    synthesize,
    trim_silence,
)
from trainer.text import UnknownCharacterError, clean_text, text_to_ids

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
    for i, e in zip(starts, energy):
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
    import trainer.corpus as corpus

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
    with pytest.raises(ValueError, match="missing.txt"):
        make_corpus(out, text_file=missing)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt"):
        make_corpus(out, text_file=empty)
    strange = tmp_path / "strange.txt"
    strange.write_text("fine\n\nDie Straße\n", encoding="utf-8")
    with pytest.raises(UnknownCharacterError, match=r"strange.txt:3: unknown character 'ß'"):
        make_corpus(out, text_file=strange)
    with pytest.raises(ValueError, match="lang 'de'"):
        make_corpus(out, lang="de")
    with pytest.raises(ValueError, match="utterances"):
        make_corpus(out, utterances=0)
    with pytest.raises(ValueError, match="xx-nope"):
        make_corpus(out, voice="xx-nope")
    with pytest.raises(ValueError, match="nosuchvariant"):
        make_corpus(out, voice="en+nosuchvariant")  # eSpeak itself would ignore it silently
    assert not out.exists()


def test_variants_include_the_documented_second_voices():
    variants = list_voice_variants()
    assert {"f3", "m3"} <= set(variants)
