"""Atomic file writes: a reader sees the old file or the new one, never a torn one."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through ``write(fileobj)`` into a temp file beside it, fsync, rename, fsync the folder.

    The temp file lives in the same folder so the rename is atomic on POSIX; concurrent
    writers each use their own temp name, and the last rename wins with a whole file. The
    file's data is on disk before the rename and the folder's entry after it, so a write
    that returned survives a power loss. The file gets the permissions ``open()`` would
    give a new file (0666 less the umask), not the owner-only ones of a temp file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(path.parent)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temp files ``atomic_write`` left under ``folder`` when its process was killed mid-write.

    Call it where no other process writes into ``folder`` (a run folder at the start of its
    run); returns what was removed. A checkpoint's temp file is as large as the checkpoint.
    """
    removed = []
    for path in folder.rglob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _umask() -> int:
    """Return the process's umask without changing it (Linux reports it in /proc; elsewhere set and restore)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename into it) to disk; a no-op where the file system cannot."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (and platforms) do not fsync a folder
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the ``with`` block.

    Serialises processes on one machine that build the same thing at once (a demo, a store).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_jsonl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Return (line, record) of every JSON line of ``path`` (``metrics.jsonl``); [] when it does not exist.

    A line that is not JSON (the last one, cut by a kill) is skipped.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        try:
            found.append((line, json.loads(line)))
        except ValueError:
            continue
    return found


class JsonlTail:
    """Reads the records appended to a JSON-lines file since the last call (whole lines only).

    The writer appends each line in one call, so everything up to the last newline is complete;
    a line after it waits for the next call. ``offset`` (bytes read) can start where an earlier
    reader stopped.
    """

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.seen_any = False

    def read_new(self) -> list[dict[str, Any]]:
        """Return the records completed since the last call; a line that is not JSON is skipped."""
        try:
            with self.path.open("rb") as handle:
                start = min(self.offset, os.fstat(handle.fileno()).st_size)  # a file rewritten shorter
                handle.seek(start)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset = start + end + 1
        records = []
        for line in chunk[: end + 1].splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        self.seen_any = self.seen_any or bool(records)
        return records
