"""Errors the tuner raises for bad input; each message is one line naming the file, key or URL.

They derive from ``trainer.errors.UserError``, the one base of every error the user's input
causes: the ``tuner`` command prints them as one line and exits 2 (``trainer.console``); any
other exception is a bug.
"""

from __future__ import annotations

from trainer.errors import UserError

__all__ = ["TunerError", "SpaceError", "StorageError", "NothingFound", "ServerUnreachable"]


class TunerError(UserError):
    """Bad input to the tuner (arguments, files, storage); the CLI prints it as one line and exits 2."""


class SpaceError(TunerError):
    """A search-space file is malformed; the message reads ``file:line: key: problem``."""


class StorageError(TunerError):
    """A study storage cannot be used (unreachable, wrong password, unknown study); no password is shown."""


class NothingFound(StorageError):
    """The storage holds no such study (or no study, or no database file): the CLI adds where it looked."""


class ServerUnreachable(StorageError):
    """The database server did not answer (as opposed to answering with a refusal): waiting may help."""

