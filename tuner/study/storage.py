"""Study storages: which URL, whether it can be reached, opening it, and the locks that serialise workers.

Storage URLs: SQLite by default (``sqlite:///<home>/optuna.db``, one process), PostgreSQL for several
processes or machines (``postgresql://user:pass@host/db``; the psycopg 3 driver is filled in), and
Optuna's journal file (``journal:///path/study.log``) for several processes on one machine
without a database server.
Every URL the tuner prints goes through ``tuner.study.urls.mask_url`` so a password never reaches the
terminal.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import OptunaError
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from tuner import env
from tuner.errors import NothingFound, ServerUnreachable, StorageError
from tuner.paths import Home
from tuner.study.optuna_api import KeyedRDBStorage
from tuner.study.resilience import BACKOFF_MAX, BACKOFF_START, STORAGE_ERRORS, ResilientRDBStorage
from tuner.study.urls import mask_url, normalize_url, scrub

# What opening a storage raises for a URL it cannot use (RuntimeError: a schema of another Optuna version).
OPENING_ERRORS: tuple[type[Exception], ...] = (*STORAGE_ERRORS, OptunaError, ImportError, ValueError, RuntimeError)
POOL_RECYCLE_SECONDS = 1800  # reopen pooled connections before firewalls and proxies drop idle ones


def default_storage(home: Home) -> str:
    """Return the default storage URL: SQLite in the home folder."""
    return f"sqlite:///{home.optuna_db}"


def storage_setting(explicit: str | None) -> tuple[str | None, str]:
    """Return the storage URL the user chose (None: the home's default) and where it came from.

    The order: ``--storage``, then ``$SMART_TUNER_STORAGE``, then Optuna's ``$OPTUNA_STORAGE``
    (the variables keep a password out of the process list); an empty variable counts as unset.
    """
    if explicit is not None:
        return explicit, "--storage"
    for name in (env.STORAGE, env.OPTUNA_STORAGE):
        if os.environ.get(name):
            return os.environ[name], f"${name}"
    return None, "the home's default"


def resolve_storage(url: str | None, home: Home) -> str:
    """Return the storage URL to use: ``url`` (normalised; a journal path made absolute) or the home's SQLite file."""
    if url is None:
        return default_storage(home)
    url = normalize_url(url.strip())
    if is_journal(url):
        if not url.removeprefix(JOURNAL_PREFIX):
            raise StorageError(f"storage {url!r}: expected journal:///PATH/TO/FILE.log")
        return JOURNAL_PREFIX + str(journal_path(url).resolve())
    if not (url.startswith("sqlite:///") or url.startswith("postgresql+")):
        raise StorageError(f"storage {mask_url(url)!r}: expected sqlite:///PATH, postgresql://USER@HOST/DB "
                           "or journal:///PATH")
    return url


def is_sqlite(url: str) -> bool:
    """True for an SQLite storage URL (one process only, see README)."""
    return url.startswith("sqlite:")


JOURNAL_PREFIX = "journal://"


def is_journal(url: str) -> bool:
    """True for a journal-file storage URL (``journal:///path/study.log``)."""
    return url.startswith(JOURNAL_PREFIX)


def journal_path(url: str) -> Path:
    """Return the file of a journal URL: ``journal:///abs/f.log`` -> /abs/f.log, ``journal://f.log`` -> ./f.log."""
    return Path(url.removeprefix(JOURNAL_PREFIX))


def check_storage(url: str, create_sqlite: bool = True, wait: float = 0.0,
                  say: Callable[[str], None] | None = None) -> None:
    """Raise StorageError with a clear one-line reason when the storage cannot be reached.

    SQLite: the folder is created when ``create_sqlite`` (else the file must exist).
    PostgreSQL: connects once; an unreachable host and a refused login get their own messages.
    With ``wait`` > 0 an unreachable server is tried again for up to ``wait`` seconds (``say``
    hears one line when the waiting starts): a worker restarted during a database outage then
    waits for it as a running worker does, instead of failing until its restart policy gives up.
    A refused login or a missing database is not waited for: time does not fix them.
    """
    if wait < 0:
        raise ValueError(f"wait must be >= 0 seconds, got {wait!r}")
    deadline = time.monotonic() + wait
    pause = BACKOFF_START  # doubling to BACKOFF_MAX, as the storage calls retry
    while True:
        try:
            _check_storage_once(url, create_sqlite)
            return
        except ServerUnreachable as err:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerUnreachable(f"{err}{f' (waited {wait:g} s)' if wait else ''}") from None
            if say is not None and pause == BACKOFF_START:
                say(f"{err}; waiting for it, up to {wait:g} s")
            time.sleep(min(pause, left))
            pause = min(pause * 2, BACKOFF_MAX)


def _check_storage_once(url: str, create_sqlite: bool) -> None:
    """One try of ``check_storage``."""
    shown = mask_url(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as err:  # ValueError: a port that is not a number
        raise StorageError(f"storage {shown!r} is not a valid database URL ({err})") from None
    if is_journal(url):
        path = journal_path(url)
        if create_sqlite:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.is_file():
            raise NothingFound(f"storage {shown}: no such journal file")
        return
    if is_sqlite(url):
        path = Path(parsed.database or "")
        if not parsed.database or parsed.database == ":memory:":
            raise StorageError("storage: an in-memory SQLite database cannot hold a study; give a file path")
        if create_sqlite:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.is_file():
            raise NothingFound(f"storage {shown}: no such database file")
        return
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 10} if parsed.drivername.startswith(
            "postgresql") else {})
    except ImportError as err:
        raise StorageError(f"storage {shown}: database driver missing ({err})") from None
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as err:
        detail = scrub(str(err.orig or err).strip().splitlines()[0], url)
        lowered = detail.lower()
        where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
        if "password authentication failed" in lowered or "authentication failed" in lowered:
            raise StorageError(f"storage {shown}: login refused for user {parsed.username!r} "
                               "(wrong password?)") from None
        if "role" in lowered and "does not exist" in lowered:
            raise StorageError(f"storage {shown}: login refused: no user {parsed.username!r} on {where}") from None
        if "does not exist" in lowered and "database" in lowered:
            raise StorageError(f"storage {shown}: database {parsed.database!r} does not exist on {where} "
                               "(create it first)") from None
        if any(word in lowered for word in ("refused", "could not translate", "timeout", "timed out",
                                            "no route", "unreachable", "name or service")):
            raise ServerUnreachable(
                f"storage {shown}: cannot reach the database server at {where} ({detail})") from None
        raise StorageError(f"storage {shown}: cannot connect ({detail})") from None
    finally:
        engine.dispose()


