"""The three timeouts of the trial lease, and the invariant that keeps a trial from being trained twice.

* ``heartbeat``: a worker marks each trial it runs alive this often (default 30 s).
* ``grace``: a trial silent this long is taken to be lost: any worker fails it and queues its
  retry, which resumes from its checkpoint (default 120 s).
* ``retry``: how long one storage call keeps retrying while the database is away (default:
  derived, grace − 2 × heartbeat = 60 s).

The invariant is **retry < grace − heartbeat**. A worker cut off from the database gives up
on its trial (it stops the training child and abandons the lease) when a heartbeat has failed
for ``retry`` seconds; its last successful heartbeat was at most ``heartbeat`` seconds before
the first failed one, so it has stopped before ``heartbeat + retry < grace`` seconds of
silence, i.e. before any other worker may fail the trial and start its retry. Were retry longer,
an outage between grace − heartbeat and retry would let the same trial train twice: the old
worker would reconnect and go on while the retry already ran. Settings that break the invariant
are refused. Drills and tests shorten all three through the environment (``tuner.env``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tuner import env
from tuner.errors import TunerError

HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120


@dataclass(frozen=True)
class Timeouts:
    """The lease's timeouts in seconds (see the module docstring for what each means)."""

    heartbeat: float
    grace: float
    retry: float

    def __post_init__(self) -> None:
        if self.heartbeat <= 0 or self.grace <= 0 or self.retry < 0:
            raise TunerError(f"lease timeouts must be positive, got heartbeat {self.heartbeat:g} s, grace "
                             f"{self.grace:g} s, storage retry {self.retry:g} s")
        if not self.retry < self.grace - self.heartbeat:
            raise TunerError(
                f"${env.DB_RETRY_SECONDS} ({self.retry:g} s) must be shorter than ${env.GRACE_SECONDS} "
                f"({self.grace:g} s) minus ${env.HEARTBEAT_SECONDS} ({self.heartbeat:g} s): a worker cut off "
                "from the database must give its trial up before another may retry it")


def _read(name: str, default: float | None) -> float | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise TunerError(f"${name}={text!r}: expected a number of seconds") from None
    if value < 0:
        raise TunerError(f"${name}={text!r}: expected a number of seconds >= 0")
    return value


def timeouts() -> Timeouts:
    """Return the lease timeouts: the defaults, or ``$SMART_TUNER_HEARTBEAT_SECONDS``, ``..._GRACE_SECONDS``
    and ``..._DB_RETRY_SECONDS``; the retry window defaults to grace − 2 × heartbeat. TunerError when they
    break the invariant."""
    heartbeat = _read(env.HEARTBEAT_SECONDS, HEARTBEAT_SECONDS)
    grace = _read(env.GRACE_SECONDS, GRACE_SECONDS)
    assert heartbeat is not None and grace is not None
    retry = _read(env.DB_RETRY_SECONDS, None)
    if retry is None:
        retry = max(grace - 2 * heartbeat, 0.0)
    return Timeouts(heartbeat, grace, retry)
