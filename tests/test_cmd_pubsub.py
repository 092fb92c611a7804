"""Pub/sub: confirmation shapes (RESP2 arrays, RESP3 pushes) against valkey 9.1.2, message
delivery and keyspace notifications at the engine level (two ClientStates, their pushes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from differential import REAL_ARGS, Differ
from realserver import RealServer, real_server

from engine.engine import Engine
from persistence.resp import NEED_MORE
from persistence.resp.frames import Array, Bulk, Integer, Push

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_server(tmp_path_factory.mktemp("ps"), *REAL_ARGS) as srv:
        yield srv


@pytest.fixture
def d(real: RealServer) -> Iterator[Differ]:
    differ = Differ(real)
    yield differ
    differ.close()


def real_frames(d: Differ, argv: list[str]) -> list[Any]:
    """Every frame the real server sends for ``argv`` (a short read-until-quiet)."""
    from persistence.aof.encoder import encode_command

    d.sock.sendall(encode_command(argv))  # type: ignore[arg-type]
    out: list[Any] = []
    d.sock.settimeout(0.15)
    try:
        while True:
            f = d.parser.next_frame()
            if f is not NEED_MORE:
                out.append(f)
                continue
            try:
                data = d.sock.recv(1 << 20)
            except TimeoutError:
                break
            d.parser.feed(data)
    finally:
        d.sock.settimeout(10)
    return out


def our_frames(d: Differ, argv: list[str]) -> list[Any]:
    """Our pushes queued by the command, then its reply, as the server writes them."""
    from persistence.resp import ReplyParser
    from persistence.resp.reply import encode_value

    reply, _ = d.engine.execute(d.client, [a.encode() for a in argv])
    items = [*d.client.pushes, reply]
    d.client.pushes.clear()
    d.engine.pushed.discard(d.client)
    p = ReplyParser()
    for it in items:
        p.feed(encode_value(it, d.client.resp))
    out = []
    while (f := p.next_frame()) is not NEED_MORE:
        out.append(f)
    return out


def check_all(d: Differ, argv: list[str]) -> None:
    theirs = real_frames(d, argv)
    ours = our_frames(d, argv)
    assert ours == theirs, (argv, ours, theirs)


SEQUENCE = [
    ["SUBSCRIBE", "a", "b"],
    ["SUBSCRIBE", "a"],
    ["PSUBSCRIBE", "p*", "a*"],
    ["SSUBSCRIBE", "s1"],
    ["SSUBSCRIBE", "s2"],
    ["PING"],
    ["PING", "x"],
    ["GET", "k"],
    ["UNSUBSCRIBE", "a"],
    ["UNSUBSCRIBE", "zz"],
    ["PUNSUBSCRIBE", "zz"],
    ["SUNSUBSCRIBE", "s1"],
    ["UNSUBSCRIBE", "b"],
    ["UNSUBSCRIBE"],
    ["PUNSUBSCRIBE", "p*"],
    ["PUNSUBSCRIBE", "a*"],
    ["SUNSUBSCRIBE"],
    ["PUNSUBSCRIBE"],
    ["SUNSUBSCRIBE"],
    ["PING"],
    ["SUBSCRIBE"],
    ["PSUBSCRIBE"],
    ["SSUBSCRIBE"],
]


@pytest.mark.parametrize("resp", [2, 3])
def test_confirmations(d: Differ, resp: int) -> None:
    d.hello(resp)
    for argv in SEQUENCE:
        check_all(d, argv)


@pytest.mark.parametrize("resp", [2, 3])
def test_publish_and_pubsub_introspection(real: RealServer, d: Differ, resp: int) -> None:
    d.hello(resp)
    sub = Differ(real, d.engine)
    try:
        for argv in (["SUBSCRIBE", "news"], ["PSUBSCRIBE", "n*"], ["SSUBSCRIBE", "shard"]):
            check_all(sub, argv)
        for argv in (
            ["PUBLISH", "news", "hi"],
            ["PUBLISH", "none", "x"],
            ["SPUBLISH", "shard", "s"],
            ["SPUBLISH", "nope", "s"],
            ["PUBSUB", "CHANNELS"],
            ["PUBSUB", "CHANNELS", "n*"],
            ["PUBSUB", "CHANNELS", "x*"],
            ["PUBSUB", "NUMSUB", "news", "none", "news"],
            ["PUBSUB", "NUMSUB"],
            ["PUBSUB", "NUMPAT"],
            ["PUBSUB", "SHARDCHANNELS"],
            ["PUBSUB", "SHARDNUMSUB", "shard", "x"],
            ["PUBSUB", "HELP"],
            ["PUBSUB", "CHANNELS", "a", "b"],
            ["PUBSUB", "SHARDCHANNELS", "a", "b"],
            ["PUBSUB", "NUMPAT", "x"],
            ["PUBSUB"],
            ["PUBSUB", "x"],
            ["PUBLISH", "a"],
            ["SPUBLISH", "a"],
        ):
            d.check(argv)  # type: ignore[arg-type]
        # what the subscriber received: (p)message and smessage (RESP2 arrays)
        theirs = real_frames(sub, ["PING"])[:-1]
        ours = [f for f in sub.client.pushes]
        assert len(ours) == len(theirs) == 4  # "none" matches n* too
        assert [Array(list(p.items)) for p in ours] == theirs
        sub.client.pushes.clear()
    finally:
        sub.close()


def test_delivery_engine_level() -> None:
    e = Engine()
    a, b, pub = e.new_client(), e.new_client(), e.new_client()
    b.resp = 3
    e.execute(a, [b"SUBSCRIBE", b"ch"])
    e.execute(b, [b"PSUBSCRIBE", b"c?"])
    e.execute(b, [b"SSUBSCRIBE", b"sh"])
    r, _ = e.execute(pub, [b"PUBLISH", b"ch", b"m1"])
    assert r == 2
    assert a.pushes == [Push([Bulk(b"message"), Bulk(b"ch"), Bulk(b"m1")])]
    assert b.pushes == [Push([Bulk(b"pmessage"), Bulk(b"c?"), Bulk(b"ch"), Bulk(b"m1")])]
    r, _ = e.execute(pub, [b"SPUBLISH", b"sh", b"m2"])
    assert r == 1 and b.pushes[-1] == Push([Bulk(b"smessage"), Bulk(b"sh"), Bulk(b"m2")])
    assert e.pushed == {a, b}
    e.drop_client(b)
    assert not e.patterns and not e.shard_channels
    r, _ = e.execute(pub, [b"PUBLISH", b"ch", b"m3"])
    assert r == 1
    r, _ = e.execute(a, [b"GET", b"x"])  # RESP2 subscribed context
    assert b"only (P|S)SUBSCRIBE" in r.message
    r, _ = e.execute(a, [b"UNSUBSCRIBE"])
    assert r == Push([Bulk(b"unsubscribe"), Bulk(b"ch"), Integer(0)])


def test_keyspace_notifications() -> None:
    # channels and payloads as observed on 9.1.2 with notify-keyspace-events KEA
    e = Engine()
    sub, w = e.new_client(), e.new_client()
    r, _ = e.execute(w, [b"CONFIG", b"SET", b"notify-keyspace-events", b"KEA"])
    assert r.value == b"OK"
    e.execute(sub, [b"PSUBSCRIBE", b"__key*"])
    sub.pushes.clear()
    e.execute(w, [b"SET", b"k", b"v", b"EX", b"100"])
    e.execute(w, [b"DEL", b"k"])
    e.execute(w, [b"INCR", b"n"])
    got = [(p.items[2].value, p.items[3].value) for p in sub.pushes]
    assert got == [
        (b"__keyspace@0__:k", b"set"),
        (b"__keyevent@0__:set", b"k"),
        (b"__keyspace@0__:k", b"expire"),
        (b"__keyevent@0__:expire", b"k"),
        (b"__keyspace@0__:k", b"del"),
        (b"__keyevent@0__:del", b"k"),
        (b"__keyspace@0__:n", b"incrby"),
        (b"__keyevent@0__:incrby", b"n"),
    ]
    sub.pushes.clear()
    e.execute(w, [b"CONFIG", b"SET", b"notify-keyspace-events", b"Eg"])
    e.execute(w, [b"SELECT", b"3"])
    e.execute(w, [b"SET", b"a", b"1"])  # '$' not enabled
    e.execute(w, [b"DEL", b"a"])
    assert [(p.items[2].value, p.items[3].value) for p in sub.pushes] == [
        (b"__keyevent@3__:del", b"a")
    ]
    r, _ = e.execute(w, [b"CONFIG", b"SET", b"notify-keyspace-events", b"Q"])
    assert b"Invalid event class character" in r.message


def test_keyspace_notifications_real(real: RealServer, d: Differ) -> None:
    sub = Differ(real, d.engine)
    try:
        d.check(["CONFIG", "SET", "notify-keyspace-events", "KEA"])
        check_all(sub, ["PSUBSCRIBE", "__key*"])
        for argv in (["SET", "k", "v", "EX", "100"], ["DEL", "k"], ["INCR", "n"]):
            d.check(argv)  # type: ignore[arg-type]
            sub.read_aof()
        theirs = real_frames(sub, ["PING"])[:-1]
        assert [Array(list(p.items)) for p in sub.client.pushes] == theirs
    finally:
        d.check(["CONFIG", "SET", "notify-keyspace-events", ""])
        sub.close()
