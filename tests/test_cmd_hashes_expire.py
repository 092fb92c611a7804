"""Hash field TTLs at the engine level (keyspace notifications, WATCH, loading with a manual
clock) and the active field expiry job: engine-level with a manual clock, and against what a real
valkey-server 9.1.2's own active expiry appends to its AOF for the same state (spec 1.7)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from differential import REAL_ARGS, Differ
from realserver import RealServer, real_server

from engine.clock import ManualClock
from engine.engine import Engine, parse_notify_flags
from engine.types.hashes import Hash


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_server(Path(tmp_path_factory.mktemp("hashexpire")), *REAL_ARGS) as srv:
        yield srv


@pytest.fixture
def d(real: RealServer) -> Iterator[Differ]:
    dd = Differ(real)
    dd.real(["FLUSHALL"])
    dd.real(["DEBUG", "SET-ACTIVE-EXPIRE", "0"])
    dd.read_aof()
    dd.aof_db = 0
    yield dd
    dd.close()


def setup(d: Differ, *cmds: list[Any]) -> None:
    for c in cmds:
        d.check(c)


# -- notifications and WATCH (engine level) ------------------------------------------------
def test_notifications() -> None:
    e = Engine(clock=ManualClock())
    c = e.new_client()
    events: list[tuple[str, bytes]] = []
    e.notify = lambda cls, ev, key, db: events.append((cls, ev))  # type: ignore[method-assign]
    e.notify_flags = parse_notify_flags("KEA")  # Ctx.notify calls it

    def run(*argv: str) -> list[tuple[str, bytes]]:
        events.clear()
        e.execute(c, [a.encode() for a in argv])
        return list(events)

    assert run("HSETEX", "h", "EX", "10", "FIELDS", "1", "a", "1") == [
        ("h", b"hset"),
        ("h", b"hexpire"),
    ]
    assert run("HEXPIRE", "h", "20", "FIELDS", "1", "a") == [("h", b"hexpire")]
    assert run("HPERSIST", "h", "FIELDS", "1", "a") == [("h", b"hpersist")]
    assert run("HPERSIST", "h", "FIELDS", "1", "a") == []
    assert run("HGETEX", "h", "PX", "100", "FIELDS", "1", "a") == [("h", b"hexpire")]
    assert run("HGETEX", "h", "PERSIST", "FIELDS", "1", "a") == [("h", b"hpersist")]
    run("HSET", "h", "b", "2")
    assert run("HEXPIRE", "h", "0", "FIELDS", "1", "a") == [("h", b"hexpired")]
    assert run("HGETEX", "h", "EX", "0", "FIELDS", "1", "b") == [
        ("h", b"hexpired"),
        ("g", b"del"),
    ]
    assert run("HSETEX", "h", "EX", "0", "FIELDS", "1", "a", "1") == [
        ("h", b"hset"),
        ("h", b"hexpire"),
        ("h", b"hexpired"),
        ("g", b"del"),
    ]
    run("HSET", "h", "a", "1", "b", "2")
    assert run("HGETDEL", "h", "FIELDS", "2", "a", "b") == [("h", b"hdel"), ("g", b"del")]
    run("HSETEX", "h", "PX", "10", "FIELDS", "2", "a", "1", "b", "1")
    assert isinstance(e.clock, ManualClock)
    e.clock.advance(20)
    assert run("HSET", "h", "a", "2") == [("h", b"hexpired"), ("h", b"hset")]
    assert run("HINCRBY", "h", "b", "2") == [("h", b"hexpired"), ("h", b"hincrby")]


def test_watch_signalled() -> None:
    e = Engine(clock=ManualClock())
    c = e.new_client()
    e.execute(c, [b"HSET", b"h", b"a", b"1", b"b", b"2"])
    changing = [
        b"HEXPIRE h 100 FIELDS 1 a",
        b"HPERSIST h FIELDS 1 a",
        b"HSETEX h EX 10 FIELDS 1 a 2",
        b"HGETEX h PERSIST FIELDS 1 a",
        b"HGETEX h PX 1000 FIELDS 1 a",
        b"HGETDEL h FIELDS 1 b",
    ]
    unchanged = [
        b"HPERSIST h FIELDS 1 zz",
        b"HEXPIRE h 100 FIELDS 1 zz",
        b"HGETEX h EX 10 FIELDS 1 zz",
        b"HTTL h FIELDS 1 a",
        b"HSETEX h FNX FIELDS 1 a 1",
    ]
    for line in changing:
        e.keyspace.watch(c, 0, b"h")
        e.execute(c, line.split())
        assert c.dirty_cas, line
        e.keyspace.unwatch_all(c)
    for line in unchanged:
        e.keyspace.watch(c, 0, b"h")
        e.execute(c, line.split())
        assert not c.dirty_cas, line
        e.keyspace.unwatch_all(c)


# -- loading: no "already expired", expired fields visible --------------------------------
def test_loading_keeps_past_ttls() -> None:
    e = Engine(clock=ManualClock(10_000))
    c = e.new_client()
    e.loading = True
    e.execute(c, b"HSETEX h PXAT 5 FIELDS 2 a 1 b 2".split())
    e.execute(c, b"HSET h c 3".split())
    r, _ = e.execute(c, b"HPEXPIREAT h 7 FIELDS 1 c".split())
    assert r == [1]
    assert e.execute(c, b"HGET h a".split())[0] == b"1"
    assert e.execute(c, b"HLEN h".split())[0] == 3
    assert e.active_expire_fields() == []
    e.loading = False
    assert e.execute(c, b"HGET h a".split())[0] is None
    assert e.execute(c, b"HGETALL h".split())[0] == {}
    units = e.active_expire_fields()
    assert units == [
        [
            (-1, [b"MULTI"]),
            (0, [b"HDEL", b"h", b"a", b"b", b"c"]),
            (0, [b"UNLINK", b"h"]),
            (-1, [b"EXEC"]),
        ]
    ]


# -- the active field expiry job -------------------------------------------------------------
def test_active_expire_engine_clock() -> None:
    clock = ManualClock(1_000_000)
    e = Engine(clock=clock)
    c = e.new_client()
    events: list[tuple[str, bytes, bytes]] = []
    e.notify = lambda cls, ev, key, db: events.append((cls, ev, key))  # type: ignore[method-assign]
    e.notify_flags = parse_notify_flags("KEA")  # Ctx.notify calls it
    e.execute(c, b"HSET h1 a 1 b 2 c 3".split())
    e.execute(c, b"HPEXPIRE h1 100 FIELDS 2 a b".split())
    e.execute(c, b"HSETEX h2 PX 200 FIELDS 2 p 1 q 2".split())
    e.execute(c, b"HSETEX h3 PX 300 FIELDS 1 z 1".split())
    db = e.keyspace.dbs[0]
    assert db.volatile_keys == {b"h1", b"h2", b"h3"}
    assert e.active_expire_fields() == []
    clock.advance(100)  # expiry == now: not yet expired
    assert e.active_expire_fields() == []
    clock.advance(1)
    events.clear()
    assert e.active_expire_fields() == [[(0, [b"HDEL", b"h1", b"a", b"b"])]]
    assert events == [("x", b"hexpired", b"h1")]
    assert b"h1" not in db.volatile_keys
    assert e.keyspace.stats_expired_fields == 2
    assert e.execute(c, b"HGETALL h1".split())[0] == {b"c": b"3"}
    # a TTL pushed later: the stale heap entry is skipped
    e.execute(c, b"HPEXPIRE h2 1000 FIELDS 1 p".split())
    clock.advance(100)
    e.keyspace.lazyfree_lazy_expire = False
    assert e.active_expire_fields() == [[(0, [b"HDEL", b"h2", b"q"])]]
    clock.advance(100)
    assert e.active_expire_fields() == [
        [(-1, [b"MULTI"]), (0, [b"HDEL", b"h3", b"z"]), (0, [b"DEL", b"h3"]), (-1, [b"EXEC"])]
    ]
    assert db.volatile_keys == {b"h2"}
    e.execute(c, b"HPERSIST h2 FIELDS 1 p".split())
    assert not db.volatile_keys
    clock.advance(10_000)
    assert e.active_expire_fields() == []
    assert e.execute(c, b"HGETALL h2".split())[0] == {b"p": b"1"}


def test_active_expire_batches_and_budget() -> None:
    clock = ManualClock(1_000_000)
    e = Engine(clock=clock)
    c = e.new_client()
    fields = [b"f%d" % i for i in range(1500)]
    argv = [b"HSETEX", b"big", b"PX", b"10", b"FIELDS", b"1500"]
    for f in fields:
        argv += [f, b"v"]
    e.execute(c, argv)
    e.execute(c, [b"SELECT", b"3"])
    e.execute(c, b"HSETEX other PX 10 FIELDS 1 x 1".split())
    clock.advance(11)
    units = e.active_expire_fields(max_fields=1200)
    assert [len(u) for u in units] == [1, 1, 4]  # 1024 + 176 in db 0, then db 3
    assert units[0][0][1][:2] == [b"HDEL", b"big"] and len(units[0][0][1]) == 2 + 1024
    assert len(units[1][0][1]) == 2 + 176
    assert units[2] == [
        (-1, [b"MULTI"]),
        (3, [b"HDEL", b"other", b"x"]),
        (3, [b"UNLINK", b"other"]),
        (-1, [b"EXEC"]),
    ]
    rest = e.active_expire_fields()
    assert len(rest) == 1 and rest[0][0] == (-1, [b"MULTI"])
    assert rest[0][1][1][:2] == [b"HDEL", b"big"] and len(rest[0][1][1]) == 2 + 300
    assert rest[0][2] == (0, [b"UNLINK", b"big"])
    assert e.keyspace.stats_expired_fields == 1501
    assert not e.keyspace.dbs[0].data


def test_loaded_records_are_tracked() -> None:
    from persistence.records import HashValue, KeyRecord

    clock = ManualClock(1_000_000)
    e = Engine(clock=clock)
    rec = KeyRecord(0, b"h", HashValue([(b"a", b"1"), (b"b", b"2")], {b"a": 999_999}), None, "")
    e.keyspace.load_record(rec)
    h = e.keyspace.dbs[0].data[b"h"]
    assert isinstance(h, Hash) and not h.listpack
    assert e.active_expire_fields() == [[(0, [b"HDEL", b"h", b"a"])]]
    out = list(e.keyspace.records())
    assert isinstance(out[0].value, HashValue) and out[0].value.items == [(b"b", b"2")]


@pytest.mark.real
def test_active_expire_matches_real_server(d: Differ) -> None:
    """The real server's own active expiry vs our job on the same state."""
    setup(
        d,
        ["HSET", "h1", "a", "1", "b", "2", "c", "3"],
        ["HSET", "h3", "p", "1"],
        ["HSET", "h4", "x", "1", "y", "2"],
    )
    d.check(["HPEXPIRE", "h1", "50", "FIELDS", "1", "a"])
    d.check(["HPEXPIRE", "h3", "50", "FIELDS", "1", "p"])
    d.check(["HPEXPIRE", "h4", "50", "FIELDS", "2", "x", "y"])
    time.sleep(0.1)
    d.real(["DEBUG", "SET-ACTIVE-EXPIRE", "1"])
    deadline = time.monotonic() + 5
    theirs: list[list[bytes]] = []
    while time.monotonic() < deadline:
        time.sleep(0.3)
        theirs += d.read_aof()
        if sum(1 for cmd in theirs if cmd[0] == b"HDEL") >= 3:
            break
    d.real(["DEBUG", "SET-ACTIVE-EXPIRE", "0"])
    ours = [cmd for unit in d.engine.active_expire_fields() for _, cmd in unit]

    def units(cmds: list[list[bytes]]) -> list[tuple[bytes, ...]]:
        """Group into units (a MULTI..EXEC block or a bare command), fields of HDEL sorted."""
        out: list[tuple[bytes, ...]] = []
        cur: list[bytes] | None = None
        for cmd in cmds:
            if cmd[0] == b"SELECT":
                continue
            if cmd[0] == b"MULTI":
                cur = []
            elif cmd[0] == b"EXEC":
                assert cur is not None
                out.append(tuple(cur))
                cur = None
            else:
                norm = b" ".join(cmd[:2] + sorted(cmd[2:])) if cmd[0] == b"HDEL" else b" ".join(cmd)
                if cur is None:
                    out.append((norm,))
                else:
                    cur.append(norm)
        return sorted(out)

    assert units(ours) == units(theirs), (ours, theirs)
    assert units(ours) == sorted(
        [(b"HDEL h1 a",), (b"HDEL h3 p", b"UNLINK h3"), (b"HDEL h4 x y", b"UNLINK h4")]
    )
    d.check(["HGETALL", "h1"], unordered=True)


