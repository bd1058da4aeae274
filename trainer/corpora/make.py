"""Demo corpus: eSpeak NG speech in LJSpeech layout, generated offline.

``make_corpus`` writes ``wavs/DEMO-0001.wav``... and ``metadata.csv`` from the sentence
generator (``trainer.corpora.sentences``) or a text file, spoken by eSpeak NG (``trainer.text.espeak``).

Default voices: ``en`` -> ``en-us`` (eSpeak's American English, male), ``ru`` -> ``ru``.
``SECOND_VOICES`` names the variant used as "another voice" for fine-tuning demos.

Determinism: eSpeak keeps synthesis state that no call resets (``trainer.text.espeak``), so
``make_corpus`` synthesises in a fresh child process whose history is exactly the corpus
being built; equal arguments give byte-identical files.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from trainer.audio.format import SAMPLE_RATE
from trainer.corpora import flite
from trainer.corpora.sentences import SENTENCE_LANGUAGES, generate_sentences
from trainer.errors import CorpusError, UserError
from trainer.fileio import atomic_write_bytes
from trainer.text.cleaners import clean_text
from trainer.text.encode import known_characters
from trainer.text.espeak import (
    DEFAULT_PITCH,
    DEFAULT_PITCH_RANGE,
    DEFAULT_RATE,
    check_voice,
    espeak_data_path,
    list_voice_variants,
    synthesize,
)
from trainer.text.symbols import LANGUAGES

__all__ = [
    "DEFAULT_VOICES",
    "SECOND_VOICES",
    "CorpusSummary",
    "make_corpus",
    "trim_silence",
    # Re-exported: the corpus's synthesis and sentences were once defined here.
    "check_voice",
    "espeak_data_path",
    "generate_sentences",
    "list_voice_variants",
    "synthesize",
]

DEFAULT_VOICES: dict[str, str] = {"en": "en-us", "ru": "ru", "de": "de", "es": "es", "fr": "fr"}
SECOND_VOICES: dict[str, str] = {"en": "en-us+f3", "ru": "ru+f3"}

ID_PREFIX = "DEMO"


@dataclass(frozen=True)
class CorpusSummary:
    """What ``make_corpus`` wrote."""

    out_dir: Path
    count: int
    total_seconds: float
    lang: str
    voice: str

    @property
    def metadata_path(self) -> Path:
        """Return the path of ``metadata.csv``."""
        return self.out_dir / "metadata.csv"

    def __str__(self) -> str:
        return (f"{self.count} utterances, {self.total_seconds:.1f} s of {self.lang} speech "
                f"(voice {self.voice}) in {self.out_dir}")


def trim_silence(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, *,
                 threshold_db: float = -40.0, margin_s: float = 0.05,
                 frame_s: float = 0.01) -> np.ndarray:
    """Return ``audio`` without leading and trailing silence, keeping ``margin_s``
    on each side.

    Silence is a frame whose RMS is more than ``-threshold_db`` dB below the
    loudest frame; relative, so it does not depend on the voice's level. An
    all-zero input comes back empty.
    """
    if audio.size == 0:
        return audio
    frame = max(1, round(frame_s * sample_rate))
    n_frames = -(-audio.size // frame)
    padded = np.zeros(n_frames * frame, dtype=np.float64)
    padded[: audio.size] = audio
    rms = np.sqrt(np.mean(padded.reshape(n_frames, frame) ** 2, axis=1))
    peak = rms.max()
    if peak == 0:
        return audio[:0]
    loud = np.flatnonzero(rms > peak * 10 ** (threshold_db / 20))
    margin = round(margin_s * sample_rate)
    start = max(0, int(loud[0]) * frame - margin)
    end = min(audio.size, (int(loud[-1]) + 1) * frame + margin)
    return audio[start:end]


def _write_wav(path: Path, audio: np.ndarray) -> None:
    """Write int16 ``audio`` as a 16-bit PCM mono wav at SAMPLE_RATE, atomically."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    atomic_write_bytes(path, buffer.getvalue())


