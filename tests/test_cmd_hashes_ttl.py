"""Valkey 9 hash field TTLs: HSETEX HGETEX HGETDEL HEXPIRE HPEXPIRE HEXPIREAT HPEXPIREAT HPERSIST
HTTL HPTTL HEXPIRETIME HPEXPIRETIME, lazy hiding of expired fields, the propagated forms (spec 1.5)
against the real server's AOF, and a random command sequence test. Engine-level tests
(notifications, WATCH, loading) and the active field expiry job: test_cmd_hashes_expire.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from differential import REAL_ARGS, Differ
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from realserver import RealServer, real_server

from persistence.resp.frames import Bulk

pytestmark = pytest.mark.real

FUTURE_MS = 4_000_000_000_000  # 2096
FUTURE_S = FUTURE_MS // 1000


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_server(Path(tmp_path_factory.mktemp("hashttl")), *REAL_ARGS) as srv:
        yield srv


def fresh(real: RealServer) -> Differ:
    d = Differ(real)
    d.real(["FLUSHALL"])
    d.real(["DEBUG", "SET-ACTIVE-EXPIRE", "0"])  # expired fields stay until we say so
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


def expire_soon(d: Differ, key: str, *fields: str) -> None:
    """Give ``fields`` a 30 ms TTL on both sides and wait until they are logically expired."""
    d.check(["HPEXPIRE", key, "30", "FIELDS", len(fields), *fields])
    time.sleep(0.08)


# -- HEXPIRE family -------------------------------------------------------------------------
def test_hexpire_listpack(d: Differ) -> None:
    setup(d, ["HSET", "h", "a", "1", "b", "2", "c", "3", "d", "4"])
    d.check(["HEXPIRE", "h", "100", "XX", "FIELDS", "1", "a"])
    d.check(["HEXPIRE", "h", "100", "GT", "FIELDS", "2", "a", "zz"])
    encoding_matches(d, "h")
    d.check(["HEXPIRE", "h", "0", "XX", "FIELDS", "1", "a"])  # condition before the delete
    d.check(["HEXPIRE", "h", "0", "FIELDS", "1", "a"])
    encoding_matches(d, "h")
    d.check(["HEXPIRE", "h", "100", "NX", "FIELDS", "2", "b", "zz"])
    encoding_matches(d, "h")
    d.check(["HEXPIRE", "nope", "100", "FIELDS", "2", "b", "zz"])


def test_hexpire_conditions(d: Differ) -> None:
    setup(d, ["HSET", "h", "a", "1", "b", "2", "c", "3", "d", "4"])
    d.check(["HPEXPIRE", "h", "100000", "FIELDS", "2", "a", "b"])
    d.check(["HPEXPIRE", "h", "200000", "NX", "FIELDS", "3", "a", "c", "zz"])
    d.check(["HPEXPIRE", "h", "300000", "XX", "FIELDS", "3", "a", "d", "zz"])
    d.check(["HPEXPIRE", "h", "50000", "GT", "FIELDS", "3", "a", "d", "b"])
    d.check(["HPEXPIRE", "h", "400000", "GT", "FIELDS", "2", "a", "b"])
    d.check(["HPEXPIRE", "h", "10000", "LT", "FIELDS", "3", "a", "d", "c"])
    d.check(["HPEXPIRE", "h", "20000", "xx", "lt", "FIELDS", "2", "a", "d"])
    d.check(["HPEXPIRE", "h", "20000", "XX", "GT", "FIELDS", "2", "a", "d"])
    d.check(["HPTTL", "h", "FIELDS", "5", "a", "b", "c", "d", "zz"], tol=200)
    d.check(["HTTL", "h", "FIELDS", "5", "a", "b", "c", "d", "zz"], tol=1)
    d.check(["HPEXPIRETIME", "h", "FIELDS", "5", "a", "b", "c", "d", "zz"])
    d.check(["HEXPIRETIME", "h", "FIELDS", "5", "a", "b", "c", "d", "zz"], tol=1)
    d.check(["HPEXPIRE", "h", "0", "GT", "FIELDS", "2", "a", "d"])
    d.check(["HPEXPIRE", "h", "0", "LT", "FIELDS", "2", "a", "d"])
    d.check(["HLEN", "h"])


def test_hexpire_forms(d: Differ) -> None:
    setup(d, ["HSET", "h", "a", "1", "b", "2", "c", "3"])
    d.check(["HEXPIRE", "h", "1000", "FIELDS", "2", "a", "zz"])
    d.check(["hexpireat", "h", FUTURE_S, "FIELDS", "1", "b"])
    d.check(["hpexpireat", "h", FUTURE_MS, "FIELDS", "1", "c"])
    d.check(["HPEXPIREAT", "h", FUTURE_MS + 5, "nx", "FIELDS", "1", "c"])
    d.check(["HPEXPIREAT", "h", FUTURE_MS + 5, "xx", "FIELDS", "1", "c"])
    d.check(["HPEXPIREAT", "h", "1", "FIELDS", "2", "a", "zz"])
    d.check(["HEXPIREAT", "h", "1", "FIELDS", "1", "b"])
    d.check(["HEXPIRE", "h", "0", "FIELDS", "1", "c"])  # the last field: key deleted
    d.check(["HLEN", "h"])
    # a FIELDS token inside the fields; the key named fields
    setup(d, ["HSET", "fields", "FIELDS", "1"])
    d.check(["HEXPIRE", "fields", "100", "FIELDS", "1", "FIELDS"])
    d.check(["HEXPIRE", "fields", "100", "NX", "FIELDS", "2", "FIELDS", "x"])


def test_hexpire_errors(d: Differ) -> None:
    setup(d, ["SET", "s", "1"], ["HSET", "h", "a", "1"])
    for argv in (
        ["HEXPIRE", "s", "10", "FIELDS", "1", "a"],
        ["HEXPIRE", "s", "-1", "FIELDS", "1", "a"],
        ["HEXPIRE", "h", "-1", "FIELDS", "1", "a"],
        ["HEXPIRE", "s", "10", "FIELDS", "2", "a"],
        ["HEXPIRE", "s", "10", "NX", "XX", "FIELDS", "1", "a"],
        ["HEXPIRE", "s", "10", "NX", "GT", "FIELDS", "1", "a"],
        ["HEXPIRE", "s", "10", "LT", "NX", "FIELDS", "1", "a"],
        ["HEXPIRE", "s", "10", "GT", "LT", "FIELDS", "1", "a"],
        ["HEXPIRE", "s", "10", "BOGUS", "FIELDS", "1", "a"],
        ["HEXPIRE", "s", "10", "NX", "BOGUS", "XX", "FIELDS", "1", "a"],
        ["HEXPIRE", "s", "10", "xx", "gt", "FIELDS", "1", "a"],
        ["HEXPIRE", "s", "10", "NX", "NX", "FIELDS", "1", "a"],
        ["HEXPIRE", "s", "abc", "FIELDS", "1", "a"],
        ["HEXPIRE", "h", "10", "FIELDS", "1"],
        ["HEXPIRE", "h", "10", "a", "FIELDS", "1", "a"],
        ["HEXPIRE", "h", "10", "FIELDS", "0", "a"],
        ["HEXPIRE", "h", "10", "FIELDS", "-1", "a"],
        ["HEXPIRE", "h", "10", "FIELDS", "x", "a"],
        ["HEXPIRE", "h", "10", "FIELDS", "x", "FIELDS", "1", "a"],
        ["HEXPIRE", "h", "10", "NOFIELDS", "1", "a"],
        ["HEXPIRE", "h", "9223372036854775", "FIELDS", "1", "a"],
        ["HEXPIREAT", "h", "9223372036854776", "FIELDS", "1", "a"],
        ["HPEXPIRE", "h", "9223372036854775807", "FIELDS", "1", "a"],
        ["HPEXPIREAT", "h", "9223372036854775807", "FIELDS", "1", "a"],
        ["HPEXPIRE", "h", "-5", "FIELDS", "1", "a"],
        ["HEXPIREAT", "h", "-5", "FIELDS", "1", "a"],
    ):
        d.check(argv)


# -- HTTL family / HPERSIST -----------------------------------------------------------------
def test_httl_and_hpersist(d: Differ) -> None:
    setup(d, ["SET", "s", "1"], ["HSET", "h", "a", "1", "b", "2"])
    d.check(["HTTL", "h", "FIELDS", "2", "a", "zz"])
    d.check(["HPERSIST", "h", "FIELDS", "2", "a", "zz"])  # listpack: -1
    d.check(["HPEXPIRE", "h", "50000", "FIELDS", "1", "a"])
    d.check(["HPERSIST", "h", "FIELDS", "3", "a", "b", "zz"])
    d.check(["HPERSIST", "h", "FIELDS", "1", "a"])
    d.check(["HTTL", "h", "FIELDS", "1", "a"])
    d.check(["HPEXPIRETIME", "nope", "FIELDS", "1", "a"])
    for argv in (
        ["HTTL", "s", "FIELDS", "1", "a"],
        ["HTTL", "s", "FIELDS", "2", "a"],
        ["HTTL", "h", "FIELDS", "0", "a"],
        ["HTTL", "h", "FIELDS", "x", "a"],
        ["HTTL", "h", "BOGUS", "1", "a"],
        ["HTTL", "h", "BOGUS", "x", "a"],
        ["HTTL", "h", "fields", "1", "a"],
        ["HPTTL", "h", "FIELDS", "1"],
        ["HEXPIRETIME", "h", "FIELDS", "3", "a"],
        ["HPEXPIRETIME", "s", "FIELDS", "1", "a"],
        ["HPERSIST", "s", "FIELDS", "1", "a"],
        ["HPERSIST", "s", "FIELDS", "2", "a"],
        ["HPERSIST", "h", "BOGUS", "1", "a"],
        ["HPERSIST", "h", "FIELDS", "x", "a"],
        ["HPERSIST", "h", "FIELDS", "-1", "a"],
        ["HPERSIST", "h", "FIELDS"],
    ):
        d.check(argv)


# -- HSETEX ---------------------------------------------------------------------------------
def test_hsetex_basic(d: Differ) -> None:
    d.check(["HSETEX", "h", "FIELDS", "2", "a", "1", "b", "2"])
    encoding_matches(d, "h")
    d.check(["HSETEX", "h", "EX", "100", "FIELDS", "1", "a", "3"])
    encoding_matches(d, "h")
    d.check(["HSETEX", "h", "PX", "100000", "FIELDS", "1", "b", "4"])
    d.check(["HSETEX", "h", "EXAT", FUTURE_S, "FIELDS", "1", "c", "5"])
    d.check(["HSETEX", "h", "PXAT", FUTURE_MS, "FIELDS", "1", "d", "6"])
    d.check(["HSETEX", "h", "KEEPTTL", "FIELDS", "2", "a", "7", "z", "8"])
    d.check(["HPTTL", "h", "FIELDS", "5", "a", "b", "c", "d", "z"], tol=200)
    d.check(["HSETEX", "h", "FIELDS", "1", "a", "9"])  # no time option: TTL removed
    d.check(["HTTL", "h", "FIELDS", "1", "a"])
    d.check(["HSETEX", "h", "EX", "10", "EX", "20", "FIELDS", "1", "a", "x"])  # last wins
    d.check(["HTTL", "h", "FIELDS", "1", "a"], tol=1)
    d.check(["hsetex", "h", "ex", "10", "fields", "1", "a", "y"])
    d.check(["HGETALL", "h"], unordered=True)


def test_hsetex_conditions(d: Differ) -> None:
    d.check(["HSETEX", "h", "FNX", "FIELDS", "1", "a", "1"])
    d.check(["HSETEX", "h", "FNX", "FIELDS", "2", "b", "1", "a", "2"])
    d.check(["HSETEX", "h", "fnx", "EX", "100", "FIELDS", "1", "b", "1"])
    d.check(["HSETEX", "h", "FXX", "FIELDS", "2", "a", "3", "zz", "1"])
    d.check(["HSETEX", "h", "FXX", "KEEPTTL", "FIELDS", "2", "a", "3", "b", "4"])
    d.check(["HSETEX", "nope", "FXX", "FIELDS", "1", "a", "1"])
    d.check(["HSETEX", "nope", "FXX", "EX", "0", "FIELDS", "1", "a", "1"])
    d.check(["HSETEX", "h", "NX", "FIELDS", "1", "a", "1"])
    d.check(["HSETEX", "h", "XX", "FIELDS", "1", "n", "1"])
    d.check(["HSETEX", "new", "XX", "FIELDS", "1", "n", "1"])
    d.check(["HSETEX", "new", "NX", "FNX", "PX", "100000", "FIELDS", "1", "n", "1"])
    d.check(["HSETEX", "new2", "nx", "nx", "FIELDS", "1", "n", "1"])
    d.check(["HSETEX", "h", "FNX", "FNX", "FIELDS", "1", "q", "1"])
    d.check(["HSETEX", "h", "XX", "EX", "-1", "FIELDS", "1", "q", "1"])  # XX before the time
    d.check(["HSETEX", "zz", "XX", "EX", "-1", "FIELDS", "1", "q", "1"])
    d.check(["HSETEX", "zz", "FXX", "EX", "-1", "FIELDS", "1", "q", "1"])  # time before FXX
    d.check(["HGETALL", "h"], unordered=True)
    # the FNX/FXX/NX/XX tokens are dropped from every argument before the fields, key included
    d.check(["HSETEX", "nx", "FNX", "FIELDS", "1", "a", "b"])


def test_hsetex_delete_mode(d: Differ) -> None:
    setup(d, ["HSET", "h", "a", "1", "b", "2", "c", "3"])
    d.check(["HSETEX", "h", "EX", "0", "FIELDS", "2", "a", "x", "zz", "y"])
    d.check(["HSETEX", "h", "PXAT", "1", "FIELDS", "1", "zz", "y"])  # nothing existed
    d.check(["HSETEX", "h", "EXAT", "1", "FNX", "FIELDS", "1", "zz", "y"])
    d.check(["HSETEX", "h", "PX", "0", "FIELDS", "2", "b", "1", "c", "2"])  # empties the key
    d.check(["HLEN", "h"])
    d.check(["HSETEX", "nokey", "EX", "0", "FIELDS", "1", "a", "b"])
    d.check(["HLEN", "nokey"])


def test_hsetex_keepttl_over_expired(d: Differ) -> None:
    setup(d, ["HSET", "k1", "a", "old", "b", "2", "c", "3"])
    d.check(["HPEXPIRE", "k1", "100000", "FIELDS", "1", "b"])
    expire_soon(d, "k1", "a")
    d.check(["HSETEX", "k1", "KEEPTTL", "FIELDS", "2", "a", "new", "b", "nb"])
    d.check(["HTTL", "k1", "FIELDS", "2", "a", "b"], tol=1)
    expire_soon(d, "k1", "c")
    d.check(["HSETEX", "k1", "FXX", "KEEPTTL", "FIELDS", "1", "c", "n"])  # expired: FXX fails
    d.check(["HSETEX", "k1", "FNX", "KEEPTTL", "FIELDS", "1", "c", "n"])
    d.check(["HGETALL", "k1"], unordered=True)


def test_hsetex_errors(d: Differ) -> None:
    setup(d, ["SET", "s", "1"], ["HSET", "h", "a", "1"])
    for argv in (
        ["HSETEX", "h", "FNX", "FXX", "FIELDS", "1", "a", "b"],
        ["HSETEX", "h", "EX", "10", "PX", "10", "FIELDS", "1", "a", "b"],
        ["HSETEX", "h", "KEEPTTL", "EX", "10", "FIELDS", "1", "a", "b"],
        ["HSETEX", "h", "EX", "10", "KEEPTTL", "FIELDS", "1", "a", "b"],
        ["HSETEX", "h", "NX", "XX", "FIELDS", "1", "a", "b"],
        ["HSETEX", "h", "EX", "FIELDS", "1", "a", "b"],
        ["HSETEX", "h", "PERSIST", "FIELDS", "1", "a", "b"],
        ["HSETEX", "h", "GET", "FIELDS", "1", "a", "b"],
        ["HSETEX", "h", "IFEQ", "x", "FIELDS", "1", "a", "b"],
        ["HSETEX", "h", "FIELDS", "0"],
        ["HSETEX", "h", "FIELDS", "x", "a", "b"],
        ["HSETEX", "h", "FIELDS", "1", "a"],
        ["HSETEX", "h", "FIELDS", "-1", "a", "b"],
        ["HSETEX", "h", "FIELDS", "1", "a", "b", "c"],
        ["HSETEX", "h", "NOPE", "1", "a", "b"],
        ["HSETEX", "h", "EX", "-1", "FIELDS", "1", "a", "b"],
        ["HSETEX", "h", "EX", "abc", "FIELDS", "1", "a", "b"],
        ["HSETEX", "h", "EX", "9223372036854775", "FIELDS", "1", "a", "b"],
        ["HSETEX", "h", "PX", "9223372036854775807", "FIELDS", "1", "a", "b"],
        ["HSETEX", "fields", "x", "FIELDS", "1", "a", "b"],
        ["HSETEX", "s", "FIELDS", "1", "a", "b"],
        ["HSETEX", "s", "EX", "-1", "FIELDS", "1", "a", "b"],
        ["HSETEX", "s", "NX", "FIELDS", "1", "a", "b"],
        ["HSETEX", "s", "FNX", "FNX", "FXX", "FIELDS", "1", "a", "b"],
        ["HSETEX", "h", "FIELDS", "4611686018427387904", "a", "b"],
    ):
        d.check(argv)
    d.check(["HSETEX", "h", "FIELDS", "2", "FIELDS", "1", "a", "b"])


# -- HGETEX ---------------------------------------------------------------------------------
def test_hgetex(d: Differ) -> None:
    setup(d, ["HSET", "h", "a", "1", "b", "2", "c", "3", "d", "4"])
    d.check(["HGETEX", "h", "FIELDS", "2", "a", "zz"])
    d.check(["HGETEX", "h", "PERSIST", "FIELDS", "1", "a"])  # nothing to persist
    d.check(["HGETEX", "h", "EX", "100", "FIELDS", "2", "a", "zz"])
    encoding_matches(d, "h")
    d.check(["HGETEX", "h", "PX", "5000", "FIELDS", "2", "b", "a"])
    d.check(["HGETEX", "h", "EXAT", FUTURE_S, "FIELDS", "1", "c"])
    d.check(["HGETEX", "h", "PXAT", FUTURE_MS, "FIELDS", "1", "c"])
    d.check(["HPTTL", "h", "FIELDS", "3", "a", "b", "c"], tol=200)
    d.check(["HGETEX", "h", "PERSIST", "FIELDS", "3", "a", "zz", "d"])
    d.check(["HGETEX", "h", "PERSIST", "PERSIST", "FIELDS", "1", "b"])
    d.check(["HGETEX", "h", "EX", "0", "FIELDS", "3", "a", "zz", "a"])
    d.check(["HGETEX", "h", "EX", "0", "EX", "0", "FIELDS", "1", "b"])
    d.check(["HGETEX", "h", "PXAT", "1", "FIELDS", "2", "c", "d"])  # empties the key
    d.check(["HLEN", "h"])
    d.check(["HGETEX", "nope", "EX", "10", "FIELDS", "1", "a"])
    d.check(["HGETEX", "nope", "FIELDS", "1", "a"])


def test_hgetex_errors(d: Differ) -> None:
    setup(d, ["SET", "s", "1"], ["HSET", "h", "a", "1"])
    for argv in (
        ["HGETEX", "s", "FIELDS", "1", "a"],
        ["HGETEX", "s", "EX", "-1", "FIELDS", "1", "a"],
        ["HGETEX", "h", "EX", "-1", "FIELDS", "1", "a"],
        ["HGETEX", "h", "EX", "x", "FIELDS", "1", "a"],
        ["HGETEX", "h", "EX", "10", "PX", "10", "FIELDS", "1", "a"],
        ["HGETEX", "s", "FIELDS", "2", "a"],
        ["HGETEX", "h", "EX", "1", "PERSIST", "FIELDS", "1", "a"],
        ["HGETEX", "h", "PERSIST", "EX", "1", "FIELDS", "1", "a"],
        ["HGETEX", "h", "KEEPTTL", "FIELDS", "1", "a"],
        ["HGETEX", "h", "FNX", "FIELDS", "1", "a"],
        ["HGETEX", "h", "EX", "x", "FIELDS", "2", "a"],
        ["HGETEX", "h", "FIELDS"],
        ["HGETEX", "h", "a", "FIELDS", "1", "b"],
        ["HGETEX", "h", "FIELDS", "0", "a"],
        ["HGETEX", "h", "FIELDS", "-1", "a"],
        ["HGETEX", "h", "EX", "10", "FIELDS", "1"],
        ["HGETEX", "h", "NOFIELDS", "1", "a"],
        ["HGETEX", "h", "FIELDS", "1", "FIELDS"],
    ):
        d.check(argv)


# -- HGETDEL --------------------------------------------------------------------------------
def test_hgetdel(d: Differ) -> None:
    setup(d, ["SET", "s", "1"], ["HSET", "h", "a", "1", "b", "2", "c", "3"])
    d.check(["HGETDEL", "h", "FIELDS", "2", "a", "zz"])
    d.check(["HGETDEL", "h", "FIELDS", "1", "zz"])
    d.check(["HGETDEL", "h", "fields", "3", "b", "c", "b"])  # the last field: key deleted
    d.check(["HLEN", "h"])
    d.check(["HGETDEL", "nope", "FIELDS", "1", "a"])
    for argv in (
        ["HGETDEL", "h", "BOGUS", "1", "z"],
        ["HGETDEL", "s", "BOGUS", "1", "z"],
        ["HGETDEL", "h", "BOGUS", "x", "z"],
        ["HGETDEL", "h", "FIELDS", "2", "z"],
        ["HGETDEL", "h", "FIELDS", "x", "z"],
        ["HGETDEL", "h", "FIELDS", "0"],
        ["HGETDEL", "h", "FIELDS", "-1", "a"],
        ["HGETDEL", "s", "FIELDS", "1", "a"],
        ["HGETDEL", "s", "FIELDS", "2", "a"],
    ):
        d.check(argv)


# -- lazy hiding and the rewritten propagation of plain hash commands ----------------------
def test_expired_fields_hidden_not_deleted(d: Differ) -> None:
    setup(d, ["HSET", "h", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5"])
    expire_soon(d, "h", "a", "b", "c")
    d.check(["HLEN", "h"])  # raw count
    d.check(["HGET", "h", "a"])
    d.check(["HMGET", "h", "a", "d"])
    d.check(["HEXISTS", "h", "a"])
    d.check(["HSTRLEN", "h", "a"])
    d.check(["HGETALL", "h"], unordered=True)
    d.check(["HKEYS", "h"], unordered=True)
    d.check(["HVALS", "h"], unordered=True)
    d.check(["HSCAN", "h", "0"], unordered=True)
    d.check(["HRANDFIELD", "h", "10"], unordered=True)
    d.check(["HTTL", "h", "FIELDS", "2", "a", "d"])
    d.check(["HDEL", "h", "a"])  # not found
    d.check(["HGETDEL", "h", "FIELDS", "1", "b"])
    d.check(["HGETEX", "h", "EX", "0", "FIELDS", "1", "c"])
    d.check(["HPERSIST", "h", "FIELDS", "1", "c"])
    d.check(["HEXPIRE", "h", "100", "FIELDS", "1", "c"])
    d.check(["HLEN", "h"])
    d.check(["HSET", "h", "a", "new", "d", "x"])  # the expired field counts as created
    d.check(["HLEN", "h"])
    d.check(["HSETNX", "h", "b", "nb"])  # volatile hash: propagated as HSET
    d.check(["HINCRBY", "h", "c", "5"])
    d.check(["HGETALL", "h"], unordered=True)


def test_incr_on_volatile_hash(d: Differ) -> None:
    setup(d, ["HSET", "k2", "v", "1", "w", "5", "f", "1.5"])
    d.check(["HEXPIRE", "k2", "1000", "FIELDS", "2", "v", "f"])
    d.check(["HSETNX", "k2", "x", "1"])
    d.check(["HSETNX", "k2", "x", "1"])
    d.check(["HINCRBY", "k2", "v", "2"])  # HSETEX PXAT keeps the TTL
    d.check(["HINCRBY", "k2", "w", "2"])  # HSET
    d.check(["HINCRBY", "k2", "new", "2"])
    d.check(["HINCRBYFLOAT", "k2", "f", "2.5"])
    d.check(["HINCRBYFLOAT", "k2", "w", "0.5"])
    d.check(["HTTL", "k2", "FIELDS", "3", "v", "f", "w"], tol=1)
    d.check(["HPERSIST", "k2", "FIELDS", "2", "v", "f"])
    d.check(["HINCRBY", "k2", "v", "2"])  # no volatile field left: verbatim
    expire_soon(d, "k2", "w")
    d.check(["HINCRBY", "k2", "w", "1"])  # expired: starts from 0, no TTL


def test_spec_aof_excerpt(d: Differ) -> None:
    """The client sequence behind the observed AOF excerpt of spec 1.5."""
    setup(d, ["HSET", "h", "a", "1", "b", "2", "c", "3"])
    d.check(["HEXPIRE", "h", "100", "FIELDS", "2", "a", "zz"])
    d.check(["HPEXPIRE", "h", "0", "FIELDS", "2", "b", "zz"])
    d.check(["HSETEX", "h2", "FNX", "EX", "100", "FIELDS", "2", "x", "1", "y", "2"])
    d.check(["HGETEX", "h2", "PX", "5000", "FIELDS", "2", "x", "nope"])
    d.check(["HGETEX", "h2", "EX", "0", "FIELDS", "1", "y"])


def test_resp3_ttl_replies(d: Differ) -> None:
    setup(d, ["HSET", "h", "a", "1"])
    resp3(d)
    d.check(["HGETEX", "h", "EX", "100", "FIELDS", "2", "a", "zz"])
    d.check(["HGETDEL", "h", "FIELDS", "2", "zz", "a"])
    d.check(["HEXPIRE", "h", "100", "FIELDS", "1", "a"])
    d.check(["HTTL", "h", "FIELDS", "1", "a"])
    d.check(["HPERSIST", "nope", "FIELDS", "1", "a"])


def test_hgetall_with_ttls_hashtable(d: Differ) -> None:
    d.check(["HSETEX", "h", "EX", "100", "FIELDS", "2", "a", "1", "b", "2"])
    d.check(["HSET", "h", "c", "3"])
    d.check(["HGETALL", "h"], unordered=True)
    d.check(["HSCAN", "h", "0", "NOVALUES"], unordered=True)
    encoding_matches(d, "h")


# -- random sequences with field TTLs -------------------------------------------------------
_FIELDS = st.sampled_from(["a", "b", "c", "FIELDS"])
_KEYS = st.sampled_from(["h1", "h2", "s"])
# long enough never to expire during the test, or past/zero (delete)
_REL_S = st.sampled_from(["0", "1000", "2000", "-1"])
_REL_MS = st.sampled_from(["0", "1000000", "2000000"])
_ABS_MS = st.sampled_from(["1", str(FUTURE_MS), str(FUTURE_MS + 7)])
_ABS_S = st.sampled_from(["1", str(FUTURE_S), str(FUTURE_S + 1)])


@st.composite
def _ttl_cmd(draw: st.DrawFn) -> list[str]:
    k = draw(_KEYS)
    fields = draw(st.lists(_FIELDS, min_size=1, max_size=3))
    nf = [str(len(fields)), *fields]
    kind = draw(st.integers(0, 12))
    cond = draw(st.sampled_from([[], ["NX"], ["XX"], ["GT"], ["LT"], ["XX", "GT"]]))
    if kind == 0:
        name, t = draw(
            st.sampled_from(
                [
                    ("HEXPIRE", _REL_S),
                    ("HPEXPIRE", _REL_MS),
                    ("HEXPIREAT", _ABS_S),
                    ("HPEXPIREAT", _ABS_MS),
                ]
            )
        )
        return [name, k, draw(t), *cond, "FIELDS", *nf]
    if kind == 1:
        return ["HPERSIST", k, "FIELDS", *nf]
    if kind == 2:
        return [draw(st.sampled_from(["HTTL", "HEXPIRETIME", "HPEXPIRETIME"])), k, "FIELDS", *nf]
    if kind in (3, 4):
        opt = draw(
            st.sampled_from(
                [
                    [],
                    ["EX", "1000"],
                    ["PX", "0"],
                    ["EXAT", "1"],
                    ["PXAT", str(FUTURE_MS)],
                    ["KEEPTTL"],
                    ["FNX"],
                    ["FXX", "KEEPTTL"],
                    ["NX"],
                    ["XX", "EX", "500"],
                ]
            )
        )
        pairs = [x for f in fields for x in (f, draw(st.sampled_from(["1", "v", "2.5"])))]
        return ["HSETEX", k, *opt, "FIELDS", str(len(fields)), *pairs]
    if kind == 5:
        opt = draw(st.sampled_from([[], ["PERSIST"], ["EX", "1000"], ["PX", "0"], ["PXAT", "1"]]))
        return ["HGETEX", k, *opt, "FIELDS", *nf]
    if kind == 6:
        return ["HGETDEL", k, "FIELDS", *nf]
    if kind == 7:
        return ["HSET", k, fields[0], "1", *[x for f in fields[1:] for x in (f, "2")]]
    if kind == 8:
        return ["HSETNX", k, fields[0], "x"]
    if kind == 9:
        return ["HINCRBY", k, fields[0], "3"]
    if kind == 10:
        return ["HINCRBYFLOAT", k, fields[0], "1.5"]
    if kind == 11:
        return ["HDEL", k, *fields]
    return ["HGETALL", k]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_ttl_cmd(), min_size=1, max_size=14))
def test_random_ttl_sequences(real: RealServer, cmds: list[list[str]]) -> None:
    d = fresh(real)
    try:
        d.check(["SET", "s", "str"])
        for c in cmds:
            d.check(c, unordered=c[0] == "HGETALL", tol=1 if c[0] == "HEXPIRETIME" else None)
        for k in ("h1", "h2"):
            encoding_matches(d, k)
            d.check(["HLEN", k])
            d.check(["HPEXPIRETIME", k, "FIELDS", "4", "a", "b", "c", "FIELDS"])
    finally:
        d.close()
