"""Sorted-set commands: differential tests against valkey-server 9.1.2 (replies, errors,
propagation), OBJECT ENCODING conversions (listpack/skiplist), RESP3 doubles, blocking pops,
and a random command sequence property test. ZRANDMEMBER picks are random: checked by shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from differential import REAL_ARGS, Differ
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from realserver import RealServer, real_server

from engine.blocking import Block
from engine.types.base import type_info
from engine.types.zsets import ZSetObject, from_items
from persistence.records import ZSetValue
from persistence.resp.frames import Array

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_server(Path(tmp_path_factory.mktemp("zsets")), *REAL_ARGS) as srv:
        yield srv


def fresh(real: RealServer) -> Differ:
    d = Differ(real)
    d.real(["FLUSHALL"])
    d.real(["HELLO", "2"])
    d.real(["CONFIG", "SET", "zset-max-listpack-entries", "128"])
    d.real(["CONFIG", "SET", "zset-max-listpack-value", "64"])
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


def config(d: Differ, name: str, value: int | str) -> None:
    d.real(["CONFIG", "SET", name, value])
    d.engine.config.set(name, str(value))


def enc(d: Differ, key: str) -> None:
    d.check(["OBJECT", "ENCODING", key])


def run(d: Differ, *cmds: list[Any], unordered: bool = False) -> None:
    for c in cmds:
        d.check(c, unordered=unordered)


def test_zadd_scores(d: Differ) -> None:
    run(
        d,
        ["ZADD", "z", "1", "a", "2", "b", "1.5", "c"],
        ["ZADD", "z", "inf", "i", "-infinity", "ni", "+inf", "i2", "1e308", "big"],
        ["ZADD", "z", ".5", "d", "5.", "e", "+5", "f", "-.5", "g", "1e+2", "h", "00012", "j"],
        ["ZADD", "z", "4.9e-324", "tiny", "1e-320", "den", "-0", "zero", "0.1", "p1"],
        ["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        ["ZADD", "z", "0x10", "x"],
        ["ZADD", "z", "1e400", "x"],
        ["ZADD", "z", "1e-400", "x"],
        ["ZADD", "z", "2e-324", "x"],
        ["ZADD", "z", " 1", "x"],
        ["ZADD", "z", "1 ", "x"],
        ["ZADD", "z", "", "x"],
        ["ZADD", "z", "nan", "x"],
        ["ZADD", "z", "-", "x"],
        ["ZADD", "z", ".", "x"],
        ["ZADD", "z", "1", "ok", "bad", "x"],
        ["ZSCORE", "z", "zero"],
        ["ZSCORE", "z", "p1"],
        ["ZSCORE", "z", "tiny"],
        ["ZSCORE", "z", "nope"],
        ["ZSCORE", "missing", "a"],
        ["ZMSCORE", "z", "a", "nope", "i"],
        ["ZMSCORE", "missing", "a", "b"],
        ["ZCARD", "z"],
        ["ZCARD", "missing"],
    )


def test_zadd_options(d: Differ) -> None:
    run(
        d,
        ["ZADD", "z", "1", "a", "2", "b"],
        ["ZADD", "z", "NX", "5", "a", "3", "c"],
        ["ZADD", "z", "XX", "5", "a", "3", "d"],
        ["ZADD", "z", "XX", "CH", "6", "a", "2", "b"],
        ["ZADD", "z", "GT", "CH", "1", "a", "9", "b", "4", "e"],
        ["ZADD", "z", "LT", "CH", "1", "a", "10", "b"],
        ["ZADD", "z", "XX", "GT", "100", "a"],
        ["ZADD", "z", "ch", "incr", "5", "a"],
        ["ZADD", "z", "INCR", "NX", "5", "a"],
        ["ZADD", "z", "INCR", "XX", "5", "new"],
        ["ZADD", "z", "INCR", "GT", "-1", "a"],
        ["ZADD", "z", "INCR", "5", "fresh"],
        ["ZADD", "missing", "XX", "1", "a"],
        ["ZADD", "missing", "XX", "INCR", "1", "a"],
        ["ZADD", "z", "NX", "XX", "1", "a"],
        ["ZADD", "z", "GT", "LT", "1", "a"],
        ["ZADD", "z", "GT", "NX", "1", "a"],
        ["ZADD", "z", "INCR", "1", "a", "2", "b"],
        ["ZADD", "z", "1"],
        ["ZADD", "z", "NX"],
        ["ZADD", "z", "1", "a", "2"],
        ["ZADD", "z", "FOO", "1", "a"],
        ["ZADD", "z", "inf", "inf"],
        ["ZADD", "z", "INCR", "-inf", "inf"],
        ["ZINCRBY", "z", "inf", "inf"],
        ["ZINCRBY", "z", "2", "a"],
        ["ZINCRBY", "z", "x", "a"],
        ["ZINCRBY", "z", "nx", "a"],
        ["ZINCRBY", "z", "0", "a"],
        ["ZINCRBY", "newkey", "-2.5", "m"],
        ["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        ["ZADD", "z"],
        ["ZINCRBY", "z", "1"],
    )


def test_wrongtype(d: Differ) -> None:
    d.check(["SET", "s", "v"])
    for c in (
        ["ZADD", "s", "1", "a"], ["ZINCRBY", "s", "1", "a"], ["ZREM", "s", "a"], ["ZCARD", "s"],
        ["ZSCORE", "s", "a"], ["ZMSCORE", "s", "a"], ["ZRANK", "s", "a"], ["ZRANGE", "s", "0", "1"],
        ["ZRANGESTORE", "d", "s", "0", "1"], ["ZCOUNT", "s", "0", "1"],
        ["ZLEXCOUNT", "s", "-", "+"], ["ZREMRANGEBYRANK", "s", "0", "1"], ["ZPOPMIN", "s"],
        ["ZMPOP", "1", "s", "MIN"], ["BZPOPMIN", "s", "0"], ["ZUNION", "1", "s"],
        ["ZRANDMEMBER", "s"], ["ZSCAN", "s", "0"], ["ZADD", "s", "x", "a"],
    ):  # fmt: skip
        d.check(c)


def test_zrem_rank(d: Differ) -> None:
    run(
        d,
        ["ZADD", "z", "1", "a", "2", "b", "3", "c", "3", "d"],
        ["ZRANK", "z", "c"],
        ["ZREVRANK", "z", "c"],
        ["ZRANK", "z", "c", "WITHSCORE"],
        ["ZREVRANK", "z", "a", "withscore"],
        ["ZRANK", "z", "nope"],
        ["ZRANK", "z", "nope", "WITHSCORE"],
        ["ZRANK", "missing", "a", "WITHSCORE"],
        ["ZRANK", "z", "a", "WITHSCORE", "x"],
        ["ZREVRANK", "z", "a", "foo"],
        ["ZREM", "z", "a", "nope", "a"],
        ["ZREM", "missing", "a"],
        ["ZREM", "z", "b", "c", "d", "e"],
        ["EXISTS", "z"],
    )


def _fill(d: Differ, key: str, n: int, skiplist: bool = False) -> None:
    args: list[Any] = ["ZADD", key]
    for i in range(n):
        args += [str(i % 7), f"m{i:03d}"]
    d.check(args)
    if skiplist:
        d.check(["ZADD", key, "100", "x" * 65])


@pytest.mark.parametrize("skiplist", [False, True])
def test_ranges(d: Differ, skiplist: bool) -> None:
    _fill(d, "z", 20, skiplist)
    enc(d, "z")
    for c in (
        ["ZRANGE", "z", "0", "-1"], ["ZRANGE", "z", "2", "5", "WITHSCORES"],
        ["ZRANGE", "z", "-3", "-1", "REV", "WITHSCORES"], ["ZRANGE", "z", "5", "2"],
        ["ZRANGE", "z", "100", "200"], ["ZREVRANGE", "z", "0", "3", "WITHSCORES"],
        ["ZRANGE", "z", "(1", "3", "BYSCORE", "WITHSCORES"],
        ["ZRANGE", "z", "3", "(1", "BYSCORE", "REV", "LIMIT", "1", "3"],
        ["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "2", "4"],
        ["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "-1", "2"],
        ["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "1", "-1"],
        ["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "1", "0"],
        ["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "50", "1"],
        ["ZREVRANGEBYSCORE", "z", "+inf", "-inf", "LIMIT", "-2", "2"],
        ["ZREVRANGEBYSCORE", "z", "(5", "2", "WITHSCORES"],
        ["ZRANGEBYSCORE", "z", "(", "3"], ["ZRANGEBYSCORE", "z", "", ""],
        ["ZRANGEBYSCORE", "z", "1e400", "1e500"], ["ZRANGEBYSCORE", "z", "5", "1"],
        ["ZCOUNT", "z", "(1", "(4"], ["ZCOUNT", "z", "-inf", "+inf"], ["ZCOUNT", "z", "3", "3"],
        ["ZCOUNT", "z", "(3", "3"], ["ZCOUNT", "missing", "0", "1"],
        ["ZRANGEBYSCORE", "z", "nan", "1"], ["ZRANGEBYSCORE", "z", " 1", "2"],
        ["ZRANGEBYSCORE", "z", "0x1", "2"], ["ZCOUNT", "z", "a", "1"],
    ):  # fmt: skip
        d.check(c)


@pytest.mark.parametrize("skiplist", [False, True])
def test_lex(d: Differ, skiplist: bool) -> None:
    d.check(["ZADD", "z", *[x for c in "abcdefg" for x in ("0", c)]])
    if skiplist:
        d.check(["ZADD", "z", "0", "zz" * 40])
    enc(d, "z")
    for c in (
        ["ZRANGEBYLEX", "z", "-", "+"], ["ZRANGEBYLEX", "z", "[b", "(e"],
        ["ZRANGEBYLEX", "z", "(b", "[e", "LIMIT", "1", "2"], ["ZRANGEBYLEX", "z", "+", "-"],
        ["ZRANGEBYLEX", "z", "-", "-"], ["ZRANGEBYLEX", "z", "[c", "[c"],
        ["ZRANGEBYLEX", "z", "(c", "[c"], ["ZREVRANGEBYLEX", "z", "[e", "(b"],
        ["ZREVRANGEBYLEX", "z", "+", "-", "LIMIT", "-1", "2"],
        ["ZRANGEBYLEX", "z", "-", "+", "LIMIT", "-1", "2"],
        ["ZRANGE", "z", "[b", "[d", "BYLEX"], ["ZRANGE", "z", "[d", "[b", "BYLEX", "REV"],
        ["ZLEXCOUNT", "z", "-", "+"], ["ZLEXCOUNT", "z", "(a", "[c"],
        ["ZLEXCOUNT", "missing", "-", "+"], ["ZRANGEBYLEX", "z", "a", "+"],
        ["ZRANGEBYLEX", "z", "", "+"], ["ZRANGEBYLEX", "z", "-a", "+"],
        ["ZLEXCOUNT", "z", "[a", "b"],
    ):  # fmt: skip
        d.check(c)


def test_zrange_errors(d: Differ) -> None:
    d.check(["ZADD", "z", "1", "a"])
    for c in (
        ["ZRANGE", "z", "0", "-1", "LIMIT", "0", "1"],
        ["ZRANGE", "z", "(a", "[b", "BYLEX", "WITHSCORES"],
        ["ZRANGE", "z", "0", "-1", "REV", "REV"], ["ZRANGE", "z", "0", "-1", "BYSCORE", "BYLEX"],
        ["ZRANGEBYSCORE", "z", "0", "1", "REV"], ["ZRANGEBYSCORE", "z", "0", "1", "LIMIT", "0"],
        ["ZRANGEBYSCORE", "z", "0", "1", "LIMIT", "x", "1"],
        ["ZRANGESTORE", "d", "z", "0", "-1", "WITHSCORES"],
        ["ZREVRANGE", "z", "0", "-1", "LIMIT", "0", "1"], ["ZRANGE", "z", "x", "1"],
        ["ZRANGE", "z", "0", "-1", "XX"], ["ZRANGE", "missing", "0", "-1"],
        ["ZRANGEBYLEX", "z", "-", "+", "WITHSCORES"], ["ZRANGE", "z", "0"],
    ):  # fmt: skip
        d.check(c)


def test_zrangestore(d: Differ) -> None:
    _fill(d, "z", 20)
    run(
        d,
        ["ZRANGESTORE", "d", "z", "0", "4"],
        ["ZRANGE", "d", "0", "-1", "WITHSCORES"],
        ["ZRANGESTORE", "d", "z", "(1", "3", "BYSCORE", "LIMIT", "1", "2"],
        ["ZRANGESTORE", "d", "z", "[m005", "[m009", "BYLEX"],
        ["ZRANGESTORE", "d", "z", "5", "2"],
        ["EXISTS", "d"],
        ["ZRANGESTORE", "d", "missing", "0", "-1"],
        ["ZRANGESTORE", "d", "missing", "0", "-1"],
    )
    _fill(d, "big", 200)
    run(d, ["ZRANGESTORE", "d2", "big", "0", "130"])
    enc(d, "d2")
    run(d, ["ZRANGESTORE", "d3", "big", "0", "127"])
    enc(d, "d3")


def test_zremrange(d: Differ) -> None:
    _fill(d, "z", 30)
    run(
        d,
        ["ZREMRANGEBYRANK", "z", "0", "2"],
        ["ZREMRANGEBYRANK", "z", "-2", "-1"],
        ["ZREMRANGEBYRANK", "z", "10", "5"],
        ["ZREMRANGEBYSCORE", "z", "(1", "2"],
        ["ZREMRANGEBYSCORE", "z", "100", "200"],
        ["ZREMRANGEBYLEX", "z", "[m010", "(m015"],
        ["ZREMRANGEBYRANK", "z", "x", "1"],
        ["ZREMRANGEBYSCORE", "z", "x", "1"],
        ["ZREMRANGEBYLEX", "z", "x", "+"],
        ["ZREMRANGEBYRANK", "missing", "0", "1"],
        ["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        ["ZREMRANGEBYSCORE", "z", "-inf", "+inf"],
        ["EXISTS", "z"],
    )


def test_encodings(d: Differ) -> None:
    _fill(d, "a", 128)
    enc(d, "a")
    run(d, ["ZADD", "a", "1", "new"])
    enc(d, "a")
    run(d, ["ZREMRANGEBYRANK", "a", "0", "-3"])
    enc(d, "a")  # sticky
    run(d, ["ZADD", "b", "1", "x" * 64])
    enc(d, "b")
    run(d, ["ZADD", "b", "1", "y" * 65])
    enc(d, "b")
    run(d, ["ZADD", "c", "1", "a"], ["ZADD", "c", "XX", "1", "y" * 65])
    enc(d, "c")  # the hint converts even when nothing is added
    run(d, ["ZADD", "e", *[x for i in range(129) for x in ("1", "same")]])
    enc(d, "e")
    run(d, ["ZADD", "f", "-0", "m"], ["ZSCORE", "f", "m"], ["ZADD", "f", "1", "x" * 70])
    run(d, ["ZADD", "f", "-0", "n"], ["ZSCORE", "f", "n"], ["ZINCRBY", "f", "-0", "n"])
    enc(d, "f")
    config(d, "zset-max-listpack-entries", 2)
    run(d, ["ZADD", "g", "1", "a", "2", "b"])
    enc(d, "g")
    run(d, ["ZADD", "g", "3", "c"])
    enc(d, "g")
    run(d, ["ZADD", "h", "1", "a", "2", "b", "3", "c"])
    enc(d, "h")


def test_pops(d: Differ) -> None:
    run(
        d,
        ["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
        ["ZPOPMIN", "z"],
        ["ZPOPMAX", "z", "2"],
        ["ZPOPMIN", "z", "0"],
        ["ZPOPMIN", "missing"],
        ["ZPOPMIN", "missing", "3"],
        ["ZPOPMIN", "z", "10"],
        ["EXISTS", "z"],
        ["ZPOPMIN", "z", "-1"],
        ["ZPOPMIN", "z", "x"],
        ["ZPOPMIN", "z", "1", "2"],
        ["ZADD", "z", "1", "a", "2", "b", "3", "c"],
        ["ZMPOP", "2", "missing", "z", "MAX", "COUNT", "2"],
        ["ZMPOP", "1", "z", "min"],
        ["ZMPOP", "1", "missing", "MIN"],
        ["ZMPOP", "1", "z", "MIN", "COUNT", "5"],
        ["ZMPOP", "0", "z", "MIN"],
        ["ZMPOP", "1", "z", "FOO"],
        ["ZMPOP", "1", "z", "MIN", "COUNT", "0"],
        ["ZMPOP", "1", "z", "MIN", "COUNT", "x"],
        ["ZMPOP", "1", "z", "MIN", "COUNT", "1", "COUNT", "1"],
        ["ZMPOP", "2", "z", "MIN"],
        ["ZMPOP", "x", "z", "MIN"],
    )


def test_blocking(d: Differ) -> None:
    run(
        d,
        ["ZADD", "z", "1", "a", "2", "b", "3", "c"],
        ["BZPOPMIN", "missing", "z", "0"],
        ["BZPOPMAX", "z", "1.5"],
        ["BZMPOP", "0", "2", "missing", "z", "MIN", "COUNT", "5"],
        ["BZPOPMIN", "z", "-1"],
        ["BZPOPMIN", "z", "x"],
        ["BZPOPMIN", "z", "inf"],
        ["BZPOPMIN", "z", "1e400"],
        ["BZPOPMIN", "z", " 1"],
        ["BZMPOP", "0", "0", "z", "MIN"],
        ["BZMPOP", "x", "1", "z", "MIN"],
        ["BZMPOP", "0", "1", "z", "FOO"],
        ["ZADD", "h", "5", "x"],
        ["BZPOPMIN", "h", "0x10"],
    )


def test_blocking_block_object(d: Differ) -> None:
    eng = d.engine
    ctx_reply, _ = eng.execute(d.client, [b"BZPOPMIN", b"k1", b"k2", b"2.5"])
    assert isinstance(ctx_reply, Block)
    assert ctx_reply.keys == [b"k1", b"k2"] and ctx_reply.timeout_ms == 2500
    assert isinstance(ctx_reply.timeout_reply, Array) and ctx_reply.timeout_reply.items is None
    r, _ = eng.execute(d.client, [b"BZMPOP", b"0", b"1", b"k1", b"MAX"])
    assert isinstance(r, Block) and r.timeout_ms == 0
    eng.ready_keys.clear()
    eng.execute(d.client, [b"ZADD", b"k1", b"1", b"a"])
    assert (0, b"k1") in eng.ready_keys
    r, eff = eng.execute(d.client, [b"BZMPOP", b"0", b"1", b"k1", b"MAX"])
    assert r == [b"k1", [[b"a", 1.0]]] and eff == [(0, [b"ZPOPMAX", b"k1", b"1"])]


def test_blocking_in_multi(d: Differ) -> None:
    run(d, ["MULTI"], ["BZPOPMIN", "missing", "0"], ["BZMPOP", "0", "1", "missing", "MIN"],
        ["EXEC"])  # fmt: skip


def test_set_operations(d: Differ) -> None:
    run(
        d,
        ["ZADD", "a", "1", "x", "2", "y", "3", "z"],
        ["ZADD", "b", "10", "y", "20", "z", "30", "w"],
        ["SADD", "s", "x", "w", "q"],
        ["ZUNION", "2", "a", "b", "WITHSCORES"],
        ["ZUNION", "3", "a", "b", "s", "WEIGHTS", "1", "2", "3", "AGGREGATE", "MAX", "WITHSCORES"],
        ["ZINTER", "2", "a", "b", "AGGREGATE", "min", "WITHSCORES"],
        ["ZINTER", "2", "a", "a", "WITHSCORES"],
        ["ZINTER", "2", "a", "missing"],
        ["ZDIFF", "2", "a", "b", "WITHSCORES"],
        ["ZDIFF", "2", "a", "a"],
        ["ZDIFF", "2", "missing", "a"],
        ["ZINTERCARD", "2", "a", "b"],
        ["ZINTERCARD", "2", "a", "b", "LIMIT", "1"],
        ["ZINTERCARD", "3", "a", "b", "s"],
        ["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "2", "0.5"],
        ["ZRANGE", "d", "0", "-1", "WITHSCORES"],
        ["ZINTERSTORE", "d", "2", "a", "s"],
        ["ZRANGE", "d", "0", "-1", "WITHSCORES"],
        ["ZDIFFSTORE", "d", "2", "a", "s"],
        ["ZDIFFSTORE", "d", "2", "a", "a"],
        ["EXISTS", "d"],
        ["ZADD", "inf", "inf", "p", "-inf", "n"],
        ["ZADD", "ninf", "-inf", "p", "inf", "n"],
        ["ZUNION", "2", "inf", "ninf", "WITHSCORES"],
        ["ZINTER", "2", "inf", "ninf", "WEIGHTS", "0", "1", "WITHSCORES"],
        ["ZUNION", "1", "inf", "WEIGHTS", "0", "WITHSCORES"],
        ["ZUNION", "1", "a", "WITHSCORES", "WITHSCORES"],
    )
    for c in (
        ["ZUNIONSTORE", "d", "0", "a"], ["ZUNION", "0", "a"], ["ZINTERCARD", "0", "a"],
        ["ZINTERCARD", "x", "a"], ["ZUNION", "-1", "a"], ["ZDIFF", "2", "a"],
        ["ZUNION", "1", "a", "WEIGHTS", "x"], ["ZUNION", "1", "a", "AGGREGATE", "foo"],
        ["ZINTERCARD", "1", "a", "LIMIT", "x"], ["ZINTERCARD", "1", "a", "WITHSCORES"],
        ["ZUNIONSTORE", "d", "1", "a", "WITHSCORES"], ["ZDIFF", "1", "a", "WEIGHTS", "1"],
        ["SET", "str", "x"], ["ZUNION", "2", "a", "str", "WEIGHTS", "x"],
        ["ZUNION", "1", "a", "WEIGHTS", "1", "2"],
    ):  # fmt: skip
        d.check(c)
    _fill(d, "big", 200)
    run(d, ["ZUNIONSTORE", "e1", "1", "big"], ["ZINTERSTORE", "e2", "2", "big", "a"])
    run(d, ["ZDIFFSTORE", "e3", "2", "big", "a"])
    for k in ("e1", "e3"):
        enc(d, k)


def test_resp3(d: Differ) -> None:
    resp3(d)
    run(
        d,
        ["ZADD", "z", "1", "a", "2.5", "b", "-0", "c", "inf", "d"],
        ["ZSCORE", "z", "b"],
        ["ZSCORE", "z", "nope"],
        ["ZMSCORE", "z", "a", "nope"],
        ["ZINCRBY", "z", "1", "a"],
        ["ZADD", "z", "INCR", "1", "a"],
        ["ZADD", "z", "NX", "INCR", "1", "a"],
        ["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        ["ZRANGEBYSCORE", "z", "-inf", "+inf", "WITHSCORES"],
        ["ZRANK", "z", "b", "WITHSCORE"],
        ["ZRANK", "z", "nope", "WITHSCORE"],
        ["ZUNION", "1", "z", "WITHSCORES"],
        ["ZPOPMIN", "z"],
        ["ZPOPMIN", "z", "1"],
        ["ZPOPMAX", "missing"],
        ["ZMPOP", "1", "z", "MAX"],
        ["ZMPOP", "1", "missing", "MAX"],
        ["ZADD", "y", "1", "a", "2", "b"],
        ["BZPOPMIN", "y", "0"],
        ["BZMPOP", "0", "1", "y", "MIN"],
        ["ZRANDMEMBER", "missing"],
        ["ZRANDMEMBER", "missing", "2", "WITHSCORES"],
        ["ZSCAN", "z", "0"],
    )


def test_zrandmember(d: Differ) -> None:
    run(
        d,
        ["ZADD", "z", "1", "a", "2", "b", "3", "c"],
        ["ZRANDMEMBER", "z", "10"],
        ["ZRANDMEMBER", "z", "3", "WITHSCORES"],
        ["ZRANDMEMBER", "z", "0"],
        ["ZRANDMEMBER", "missing"],
        ["ZRANDMEMBER", "missing", "3"],
        ["ZRANDMEMBER", "z", "1", "WITHSCORES", "x"],
        ["ZRANDMEMBER", "z", "x", "WITHSCORES", "x"],
        ["ZRANDMEMBER", "z", "4611686018427387904", "WITHSCORES"],
        ["ZRANDMEMBER", "z", "-4611686018427387904", "WITHSCORES"],
        ["ZRANDMEMBER", "z", "1", "withscore"],
        ["ZRANDMEMBER", "z", "-9223372036854775808"],
    )
    for args, n in ((["ZRANDMEMBER", "z", "2"], 2), (["ZRANDMEMBER", "z", "-5"], 5),
                    (["ZRANDMEMBER", "z", "-4", "WITHSCORES"], 8)):  # fmt: skip
        ours, _ = d.ours(args)
        theirs = d.real(args)
        assert isinstance(ours, Array) and isinstance(theirs, Array)
        assert ours.items is not None and theirs.items is not None
        assert len(ours.items) == len(theirs.items) == n


def test_zscan(d: Differ) -> None:
    run(
        d,
        ["ZADD", "z", "1", "a", "2.5", "b", "3", "c"],
        ["ZSCAN", "z", "0"],
        ["ZSCAN", "z", "0", "NOSCORES"],
        ["ZSCAN", "z", "0", "MATCH", "[ab]", "COUNT", "1"],
        ["ZSCAN", "z", "0", "NOVALUES"],
        ["ZSCAN", "z", "x"],
        ["ZSCAN", "z", "0", "COUNT", "0"],
        ["ZSCAN", "missing", "0"],
    )
    _fill(d, "big", 300)
    seen: list[bytes] = []
    cursor = b"0"
    while True:
        reply, _ = d.ours(["ZSCAN", "big", cursor, "COUNT", "20"])
        cursor = reply.items[0].value
        seen += [f.value for f in reply.items[1].items]
        if cursor == b"0":
            break
    assert len(seen) == 600 and sorted(seen[::2]) == sorted(b"m%03d" % i for i in range(300))


def test_notifications(d: Differ) -> None:
    config(d, "notify-keyspace-events", "KEA")
    eng = d.engine
    sub = eng.new_client()
    eng.patterns.setdefault(b"__keyevent@0__:*", set()).add(sub)
    sub.patterns.add(b"__keyevent@0__:*")
    for c in (
        [b"ZADD", b"z", b"1", b"a", b"2", b"b", b"3", b"c"], [b"ZINCRBY", b"z", b"1", b"a"],
        [b"ZREM", b"z", b"a"], [b"ZPOPMIN", b"z"], [b"ZPOPMAX", b"z"],
        [b"ZADD", b"y", b"1", b"a", b"2", b"b"], [b"ZREMRANGEBYSCORE", b"y", b"1", b"1"],
        [b"ZUNIONSTORE", b"d", b"1", b"y"], [b"ZRANGESTORE", b"e", b"y", b"0", b"-1"],
        [b"ZINTERSTORE", b"d", b"2", b"y", b"nope"],
    ):  # fmt: skip
        eng.execute(d.client, c)
    events = [p.items[2].value.split(b":")[-1] + b" " + p.items[3].value for p in sub.pushes]
    assert events == [
        b"zadd z", b"zincr z", b"zrem z", b"zpopmin z", b"zpopmax z", b"del z", b"zadd y",
        b"zremrangebyscore y", b"zunionstore d", b"zrangestore e", b"del d",
    ]  # fmt: skip


def test_records() -> None:
    z = from_items([(b"b", 2.0), (b"a", 1.0)])
    assert z.listpack and list(z.sl) == [(1.0, b"a"), (2.0, b"b")]
    info = type_info(z)
    rec = info.to_record(z)
    assert isinstance(rec, ZSetValue) and rec.items == [(b"a", 1.0), (b"b", 2.0)]
    big = from_items([(b"m%d" % i, float(i)) for i in range(200)])
    assert not big.listpack and info.encoding(big) == "skiplist"
    assert info.from_record(info.to_record(big)).scores == big.scores
    c = info.copy(big)
    assert isinstance(c, ZSetObject) and c.scores == big.scores and c.sl is not big.sl


# -- property test ------------------------------------------------------------------------
_KEYS = ["z1", "z2", "z3"]
_MEMBERS = ["a", "b", "c", "d", "1", "x" * 70]
_SCORES = ["0", "1", "-1", "2.5", "inf", "-inf", "1e3", "(1", "x"]


@st.composite
def _zset_cmd(draw: st.DrawFn) -> list[str]:
    key = draw(st.sampled_from(_KEYS))
    mem = st.sampled_from(_MEMBERS)
    sc = st.sampled_from(_SCORES[:-2])
    rng = st.sampled_from([*_SCORES, "-inf", "+inf"])
    idx = st.integers(-4, 4).map(str)
    keys = draw(st.lists(st.sampled_from(_KEYS), min_size=1, max_size=3))
    kind = draw(st.integers(0, 16))
    if kind <= 2:
        opts = draw(st.lists(st.sampled_from(["NX", "XX", "GT", "LT", "CH"]), max_size=2))
        pairs = draw(st.lists(st.tuples(sc, mem), min_size=1, max_size=4))
        return ["ZADD", key, *opts, *[x for p in pairs for x in p]]
    if kind == 3:
        return ["ZINCRBY", key, draw(sc), draw(mem)]
    if kind == 4:
        return ["ZREM", key, *draw(st.lists(mem, min_size=1, max_size=3))]
    if kind == 5:
        return ["ZRANGE", key, draw(idx), draw(idx), "WITHSCORES"]
    if kind == 6:
        return ["ZRANGEBYSCORE", key, draw(rng), draw(rng), "WITHSCORES"]
    if kind == 7:
        return ["ZREVRANGEBYLEX", key, "+", "-", "LIMIT", draw(idx), draw(idx)]
    if kind == 8:
        return [draw(st.sampled_from(["ZRANK", "ZREVRANK"])), key, draw(mem), "WITHSCORE"]
    if kind == 9:
        return [draw(st.sampled_from(["ZPOPMIN", "ZPOPMAX"])), key, str(draw(st.integers(0, 3)))]
    if kind == 10:
        op = draw(st.sampled_from(["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"]))
        return [op, key, str(len(keys)), *keys]
    if kind == 11:
        op = draw(st.sampled_from(["ZUNION", "ZINTER", "ZDIFF"]))
        return [op, str(len(keys)), *keys, "WITHSCORES"]
    if kind == 12:
        return ["ZCOUNT", key, draw(rng), draw(rng)]
    if kind == 13:
        return ["ZREMRANGEBYSCORE", key, draw(rng), draw(rng)]
    if kind == 14:
        return ["ZMPOP", str(len(keys)), *keys, draw(st.sampled_from(["MIN", "MAX"])), "COUNT", "2"]
    if kind == 15:
        return ["ZRANGESTORE", key, draw(st.sampled_from(_KEYS)), draw(idx), draw(idx)]
    return ["ZMSCORE", key, draw(mem), draw(mem)]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(_zset_cmd(), min_size=1, max_size=15))
def test_random_sequences(real: RealServer, cmds: list[list[str]]) -> None:
    d = fresh(real)
    try:
        for c in cmds:
            d.check(c)
        for k in _KEYS:
            enc(d, k)
            d.check(["ZRANGE", k, "0", "-1", "WITHSCORES"])
    finally:
        d.close()