def _render(jobs: list[dict], wav_dir: Path) -> list[float]:
    """Synthesise, trim and write each job's wav; return the durations in seconds."""
    seconds = []
    for job in jobs:
        audio = synthesize(job["text"], voice=job["voice"], rate=job["rate"],
                           pitch=job["pitch"], pitch_range=job["range"],
                           rand_seed=job["rand_seed"])
        audio = trim_silence(audio)
        if audio.size == 0:
            raise RuntimeError(f"utterance {job['id']}: eSpeak produced only silence")
        _write_wav(wav_dir / f"{job['id']}.wav", audio)
        seconds.append(audio.size / SAMPLE_RATE)
    return seconds


# The child runs this module's _worker_main; the module is named here, not taken from
# __name__, which is "__main__" when this file is run as a script.
_WORKER_COMMAND = "from trainer.corpora.make import _worker_main; _worker_main()"
_WORKER_RESULT = "CORPUS-WORKER-RESULT "
_EXIT_BAD_INPUT = 2


def _worker_main() -> None:
    """Child-process entry: read a request from stdin, render it, report on stdout."""
    request = json.load(sys.stdin)
    try:
        seconds = _render(request["jobs"], Path(request["wav_dir"]))
    except UserError as exc:
        print(exc, file=sys.stderr)
        sys.exit(_EXIT_BAD_INPUT)
    print(_WORKER_RESULT + json.dumps(seconds), flush=True)


def _render_in_fresh_process(jobs: list[dict], wav_dir: Path) -> list[float]:
    """Render ``jobs`` in a new Python process (see the module docstring); return the durations."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER_COMMAND],
        input=json.dumps({"jobs": jobs, "wav_dir": str(wav_dir)}),
        capture_output=True, text=True, env=env, check=False,
    )
    err = proc.stderr.strip().splitlines()
    if proc.returncode == _EXIT_BAD_INPUT:
        raise CorpusError(err[-1] if err else "corpus worker rejected its input")
    for line in proc.stdout.splitlines():
        if line.startswith(_WORKER_RESULT):
            return json.loads(line[len(_WORKER_RESULT):])
    raise RuntimeError(
        f"corpus worker failed (exit {proc.returncode}): " + "\n".join(err[-20:])
    )


def _read_text_file(text_file: Path) -> list[tuple[int, str]]:
    """Return the non-empty lines of ``text_file`` with their 1-based line numbers."""
    if not text_file.is_file():
        raise CorpusError(f"text file not found: {text_file}")
    try:
        raw = text_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"text file {text_file} is not UTF-8: {exc}") from None
    except OSError as exc:
        raise CorpusError(f"text file {text_file}: cannot read ({exc.strerror})") from None
    lines = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if "|" in line:
            raise CorpusError(f"{text_file}:{lineno}: '|' is the metadata.csv separator")
        lines.append((lineno, line))
    if not lines:
        raise CorpusError(f"text file {text_file} has no non-empty lines")
    return lines


def _prosody(seed: int, count: int, vary: bool) -> list[tuple[int, int, int]]:
    if not vary:
        return [(DEFAULT_RATE, DEFAULT_PITCH, DEFAULT_PITCH_RANGE)] * count
    # A stream separate from the sentences', so prosody does not change the text.
    rng = random.Random(f"prosody:{seed}")
    return [(rng.randint(150, 200), rng.randint(35, 65), rng.randint(30, 80))
            for _ in range(count)]


ENGINES = ("espeak", "flite")
FLITE_VOICE = "rms"  # flite's default here: the voice the recogniser hears best (WER 0.09 on its own audio)


def _render_flite(jobs: list[dict], wav_dir: Path) -> list[float]:
    """Synthesise, trim and write each job's wav with flite (in this process: flite keeps no state)."""
    seconds = []
    for job in jobs:
        audio = trim_silence(flite.synthesize(job["text"], voice=job["voice"], stretch=job["stretch"]))
        if audio.size == 0:
            raise RuntimeError(f"utterance {job['id']}: flite produced only silence")
        _write_wav(wav_dir / f"{job['id']}.wav", audio)
        seconds.append(audio.size / SAMPLE_RATE)
    return seconds


