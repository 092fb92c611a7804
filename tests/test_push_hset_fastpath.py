"""The fast paths of HSET/HMSET and single-element LPUSH/RPUSH (issue 7): encodings walked
across every threshold one command at a time and compared with valkey-server 9.1.2 (OBJECT
ENCODING after each step, replies and AOF), plus the signals the handlers must still send
(WATCH, keyspace events, blocked-client wakeups, lazy expiry) checked in-process."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from differential import REAL_ARGS, Differ
from realserver import RealServer, real_server

from engine.clock import ManualClock
from engine.engine import Engine
from engine.types.lists import List
from persistence.resp.frames import Array

# values whose listpack entry sizes differ: integers of every width, near-integers, strings
# around the 63/64-byte header step, and ones near and over the quicklist node limits
_VALUES: list[bytes] = [
    b"xxx", b"", b"0", b"127", b"128", b"-1", b"-4096", b"4096", b"-32769", b"8388607",
    b"8388608", b"2147483648", b"-9223372036854775808", b"99999999999999999999", b"-", b"01",
    b"12a", b"+5", b"x" * 63, b"y" * 64, b"z" * 200, b"w" * 2000,
]  # fmt: skip
_LARGE: list[bytes] = [b"L" * 4100, b"M" * 8200]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_server(tmp_path_factory.mktemp("fastpath"), *REAL_ARGS) as srv:
        yield srv


@pytest.fixture
def d(real: RealServer) -> Iterator[Differ]:
    differ = Differ(real)
    differ.real(["FLUSHALL"])
    differ.read_aof()
    differ.aof_db = 0
    yield differ
    for name, value in (
        ("list-max-listpack-size", "-2"),
        ("hash-max-listpack-entries", "512"),
        ("hash-max-listpack-value", "64"),
    ):
        differ.real(["CONFIG", "SET", name, value])
    differ.close()


def config_set(d: Differ, name: str, value: str) -> None:
    d.real(["CONFIG", "SET", name, value])
    d.engine.config.set(name, value)


def encoding(d: Differ, key: str) -> None:
    d.check(["OBJECT", "ENCODING", key])


# -- lists ------------------------------------------------------------------------------------
@pytest.mark.real
@pytest.mark.parametrize("fill", ["-2", "-1", "-5", "-7", "3", "0"])
def test_single_pushes_and_pops_walk_encodings(d: Differ, fill: str) -> None:
    """One element per LPUSH/RPUSH past listpack -> quicklist and its nodes' limits, then pops
    back down: the point where a single node converts back depends on exact node sizes."""
    config_set(d, "list-max-listpack-size", fill)
    n = 0
    values = _VALUES * 8 + _LARGE + _VALUES
    for i, v in enumerate(values):
        d.check(["LPUSH" if i % 3 else "RPUSH", "l", v])
        encoding(d, "l")
        n += 1
    while n:
        d.check(["RPOP" if n % 2 else "LPOP", "l"])
        encoding(d, "l")
        n -= 1


@pytest.mark.real
def test_many_small_pushes_default_fill(d: Differ) -> None:
    """redis-benchmark's LPUSH mylist xxx: listpack up to 8 KB, then 8 KB nodes."""
    for i in range(1800):
        d.check(["LPUSH" if i % 5 else "RPUSH", "mylist", b"xxx" if i % 7 else b"%d" % i])
        if i % 100 == 0 or 1700 <= i <= 1780:  # it converts at i = 1740
            encoding(d, "mylist")
    d.check(["LRANGE", "mylist", 0, 20])
    d.check(["LTRIM", "mylist", 0, 30])
    encoding(d, "mylist")
    for _ in range(20):
        d.check(["RPUSH", "mylist", "w" * 400])
        encoding(d, "mylist")


