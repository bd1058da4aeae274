"""Study storage that rides out a PostgreSQL restart: storage calls retry with back-off.

When the server restarts (maintenance, failover, ``pg_ctlcluster ... restart``), every open
connection dies and new ones are refused for a few seconds. Without help, the next heartbeat,
report or state change of every worker raises and ends a trial or the whole study.
``ResilientRDBStorage`` retries each storage call on *transient* errors (connection refused,
dropped or invalidated: SQLAlchemy's OperationalError, InterfaceError, DisconnectionError),
sleeping 0.5 s, 1 s, 2 s ... (at most 10 s) for up to the lease's storage retry window
(``tuner.study.timeouts``: shorter than the grace period less one heartbeat, 60 s by default, so a
worker cut off from the database gives its trial up before another may retry it);
``pool_pre_ping`` (set in ``study.open_storage``) throws away the pool's dead connections.
Other errors (constraint violations, a finished trial) are never retried.

A retried call repeats a transaction that failed, which is safe: PostgreSQL rolled it back. The
one ambiguous case is a commit whose acknowledgement was lost with the connection; its retry
then meets its own effect (for a state change, Optuna's "already finished" error, which the
caller sees as it would without the retry). Creating a trial has no such error to meet: a
lost acknowledgement would make the retry (ours, or Optuna's own five tries inside
``create_new_trial``) add a second copy, and a queued retry trained twice. So a template trial
may carry a creation key (``CREATE_KEY_ATTR``, a system attribute): inside the transaction
that creates it, under the study row's lock, a trial of the study already holding that key is
returned instead of a new one. Keys name what must exist once (``tuner.fleet.lease`` keys a retry by
the trial it continues), so two workers queuing the same retry also get one trial.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from optuna.exceptions import StorageInternalError
from optuna.storages import RDBStorage
from sqlalchemy import exc

from tuner.study.optuna_api import KeyedRDBStorage
from tuner.study.timeouts import timeouts
from tuner.study.urls import mask_url, scrub

if TYPE_CHECKING:
    pass

BACKOFF_START, BACKOFF_MAX = 0.5, 10.0

# RDBStorage methods that talk to the database; each is retried as a whole.
RETRIED_METHODS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_trial_user_attrs", "get_trial_system_attrs", "get_all_studies", "create_new_trial", "set_trial_param",
    "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
    "set_trial_system_attr", "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials",
    "get_best_trial", "get_n_trials", "get_trial_number_from_id", "get_trial_params", "record_heartbeat",
)

# What a storage call raises when its database goes away: SQLAlchemy's errors, or Optuna's wrapping of them.
STORAGE_ERRORS: tuple[type[Exception], ...] = (exc.SQLAlchemyError, StorageInternalError)
_local = threading.local()  # calls nested inside a retried call are not retried again


def is_transient(err: BaseException) -> bool:
    """True when ``err`` (or what caused it) is a lost or refused database connection."""
    seen: BaseException | None = err
    for _ in range(8):  # Optuna wraps SQLAlchemy errors in StorageInternalError: follow the causes
        if seen is None:
            return False
        if isinstance(seen, (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError)):
            return True
        if isinstance(seen, exc.DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__
    return False


def retry_seconds() -> float:
    """Return how long a storage call retries: the lease's retry window (``tuner.study.timeouts``)."""
    return timeouts().retry


def _say(line: str) -> None:
    # stderr: the live view owns stdout; a worker's stderr ends up in its log.
    print(f"tuner: {line}", file=sys.stderr, flush=True)


def with_retry(method: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Wrap a storage method so that transient database errors are retried with back-off."""

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "active", False):
            return method(self, *args, **kwargs)
        _local.active = True
        started, delay, warned = time.monotonic(), BACKOFF_START, False
        try:
            while True:
                try:
                    result = method(self, *args, **kwargs)
                except STORAGE_ERRORS as err:
                    left = retry_seconds() - (time.monotonic() - started)
                    if not is_transient(err) or left <= 0:
                        raise
                    if not warned:
                        detail = scrub(str(err.__cause__ or err).strip().splitlines()[0][:200], self.url)
                        _say(f"storage {mask_url(self.url)}: connection lost in {name} ({detail}); "
                             f"retrying for up to {retry_seconds():g} s")
                        warned = True
                    # Never sleep past the window: the lease's timing (tuner.study.timeouts) counts on it.
                    time.sleep(min(delay, left))
                    delay = min(delay * 2, BACKOFF_MAX)
                    continue
                if warned:
                    _say(f"storage: reconnected after {time.monotonic() - started:.1f} s")
                return result
        finally:
            _local.active = False

    return wrapper


def _resilient_storage_class() -> type[RDBStorage]:
    """Return RDBStorage with every database call wrapped by ``with_retry`` and keyed trial creation."""
    namespace: dict[str, Any] = {name: with_retry(getattr(RDBStorage, name), name) for name in RETRIED_METHODS
                                 if callable(getattr(RDBStorage, name, None))}
    namespace["__module__"] = __name__
    namespace["__doc__"] = "Optuna's RDBStorage whose calls retry while the database server is unreachable."
    return type("ResilientRDBStorage", (KeyedRDBStorage,), namespace)


ResilientRDBStorage = _resilient_storage_class()
