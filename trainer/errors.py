"""Every error a user's input can cause, under one base, and the trainer's own failure.

``UserError`` is the line between "your input is wrong" and "our code is wrong": the
command-line tools (``trainer.console``) print a ``UserError`` as one line and exit with
code 2, and treat anything else as a bug (exit 1, traceback with ``--debug``). Raise a
subclass whenever a file, a line, a key or an argument the user gave is at fault, and name
it in the message. The tuner's errors derive from it too (``tuner.errors``).

``UserError`` is a ``ValueError``: code that already catches ``ValueError`` around parsing
keeps working, while the CLIs no longer take every ``ValueError`` (an internal bug, often)
for bad input.

``DataError``, a corpus with blocking problems, carries the corpus's report and lives beside
it (``trainer.data.corpus``), so this module imports nothing of the trainer's and every
other module may import it.
"""

from __future__ import annotations

__all__ = [
    "UserError",
    "ConfigError",
    "CorpusError",
    "CheckpointError",
    "AudioError",
    "VoiceError",
    "UnknownCharacterError",
    "TrainingFailed",
    "NonFiniteLossError",
    "TrainingInterrupted",
]


class UserError(ValueError):
    """Bad input from the user: a file, line, key or argument; the message names it in one line."""


class ConfigError(UserError):
    """A config file or override is malformed; the message names the file and key."""


class CorpusError(UserError):
    """The corpus cannot be read at all (missing metadata, malformed line); names file and line."""


class CheckpointError(UserError):
    """A checkpoint file cannot be used; the message names the file."""


class AudioError(UserError):
    """An audio file cannot be used; the message names the file."""


class VoiceError(UserError):
    """An eSpeak NG voice or voice variant is unknown; the message names it."""


class UnknownCharacterError(UserError):
    """A cleaned text contains a character that is not in the symbol set."""

    def __init__(self, utterance_id: str, character: str) -> None:
        self.utterance_id = utterance_id
        self.character = character
        super().__init__(f"utterance {utterance_id}: unknown character {character!r} (U+{ord(character):04X})")


class TrainingFailed(RuntimeError):
    """Training ran and could not go on (not a bug, not bad input); the message says why and what was kept."""


class NonFiniteLossError(TrainingFailed):
    """The loss or gradient was non-finite for too many steps in a row."""


class TrainingInterrupted(TrainingFailed):
    """Training was asked to stop (a signal); ``step`` is where it saved its checkpoint and stopped."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step
