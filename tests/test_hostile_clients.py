"""Hostile clients (issue 8): the server stays up, answers with Valkey's texts, other clients keep
being served, and memory comes back after the client goes. Each case runs against our server
and, where the behaviour is observable on the wire, against a real valkey-server 9.1.2 too."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from enginesrv import engine_server
from realserver import real_server

Server = Callable[..., contextlib.AbstractContextManager[Any]]
BOTH = [
    pytest.param(engine_server, id="ours"),
    pytest.param(real_server, id="real", marks=pytest.mark.real),
]


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    return s


def _read_until_close(s: socket.socket) -> bytes:
    out = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := s.recv(65536):
            out += chunk
    return out


def _info(c: Any, section: str) -> dict[str, Any]:
    return dict(c.info(section))


def _rss(c: Any) -> int:
    return int(_info(c, "memory")["used_memory_rss"])


@pytest.mark.parametrize("server", BOTH)
def test_query_buffer_limit_closes_the_client(tmp_path: Path, server: Server) -> None:
    """client-query-buffer-limit (src/networking.c): past it the client is closed and counted."""
    with server(tmp_path, "--client-query-buffer-limit", "1mb") as srv, srv.client() as c:
        s = _connect(srv.port)
        s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5000000\r\n")
        chunk = b"x" * 65536
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(40):  # 2.5 MB of the announced 5 MB
                s.sendall(chunk)
        assert _read_until_close(s) == b""
        s.close()
        assert c.ping()
        assert c.get("k") is None
        deadline = time.monotonic() + 5
        while _info(c, "stats")["client_query_buffer_limit_disconnections"] != 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)


@pytest.mark.parametrize("server", BOTH)
def test_multibulk_count_near_int_max(tmp_path: Path, server: Server) -> None:
    """src/networking.c processMultibulkBuffer: a count up to INT_MAX is accepted without
    allocating for it; one past it is a protocol error."""
    with server(tmp_path) as srv, srv.client() as c:
        base = _rss(c)
        s = _connect(srv.port)
        s.sendall(b"*2147483647\r\n$4\r\nPING\r\n")
        time.sleep(0.2)
        assert c.ping()
        assert _rss(c) - base < 64 * 1024 * 1024  # nothing was allocated for the count
        s.close()
        s = _connect(srv.port)
        s.sendall(b"*2147483648\r\n")
        assert _read_until_close(s) == b"-ERR Protocol error: invalid multibulk length\r\n"
        s.close()
        assert c.ping()


@pytest.mark.parametrize("server", BOTH)
def test_bulk_announced_but_never_sent(tmp_path: Path, server: Server) -> None:
    with server(tmp_path) as srv, srv.client() as c:
        s = _connect(srv.port)
        s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\nabc")
        time.sleep(0.2)
        assert c.set("other", "1") and c.get("other") == b"1"
        s.close()
        time.sleep(0.1)
        assert c.get("k") is None
        assert int(_info(c, "clients")["connected_clients"]) == 1


@contextlib.contextmanager
def _idle_connections(port: int, n: int) -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            socks.append(_connect(port))
        yield socks
    finally:
        for s in socks:
            s.close()


@pytest.mark.slow
def test_idle_connections_up_to_maxclients_then_refused(tmp_path: Path) -> None:
    """Idle connections up to maxclients, then Valkey's text; memory comes back after they go.
    CI uses 2,000 (the issue's 10,000 with VALKEY_AOF_IDLE_CLIENTS=10000)."""
    import os

    n = int(os.environ.get("VALKEY_AOF_IDLE_CLIENTS", "2000"))
    with engine_server(tmp_path, "--maxclients", str(n + 1)) as srv, srv.client() as c:
        assert c.ping()
        base = _rss(c)
        with _idle_connections(srv.port, n) as socks:
            # every one is accepted and served: ask the last one
            socks[-1].sendall(b"PING\r\n")
            assert socks[-1].recv(100) == b"+PONG\r\n"
            extra = _connect(srv.port)
            assert _read_until_close(extra) == b"-ERR max number of clients reached\r\n"
            extra.close()
            assert c.ping()  # the existing client keeps being served
            peak = _rss(c)
        deadline = time.monotonic() + 10
        while int(_info(c, "clients")["connected_clients"]) != 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        after = _rss(c)
        # memory comes back: at most a quarter of what the connections took stays (Python's
        # allocator keeps some arenas); never a leak proportional to the connections
        assert after - base <= max((peak - base) // 4, 4 * 1024 * 1024), (base, peak, after)


@pytest.mark.parametrize("kind", ["normal", "pubsub"])
def test_a_client_that_never_reads_is_dropped_and_memory_comes_back(
    tmp_path: Path, kind: str
) -> None:
    """client-output-buffer-limit disconnects a client that never reads (a pipelined reader of
    big values, or a subscriber); the others keep being served and RSS returns near baseline."""
    limit = f"{kind} 4mb 1mb 1"
    with (
        engine_server(tmp_path, "--client-output-buffer-limit", limit) as srv,
        srv.client() as c,
    ):
        c.set("big", b"x" * 262144)
        base = _rss(c)
        s = _connect(srv.port)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        if kind == "normal":
            with contextlib.suppress(OSError):
                s.sendall(b"GET big\r\n" * 400)  # 100 MB of replies it never reads
        else:
            s.sendall(b"SUBSCRIBE flood\r\n")
            time.sleep(0.2)
            for _ in range(400):
                c.publish("flood", b"y" * 262144)
        deadline = time.monotonic() + 10
        key = "client_output_buffer_limit_disconnections"
        while _info(c, "stats")[key] != 1 or _info(c, "clients")["connected_clients"] != 1:
            assert time.monotonic() < deadline
            assert c.ping()  # the server keeps serving the others meanwhile
            time.sleep(0.05)
        s.close()
        time.sleep(0.2)
        assert _rss(c) - base < 32 * 1024 * 1024, (base, _rss(c))
    assert "output buffer limits" in srv.log