@pytest.mark.real
def test_pushx_and_wrong_type(d: Differ) -> None:
    d.check(["LPUSHX", "nx", "a"])
    d.check(["RPUSHX", "nx", "a"])
    d.check(["EXISTS", "nx"])
    d.check(["RPUSH", "x", "a"])
    d.check(["LPUSHX", "x", "b"])
    d.check(["RPUSHX", "x", "c", "d"])
    d.check(["LRANGE", "x", 0, -1])
    d.check(["SET", "s", "v"])
    d.check(["LPUSH", "s", "a"])
    d.check(["RPUSH", "s", "a", "b"])
    d.check(["LPUSHX", "s", "a"])
    d.check(["HSET", "s", "f", "v"])
    d.check(["HSET", "s", "f"])
    d.check(["HMSET", "s", "f"])
    d.check(["HSET", "s", "f", "v", "g"])
    # keys with a TTL take the general lookup
    d.check(["RPUSH", "t", "a"])
    d.check(["EXPIRE", "t", 1000])
    d.check(["LPUSH", "t", "b"])
    d.check(["HSET", "th", "a", "1"])
    d.check(["EXPIRE", "th", 1000])
    d.check(["HSET", "th", "b", "2"])
    d.check(["HGETALL", "th"])


# -- hashes -----------------------------------------------------------------------------------
@pytest.mark.real
def test_hset_walks_entries_and_value_sizes(d: Differ) -> None:
    config_set(d, "hash-max-listpack-entries", "4")
    config_set(d, "hash-max-listpack-value", "8")
    for i in range(7):  # one field at a time past 4 entries
        d.check(["HSET", "h", f"f{i}", "v"])
        d.check(["HSET", "h", f"f{i}", "w"])  # an update: no new entry
        encoding(d, "h")
    for size in (7, 8, 9):  # the value limit, on the field and on the value, HSET and HMSET
        for cmd in ("HSET", "HMSET"):
            d.check([cmd, f"fld{size}{cmd}", "a" * size, "1"])
            encoding(d, f"fld{size}{cmd}")
            d.check([cmd, f"val{size}{cmd}", "a", "1", "b", "b" * size])
            encoding(d, f"val{size}{cmd}")
    d.check(["HSET", "dups", *(["x", "1"] * 5)])  # more pairs than entries, one field
    encoding(d, "dups")
    d.check(["HSET", "four", *(["a", "1", "b", "2", "c", "3", "d", "4"])])
    encoding(d, "four")
    d.check(["HMSET", "four", "a", "9", "b", "9"])
    encoding(d, "four")
    d.check(["HSET", "four", "e", "5"])
    encoding(d, "four")
    d.check(["HGETALL", "four"])


@pytest.mark.real
def test_hset_default_limits(d: Differ) -> None:
    for i in range(515):
        d.check(["HSET", "myhash", b"element:%012d" % i, "xxx"])
        if i >= 509:
            encoding(d, "myhash")
    d.check(["HSET", "myhash", "element:000000000001", "yyy"])
    d.check(["HLEN", "myhash"])
    d.check(["HSET", "v", "a", "x" * 64])
    encoding(d, "v")
    d.check(["HSET", "v", "b", "x" * 65])
    encoding(d, "v")


@pytest.mark.real
def test_hset_over_field_ttls(d: Differ) -> None:
    """A hash with volatile fields takes the TTL-aware path: HSET clears the TTL it overwrites."""
    d.check(["HSET", "h", "a", "1", "b", "2", "c", "3"])
    d.check(["HEXPIRE", "h", 1000, "FIELDS", 2, "a", "b"])
    encoding(d, "h")
    d.check(["HSET", "h", "a", "9"])
    d.check(["HTTL", "h", "FIELDS", 3, "a", "b", "c"])
    d.check(["HSET", "h", "b", "9", "d", "4"])
    d.check(["HTTL", "h", "FIELDS", 4, "a", "b", "c", "d"])
    d.check(["HGETALL", "h"])


# -- signals, in-process ----------------------------------------------------------------------
def _run(e: Engine, client: Any, *argv: bytes) -> Any:
    return e.execute(client, list(argv))[0]