def _stretches(seed: int, count: int, vary: bool) -> list[float]:
    """Return flite's duration stretch per utterance: 1, or 0.9..1.15 drawn from ``seed`` when varied."""
    if not vary:
        return [1.0] * count
    rng = random.Random(f"flite-prosody:{seed}")
    return [round(rng.uniform(0.9, 1.15), 3) for _ in range(count)]


def make_corpus(out_dir: Path, *, lang: str = "en", utterances: int = 100, seed: int = 0,
                text_file: Path | None = None, voice: str | None = None,
                vary_prosody: bool = False, engine: str = "espeak",
                texts: Sequence[str] | None = None) -> CorpusSummary:
    """Write a synthetic corpus in LJSpeech layout and return its summary.

    ``engine`` is "espeak" (eSpeak NG, bundled; English and Russian) or "flite" (English
    only; the Debian/Ubuntu package ``flite``, whose voices ``rms``, ``kal16``, ``awb``
    and ``slt`` an English recogniser understands: see ``trainer.evaluation.asr``). With flite,
    ``vary_prosody`` varies the speaking rate only.

    ``out_dir/wavs/DEMO-0001.wav`` ... are 22,050 Hz mono PCM_16 with leading and
    trailing silence trimmed (50 ms kept); ``out_dir/metadata.csv`` holds
    ``id|text|normalized text`` and is written last, so an interrupted run leaves
    no metadata. Sentences come from ``generate_sentences(lang, utterances,
    seed)``, from ``text_file`` (one per non-empty line, cycled or truncated to
    ``utterances``), or from ``texts`` (the same; e.g. ``open_vocabulary_texts``). The
    engine speaks the normalised text, so audio and transcript agree. ``voice`` defaults to
    ``DEFAULT_VOICES[lang]``; ``vary_prosody`` varies rate, pitch and intonation range per
    utterance, deterministically from ``seed``. Equal arguments give byte-identical files.

    Bad input raises a ``trainer.errors.UserError`` before anything is written:
    ``CorpusError`` for an unknown lang, a bad ``utterances``, a missing, unreadable
    or empty text file or a line with nothing to speak; ``VoiceError`` for an unknown
    voice; ``UnknownCharacterError`` for a character outside the symbol set.
    """
    if text_file is not None and texts is not None:
        raise CorpusError("give sentences once: a text file or a list of texts, not both")
    voice = _checked_voice(lang, utterances, text_file is not None or texts is not None, engine, voice)
    width = max(4, len(str(utterances)))
    ids = [f"{ID_PREFIX}-{i:0{width}d}" for i in range(1, utterances + 1)]
    if texts is not None:
        if not texts:
            raise CorpusError("no sentences to speak: the list of texts is empty")
        given = list(enumerate(texts, start=1))
        sentences, normalized = _checked_lines(lang, [given[i % len(given)] for i in range(utterances)], "text")
    else:
        sentences, normalized = _checked_sentences(lang, utterances, seed, text_file, ids)
    out_dir = Path(out_dir)
    wav_dir = out_dir / "wavs"
    try:
        wav_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CorpusError(f"{out_dir}: cannot create the corpus folder ({exc.strerror})") from None
    metadata = out_dir / "metadata.csv"
    # A metadata.csv from an earlier run would make a half-written corpus look complete.
    metadata.unlink(missing_ok=True)
    seconds = _speak(engine, ids, normalized, voice, seed, vary_prosody, wav_dir)
    keep = {f"{uid}.wav" for uid in ids}
    for stale in wav_dir.glob(f"{ID_PREFIX}-*.wav"):
        if stale.name not in keep:
            stale.unlink()
    rows = "".join(f"{uid}|{raw}|{norm}\n" for uid, raw, norm in zip(ids, sentences, normalized, strict=True))
    atomic_write_bytes(metadata, rows.encode("utf-8"))
    return CorpusSummary(out_dir=out_dir, count=utterances,
                         total_seconds=float(sum(seconds)), lang=lang, voice=voice)