@pytest.mark.real
def test_notifications_match_real_server(real: RealServer) -> None:
    """Keyspace events of each command, in order, against the real server's."""
    r = real.client()
    r.flushall()
    r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0")
    r.config_set("notify-keyspace-events", "KEA")
    ps = r.pubsub()
    ps.psubscribe("__keyevent@0__:*")
    ps.get_message(timeout=1)
    e = Engine()
    c = e.new_client()
    ours: list[str] = []
    e.notify = lambda cls, ev, key, db: ours.append(ev.decode())  # type: ignore[method-assign]
    e.notify_flags = parse_notify_flags("KEA")  # Ctx.notify calls it
    script = [
        "HSET h a 1 b 2", "HSETEX h EX 10 FIELDS 1 a 1", "HSETEX h KEEPTTL FIELDS 1 a 2",
        "HSETEX h FNX FIELDS 1 a 2", "HEXPIRE h 0 FIELDS 1 a", "HSETEX h EX 0 FIELDS 1 zz 1",
        "HPEXPIRE h 20 FIELDS 1 b", "SLEEP", "HSET h b 5 c 6", "HPEXPIRE h 20 FIELDS 1 b",
        "SLEEP", "HSETEX h KEEPTTL FIELDS 1 b 7", "HPEXPIRE h 20 FIELDS 1 c", "SLEEP",
        "HINCRBYFLOAT h c 1", "HPERSIST h FIELDS 1 c", "HGETEX h PX 0 FIELDS 3 b c zz",
        "HSET h q 1", "HGETDEL h FIELDS 1 q", "HSETEX n EX 0 FIELDS 1 a 1",
        "HSETEX n2 NX FIELDS 1 a 1", "HSETEX n2 NX FIELDS 1 a 1", "HINCRBY n2 x 1",
        "HSETNX n2 y 1", "HDEL n2 a x y",
    ]  # fmt: skip
    try:
        for line in script:
            if line == "SLEEP":
                time.sleep(0.05)
                continue
            ours.clear()
            r.execute_command(*line.split())
            e.execute(c, [x.encode() for x in line.split()])
            theirs: list[str] = []
            deadline = time.monotonic() + 0.5
            while len(theirs) < len(ours) and time.monotonic() < deadline:
                m = ps.get_message(timeout=0.05)
                if m is not None and m["type"] == "pmessage":
                    theirs.append(m["channel"].decode().split(":", 1)[1])
            m = ps.get_message(timeout=0.02)
            assert m is None, (line, m)
            assert theirs == ours, line
    finally:
        r.config_set("notify-keyspace-events", "")
        ps.close()
        r.close()


