"""The sample rate of every wav the pipeline reads, writes and computes features at.

``trainer.audio.mel`` (features, Griffin-Lim, wav I/O) re-exports it as ``trainer.audio.mel.SAMPLE_RATE``.
It lives in this module of its own because ``trainer.audio.mel`` imports torch and torchaudio
(about 1.7 s), and the eSpeak NG driver and the corpus writer, which need only this number,
run in a fresh child process for every corpus they make (``trainer.corpora.make``): importing
torch there would make a small corpus several times slower to build.
"""

from __future__ import annotations

__all__ = ["SAMPLE_RATE"]

SAMPLE_RATE = 22050
