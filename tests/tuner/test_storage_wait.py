"""``check_storage(wait=...)``: a database server that comes up during the wait is joined, a refusal is not waited for.

The server is the real PostgreSQL on 127.0.0.1:5432, reached through a loopback TCP relay that
starts listening only after a delay (a database still starting, as after a host reboot).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tuner.errors import ServerUnreachable, StorageError
from tuner.study.storage import check_storage

pytestmark = pytest.mark.postgres


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _relay_after(delay: float, port: int, stop: threading.Event) -> None:
    """After ``delay`` seconds, listen on ``port`` and relay each connection to 127.0.0.1:5432."""
    time.sleep(delay)
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(("127.0.0.1", 5432))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def test_a_server_that_comes_up_during_the_wait_is_joined(database: str, free_port) -> None:
    port = free_port()
    url = database.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
    with pytest.raises(ServerUnreachable):  # nothing listens yet, and no wait was asked for
        check_storage(url)
    stop = threading.Event()
    relay = threading.Thread(target=_relay_after, args=(2.0, port, stop), daemon=True)
    heard: list[str] = []
    started = time.monotonic()
    relay.start()
    try:
        check_storage(url, wait=60, say=heard.append)
    finally:
        stop.set()
        relay.join(timeout=5)
    assert 2.0 <= time.monotonic() - started < 30
    assert len(heard) == 1 and f"cannot reach the database server at 127.0.0.1:{port}" in heard[0]
    assert "waiting for it, up to 60 s" in heard[0]


def test_a_missing_database_is_not_waited_for(database: str) -> None:
    url = database.rsplit("/", 1)[0] + "/no_such_database_4711"
    started = time.monotonic()
    with pytest.raises(StorageError, match="database 'no_such_database_4711' does not exist") as raised:
        check_storage(url, wait=60)
    assert not isinstance(raised.value, ServerUnreachable)
    assert time.monotonic() - started < 10
