"""Study storage and creating or joining a study: Optuna behind one door.

Storage URLs: SQLite by default (``sqlite:///<home>/optuna.db``), PostgreSQL for several
processes or machines (``postgresql://user:pass@host/db``; the psycopg 3 driver is filled in).
Every URL the tuner prints goes through ``tuner.urls.mask_url`` so a password never reaches the
terminal. The space's sampler and pruner come from ``tuner.samplers``.
"""

from __future__ import annotations

import os
import socket
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import StudyDirection
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from tuner import env
from tuner.errors import NothingFound, StorageError, TunerError
from tuner.paths import Home
from tuner.resilience import ResilientRDBStorage
from tuner.samplers import make_pruner, make_sampler
from tuner.urls import mask_url, normalize_url, scrub

if TYPE_CHECKING:
    from tuner.space import SearchSpace

HEARTBEAT_SECONDS = 30  # how often the parent marks its running trial alive
GRACE_SECONDS = 120  # a trial whose parent was silent this long is failed (and retried once) by any worker
# Drills and tests shorten both (whole seconds, as Optuna wants them).
HEARTBEAT_ENV, GRACE_ENV = env.HEARTBEAT_SECONDS, env.GRACE_SECONDS
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
    """Return the storage URL to use: ``url`` (normalised) or the home's SQLite file."""
    if url is None:
        return default_storage(home)
    url = normalize_url(url.strip())
    if not (url.startswith("sqlite:///") or url.startswith("postgresql+")):
        raise StorageError(f"storage {mask_url(url)!r}: expected sqlite:///PATH or postgresql://USER@HOST/DB")
    return url


def is_sqlite(url: str) -> bool:
    """True for an SQLite storage URL (one process only, see README)."""
    return url.startswith("sqlite:")