@pytest.mark.parametrize(
    "write",
    [
        [b"HSET", b"k", b"f", b"v"],
        [b"HMSET", b"k", b"f", b"v", b"g", b"w"],
        [b"LPUSH", b"k", b"a"],
        [b"RPUSH", b"k", b"a", b"b"],
    ],
)
@pytest.mark.parametrize("exists", [False, True])
def test_keyspace_events(write: list[bytes], exists: bool) -> None:
    e = Engine()
    a, b = e.new_client(), e.new_client()
    if exists:
        _run(e, a, *write)
    _run(e, a, b"CONFIG", b"SET", b"notify-keyspace-events", b"KEA")
    event = b"hset" if write[0] == b"HMSET" else write[0].lower()
    _run(e, b, b"SUBSCRIBE", b"__keyspace@0__:k")
    b.pushes.clear()
    _run(e, a, *write)
    assert repr(event) in repr(b.pushes), b.pushes


def test_watch_is_invalidated() -> None:
    for write in ([b"HSET", b"k", b"f", b"v"], [b"LPUSH", b"k", b"a"]):
        e = Engine()
        a, b = e.new_client(), e.new_client()
        _run(e, a, b"WATCH", b"k")
        _run(e, b, *write)
        _run(e, a, b"MULTI")
        _run(e, a, b"PING")
        reply = _run(e, a, b"EXEC")
        assert reply == Array(None), write


def test_push_signals_ready_only_on_creation() -> None:
    e = Engine()
    c = e.new_client()
    e.ready_keys.clear()
    _run(e, c, b"LPUSH", b"k", b"a")
    assert e.ready_keys == [(0, b"k")]
    e.ready_keys.clear()
    _run(e, c, b"LPUSH", b"k", b"b")
    _run(e, c, b"RPUSH", b"k", b"c", b"d")
    assert e.ready_keys == []


def test_lazy_expiry_before_push_and_hset() -> None:
    clock = ManualClock()
    e = Engine(clock=clock)
    c = e.new_client()
    _run(e, c, b"RPUSH", b"l", b"old")
    _run(e, c, b"HSET", b"h", b"old", b"1")
    _run(e, c, b"PEXPIRE", b"l", b"10")
    _run(e, c, b"PEXPIRE", b"h", b"10")
    clock.advance(11)
    reply, effects = e.execute(c, [b"LPUSH", b"l", b"new"])
    assert reply == 1
    assert [argv for _, argv in effects if argv[0] == b"UNLINK"] == [[b"UNLINK", b"l"]]
    assert e.ready_keys[-1] == (0, b"l")
    reply, effects = e.execute(c, [b"HSET", b"h", b"new", b"2"])
    assert reply == 1
    assert [argv for _, argv in effects if argv[0] == b"UNLINK"] == [[b"UNLINK", b"h"]]
    assert _run(e, c, b"HGETALL", b"h") == {b"new": b"2"}
    assert e.execute(c, [b"LPUSHX", b"gone", b"x"])[0] == 0


# -- List.push_one against List.push, node by node ----------------------------------------------
@pytest.mark.parametrize("fill", [-1, -2, -3, -5, -9, 0, 1, 3, 100])
@pytest.mark.parametrize("seed", range(4))
def test_push_one_is_push_of_one(fill: int, seed: int) -> None:
    """push_one's inlined quicklist accounting equals push()'s, node sizes included (what the
    shrink conversion back to listpack and RDB node layout depend on): mostly small elements,
    so that end nodes often come within SIZE_ESTIMATE_OVERHEAD of their limit."""
    rnd = random.Random(seed)
    one, many = List(), List()
    for _ in range(3000):
        r = rnd.random()
        if r < 0.02:
            v = rnd.choice(_VALUES + _LARGE)
        elif r < 0.3:
            v = b"%d" % rnd.randint(-(2**40), 2**40)
        else:
            v = b"x" * rnd.randint(0, 40)
        head = rnd.random() < 0.5
        one.push_one(v, head, fill)
        many.push([v], head, fill)
        assert (one.lp, one.nodes, one.fill) == (many.lp, many.nodes, many.fill)
    assert one.items == many.items