def _checked_voice(lang: str, utterances: int, own_text: bool, engine: str, voice: str | None) -> str:
    """Return the voice to speak with (the engine's default when None); CorpusError or VoiceError for bad input."""
    if lang not in LANGUAGES:
        raise CorpusError(f"unknown lang {lang!r}: expected one of {', '.join(LANGUAGES)}")
    if utterances < 1:
        raise CorpusError(f"utterances must be >= 1, got {utterances}")
    if not own_text and lang not in SENTENCE_LANGUAGES:
        raise CorpusError(f"lang {lang!r} has no built-in sentences ({', '.join(SENTENCE_LANGUAGES)} have): "
                          "give a text file, one sentence a line")
    if engine not in ENGINES:
        raise CorpusError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if engine == "flite":
        if lang != "en":
            raise CorpusError(f"the flite engine speaks English only, not {lang!r}")
        voice = voice or FLITE_VOICE
        flite.check_voice(voice)  # FliteMissingError when the program is not installed
    else:
        voice = voice or DEFAULT_VOICES[lang]
        check_voice(voice)
    return voice


def _checked_sentences(lang: str, utterances: int, seed: int, text_file: Path | None,
                       ids: list[str]) -> tuple[list[str], list[str]]:
    """Return (sentences as given, normalised sentences), one per id; raise before anything is written.

    From ``text_file`` (cycled or truncated; an error names its line) or the generator.
    """
    if text_file is not None:
        numbered = _read_text_file(Path(text_file))
        return _checked_lines(lang, [numbered[i % len(numbered)] for i in range(utterances)], str(text_file))
    sentences = generate_sentences(lang, utterances, seed)
    return _checked(lang, sentences, ids)


def _checked_lines(lang: str, picked: list[tuple[int, str]], source: str) -> tuple[list[str], list[str]]:
    """Return (sentences, normalised ones) of numbered lines; an error names ``source:line``."""
    return _checked(lang, [line for _, line in picked], [f"{source}:{lineno}" for lineno, _ in picked])


def _checked(lang: str, sentences: list[str], origins: list[str]) -> tuple[list[str], list[str]]:
    """Return (sentences, normalised ones) once each is speakable; CorpusError naming ``origins`` otherwise."""
    normalized = [clean_text(s, lang) for s in sentences]
    for where, raw, norm in zip(origins, sentences, normalized, strict=True):
        known_characters(norm, lang=lang, utterance_id=where)  # fail before writing anything
        if not norm.strip(" !'\"(),-.:;?"):
            raise CorpusError(f"{where}: nothing to speak in {raw!r}")
    return sentences, normalized


def _speak(engine: str, ids: list[str], normalized: list[str], voice: str, seed: int, vary_prosody: bool,
           wav_dir: Path) -> list[float]:
    """Synthesise each utterance into ``wav_dir/ID.wav`` with ``engine``; return the clips' seconds."""
    count = len(ids)
    jobs = [
        {"id": uid, "text": norm, "voice": voice, "rate": rate, "pitch": pitch,
         "range": prange, "rand_seed": (seed * 1_000_003 + k) % 2**31}
        for k, (uid, norm, (rate, pitch, prange))
        in enumerate(zip(ids, normalized, _prosody(seed, count, vary_prosody), strict=True))
    ]
    if engine == "flite":
        stretches = _stretches(seed, count, vary_prosody)
        return _render_flite([{**job, "stretch": stretch} for job, stretch in zip(jobs, stretches, strict=True)],
                             wav_dir)
    return _render_in_fresh_process(jobs, wav_dir)