def check_storage(url: str, create_sqlite: bool = True) -> None:
    """Raise StorageError with a clear one-line reason when the storage cannot be reached.

    SQLite: the folder is created when ``create_sqlite`` (else the file must exist).
    PostgreSQL: connects once; an unreachable host and a refused login get their own messages.
    """
    shown = mask_url(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as err:  # ValueError: a port that is not a number
        raise StorageError(f"storage {shown!r} is not a valid database URL ({err})") from None
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
            raise StorageError(f"storage {shown}: cannot reach the database server at {where} ({detail})") from None
        raise StorageError(f"storage {shown}: cannot connect ({detail})") from None
    finally:
        engine.dispose()


def _retry_callback() -> RetryHeartbeatStaleTrialCallback:
    """Return Optuna's retry-once callback for heartbeat-stale trials (an experimental API: warning muted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=1)


_sqlite_state_lock = threading.Lock()


class SerializedSQLiteStorage(RDBStorage):
    """RDBStorage with trial state changes serialised inside this process (for SQLite).

    Optuna pops an enqueued trial by reading it as WAITING and writing RUNNING in one
    transaction guarded by ``SELECT ... FOR UPDATE``; SQLite ignores that clause, so two
    threads (``--gpus``: one per GPU) could both pop the same trial and run it twice. SQLite
    serves one process, so a lock in the process makes the check-and-set atomic.
    """

    def set_trial_state_values(self, trial_id, state, values=None):  # noqa: D102 (RDBStorage's)
        with _sqlite_state_lock:
            return super().set_trial_state_values(trial_id, state, values)


def heartbeat_settings() -> tuple[int, int]:
    """Return (heartbeat interval, grace period) in seconds: the defaults or ``$SMART_TUNER_HEARTBEAT_SECONDS``
    and ``$SMART_TUNER_GRACE_SECONDS``."""
    def read(name: str, default: int) -> int:
        text = os.environ.get(name)
        if not text:
            return default
        if not text.isdigit() or int(text) < 1:
            raise TunerError(f"${name}={text!r}: expected a whole number of seconds >= 1")
        return int(text)

    heartbeat, grace = read(HEARTBEAT_ENV, HEARTBEAT_SECONDS), read(GRACE_ENV, GRACE_SECONDS)
    if grace <= heartbeat:
        raise TunerError(f"${GRACE_ENV} ({grace}) must exceed the heartbeat interval ({heartbeat}): "
                         "live trials would be failed")
    return heartbeat, grace


def open_storage(url: str, heartbeat: bool = True) -> RDBStorage:
    """Return an Optuna RDBStorage for ``url``; with ``heartbeat``, stale trials are failed and retried once.

    PostgreSQL connections are checked before use (``pool_pre_ping``: a server restart leaves
    dead connections in the pool), recycled, and every storage call retries with back-off
    while the server is unreachable (``resilience.ResilientRDBStorage``).
    """
    kwargs: dict[str, Any] = {}
    if heartbeat:
        interval, grace = heartbeat_settings()
        kwargs = {"heartbeat_interval": interval, "grace_period": grace,
                  "heartbeat_stale_trial_callback": _retry_callback()}
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
            return cls(url, engine_kwargs=engine_kwargs, **kwargs)
        except Exception as err:  # sqlalchemy errors carry the URL; show ours, masked
            first = scrub(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__, url)
            raise StorageError(f"storage {mask_url(url)}: {first}") from None


@dataclass
class OpenedStudy:
    """A study ready to optimise, with where it lives."""

    study: optuna.Study
    storage_url: str
    created: bool


def list_study_names(storage: BaseStorage) -> list[str]:
    """Return the names of the studies in ``storage`` (an RDBStorage)."""
    return [s.study_name for s in storage.get_all_studies()]


def open_study(space: SearchSpace, study_name: str, storage_url: str, max_steps: int, val_interval: int,
               heartbeat: bool = True) -> OpenedStudy:
    """Create the study ``study_name`` or join it when it exists; return it.

    A new study stores the space's fingerprint and gets the space's defaults enqueued as its
    first trial. Joining a study made from a different space (other parameters or objective)
    raises StorageError instead of mixing incompatible trials.
    """
    with creation_lock(storage_url):
        return _open_study(space, study_name, storage_url, max_steps, val_interval, heartbeat)


@contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Serialise schema creation, study creation and the defaults' enqueue among processes sharing a server.

    Two workers starting together on a fresh PostgreSQL database would otherwise race on
    Optuna's CREATE TABLEs (a unique violation) or both enqueue the defaults. SQLite holds one
    process only, so it needs no lock.
    """
    if is_sqlite(url):
        yield
        return
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(hashtext('smart-tuner:open-study'))"))
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(hashtext('smart-tuner:open-study'))"))
    finally:
        engine.dispose()


def _open_study(space: SearchSpace, study_name: str, storage_url: str, max_steps: int, val_interval: int,
                heartbeat: bool) -> OpenedStudy:
    storage = open_storage(storage_url, heartbeat=heartbeat)
    sampler = make_sampler(space)
    pruner = make_pruner(space, max_steps, val_interval)
    directions = list(space.study.objective.directions)
    existing = study_name in list_study_names(storage)
    try:
        study = optuna.create_study(storage=storage, sampler=sampler, pruner=pruner, study_name=study_name,
                                    directions=[StudyDirection[d.upper()] for d in directions],
                                    load_if_exists=True)
    except ValueError as err:
        raise StorageError(f"study {study_name!r}: {err}") from None
    if [d.name.lower() for d in study.directions] != directions:
        raise StorageError(f"study {study_name!r} exists with directions "
                           f"{[d.name.lower() for d in study.directions]}, the space asks for {directions}; "
                           "use another --study name")
    fingerprint = space.fingerprint()
    stored = study.user_attrs.get("space_fingerprint")
    if stored is None:
        study.set_user_attr("space_fingerprint", fingerprint)
        study.set_user_attr("space_file", str(space.path))
        study.set_user_attr("objective", list(space.study.objective.metrics))
        study.set_user_attr("max_steps", max_steps)
    if study.metric_names is None:
        # The dashboard titles its plots with these ("fr_mcd", not "Objective 0").
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(space.study.objective.metrics))
    elif stored != fingerprint:
        raise StorageError(f"study {study_name!r} was made from another search space "
                           f"({study.user_attrs.get('space_file', '?')}): its parameters or objective differ "
                           f"from {space.path.name}; use another --study name")
    if space.study.enqueue_defaults and space.defaults() and not study.get_trials(deepcopy=False):
        study.enqueue_trial(space.defaults(), user_attrs={"origin": "space defaults"}, skip_if_exists=True)
    return OpenedStudy(study, storage_url, created=not existing)


def load_existing_study(storage_url: str, study_name: str | None) -> optuna.Study:
    """Return an existing study (read-only use: status, best, export); the name may be omitted when unique."""
    storage = open_storage(storage_url, heartbeat=False)
    names = list_study_names(storage)
    if study_name is None:
        if len(names) == 1:
            study_name = names[0]
        elif not names:
            raise NothingFound(f"storage {mask_url(storage_url)} holds no study yet")
        else:
            raise StorageError(f"storage {mask_url(storage_url)} holds several studies "
                               f"({', '.join(sorted(names))}); pick one with --study")
    if study_name not in names:
        raise NothingFound(f"no study {study_name!r} in {mask_url(storage_url)} "
                           f"(studies: {', '.join(sorted(names)) or 'none'})")
    return optuna.load_study(study_name=study_name, storage=storage)


def worker_id() -> str:
    """Return ``host:pid`` of this process (stored on each trial it runs)."""
    return f"{socket.gethostname()}:{os.getpid()}"
