"""Flite speech synthesis through its command-line program (Debian/Ubuntu package ``flite``).

Flite's voices (rms, kal16, awb, slt: diphone and clustergen voices of CMU) are clear
enough for an offline English recogniser to transcribe them well, which eSpeak NG's are
not, so English intelligibility (``trainer.evaluation.asr``) is measured on flite corpora. Each call
runs the program afresh: it keeps no state between utterances, and equal arguments give
byte-identical audio. Flite speaks at 16 kHz (8 kHz for ``kal``); the audio is resampled
to the pipeline's 22,050 Hz.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from trainer.audio.format import SAMPLE_RATE
from trainer.errors import UserError, VoiceError

__all__ = ["FliteMissingError", "flite_program", "list_voices", "synthesize", "check_voice"]

PACKAGE = "flite"  # the Debian/Ubuntu package that installs the program


class FliteMissingError(UserError):
    """The flite program is not installed; the message names the package."""


def flite_program() -> str:
    """Return the path of the ``flite`` program; FliteMissingError (one line naming the package) without it."""
    found = shutil.which("flite")
    if found is None:
        raise FliteMissingError(f"the flite engine needs the '{PACKAGE}' program: install the Debian/Ubuntu "
                                f"package '{PACKAGE}' (apt install {PACKAGE})")
    return found


def list_voices() -> tuple[str, ...]:
    """Return the voices the installed flite offers (``flite -lv``); FliteMissingError without the program."""
    return _voices(flite_program())


@functools.lru_cache(maxsize=4)
def _voices(program: str) -> tuple[str, ...]:
    listing = subprocess.run([program, "-lv"], capture_output=True, text=True, check=True).stdout
    return tuple(listing.split(":", 1)[-1].split())


def check_voice(voice: str) -> None:
    """Return if flite offers ``voice``; VoiceError naming it and the voices offered otherwise.

    Flite itself falls back to its default voice for an unknown name, silently.
    """
    voices = list_voices()
    if voice not in voices:
        raise VoiceError(f"unknown flite voice {voice!r} (installed: {', '.join(voices)})")


def synthesize(text: str, *, voice: str = "rms", stretch: float = 1.0, f0_mean: float | None = None) -> np.ndarray:
    """Return flite's speech of ``text`` as int16 mono samples at 22,050 Hz, untrimmed.

    ``stretch`` multiplies durations (above 1: slower); ``f0_mean`` (Hz) sets the voice's
    mean pitch where the voice has an intonation model.
    """
    check_voice(voice)
    options = ["--setf", f"duration_stretch={stretch:.4f}"]
    if f0_mean is not None:
        options += ["--setf", f"int_f0_target_mean={f0_mean:.1f}"]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "utterance.wav"
        subprocess.run([flite_program(), "-voice", voice, *options, "-t", text, "-o", str(out)],
                       capture_output=True, check=True)
        audio, rate = sf.read(str(out), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        import torch  # lazy: torchaudio's resampler; only flite corpora need it
        import torchaudio

        audio = torchaudio.functional.resample(torch.from_numpy(audio), rate, SAMPLE_RATE).numpy()
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype(np.int16)