_sqlite_state_lock = threading.Lock()


class SerializedSQLiteStorage(KeyedRDBStorage):
    """RDBStorage with trial state changes serialised inside this process (for SQLite).

    Optuna pops an enqueued trial by reading it as WAITING and writing RUNNING in one
    transaction guarded by ``SELECT ... FOR UPDATE``; SQLite ignores that clause, so two
    threads (``--gpus``: one per GPU) could both pop the same trial and run it twice. SQLite
    serves one process, so a lock in the process makes the check-and-set atomic. Trials are
    created once per creation key, as on PostgreSQL (``tuner.study.resilience``).
    """

    def set_trial_state_values(self, trial_id, state, values=None):  # noqa: D102 (RDBStorage's)
        with _sqlite_state_lock:
            return super().set_trial_state_values(trial_id, state, values)


def open_storage(url: str) -> BaseStorage:
    """Return an Optuna storage for ``url``: RDBStorage, or JournalStorage on a file for ``journal://``.

    The journal file serves several processes on one machine (an append-only log under a lock
    file; a lock left by a killed process is broken after 30 s); it has no connection to lose.

    PostgreSQL connections are checked before use (``pool_pre_ping``: a server restart leaves
    dead connections in the pool), recycled, and every storage call retries with back-off
    while the server is unreachable (``resilience.ResilientRDBStorage``). Optuna's own
    heartbeat is not used: a trial's liveness is the tuner's lease (``tuner.fleet.lease``), which
    also works where Optuna has no heartbeat and tells a worker when its trial was taken.
    """
    if is_journal(url):
        try:
            return JournalStorage(JournalFileBackend(str(journal_path(url))))
        except OSError as err:
            raise StorageError(f"storage {url}: {err.strerror or err}") from None
    engine_kwargs: dict[str, Any] = {}
    if is_sqlite(url):
        # The parent's heartbeat and its child's reports write to one file: wait for the lock, do not fail.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True, "pool_recycle": POOL_RECYCLE_SECONDS,
                         "connect_args": {"connect_timeout": 10}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            cls = SerializedSQLiteStorage if is_sqlite(url) else ResilientRDBStorage
            return cls(url, engine_kwargs=engine_kwargs)
        except OPENING_ERRORS as err:  # they carry the URL: show ours, masked
            first = scrub(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__, url)
            raise StorageError(f"storage {mask_url(url)}: {first}") from None


def list_study_names(storage: BaseStorage) -> list[str]:
    """Return the names of the studies in ``storage`` (an RDBStorage)."""
    return [s.study_name for s in storage.get_all_studies()]


@contextmanager
def sqlite_single_process(url: str) -> Iterator[None]:
    """Hold this process's claim on an SQLite study file for the ``with`` block; refuse a second process.

    SQLite serves one process: two processes on one file race on the same WAITING trial (its
    ``SELECT ... FOR UPDATE`` is ignored) and can enqueue a study's defaults twice. The claim
    is an exclusive lock on ``FILE.lock`` beside the database, which the kernel drops when the
    process ends, however it ends. Other storages pass through.
    """
    if not is_sqlite(url):
        yield
        return
    # The file itself, not the path typed: two spellings of one file (a symbolic link, a relative path)
    # must find one lock.
    database = Path(make_url(url).database or "").resolve()
    lock_path = database.with_name(database.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise StorageError(f"storage {mask_url(url)}: {holder} is running a study on this SQLite file, and SQLite "
                               "serves one process; for several workers use PostgreSQL "
                               "(--storage postgresql://USER@HOST/DB, see tuner/README.md)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def creation_lock(url: str, purpose: str = "open-study") -> Iterator[None]:
    """Serialise one ``purpose`` among processes sharing a server: by default schema creation, study
    creation and the defaults' enqueue; ``"ask"``: a worker's decision to start another trial.

    Two workers starting together on a fresh PostgreSQL database would otherwise race on
    Optuna's CREATE TABLEs (a unique violation) or both enqueue the defaults; two workers
    deciding together that one trial is missing would both start it. PostgreSQL takes an
    advisory lock (released by the server when the holder's connection ends, however it
    ends); a journal file gets a file lock beside it; SQLite holds one process only.
    """
    if is_sqlite(url):
        yield
        return
    if is_journal(url):
        path = journal_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f"{path.name}.{purpose}.lock"), "a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    engine = create_engine(url, connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as connection:
            key = {"key": f"smart-tuner:{purpose}"}
            connection.execute(text("SELECT pg_advisory_lock(hashtext(:key))"), key)
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), key)
    finally:
        engine.dispose()


def worker_id() -> str:
    """Return ``host:pid`` of this process (stored on each trial it runs)."""
    return f"{socket.gethostname()}:{os.getpid()}"

