"""The study's clock: the time by which a trial's heartbeats are stamped and judged.

Workers on many machines share one study, and their clocks disagree: a heartbeat stamped by one
machine's clock and judged by another's looks old (or young) by the skew between them, so a
worker whose clock runs ahead by more than the grace would fail every live trial it looks at.
On PostgreSQL every stamp and every judgement therefore reads the database server's clock
(``clock_timestamp()``), the one clock all workers share; an SQLite file or a journal file serves
one machine, whose clock is shared already.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import text

from tuner.study.optuna_api import rdb_engine

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["Clock", "study_clock"]

Clock = Callable[[], float]  # seconds since the epoch
SERVER_NOW = text("SELECT extract(epoch FROM clock_timestamp())")


def study_clock(storage: BaseStorage) -> Clock:
    """Return the clock heartbeats in ``storage`` are stamped and judged by (see the module docstring)."""
    engine = rdb_engine(storage)
    if engine is None or engine.dialect.name == "sqlite":
        return time.time

    def server_now() -> float:
        with engine.connect() as connection:
            return float(connection.execute(SERVER_NOW).scalar_one())

    return server_now
