"""Demo corpus: eSpeak NG speech in LJSpeech layout, generated offline.

eSpeak NG is driven through ctypes from the library bundled with the
``espeakng-loader`` wheel (eSpeak NG 1.52, 22,050 Hz output).

Default voices: ``en`` -> ``en-us`` (eSpeak's American English, male), ``ru`` ->
``ru``. A voice may carry a variant after ``+`` (``en-us+f3``, ``en+m3``,
``ru+f2``); the variants are the files in ``espeak-ng-data/voices/!v``
(``list_voice_variants()``). ``SECOND_VOICES`` names the variant used as "another
voice" for fine-tuning demos.

Determinism: eSpeak keeps synthesis state in static variables (pitch flutter
phase and the like) that neither ``espeak_Terminate`` nor a new
``espeak_Initialize`` resets, so the same text synthesised twice in one process
gives slightly different samples. ``make_corpus`` therefore synthesises in a fresh
child process whose history is exactly the corpus being built, which makes equal
arguments give byte-identical files. ``synthesize`` runs in the calling process
and is deterministic only for an equal history of calls.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from trainer.text import LANGUAGES, clean_text, number_to_words, ru_plural, text_to_ids

__all__ = [
    "DEFAULT_VOICES",
    "SAMPLE_RATE",
    "SECOND_VOICES",
    "CorpusSummary",
    "check_voice",
    "espeak_data_path",
    "generate_sentences",
    "list_voice_variants",
    "make_corpus",
    "synthesize",
    "trim_silence",
]

SAMPLE_RATE = 22050
DEFAULT_VOICES: dict[str, str] = {"en": "en-us", "ru": "ru"}
SECOND_VOICES: dict[str, str] = {"en": "en-us+f3", "ru": "ru+f3"}
DEFAULT_RATE = 175  # words per minute, eSpeak's default
DEFAULT_PITCH = 50  # 0..99
DEFAULT_PITCH_RANGE = 50  # 0..99, intonation range

ID_PREFIX = "DEMO"

# eSpeak NG API constants (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # without it a missing data dir calls exit()
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _PITCH, _RANGE = 1, 3, 4
_EE_OK = 0


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


# ---------------------------------------------------------------------------
# eSpeak NG through ctypes

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def espeak_data_path() -> Path:
    """Return the ``espeak-ng-data`` directory bundled with ``espeakng-loader``."""
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


def list_voice_variants() -> list[str]:
    """Return the voice variant names usable after ``+`` (``f3``, ``m3``, ``klatt``...)."""
    return sorted(p.name for p in (espeak_data_path() / "voices" / "!v").iterdir() if p.is_file())


class _Espeak:
    """The process-wide eSpeak NG instance; use only while holding ``_LOCK``."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        self._lib = lib
        self._chunks: list[np.ndarray] = []
        # Kept on self: ctypes frees the trampoline when the Python object dies.
        self._callback = _SynthCallback(self._collect)

        data = str(espeak_data_path()).encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT)
        if rate != SAMPLE_RATE:
            raise RuntimeError(
                f"eSpeak NG initialisation returned {rate} (expected sample rate {SAMPLE_RATE}); "
                f"data path {data.decode()}"
            )
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), n: int, _events: int | None) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = keep synthesising

    def set_voice(self, voice: str) -> None:
        name, _, variant = voice.partition("+")
        # eSpeak silently ignores an unknown variant, so check it ourselves.
        if variant and variant not in list_voice_variants():
            raise ValueError(
                f"unknown eSpeak voice variant {variant!r} in voice {voice!r}; "
                f"see trainer.corpus.list_voice_variants()"
            )
        if not name or self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise ValueError(f"unknown eSpeak voice {voice!r}")

    def synth(self, text: str, *, voice: str, rate: int, pitch: int, pitch_range: int,
              rand_seed: int) -> np.ndarray:
        self.set_voice(voice)
        for param, name, value in ((_RATE, "rate", rate), (_PITCH, "pitch", pitch),
                                   (_RANGE, "pitch_range", pitch_range)):
            if self._lib.espeak_SetParameter(param, value, 0) != _EE_OK:
                raise ValueError(f"eSpeak rejected {name} = {value}")
        # Breathy variants (f*) add noise from eSpeak's own generator.
        self._lib.espeak_ng_SetRandSeed(rand_seed)
        self._chunks = []
        data = text.encode("utf-8") + b"\0"
        status = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                        None, None)
        chunks, self._chunks = self._chunks, []
        if status != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r}")
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


