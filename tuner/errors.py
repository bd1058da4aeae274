"""Errors the tuner raises for bad input; each message is one line naming the file, key or URL."""

from __future__ import annotations


class TunerError(ValueError):
    """Bad input to the tuner (arguments, files, storage); the CLI prints it as one line and exits 2."""


class SpaceError(TunerError):
    """A search-space file is malformed; the message reads ``file:line: key: problem``."""


class StorageError(TunerError):
    """A study storage cannot be used (unreachable, wrong password, unknown study); no password is shown."""


class TrialFailed(Exception):
    """A trial's worker crashed, hung or raised; the reason is stored on the trial as ``fail_reason``."""
