"""Connection commands: PING ECHO SELECT HELLO AUTH CLIENT RESET QUIT, against valkey 9.1.2."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from differential import REAL_ARGS, Differ
from realserver import RealServer, real_server

from engine.config import Config
from engine.engine import Engine
from persistence.resp.frames import Array, Bulk, Map, Verbatim

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_server(tmp_path_factory.mktemp("conn"), *REAL_ARGS) as srv:
        yield srv


@pytest.fixture
def d(real: RealServer) -> Iterator[Differ]:
    differ = Differ(real)
    differ.check(["FLUSHALL"], propagation=False)
    differ.read_aof()
    yield differ
    differ.close()


BASIC = [
    ["PING"],
    ["PING", "hi"],
    ["PING", "a", "b"],
    ["ECHO", "x"],
    ["ECHO"],
    ["ECHO", "a", "b"],
    ["SELECT", "3"],
    ["SELECT", "16"],
    ["SELECT", "-1"],
    ["SELECT", "x"],
    ["SELECT", "0"],
    ["HELLO", "4"],
    ["HELLO", "1"],
    ["HELLO", "x"],
    ["HELLO", "3", "FOO"],
    ["HELLO", "3", "AUTH"],
    ["HELLO", "2", "SETNAME"],
    ["HELLO", "2", "SETNAME", "a b"],
    ["HELLO", "2", "AUTH", "u", "p"],
    ["AUTH", "x"],
    ["AUTH", "a", "b"],
    ["AUTH", "a", "b", "c"],
    ["AUTH"],
    ["CLIENT"],
    ["CLIENT", "FOO"],
    ["CLIENT", "SETNAME", "a b"],
    ["CLIENT", "SETNAME", "a\nb"],
    ["CLIENT", "SETNAME", "ok"],
    ["CLIENT", "GETNAME"],
    ["CLIENT", "SETNAME", ""],
    ["CLIENT", "GETNAME"],
    ["CLIENT", "SETNAME"],
    ["CLIENT", "SETINFO", "LIB-NAME", "a b"],
    ["CLIENT", "SETINFO", "lib-name", "redis-py"],
    ["CLIENT", "SETINFO", "LIB-VER", "1.0"],
    ["CLIENT", "SETINFO", "FOO", "x"],
    ["CLIENT", "KILL", "1.2.3.4:5"],
    ["CLIENT", "KILL", "ID", "999"],
    ["CLIENT", "KILL", "ID", "abc"],
    ["CLIENT", "KILL", "FOO", "x"],
    ["CLIENT", "KILL", "ADDR", "1.2.3.4:5"],
    ["CLIENT", "KILL", "SKIPME", "maybe"],
    ["CLIENT", "KILL", "ID", "1", "SKIPME"],
    ["CLIENT", "KILL", "MAXAGE", "x"],
    ["CLIENT", "KILL", "TYPE", "foo"],
    ["CLIENT", "KILL", "TYPE", "normal", "USER", "nouser"],
    ["CLIENT", "LIST", "TYPE", "foo"],
    ["CLIENT", "LIST", "ID", "abc"],
    ["CLIENT", "LIST", "FOO"],
    ["CLIENT", "LIST", "TYPE"],
    ["CLIENT", "LIST", "ID", "998", "999"],
    ["CLIENT", "NO-EVICT", "maybe"],
    ["CLIENT", "NO-EVICT", "on"],
    ["CLIENT", "NO-EVICT", "off"],
    ["CLIENT", "NO-TOUCH", "OFF"],
    ["CLIENT", "REPLY", "maybe"],
    ["CLIENT", "ID", "x"],
    ["CLIENT", "HELP"],
    ["RESET", "x"],
]


@pytest.mark.parametrize("resp", [2, 3])
def test_replies_and_errors(d: Differ, resp: int) -> None:
    d.hello(resp)
    for argv in BASIC:
        d.check(argv)


def _no_id_modules(f: Any) -> Any:
    if isinstance(f, Map):
        return [(k, v) for k, v in f.pairs if k.value not in (b"id", b"modules")]
    items = f.items
    pairs = list(zip(items[::2], items[1::2]))
    return [(k, v) for k, v in pairs if k.value not in (b"id", b"modules")]


@pytest.mark.parametrize(
    "argv",
    [
        ["HELLO"],
        ["HELLO", "3"],
        ["HELLO", "2", "SETNAME", "n"],
        ["HELLO", "3", "AUTH", "default", "any"],
    ],
)
def test_hello_map(d: Differ, argv: list[str]) -> None:
    ours, theirs = d.both(argv)
    # the client id differs; 9.1.2 lists its built-in lua module, we have no scripting
    assert _no_id_modules(ours) == _no_id_modules(theirs)
    assert type(ours) is type(theirs)
    modules = ours.pairs[-1][1] if isinstance(ours, Map) else ours.items[-1]
    assert modules == Array([])
    d.hello(2)


def _fields(line: bytes) -> list[bytes]:
    return [kv.split(b"=", 1)[0] for kv in line.strip().split(b" ")]


@pytest.mark.parametrize("resp", [2, 3])
def test_client_list_and_info_fields(d: Differ, resp: int) -> None:
    d.hello(resp)
    d.both(["CLIENT", "SETNAME", "me"])
    for argv in (["CLIENT", "INFO"], ["CLIENT", "LIST", "ID", str(d.client.id)]):
        ours, _ = d.ours(argv)
        theirs = d.real(argv if argv[1] == "INFO" else ["CLIENT", "INFO"])
        assert type(ours) is type(theirs)
        o = ours.data if isinstance(ours, Verbatim) else ours.value
        t = theirs.data if isinstance(theirs, Verbatim) else theirs.value
        assert _fields(o) == _fields(t)
        assert o.endswith(b"\n")
        assert b" name=me " in o and b" cmd=client|" in o and f"resp={resp}".encode() in o


def test_client_state(d: Differ) -> None:
    e = d.engine
    other = e.new_client(addr="10.0.0.1:5000")
    r, _ = e.execute(d.client, [b"CLIENT", b"LIST"])
    assert r.data.count(b"\n") == 2
    r, _ = e.execute(d.client, [b"CLIENT", b"KILL", b"ADDR", b"10.0.0.1:5000"])
    assert r == 1 and "closing" in other.flags and other.kill_requested
    r, _ = e.execute(d.client, [b"CLIENT", b"ID"])
    assert r == d.client.id
    e.execute(d.client, [b"MULTI"])
    e.execute(d.client, [b"PING"])
    r, _ = e.execute(d.client, [b"CLIENT", b"INFO"])
    assert r == Bulk(b"QUEUED") or r.value == b"QUEUED"  # type: ignore[union-attr]
    e.execute(d.client, [b"DISCARD"])
    r, _ = e.execute(d.client, [b"CLIENT", b"INFO"])
    assert b" multi=-1 " in r.data and b" flags=N " in r.data


def test_client_reply_modes(d: Differ) -> None:
    e, c = d.engine, d.client
    e.execute(c, [b"CLIENT", b"REPLY", b"SKIP"])
    assert c.reply_mode not in ("on", "skip")  # this reply is dropped
    e.execute(c, [b"PING"])
    assert c.reply_mode == "skip"  # the server drops this one and goes back to on
    c.reply_mode = "on"
    e.execute(c, [b"CLIENT", b"REPLY", b"OFF"])
    assert c.reply_mode == "off"
    e.execute(c, [b"CLIENT", b"REPLY", b"ON"])
    assert c.reply_mode == "on"
    d.check(["MULTI"])
    d.check(["CLIENT", "REPLY", "ON"])  # no_multi: rejected, transaction aborted
    d.check(["EXEC"])


def test_quit_and_reset(d: Differ) -> None:
    e = d.engine
    c = e.new_client()
    e.execute(c, [b"SELECT", b"2"])
    e.execute(c, [b"SUBSCRIBE", b"ch"])
    e.execute(c, [b"CLIENT", b"SETNAME", b"n"])
    e.execute(c, [b"WATCH", b"k"])
    r, _ = e.execute(c, [b"RESET"])
    assert r.value == b"RESET"
    assert c.db == 0 and not c.subscriptions and c.name is None and not c.watched
    assert b"ch" not in e.channels
    r, _ = e.execute(c, [b"QUIT"])
    assert r.value == b"OK" and "closing" in c.flags
    d.check(["SELECT", "1"])
    d.check(["RESET"])
    d.check(["SET", "k", "v"])  # back in db 0 on both sides


def test_requirepass(tmp_path: Path) -> None:
    cfg = Config()
    cfg.set("requirepass", "pw")
    with real_server(tmp_path / "rp", *REAL_ARGS, "--requirepass", "pw", wait=False) as srv:
        deadline = time.monotonic() + 30
        while True:  # realserver's own wait pings without a password
            try:
                srv.client(password="pw", socket_timeout=5).ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        d = Differ(srv, Engine(cfg))
        for argv in (
            ["GET", "k"],
            ["PING"],
            ["HELLO", "3"],
            ["AUTH", "bad"],
            ["AUTH", "default", "bad"],
            ["AUTH", "other", "pw"],
            ["GET", "k"],
            ["HELLO", "2", "AUTH", "default", "bad"],
            ["AUTH", "pw"],
            ["GET", "k"],
            ["RESET"],
            ["GET", "k"],
            ["AUTH", "default", "pw"],
            ["SET", "k", "v"],
        ):
            d.check(argv)
        d.close()