_LOCK = threading.Lock()
_ENGINE: _Espeak | None = None


def _engine() -> _Espeak:
    """Return the process-wide engine, initialising it on first use; hold ``_LOCK``."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Espeak()
    return _ENGINE


def synthesize(text: str, *, voice: str = "en-us", rate: int = DEFAULT_RATE,
               pitch: int = DEFAULT_PITCH, pitch_range: int = DEFAULT_PITCH_RANGE,
               rand_seed: int = 0) -> np.ndarray:
    """Return eSpeak NG speech for ``text`` as int16 mono samples at 22,050 Hz,
    untrimmed. ``rate`` is in words per minute (80..450), ``pitch`` and
    ``pitch_range`` in 0..99.

    Runs in this process (eSpeak is initialised once, calls are serialised);
    raises ``ValueError`` for an unknown voice or variant.
    """
    with _LOCK:
        return _engine().synth(text, voice=voice, rate=rate, pitch=pitch,
                               pitch_range=pitch_range, rand_seed=rand_seed)


def check_voice(voice: str) -> None:
    """Return nothing if eSpeak NG knows ``voice`` (with its ``+variant``, if any);
    raise ``ValueError`` naming it otherwise."""
    with _LOCK:
        _engine().set_voice(voice)


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


# ---------------------------------------------------------------------------
# Sentence generator

_EN = {
    "subj": ["Anna", "Peter", "the old man", "my sister", "our teacher", "the captain",
             "a young girl", "the doctor", "his brother", "the farmer", "Mary", "John",
             "the driver", "her friend", "the baker", "a tall stranger"],
    "obj": ["a letter", "the red box", "an old map", "the heavy book", "a small key",
            "the blue car", "a warm coat", "the broken clock", "a silver ring",
            "the wooden chair", "a strange photo", "the last ticket", "a green bottle"],
    "verb": [("found", "find"), ("saw", "see"), ("opened", "open"), ("carried", "carry"),
             ("painted", "paint"), ("lost", "lose"), ("bought", "buy"), ("sold", "sell"),
             ("brought", "bring"), ("cleaned", "clean"), ("hid", "hide"), ("took", "take")],
    "intr": ["waited", "slept", "sang", "walked", "stayed", "worked", "danced", "laughed",
             "rested", "listened"],
    "place": ["near the river", "in the kitchen", "at the station", "behind the old house",
              "under the bridge", "in the garden", "on the hill", "at school",
              "by the window", "in a quiet village"],
    "time": ["yesterday", "this morning", "last week", "on Monday", "in the evening",
             "after dinner", "before sunrise", "in the spring"],
    "plural": ["apples", "books", "letters", "coins", "birds", "chairs", "boats", "stones",
               "cups", "candles"],
    "adj": ["cold", "quiet", "bright", "long", "strange", "busy", "lovely", "dark"],
    "interj": ["Look", "Listen", "Wait", "Oh no", "Well", "Hurry"],
    "said": ["said", "whispered", "shouted", "asked", "replied"],
}

_EN_TEMPLATES = [
    "{Subj} {verb} {obj} {place}.",
    "{Subj} {verb} {obj}.",
    "Did {subj} {verb_base} {obj} {time}?",
    "{Time}, {subj} {verb} {num} {plural}.",
    "{Interj}! {Subj} {verb} {obj}!",
    "{Subj} said that {subj2} {verb} {obj} {place}.",
    "Why did {subj} {verb_base} {obj}?",
    "There were {num_small} {plural} {place}, and {subj} {verb} {obj}.",
    "{Subj}, who {verb} {obj}, {intr} {place}.",
    "It was a {adj} day; {subj} {intr} {place}.",
    "\"Where is {obj}?\" {subj} {said}.",
    "{Subj} {intr} {place} until {hour} o'clock.",
    "Is it true that {subj} {verb} {num} {plural}?",
    "{Subj} {intr} {time}.",
]

# Russian past tense agrees with the subject's gender, hence (masculine, feminine) pairs.
_RU = {
    "subj": [("Анна", "f"), ("Пётр", "m"), ("мой брат", "m"), ("моя сестра", "f"),
             ("старый учитель", "m"), ("молодая девушка", "f"), ("врач", "m"),
             ("бабушка", "f"), ("капитан", "m"), ("соседка", "f"), ("Иван", "m"),
             ("Мария", "f")],
    "obj": ["старую карту", "большую книгу", "письмо", "маленький ключ", "красную коробку",
            "новый телефон", "тёплое одеяло", "синюю чашку", "серебряное кольцо",
            "деревянный стул", "последний билет"],
    "verb": [("нашёл", "нашла"), ("увидел", "увидела"), ("купил", "купила"),
             ("принёс", "принесла"), ("потерял", "потеряла"), ("продал", "продала"),
             ("взял", "взяла"), ("спрятал", "спрятала"), ("открыл", "открыла")],
    "intr": [("ждал", "ждала"), ("спал", "спала"), ("пел", "пела"), ("гулял", "гуляла"),
             ("работал", "работала"), ("отдыхал", "отдыхала"), ("смеялся", "смеялась")],
    "place": ["у реки", "на кухне", "на вокзале", "за старым домом", "под мостом", "в саду",
              "на холме", "в школе", "у окна", "в тихой деревне"],
    "time": ["вчера", "сегодня утром", "на прошлой неделе", "в понедельник", "вечером",
             "после обеда", "весной"],
    # masculine inanimate nouns: accusative = nominative, so "купил два стола" agrees
    "counted": [("стол", "стола", "столов"), ("дом", "дома", "домов"),
                ("камень", "камня", "камней"), ("стул", "стула", "стульев"),
                ("карандаш", "карандаша", "карандашей"), ("мяч", "мяча", "мячей"),
                ("цветок", "цветка", "цветков"), ("гриб", "гриба", "грибов")],
    "interj": ["Смотри", "Слушай", "Подожди", "Ой", "Быстрее"],
    "obj_nom": ["мой ключ", "эта книга", "старая карта", "письмо", "твой телефон",
                "синяя чашка"],
}

_RU_TEMPLATES = [
    "{Subj} {verb} {obj} {place}.",
    "{Subj} {verb} {obj}.",
    "Почему {subj} {verb} {obj}?",
    "{Time} {subj} {verb} {num_counted}.",
    "{Interj}! {Subj} {verb} {obj}!",
    "{Subj} {said}, что {subj2} {verb2} {obj} {place}.",
    "Где {subj} {intr} {time}?",
    "{Subj}, который долго {intr}, {verb} {obj}.",
    "Было холодно; {subj} {intr} {place}.",
    "\"Где {obj_nom}?\" - спросил {subj_m}.",
    "{Subj} {intr} {place} до {hour_gen} часов.",
    "{Subj} {intr} {time}.",
    "{Time} {subj} {verb} {obj}, а потом долго {intr} {place}.",
]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _en_sentence(rng: random.Random) -> str:
    w = _EN
    subj, subj2 = rng.sample(w["subj"], 2)
    verb, verb_base = rng.choice(w["verb"])
    time = rng.choice(w["time"])
    # Mostly small counts, like speech; some large ones exercise the number words.
    n = rng.choice([rng.randint(2, 20), rng.randint(21, 99), rng.randint(100, 999),
                    rng.randint(1000, 99999)])
    fields = {
        "subj": subj, "Subj": _cap(subj), "subj2": subj2, "verb": verb, "verb_base": verb_base,
        "obj": rng.choice(w["obj"]), "intr": rng.choice(w["intr"]),
        "place": rng.choice(w["place"]), "time": time, "Time": _cap(time),
        "num": number_to_words(n, "en"),
        "num_small": number_to_words(rng.randint(2, 99), "en"), "plural": rng.choice(w["plural"]),
        "adj": rng.choice(w["adj"]), "Interj": rng.choice(w["interj"]),
        "said": rng.choice(w["said"]), "hour": number_to_words(rng.randint(1, 12), "en"),
    }
    return rng.choice(_EN_TEMPLATES).format(**fields)


def _ru_sentence(rng: random.Random) -> str:
    w = _RU
    (subj, g), (subj2, g2) = rng.sample(w["subj"], 2)
    fem, fem2 = g == "f", g2 == "f"
    subj_m = rng.choice([s for s, gender in w["subj"] if gender == "m"])
    verb = rng.choice(w["verb"])
    time = rng.choice(w["time"])
    n = rng.choice([rng.randint(1, 20), rng.randint(21, 99), rng.randint(100, 999)])
    counted = rng.choice(w["counted"])
    obj = rng.choice(w["obj"])
    hour = rng.randint(5, 11)  # "до пяти".."до одиннадцати": genitive needs its own forms
    hour_gen = ["пяти", "шести", "семи", "восьми", "девяти", "десяти", "одиннадцати"][hour - 5]
    fields = {
        "subj": subj, "Subj": _cap(subj), "subj2": subj2, "subj_m": subj_m,
        "verb": verb[fem], "verb2": rng.choice(w["verb"])[fem2], "obj": obj,
        "obj_nom": rng.choice(w["obj_nom"]), "said": ("сказал", "сказала")[fem],
        "intr": rng.choice(w["intr"])[fem], "place": rng.choice(w["place"]),
        "time": time, "Time": _cap(time), "Interj": rng.choice(w["interj"]),
        "num_counted": f"{number_to_words(n, 'ru')} {ru_plural(n, *counted)}",
        "hour_gen": hour_gen,
    }
    template = rng.choice(_RU_TEMPLATES)
    if fem and "который" in template:
        template = template.replace("который", "которая")
    return template.format(**fields)


def generate_sentences(lang: str, count: int, seed: int = 0) -> list[str]:
    """Return ``count`` demo sentences in ``lang`` ("en" or "ru"), the same for the
    same seed. Numbers are written as words; sentences run from 1 to about 14
    words, with commas, questions and exclamations.
    """
    if lang not in LANGUAGES:
        raise ValueError(f"unknown lang {lang!r}: expected one of {', '.join(LANGUAGES)}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = random.Random(seed)
    make = _en_sentence if lang == "en" else _ru_sentence
    return [make(rng) for _ in range(count)]


# ---------------------------------------------------------------------------
# Corpus writer


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _atomic_write_wav(path: Path, audio: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


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
        _atomic_write_wav(wav_dir / f"{job['id']}.wav", audio)
        seconds.append(audio.size / SAMPLE_RATE)
    return seconds


_WORKER_RESULT = "CORPUS-WORKER-RESULT "


def _worker_main() -> None:
    """Child-process entry: read a request from stdin, render it, report on stdout."""
    request = json.load(sys.stdin)
    try:
        seconds = _render(request["jobs"], Path(request["wav_dir"]))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    print(_WORKER_RESULT + json.dumps(seconds), flush=True)


def _render_in_fresh_process(jobs: list[dict], wav_dir: Path) -> list[float]:
    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", "from trainer.corpus import _worker_main; _worker_main()"],
        input=json.dumps({"jobs": jobs, "wav_dir": str(wav_dir)}),
        capture_output=True, text=True, env=env, check=False,
    )
    err = proc.stderr.strip().splitlines()
    if proc.returncode == 2:
        raise ValueError(err[-1] if err else "corpus worker rejected its input")
    for line in proc.stdout.splitlines():
        if line.startswith(_WORKER_RESULT):
            return json.loads(line[len(_WORKER_RESULT):])
    raise RuntimeError(
        f"corpus worker failed (exit {proc.returncode}): " + "\n".join(err[-20:])
    )


def _read_text_file(text_file: Path) -> list[tuple[int, str]]:
    """Return the non-empty lines of ``text_file`` with their 1-based line numbers."""
    if not text_file.is_file():
        raise ValueError(f"text file not found: {text_file}")
    try:
        raw = text_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"text file {text_file} is not UTF-8: {exc}") from None
    lines = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if "|" in line:
            raise ValueError(f"{text_file}:{lineno}: '|' is the metadata.csv separator")
        lines.append((lineno, line))
    if not lines:
        raise ValueError(f"text file {text_file} has no non-empty lines")
    return lines


def _prosody(seed: int, count: int, vary: bool) -> list[tuple[int, int, int]]:
    if not vary:
        return [(DEFAULT_RATE, DEFAULT_PITCH, DEFAULT_PITCH_RANGE)] * count
    # A stream separate from the sentences', so prosody does not change the text.
    rng = random.Random(f"prosody:{seed}")
    return [(rng.randint(150, 200), rng.randint(35, 65), rng.randint(30, 80))
            for _ in range(count)]


def make_corpus(out_dir: Path, *, lang: str = "en", utterances: int = 100, seed: int = 0,
                text_file: Path | None = None, voice: str | None = None,
                vary_prosody: bool = False) -> CorpusSummary:
    """Write an eSpeak NG corpus in LJSpeech layout and return its summary.

    ``out_dir/wavs/DEMO-0001.wav`` ... are 22,050 Hz mono PCM_16 with leading and
    trailing silence trimmed (50 ms kept); ``out_dir/metadata.csv`` holds
    ``id|text|normalized text`` and is written last, so an interrupted run leaves
    no metadata. Sentences come from ``generate_sentences(lang, utterances,
    seed)``, or from ``text_file`` (one per non-empty line, cycled or truncated to
    ``utterances``). eSpeak speaks the normalised text, so audio and transcript
    agree. ``voice`` defaults to ``DEFAULT_VOICES[lang]``; ``vary_prosody`` varies
    rate, pitch and intonation range per utterance, deterministically from
    ``seed``. Equal arguments give byte-identical files.

    Raises ``ValueError`` for an unknown lang or voice, a bad ``utterances``, or a
    missing, empty or unencodable text file.
    """
    if lang not in LANGUAGES:
        raise ValueError(f"unknown lang {lang!r}: expected one of {', '.join(LANGUAGES)}")
    if utterances < 1:
        raise ValueError(f"utterances must be >= 1, got {utterances}")
    voice = voice or DEFAULT_VOICES[lang]
    check_voice(voice)
    width = max(4, len(str(utterances)))
    ids = [f"{ID_PREFIX}-{i:0{width}d}" for i in range(1, utterances + 1)]
    if text_file is not None:
        numbered = _read_text_file(Path(text_file))
        picked = [numbered[i % len(numbered)] for i in range(utterances)]
        sentences = [line for _, line in picked]
        origins = [f"{text_file}:{lineno}" for lineno, _ in picked]  # errors name the line
    else:
        sentences = generate_sentences(lang, utterances, seed)
        origins = ids
    normalized = [clean_text(s, lang) for s in sentences]
    for where, raw, norm in zip(origins, sentences, normalized):
        text_to_ids(norm, lang=lang, utterance_id=where)  # fail before writing anything
        if not norm.strip(" !'\"(),-.:;?"):
            raise ValueError(f"{where}: nothing to speak in {raw!r}")

    out_dir = Path(out_dir)
    wav_dir = out_dir / "wavs"
    wav_dir.mkdir(parents=True, exist_ok=True)
    metadata = out_dir / "metadata.csv"
    # A metadata.csv from an earlier run would make a half-written corpus look complete.
    metadata.unlink(missing_ok=True)

    jobs = [
        {"id": uid, "text": norm, "voice": voice, "rate": rate, "pitch": pitch,
         "range": prange, "rand_seed": (seed * 1_000_003 + k) % 2**31}
        for k, (uid, norm, (rate, pitch, prange))
        in enumerate(zip(ids, normalized, _prosody(seed, utterances, vary_prosody)))
    ]
    seconds = _render_in_fresh_process(jobs, wav_dir)

    keep = {f"{uid}.wav" for uid in ids}
    for stale in wav_dir.glob(f"{ID_PREFIX}-*.wav"):
        if stale.name not in keep:
            stale.unlink()
    rows = "".join(f"{uid}|{raw}|{norm}\n" for uid, raw, norm in zip(ids, sentences, normalized))
    _atomic_write_bytes(metadata, rows.encode("utf-8"))
    return CorpusSummary(out_dir=out_dir, count=utterances,
                         total_seconds=float(sum(seconds)), lang=lang, voice=voice)
