"""Hash commands without field TTLs: differential tests against valkey-server 9.1.2 (replies and
propagation), OBJECT ENCODING conversions, RESP3, and a random command sequence property test.
Field-TTL commands are in test_cmd_hashes_ttl.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from differential import REAL_ARGS, Differ
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from realserver import RealServer, real_server

from engine.engine import parse_notify_flags
from engine.types.hashes import Hash
from persistence.resp.frames import Array, Bulk

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_server(Path(tmp_path_factory.mktemp("hashes")), *REAL_ARGS) as srv:
        yield srv


def fresh(real: RealServer) -> Differ:
    """A new engine and a flushed real server, the AOF read past the FLUSHALL."""
    d = Differ(real)
    d.real(["FLUSHALL"])
    d.real(["CONFIG", "SET", "hash-max-listpack-entries", "512"])
    d.real(["CONFIG", "SET", "hash-max-listpack-value", "64"])
    d.read_aof()
    d.aof_db = 0
    return d


@pytest.fixture
def d(real: RealServer) -> Iterator[Differ]:
    dd = fresh(real)
    yield dd
    dd.close()


def resp3(d: Differ) -> None:
    d.real(["HELLO", "3"])
    d.client.resp = 3
    d.resp = 3


def encoding_matches(d: Differ, key: str) -> None:
    frame = d.real(["OBJECT", "ENCODING", key])
    theirs = frame.value if isinstance(frame, Bulk) else None
    h = d.engine.keyspace.dbs[d.client.db].data.get(key.encode())
    ours = None if h is None else (b"listpack" if h.listpack else b"hashtable")
    assert ours == theirs, (key, ours, theirs)


def setup(d: Differ, *cmds: list[Any]) -> None:
    for c in cmds:
        d.check(c)


# -- HSET / HMSET / HSETNX ------------------------------------------------------------------
def test_hset_basic(d: Differ) -> None:
    d.check(["HSET", "h", "a", "1"])
    d.check(["HSET", "h", "a", "2", "b", "3"])
    d.check(["hset", "h", "b", "3", "b", "4", "c", "5"])
    d.check(["HGET", "h", "b"])
    d.check(["HGETALL", "h"])
    d.check(["HLEN", "h"])
    d.check(["HMSET", "h", "x", "1", "y", "2"])
    d.check(["HKEYS", "h"])
    d.check(["HVALS", "h"])
    encoding_matches(d, "h")


def test_hset_errors(d: Differ) -> None:
    d.check(["SET", "s", "v"])
    d.check(["HSET", "h", "a"])
    d.check(["HSET", "h", "a", "1", "b"])
    d.check(["HMSET", "h", "a", "1", "b"])
    d.check(["HSET", "s", "a", "1"])
    d.check(["HMSET", "s", "a", "1"])
    d.check(["HSETNX", "s", "a", "1"])
    d.check(["HSETNX", "h", "a"])
    d.check(["HGET", "s", "a"])
    d.check(["HGET", "h"])
    d.check(["HMGET", "s", "a"])
    d.check(["HMGET", "h"])
    d.check(["HGETALL", "s"])
    d.check(["HKEYS", "s"])
    d.check(["HVALS", "s"])
    d.check(["HLEN", "s"])
    d.check(["HEXISTS", "s", "a"])
    d.check(["HSTRLEN", "s", "a"])
    d.check(["HDEL", "s", "a"])
    d.check(["HDEL", "h"])
    d.check(["HINCRBY", "s", "a", "1"])
    d.check(["HINCRBYFLOAT", "s", "a", "1"])
    d.check(["HRANDFIELD", "s"])
    d.check(["HSCAN", "s", "0"])


def test_hsetnx(d: Differ) -> None:
    d.check(["HSETNX", "h", "a", "1"])
    d.check(["HSETNX", "h", "a", "2"])
    d.check(["HSETNX", "h", "b", "2"])
    d.check(["HGETALL", "h"])


def test_missing_key_reads(d: Differ) -> None:
    d.check(["HGET", "nope", "a"])
    d.check(["HMGET", "nope", "a", "b"])
    d.check(["HGETALL", "nope"])
    d.check(["HKEYS", "nope"])
    d.check(["HVALS", "nope"])
    d.check(["HLEN", "nope"])
    d.check(["HEXISTS", "nope", "a"])
    d.check(["HSTRLEN", "nope", "a"])
    d.check(["HDEL", "nope", "a"])
    d.check(["HRANDFIELD", "nope"])
    d.check(["HRANDFIELD", "nope", "3"])
    d.check(["HRANDFIELD", "nope", "3", "WITHVALUES"])
    d.check(["HSCAN", "nope", "0"])


def test_reads(d: Differ) -> None:
    setup(d, ["HSET", "h", "a", "1", "b", "hello", "c", ""])
    d.check(["HMGET", "h", "a", "zz", "b", "a"])
    d.check(["HEXISTS", "h", "a"])
    d.check(["HEXISTS", "h", "zz"])
    d.check(["HSTRLEN", "h", "b"])
    d.check(["HSTRLEN", "h", "c"])
    d.check(["HSTRLEN", "h", "zz"])
    d.check(["HGET", "h", "c"])


# -- HDEL -----------------------------------------------------------------------------------
def test_hdel(d: Differ) -> None:
    setup(d, ["HSET", "h", "a", "1", "b", "2", "c", "3"])
    d.check(["HDEL", "h", "a", "zz"])
    d.check(["HDEL", "h", "zz"])
    d.check(["HDEL", "h", "b", "c", "a"])
    d.check(["HLEN", "h"])


# -- encodings ------------------------------------------------------------------------------
def test_encoding_conversions(d: Differ) -> None:
    d.check(["HSET", "small", "a", "1"])
    encoding_matches(d, "small")
    d.check(["HSET", "longval", "a", "x" * 65])
    encoding_matches(d, "longval")
    d.check(["HSET", "longfield", "f" * 65, "1"])
    encoding_matches(d, "longfield")
    d.check(["HSET", "exact", "f" * 64, "v" * 64])
    encoding_matches(d, "exact")
    args: list[Any] = ["HSET", "many"]
    for i in range(512):
        args += [f"f{i}", str(i)]
    d.check(args)
    encoding_matches(d, "many")
    d.check(["HSET", "many", "one-more", "x"])
    encoding_matches(d, "many")
    # sticky: deleting back below the limit keeps the hashtable
    d.check(["HDEL", "many", "one-more", "f1", "f2"])
    encoding_matches(d, "many")
    # HSET with > 512 pairs converts even when they repeat one field (hashTypeTryConversion)
    d.check(["HSET", "dups", *(["x", "1"] * 513)])
    encoding_matches(d, "dups")
    d.check(["HINCRBY", "inc", "f" * 70, "5"])
    encoding_matches(d, "inc")
    d.check(["HINCRBYFLOAT", "incf", "a", "1." + "1" * 70])
    encoding_matches(d, "incf")
    d.check(["HSETNX", "nx", "a", "v" * 65])
    encoding_matches(d, "nx")


def test_encoding_config(d: Differ) -> None:
    d.both(["CONFIG", "SET", "hash-max-listpack-entries", "2"])
    d.engine.config.values["hash-max-listpack-entries"] = 2
    d.check(["HSET", "h", "a", "1", "b", "2"])
    encoding_matches(d, "h")
    d.check(["HSET", "h", "c", "3"])
    encoding_matches(d, "h")
    d.check(["HSET", "k", "a", "1", "b", "2", "c", "3"])
    encoding_matches(d, "k")
    d.check(["HSETNX", "n", "a", "1"])
    d.check(["HSETNX", "n", "b", "1"])
    d.check(["HSETNX", "n", "c", "1"])
    encoding_matches(d, "n")


def test_hashtable_reads(d: Differ) -> None:
    args: list[Any] = ["HSET", "h"]
    for i in range(600):
        args += [f"f{i}", f"v{i}"]
    d.check(args)
    d.check(["HGETALL", "h"], unordered=True)
    d.check(["HKEYS", "h"], unordered=True)
    d.check(["HVALS", "h"], unordered=True)
    d.check(["HLEN", "h"])
    d.check(["HGET", "h", "f599"])


# -- HINCRBY / HINCRBYFLOAT -----------------------------------------------------------------
def test_hincrby(d: Differ) -> None:
    d.check(["HINCRBY", "h", "a", "5"])
    d.check(["HINCRBY", "h", "a", "-15"])
    d.check(["HINCRBY", "h", "a", "x"])
    d.check(["HINCRBY", "h", "a", "1.5"])
    d.check(["HSET", "h", "s", "abc", "big", "9223372036854775807", "neg", "-9223372036854775808"])
    d.check(["HINCRBY", "h", "s", "1"])
    d.check(["HINCRBY", "h", "big", "1"])
    d.check(["HINCRBY", "h", "big", "0"])
    d.check(["HINCRBY", "h", "neg", "-1"])
    d.check(["HINCRBY", "h", "neg", "9223372036854775807"])
    d.check(["HSET", "h", "sp", " 1", "lead", "01"])
    d.check(["HINCRBY", "h", "sp", "1"])
    d.check(["HINCRBY", "h", "lead", "1"])
    d.check(["HGETALL", "h"])


def test_hincrbyfloat(d: Differ) -> None:
    for incr in ["1.1", "0.1", "-5", "1e3", "3.0e3", "0x10", "1e-20", "-0.00000000000000001"]:
        d.check(["HINCRBYFLOAT", "h", "f", incr])
    d.check(["HINCRBYFLOAT", "h", "g", "10.5"])
    d.check(["HINCRBYFLOAT", "h", "g", "0.1"])
    d.check(["HINCRBYFLOAT", "h", "big", "1e4000"])
    d.check(["HINCRBYFLOAT", "h", "big", "1e4000"])
    d.check(["HINCRBYFLOAT", "h", "tiny", "1e-4940"])
    d.check(["HINCRBYFLOAT", "h", "b2", "1.18e4932"])
    d.check(["HINCRBYFLOAT", "h", "b2", "1.18e4932"])
    for bad in ["nan", "inf", "-inf", " 1", "1 ", "abc", "", "1e-4960", "1.19e4932", "0x", "."]:
        d.check(["HINCRBYFLOAT", "h", "f", bad])
    d.check(["HSET", "h", "s", "abc", "i", "inf", "n", "5"])
    d.check(["HINCRBYFLOAT", "h", "s", "1"])
    d.check(["HINCRBYFLOAT", "h", "i", "1"])
    d.check(["HINCRBYFLOAT", "h", "n", "2.5"])
    d.check(["HINCRBYFLOAT", "h", "n", "-7.5"])
    d.check(["HGETALL", "h"], unordered=True)


# -- HRANDFIELD -----------------------------------------------------------------------------
def test_hrandfield_errors_and_deterministic(d: Differ) -> None:
    setup(d, ["HSET", "h", "a", "1", "b", "2", "c", "3"])
    d.check(["HRANDFIELD", "h", "abc"])
    d.check(["HRANDFIELD", "h", "1", "bogus"])
    d.check(["HRANDFIELD", "h", "1", "withvalues", "x"])
    d.check(["HRANDFIELD", "h", "-9223372036854775808"])
    d.check(["HRANDFIELD", "h", "-9223372036854775807", "WITHVALUES"])
    d.check(["HRANDFIELD", "h", "4611686018427387904", "WITHVALUES"])
    d.check(["HRANDFIELD", "h", "0"])
    d.check(["HRANDFIELD", "h", "0", "WITHVALUES"])
    # count >= size: the whole hash in listpack order
    d.check(["HRANDFIELD", "h", "3"])
    d.check(["HRANDFIELD", "h", "10", "WITHVALUES"])
    d.check(["HRANDFIELD", "h", "4611686018427387903", "withvalues"])


def test_hrandfield_random(d: Differ) -> None:
    setup(d, ["HSET", "h", "a", "1", "b", "2", "c", "3", "d", "4"])
    for argv in (["HRANDFIELD", "h"], ["HRANDFIELD", "h", "2"], ["HRANDFIELD", "h", "-7"]):
        ours, theirs = d.both(argv)
        if isinstance(ours, Array):
            assert ours.items is not None and theirs.items is not None
            assert len(ours.items) == len(theirs.items)
            got = [x.value for x in ours.items]
            assert set(got) <= {b"a", b"b", b"c", b"d"}
            if argv[2] == "2":
                assert len(set(got)) == 2
        else:
            assert ours.value in (b"a", b"b", b"c", b"d")
    ours, theirs = d.both(["HRANDFIELD", "h", "-5", "WITHVALUES"])
    assert ours.items is not None and theirs.items is not None
    assert len(ours.items) == len(theirs.items) == 10
    vals = [x.value for x in ours.items]
    pairs = list(zip(vals[::2], vals[1::2]))
    assert all(dict(a=b"1", b=b"2", c=b"3", d=b"4")[f.decode()] == v for f, v in pairs)


def test_hrandfield_resp3(d: Differ) -> None:
    setup(d, ["HSET", "h", "a", "1", "b", "2"])
    resp3(d)
    d.check(["HRANDFIELD", "h", "5", "WITHVALUES"])
    d.check(["HRANDFIELD", "h", "2"])
    d.check(["HRANDFIELD", "nope", "2", "WITHVALUES"])
    d.check(["HRANDFIELD", "nope"])
    ours, theirs = d.both(["HRANDFIELD", "h", "-3", "WITHVALUES"])
    assert len(ours.items) == len(theirs.items) == 3
    assert all(isinstance(x, Array) and len(x.items) == 2 for x in ours.items)


# -- HSCAN ----------------------------------------------------------------------------------
def test_hscan_listpack(d: Differ) -> None:
    setup(d, ["HSET", "h", "a", "1", "b", "2", "ab", "3"])
    d.check(["HSCAN", "h", "0"])
    d.check(["HSCAN", "h", "0", "MATCH", "a*"])
    d.check(["HSCAN", "h", "0", "NOVALUES"])
    d.check(["HSCAN", "h", "0", "match", "a*", "novalues", "count", "1"])
    d.check(["HSCAN", "h", "12345"])
    d.check(["HSCAN", "h", "18446744073709551615"])
    for bad in (
        ["HSCAN", "h", "abc"],
        ["HSCAN", "h", "-1"],
        ["HSCAN", "h", "18446744073709551616"],
        ["HSCAN", "h", "0", "COUNT", "0"],
        ["HSCAN", "h", "0", "COUNT", "x"],
        ["HSCAN", "h", "0", "COUNT"],
        ["HSCAN", "h", "0", "MATCH"],
        ["HSCAN", "h", "0", "TYPE", "string"],
        ["HSCAN", "h", "0", "BOGUS"],
        ["HSCAN", "nope", "0", "BOGUS"],
        ["HSCAN", "nope", "x"],
        ["HSCAN", "h"],
    ):
        d.check(bad)


def test_hscan_hashtable(d: Differ) -> None:
    args: list[Any] = ["HSET", "h"]
    for i in range(700):
        args += [f"f{i}", f"v{i}"]
    d.check(args)
    for extra in ([], ["COUNT", "50"], ["MATCH", "f1*", "COUNT", "100"], ["NOVALUES"]):
        got: dict[str, set[bytes]] = {}
        for side in ("ours", "real"):
            cursor = b"0"
            seen: set[bytes] = set()
            for _ in range(10_000):
                argv = ["HSCAN", "h", cursor, *extra]
                if side == "ours":
                    frame, _ = d.ours(argv)
                else:
                    frame = d.real(argv)
                cursor = frame.items[0].value
                items = [x.value for x in frame.items[1].items]
                step = 1 if "NOVALUES" in extra else 2
                seen.update(items[::step])
                if cursor == b"0":
                    break
            got[side] = seen
        assert got["ours"] == got["real"]


# -- RESP3 ----------------------------------------------------------------------------------
def test_resp3_replies(d: Differ) -> None:
    setup(d, ["HSET", "h", "a", "1", "b", "2"])
    resp3(d)
    d.check(["HGETALL", "h"])
    d.check(["HGETALL", "nope"])
    d.check(["HKEYS", "h"])
    d.check(["HMGET", "h", "a", "zz"])
    d.check(["HGET", "h", "zz"])
    d.check(["HINCRBYFLOAT", "h", "f", "1.5"])
    d.check(["HSCAN", "h", "0"])
    d.check(["HRANDFIELD", "nope"])


# -- transactions: effects of several hash commands in one unit ------------------------------
def test_watch_signalled(d: Differ) -> None:
    e = d.engine
    c = d.client
    setup(d, ["HSET", "h", "a", "1"])
    cases: list[list[bytes]] = [
        [b"HSET", b"h", b"a", b"2"],
        [b"HSETNX", b"h", b"b", b"2"],
        [b"HINCRBY", b"h", b"n", b"1"],
        [b"HINCRBYFLOAT", b"h", b"n", b"1"],
        [b"HDEL", b"h", b"b"],
    ]
    for argv in cases:
        e.keyspace.watch(c, 0, b"h")
        e.execute(c, argv)
        assert c.dirty_cas, argv
        e.keyspace.unwatch_all(c)
    # no change, no signal
    e.keyspace.watch(c, 0, b"h")
    e.execute(c, [b"HSETNX", b"h", b"a", b"9"])
    e.execute(c, [b"HDEL", b"h", b"zz"])
    e.execute(c, [b"HGET", b"h", b"a"])
    assert not c.dirty_cas


def test_notifications(d: Differ) -> None:
    events: list[tuple[str, bytes, bytes]] = []
    d.engine.notify = lambda cls, ev, key, db: events.append((cls, ev, key))  # type: ignore[method-assign]
    d.engine.notify_flags = parse_notify_flags("KEA")  # Ctx.notify calls it
    e, c = d.engine, d.client
    e.execute(c, [b"HSET", b"h", b"a", b"1"])
    e.execute(c, [b"HSETNX", b"h", b"b", b"1"])
    e.execute(c, [b"HINCRBY", b"h", b"n", b"1"])
    e.execute(c, [b"HINCRBYFLOAT", b"h", b"n", b"1"])
    e.execute(c, [b"HDEL", b"h", b"a", b"b", b"n"])
    assert events == [
        ("h", b"hset", b"h"),
        ("h", b"hset", b"h"),
        ("h", b"hincrby", b"h"),
        ("h", b"hincrbyfloat", b"h"),
        ("h", b"hdel", b"h"),
        ("g", b"del", b"h"),
    ]


def test_records_roundtrip(d: Differ) -> None:
    from engine.types.base import type_info

    h = Hash()
    h.data = {b"a": b"1", b"b": b"2"}
    info = type_info(h)
    rec = info.to_record(h)
    back = info.from_record(rec)
    assert back.data == h.data and back.listpack
    h2 = Hash()
    h2.data = {b"a": b"1", b"b": b"2"}
    h2.expires = {b"a": 5}
    h2.listpack = False
    rec2 = info.to_record(h2)
    assert rec2.expires == {b"a": 5} and rec2.items == [(b"a", b"1"), (b"b", b"2")]
    back2 = info.from_record(rec2)
    assert not back2.listpack and back2.expires == {b"a": 5}
    assert info.encoding(back2) == "hashtable"
    cp = info.copy(h2)
    cp.data[b"z"] = b"9"
    cp.expires[b"b"] = 7
    assert b"z" not in h2.data and b"b" not in h2.expires


# -- random sequences -----------------------------------------------------------------------
_FIELDS = st.sampled_from(["a", "b", "c", "d", "1", "x" * 70])
_VALUES = st.sampled_from(["1", "-2", "v", "", "3.5", "9223372036854775807", "y" * 70])
_KEYS = st.sampled_from(["h1", "h2", "s"])


@st.composite
def _hash_cmd(draw: st.DrawFn) -> list[str]:
    k = draw(_KEYS)
    kind = draw(st.integers(0, 11))
    f = draw(_FIELDS)
    if kind == 0:
        pairs = draw(st.lists(st.tuples(_FIELDS, _VALUES), min_size=1, max_size=3))
        return ["HSET", k, *[x for p in pairs for x in p]]
    if kind == 1:
        return ["HSETNX", k, f, draw(_VALUES)]
    if kind == 2:
        return ["HDEL", k, *draw(st.lists(_FIELDS, min_size=1, max_size=3))]
    if kind == 3:
        return ["HINCRBY", k, f, draw(st.sampled_from(["1", "-3", "x", "9223372036854775807"]))]
    if kind == 4:
        return ["HINCRBYFLOAT", k, f, draw(st.sampled_from(["1.5", "-0.1", "x", "1e10"]))]
    if kind == 5:
        return ["HGET", k, f]
    if kind == 6:
        return ["HMGET", k, f, draw(_FIELDS)]
    if kind == 7:
        return ["HLEN", k]
    if kind == 8:
        return ["HEXISTS", k, f]
    if kind == 9:
        return ["HSTRLEN", k, f]
    if kind == 10:
        return ["HGETALL", k]
    return ["HMSET", k, f, draw(_VALUES)]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_hash_cmd(), min_size=1, max_size=12))
def test_random_sequences(real: RealServer, cmds: list[list[str]]) -> None:
    d = fresh(real)
    try:
        d.check(["SET", "s", "str"])
        for c in cmds:
            d.check(c, unordered=c[0] == "HGETALL")
        for k in ("h1", "h2"):
            encoding_matches(d, k)
    finally:
        d.close()