def test_hsetex_past_time_deletes_an_expired_field(d: Differ) -> None:
    """HSETEX with a time in the past deletes the field even when it has expired and was not
    reclaimed yet (both sides' active expiry off), and propagates it in the HDEL (found by
    test_hash_ttl_clock_real.py)."""
    d.check(["HSETEX", "h1", "PX", "60", "FIELDS", "1", "a", "short"], tol=30)
    d.check(["HSETEX", "h2", "PX", "60", "FIELDS", "2", "a", "short", "b", "x"], tol=30)
    d.check(["HSET", "h2", "c", "1"])
    time.sleep(0.2)
    d.check(["HSETEX", "h1", "PX", "0", "FIELDS", "1", "a", "1"])
    d.check(["EXISTS", "h1"])
    d.check(["HSETEX", "h2", "PXAT", "1", "FIELDS", "2", "a", "1", "c", "2"])
    d.check(["HGETALL", "h2"], unordered=True)
    d.check(["HLEN", "h2"])


def test_debug_set_active_expire_stops_active_expiry() -> None:
    """DEBUG SET-ACTIVE-EXPIRE 0 stops the active expiry of keys and of hash fields (src/server.c
    databasesCron: server.active_expire_enabled); 1 starts it again."""
    clock = ManualClock(1_000_000)
    e = Engine(clock=clock)
    c = e.new_client()
    e.execute(c, b"SET k v PX 100".split())
    e.execute(c, b"HSETEX h PX 100 FIELDS 1 a 1".split())
    e.execute(c, b"HSET h b 2".split())
    clock.advance(200)
    e.execute(c, b"DEBUG SET-ACTIVE-EXPIRE 0".split())
    assert e.active_expire() == [] and e.active_expire_fields() == []
    e.execute(c, b"DEBUG SET-ACTIVE-EXPIRE 1".split())
    assert e.active_expire() == [[(0, [b"UNLINK", b"k"])]]
    assert e.active_expire_fields() == [[(0, [b"HDEL", b"h", b"a"])]]
