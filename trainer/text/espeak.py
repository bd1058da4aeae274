"""eSpeak NG speech synthesis through ctypes, from the library bundled with ``espeakng-loader``.

The wheel ships eSpeak NG 1.52 and its data; it speaks at 22,050 Hz, the pipeline's own
rate (``trainer.audio.mel.SAMPLE_RATE``), so its samples are used as they come.

A voice may carry a variant after ``+`` (``en-us+f3``, ``en+m3``, ``ru+f2``); the variants
are the files in ``espeak-ng-data/voices/!v`` (``list_voice_variants()``).

Determinism: eSpeak keeps synthesis state in static variables (pitch flutter phase and the
like) that neither ``espeak_Terminate`` nor a new ``espeak_Initialize`` resets, so the same
text synthesised twice in one process gives slightly different samples. ``synthesize`` is
deterministic only for an equal history of calls in the process; ``trainer.corpora.make`` builds
a corpus in a fresh child process for that reason.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import numpy as np

from trainer.audio.format import SAMPLE_RATE
from trainer.errors import VoiceError

__all__ = [
    "DEFAULT_PITCH",
    "DEFAULT_PITCH_RANGE",
    "DEFAULT_RATE",
    "check_voice",
    "espeak_data_path",
    "list_voice_variants",
    "synthesize",
    "text_to_phonemes",
]

DEFAULT_RATE = 175  # words per minute, eSpeak's default
DEFAULT_PITCH = 50  # 0..99
DEFAULT_PITCH_RANGE = 50  # 0..99, intonation range

# eSpeak NG API constants (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # without it a missing data dir calls exit()
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _PITCH, _RANGE = 1, 3, 4
_EE_OK = 0
_PHONEMES_IPA = 0x02  # espeak_TextToPhonemes' phonememode: IPA as UTF-8, no separator

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
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
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

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], n: int, _events: int | None) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = keep synthesising

    def set_voice(self, voice: str) -> None:
        name, _, variant = voice.partition("+")
        # eSpeak silently ignores an unknown variant, so check it ourselves.
        if variant and variant not in list_voice_variants():
            raise VoiceError(
                f"unknown eSpeak voice variant {variant!r} in voice {voice!r}; "
                f"see trainer.text.espeak.list_voice_variants()"
            )
        if not name or self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise VoiceError(f"unknown eSpeak voice {voice!r}")

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


    def phonemes(self, text: str, *, voice: str) -> str:
        """Return the IPA of ``text``, clause after clause (eSpeak returns one per call), space-joined."""
        self.set_voice(voice)
        buffer = ctypes.create_string_buffer(text.encode("utf-8") + b"\0")
        pointer = ctypes.c_void_p(ctypes.addressof(buffer))
        clauses = []
        while pointer.value:  # eSpeak advances the pointer, and sets it to NULL after the last clause
            result = self._lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _PHONEMES_IPA)
            if result:
                clauses.append(result.decode("utf-8"))
        return " ".join(c.strip() for c in clauses if c.strip())


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

    Runs in this process (eSpeak is initialised once, calls are serialised); raises
    ``trainer.errors.VoiceError`` for an unknown voice or variant, and ``ValueError``
    for a rate or pitch eSpeak rejects.
    """
    with _LOCK:
        return _engine().synth(text, voice=voice, rate=rate, pitch=pitch,
                               pitch_range=pitch_range, rand_seed=rand_seed)


def text_to_phonemes(text: str, voice: str = "en-us") -> str:
    """Return eSpeak NG's IPA (stress marks included) for ``text`` read by ``voice``.

    eSpeak drops punctuation; ``trainer.text.encode.phonemize`` keeps it by phonemising phrase by
    phrase. Deterministic: phonemisation keeps none of synthesis's state.
    """
    with _LOCK:
        return _engine().phonemes(text, voice=voice)


def check_voice(voice: str) -> None:
    """Return nothing if eSpeak NG knows ``voice`` (with its ``+variant``, if any);
    raise ``trainer.errors.VoiceError`` naming it otherwise."""
    with _LOCK:
        _engine().set_voice(voice)
