"""List commands against a real valkey-server 9.1.2 (replies, errors, propagation, encodings),
the blocking logic at the engine level, and a random-sequence property test."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from differential import REAL_ARGS, Differ, same
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from realserver import RealServer, real_server

from engine.blocking import Block
from engine.commands.table import TABLE
from engine.context import Ctx
from engine.engine import Engine
from engine.types.lists import List, encoding, entry_size, from_items
from persistence.aof.encoder import encode_command
from persistence.records import ListValue
from persistence.resp import NEED_MORE, ReplyParser
from persistence.resp.frames import Array, Null
from persistence.resp.reply import encode_value

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_server(tmp_path_factory.mktemp("lists"), *REAL_ARGS) as srv:
        yield srv


@pytest.fixture
def d(real: RealServer) -> Iterator[Differ]:
    differ = Differ(real)
    reset(differ)
    yield differ
    differ.close()


# -- helpers that work whether or not the other command families are in the table yet --------
def _b(a: bytes | str | int) -> bytes:
    return a if isinstance(a, bytes) else str(a).encode()


def reset(d: Differ) -> None:
    d.real(["SELECT", 0])
    d.client.db = 0
    d.real(["FLUSHALL"])
    d.read_aof()
    d.aof_db = 0  # the real AOF now has db 0 selected (FLUSHALL came with its SELECT)
    for db in d.engine.keyspace.dbs:
        db.clear()


def resp3(d: Differ) -> None:
    d.hello(3)
    d.client.resp = 3


def config_set(d: Differ, name: str, value: str) -> None:
    d.real(["CONFIG", "SET", name, value])
    d.engine.config.set(name, value)


def check_encoding(d: Differ, key: str) -> None:
    if b"object" in TABLE:
        d.check(["OBJECT", "ENCODING", key])
        return
    theirs = d.real(["OBJECT", "ENCODING", key])
    value = d.engine.keyspace.dbs[d.client.db].data.get(_b(key))
    ours = None if value is None else encoding(value).encode()
    if isinstance(theirs, Null) or theirs.value is None:
        assert value is None, key
    else:
        assert ours == theirs.value, (key, ours, theirs)


def parse(reply: Any, resp: int) -> Any:
    p = ReplyParser()
    p.feed(encode_value(reply, resp))
    frame = p.next_frame()
    assert frame is not NEED_MORE
    return frame


def no_block(d: Differ, argv: list[bytes | str | int]) -> None:
    """The command as inside MULTI: real MULTI/cmd/EXEC vs our handler with may_block False."""
    d.real(["MULTI"])
    d.real(argv)
    exec_reply = d.real(["EXEC"])
    real_aof = d.read_aof()
    theirs = exec_reply.items[0]
    args = [_b(a) for a in argv]
    cmd = TABLE[args[0].lower()]
    ctx = Ctx(d.engine, d.client, d.engine.clock.now_ms())
    reply = d.engine.call(ctx, cmd, args, may_block=False)
    assert not isinstance(reply, Block)
    ours = parse(reply, d.client.resp)
    assert same(ours, theirs, tol=None, tol_ms=0, unordered=False), (argv, ours, theirs)
    # the real server wraps the transaction's effects in MULTI/EXEC
    inner = [c for c in real_aof if c[0] not in (b"MULTI", b"EXEC")]
    assert [c for _, c in ctx.effects] == inner, (argv, ctx.effects, real_aof)


# -- pushes and pops ---------------------------------------------------------------------------
def test_push_and_pop(d: Differ) -> None:
    d.check(["LPUSH", "l", "a", "b", "c"])
    d.check(["RPUSH", "l", "1", "2", "-7", "x"])
    d.check(["LPUSHX", "l", "h"])
    d.check(["RPUSHX", "l", "t1", "t2"])
    d.check(["LPUSHX", "nokey", "h"])
    d.check(["RPUSHX", "nokey", "h"])
    d.check(["LRANGE", "l", 0, -1])
    d.check(["LPOP", "l"])
    d.check(["RPOP", "l"])
    d.check(["LPOP", "l", 2])
    d.check(["RPOP", "l", 3])
    d.check(["LPOP", "l", 0])
    d.check(["LPOP", "l", 100])
    d.check(["EXISTS", "l"] if b"exists" in TABLE else ["LLEN", "l"])
    d.check(["LPOP", "l"])
    d.check(["LPOP", "l", 2])
    d.check(["RPOP", "l", 0])
    d.check(["LLEN", "l"])


def test_pop_errors_and_wrongtype(d: Differ) -> None:
    d.check(["SET", "s", "v"])
    d.check(["RPUSH", "l", "a"])
    for argv in (
        ["LPUSH", "s", "a"],
        ["RPUSHX", "s", "a"],
        ["LPOP", "s"],
        ["RPOP", "s", 1],
        ["LLEN", "s"],
        ["LRANGE", "s", 0, 1],
        ["LINDEX", "s", 0],
        ["LPOP", "l", -1],
        ["LPOP", "l", "abc"],
        ["LPOP", "nokey", "abc"],
        ["LPOP", "l", 1, 2],
        ["RPOP", "l", 1, 2],
        ["LPOP"],
        ["LPUSH", "l"],
        ["RPUSH"],
        ["LLEN"],
        ["LRANGE", "l", 0],
        ["LRANGE", "l", "x", 1],
        ["LRANGE", "nokey", "x", 1],
        ["LINDEX", "nokey", "x"],
        ["LINDEX", "l", "x"],
        ["LINDEX", "l", "99999999999999999999"],
    ):
        d.check(list[Any](argv))


def test_resp3_nulls(d: Differ) -> None:
    resp3(d)
    d.check(["RPUSH", "l", "a", "b"])
    d.check(["LPOP", "nokey"])
    d.check(["LPOP", "nokey", 2])
    d.check(["LINDEX", "l", 5])
    d.check(["LPOS", "l", "zz"])
    d.check(["LMPOP", 1, "nokey", "LEFT"])
    d.check(["LMOVE", "nokey", "l", "LEFT", "LEFT"])
    d.check(["RPOP", "l", 5])
    d.check(["LRANGE", "l", 0, -1])


# -- reads -------------------------------------------------------------------------------------
def test_lrange_lindex(d: Differ) -> None:
    d.check(["RPUSH", "l", *[str(i) for i in range(20)], "x", "", "-3"])
    for a, b in [(0, -1), (0, 0), (-3, -1), (5, 2), (-100, 3), (3, 100), (25, 30), (-1, -2),
                 (18, -1), (-23, -20), (0, -24)]:  # fmt: skip
        d.check(["LRANGE", "l", a, b])
    for i in (0, 5, -1, -23, -24, 22, 23, 100):
        d.check(["LINDEX", "l", i])
    d.check(["LRANGE", "nokey", 0, -1])
    d.check(["LLEN", "nokey"])
    d.check(["LLEN", "l"])


def test_lpos(d: Differ) -> None:
    d.check(["RPUSH", "l", "a", "b", "c", "a", "b", "a", "c", "a"])
    for opts in ([], ["RANK", 2], ["RANK", -1], ["RANK", -3], ["RANK", 9], ["COUNT", 0],
                 ["COUNT", 2], ["COUNT", 0, "RANK", -2], ["MAXLEN", 3], ["MAXLEN", 1, "COUNT", 0],
                 ["RANK", -1, "MAXLEN", 2, "COUNT", 5], ["rank", 1, "count", 1, "maxlen", 0],
                 ["RANK", 0], ["RANK", "x"], ["RANK", "-9223372036854775808"], ["COUNT", -1],
                 ["COUNT", "x"], ["MAXLEN", -1], ["MAXLEN", "x"], ["RANK"], ["FOO", 1],
                 ["RANK", 1, "COUNT"]):  # fmt: skip
        d.check(["LPOS", "l", "a", *opts])
    d.check(["LPOS", "l", "zz"])
    d.check(["LPOS", "l", "zz", "COUNT", 0])
    d.check(["LPOS", "nokey", "a"])
    d.check(["LPOS", "nokey", "a", "COUNT", 1])
    d.check(["LPOS", "nokey", "a", "RANK", 0])
    d.check(["SET", "s", "v"])
    d.check(["LPOS", "s", "a"])
    d.check(["LPOS", "s", "a", "RANK", 0])


# -- in-place changes --------------------------------------------------------------------------
def test_lset_linsert(d: Differ) -> None:
    d.check(["RPUSH", "l", "a", "b", "c"])
    d.check(["LSET", "l", 0, "A"])
    d.check(["LSET", "l", -1, "C"])
    d.check(["LSET", "l", 3, "x"])
    d.check(["LSET", "l", -4, "x"])
    d.check(["LSET", "l", "x", "x"])
    d.check(["LSET", "nokey", 0, "x"])
    d.check(["LSET", "nokey", "x", "x"])
    d.check(["LINSERT", "l", "BEFORE", "b", "1"])
    d.check(["LINSERT", "l", "after", "C", "2"])
    d.check(["LINSERT", "l", "AFTER", "zz", "2"])
    d.check(["LINSERT", "l", "middle", "b", "2"])
    d.check(["LINSERT", "nokey", "BEFORE", "b", "2"])
    d.check(["LINSERT", "nokey", "nowhere", "b", "2"])
    d.check(["LRANGE", "l", 0, -1])
    d.check(["SET", "s", "v"])
    d.check(["LSET", "s", 0, "x"])
    d.check(["LINSERT", "s", "BEFORE", "a", "b"])
    d.check(["LINSERT", "l", "BEFORE", "a"])


def test_lrem_ltrim(d: Differ) -> None:
    d.check(["RPUSH", "l", "a", "b", "a", "c", "a", "b", "a"])
    d.check(["LREM", "l", 2, "a"])
    d.check(["LRANGE", "l", 0, -1])
    d.check(["LREM", "l", -1, "b"])
    d.check(["LREM", "l", 0, "zz"])
    d.check(["LREM", "l", 0, "a"])
    d.check(["LRANGE", "l", 0, -1])
    d.check(["LREM", "l", "x", "a"])
    d.check(["LREM", "l", "-9223372036854775808", "a"])
    d.check(["LREM", "nokey", 1, "a"])
    d.check(["LREM", "l", 0, "b"])
    d.check(["LREM", "l", 0, "c"])
    d.check(["LLEN", "l"])
    d.check(["RPUSH", "t", *"abcdefgh"])
    d.check(["LTRIM", "t", 1, -2])
    d.check(["LTRIM", "t", 0, -1])
    d.check(["LTRIM", "t", -100, 100])
    d.check(["LRANGE", "t", 0, -1])
    d.check(["LTRIM", "t", 2, 3])
    d.check(["LRANGE", "t", 0, -1])
    d.check(["LTRIM", "t", "x", 3])
    d.check(["LTRIM", "nokey", 0, 1])
    d.check(["LTRIM", "t", 5, 1])
    d.check(["LLEN", "t"])
    d.check(["SET", "s", "v"])
    d.check(["LREM", "s", 0, "v"])
    d.check(["LTRIM", "s", 0, 1])


# -- moves -------------------------------------------------------------------------------------
def test_lmove_rpoplpush(d: Differ) -> None:
    d.check(["RPUSH", "src", "a", "b", "c", "d"])
    d.check(["LMOVE", "src", "dst", "LEFT", "RIGHT"])
    d.check(["LMOVE", "src", "dst", "right", "left"])
    d.check(["LMOVE", "src", "src", "LEFT", "RIGHT"])
    d.check(["RPOPLPUSH", "src", "dst"])
    d.check(["RPOPLPUSH", "src", "src"])
    d.check(["LRANGE", "src", 0, -1])
    d.check(["LRANGE", "dst", 0, -1])
    d.check(["LMOVE", "src", "dst", "UP", "LEFT"])
    d.check(["LMOVE", "src", "dst", "LEFT", "DOWN"])
    d.check(["LMOVE", "nokey", "dst", "LEFT", "LEFT"])
    d.check(["RPOPLPUSH", "nokey", "dst"])
    d.check(["SET", "s", "v"])
    d.check(["LMOVE", "src", "s", "LEFT", "LEFT"])
    d.check(["LMOVE", "s", "dst", "LEFT", "LEFT"])
    d.check(["RPOPLPUSH", "src", "s"])
    d.check(["LLEN", "src"])
    d.check(["LMOVE", "src", "dst", "LEFT", "LEFT"])
    d.check(["LMOVE", "src", "dst", "LEFT", "LEFT"])
    d.check(["LRANGE", "dst", 0, -1])
    d.check(["LMOVE", "src", "dst", "LEFT"])


def test_lmpop(d: Differ) -> None:
    d.check(["RPUSH", "b", "1", "2", "3", "4", "5"])
    d.check(["LMPOP", 2, "a", "b", "LEFT"])
    d.check(["LMPOP", 2, "a", "b", "RIGHT", "COUNT", 2])
    d.check(["LMPOP", 2, "a", "b", "right", "count", 10])
    d.check(["LMPOP", 2, "a", "b", "LEFT"])
    for bad in (
        [0, "a", "LEFT"],
        [-1, "a", "LEFT"],
        ["x", "a", "LEFT"],
        [3, "a", "LEFT"],
        [1, "a", "MIDDLE"],
        [1, "a", "LEFT", "COUNT"],
        [1, "a", "LEFT", "COUNT", 0],
        [1, "a", "LEFT", "COUNT", "x"],
        [1, "a", "LEFT", "COUNT", 1, "COUNT", 2],
        [1, "a", "LEFT", "FOO"],
        [1, "a"],
    ):
        d.check(["LMPOP", *bad])
    d.check(["SET", "s", "v"])
    d.check(["RPUSH", "c", "x"])
    d.check(["LMPOP", 2, "s", "c", "LEFT"])
    d.check(["LMPOP", 2, "c", "s", "LEFT"])


# -- blocking commands, served at once ---------------------------------------------------------
def test_blocking_served_immediately(d: Differ) -> None:
    d.check(["RPUSH", "a", "1", "2", "3", "4", "5", "6", "7", "8"])
    d.check(["BLPOP", "nokey", "a", 0])
    d.check(["BRPOP", "a", "nokey", "0.5"])
    d.check(["BLMOVE", "a", "b", "LEFT", "RIGHT", 0])
    d.check(["BLMOVE", "a", "b", "right", "left", "1.5"])
    d.check(["BRPOPLPUSH", "a", "b", 0])
    d.check(["BLMPOP", 0, 2, "nokey", "a", "LEFT"])
    d.check(["BLMPOP", "0.01", 1, "a", "RIGHT", "COUNT", 10])
    d.check(["EXISTS", "a"] if b"exists" in TABLE else ["LLEN", "a"])
    d.check(["BLPOP", "b", "0x10"])
    d.check(["BLPOP", "b", "1e3"])
    d.check(["LRANGE", "b", 0, -1])


def test_blocking_errors(d: Differ) -> None:
    d.check(["RPUSH", "a", "1"])
    d.check(["SET", "s", "v"])
    for argv in (
        ["BLPOP", "a", "abc"],
        ["BLPOP", "a", "-1"],
        ["BLPOP", "a", "inf"],
        ["BLPOP", "a", "-inf"],
        ["BLPOP", "a", "nan"],
        ["BLPOP", "a", " 1"],
        ["BLPOP", "a", "1e400"],
        ["BLPOP", "a", "9223372036854775.807"],
        ["BLPOP", "a", ""],
        ["BRPOP", "a", "1x"],
        ["BLPOP", "s", "a", 0],
        ["BLPOP", "a"],
        ["BLMOVE", "a", "b", "LEFT", "RIGHT", "x"],
        ["BLMOVE", "a", "b", "NOPE", "RIGHT", "x"],
        ["BLMOVE", "a", "b", "LEFT", "RIGHT", "-2"],
        ["BLMOVE", "s", "b", "LEFT", "RIGHT", 0],
        ["BLMOVE", "a", "s", "LEFT", "RIGHT", 0],
        ["BRPOPLPUSH", "a", "b", "x"],
        ["BRPOPLPUSH", "a", "s", 0],
        ["BLMPOP", "x", 1, "a", "LEFT"],
        ["BLMPOP", "-1", 1, "a", "LEFT"],
        ["BLMPOP", 0, 0, "a", "LEFT"],
        ["BLMPOP", "x", 0, "a", "LEFT"],
        ["BLMPOP", 0, 1, "a", "LEFT", "COUNT", 0],
        ["BLMPOP", "x", 1, "a", "LEFT", "COUNT", 0],
        ["BLMPOP", 0, 1, "s", "LEFT"],
        ["BLMPOP", 0, 1, "a"],
    ):
        d.check(list[Any](argv))


def test_blocking_in_multi_answers_as_timeout(d: Differ) -> None:
    d.check(["RPUSH", "full", "x", "y"])
    for resp in (2, 3):
        if resp == 3:
            resp3(d)
        no_block(d, ["BLPOP", "nokey", 0])
        no_block(d, ["BRPOP", "nokey", "nokey2", 1])
        no_block(d, ["BLMOVE", "nokey", "dst", "LEFT", "RIGHT", 0])
        no_block(d, ["BRPOPLPUSH", "nokey", "dst", 0])
        no_block(d, ["BLMPOP", 0, 1, "nokey", "LEFT"])
    no_block(d, ["BLPOP", "nokey", "full", 0])
    no_block(d, ["BLMOVE", "full", "dst", "LEFT", "RIGHT", 0])
    if b"multi" in TABLE:
        d.check(["MULTI"])
        d.check(["BLPOP", "nokey", 0])
        d.check(["BLMOVE", "full", "dst", "LEFT", "RIGHT", 0])
        d.check(["EXEC"])


# -- blocking: the engine side of a real wait --------------------------------------------------
def test_block_then_served_engine_level() -> None:
    e = Engine()
    waiter = e.new_client()
    pusher = e.new_client()
    argv = [b"BLPOP", b"k1", b"k2", b"1.5"]
    reply, effects = e.execute(waiter, argv)
    assert isinstance(reply, Block)
    assert (reply.db, reply.keys, reply.timeout_ms) == (0, [b"k1", b"k2"], 1500)
    assert reply.timeout_reply == Array(None) and effects == []
    e.ready_keys.clear()
    assert e.execute(pusher, [b"RPUSH", b"k2", b"a", b"b"])[0] == 2
    assert e.ready_keys == [(0, b"k2")]
    assert e.execute(pusher, [b"RPUSH", b"k2", b"c"])[0] == 3
    assert e.ready_keys == [(0, b"k2")]  # only a new key wakes clients (dbAdd)
    assert e.execute(waiter, argv) == ([b"k2", b"a"], [(0, [b"LPOP", b"k2"])])
    # BLMOVE: blocks on the source only; served as LMOVE
    argv = [b"BLMOVE", b"src", b"dst", b"RIGHT", b"LEFT", b"0"]
    reply, _ = e.execute(waiter, argv)
    assert isinstance(reply, Block) and reply.keys == [b"src"] and reply.timeout_ms == 0
    assert reply.timeout_reply is None
    e.execute(pusher, [b"LPUSH", b"src", b"v"])
    assert e.execute(waiter, argv) == (b"v", [(0, [b"LMOVE", b"src", b"dst", b"RIGHT", b"LEFT"])])
    assert b"src" not in e.keyspace.dbs[0].data
    # BLMPOP: served as RPOP key n with n the number popped
    argv = [b"BLMPOP", b"0", b"1", b"m", b"RIGHT", b"COUNT", b"5"]
    assert isinstance(e.execute(waiter, argv)[0], Block)
    e.execute(pusher, [b"RPUSH", b"m", b"1", b"2"])
    assert e.execute(waiter, argv) == ([b"m", [b"2", b"1"]], [(0, [b"RPOP", b"m", b"2"])])
    # another client took the data first: block again
    argv = [b"BRPOPLPUSH", b"q", b"d", b"0"]
    assert isinstance(e.execute(waiter, argv)[0], Block)
    e.execute(pusher, [b"RPUSH", b"q", b"x"])
    e.execute(pusher, [b"RPOP", b"q"])
    assert isinstance(e.execute(waiter, argv)[0], Block)


class _Raw:
    """A second raw connection to the real server (the client that blocks)."""

    def __init__(self, real: RealServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", real.port))
        self.sock.settimeout(10)
        self.parser = ReplyParser()

    def send(self, argv: list[bytes | str | int]) -> None:
        self.sock.sendall(encode_command([_b(a) for a in argv]))

    def reply(self) -> Any:
        while True:
            frame = self.parser.next_frame()
            if frame is not NEED_MORE:
                return frame
            self.parser.feed(self.sock.recv(1 << 16))


@pytest.mark.parametrize(
    "argv,push",
    [
        (["BLPOP", "w1", "w2", 0], ["RPUSH", "w2", "a", "b"]),
        (["BRPOP", "w1", 5], ["LPUSH", "w1", "a", "b"]),
        (["BLMOVE", "w1", "d", "LEFT", "RIGHT", 0], ["RPUSH", "w1", "a"]),
        (["BRPOPLPUSH", "w1", "d", 0], ["RPUSH", "w1", "a", "b"]),
        (["BLMPOP", 0, 2, "w1", "w2", "LEFT", "COUNT", 3], ["RPUSH", "w2", "a", "b"]),
    ],
)
def test_blocked_then_served_matches_real(
    d: Differ, real: RealServer, argv: list[Any], push: list[Any]
) -> None:
    other = _Raw(real)
    other.send(argv)
    ours_blocked, _ = d.engine.execute(d.engine.new_client(), [_b(a) for a in argv])
    assert isinstance(ours_blocked, Block)
    # wait until the real client is blocked, then push from the differ's connection
    for _ in range(200):
        info = d.real(["INFO", "clients"]).value
        if b"blocked_clients:1" in info:
            break
    theirs_push = d.real(push)
    real_aof = d.read_aof()
    theirs = other.reply()
    waiter = d.engine.new_client()
    ours_push, eff_push = d.engine.execute(d.client, [_b(a) for a in push])
    ours, eff = d.engine.execute(waiter, [_b(a) for a in argv])
    assert parse(ours_push, 2) == theirs_push
    assert parse(ours, 2) == theirs
    real_cmds = [c for c in real_aof if c[0] != b"SELECT"]
    assert [c for _, c in eff_push + eff] == real_cmds, (eff_push, eff, real_aof)
    other.sock.close()


# -- encodings ---------------------------------------------------------------------------------
def test_encoding_transitions(d: Differ) -> None:
    big = "x" * 1000
    d.check(["RPUSH", "l", "a"])
    check_encoding(d, "l")
    for _ in range(7):
        d.check(["RPUSH", "l", big])
        check_encoding(d, "l")
    d.check(["RPUSH", "l", big])  # past 8 KB
    check_encoding(d, "l")
    for _ in range(5):  # back to listpack only below half the limit, with one node
        d.check(["RPOP", "l"])
        check_encoding(d, "l")
    d.check(["LPUSH", "m", *[str(i) for i in range(3000)]])
    check_encoding(d, "m")
    d.check(["LTRIM", "m", 0, 1000])
    check_encoding(d, "m")
    d.check(["LTRIM", "m", 0, 100])
    check_encoding(d, "m")
    d.check(["RPUSH", "p", "y" * 9000])  # a PLAIN node
    check_encoding(d, "p")
    d.check(["RPUSH", "p", "z"])
    d.check(["RPOP", "p"])
    check_encoding(d, "p")
    d.check(["RPUSH", "q", *["v" * 60] * 120])
    check_encoding(d, "q")
    d.check(["RPUSH", "q", *["w" * 60] * 20])
    check_encoding(d, "q")
    d.check(["LREM", "q", 0, "w" * 60])
    check_encoding(d, "q")
    d.check(["LREM", "q", -70, "v" * 60])
    check_encoding(d, "q")


def test_encoding_lset_linsert_lmove(d: Differ) -> None:
    d.check(["RPUSH", "l", *["e" * 100] * 70])
    check_encoding(d, "l")
    d.check(["LSET", "l", 3, "f" * 2000])  # grows past 8 KB: converts before replacing
    check_encoding(d, "l")
    d.check(["LSET", "l", 3, "g"])
    check_encoding(d, "l")
    d.check(["LSET", "l", 500, "f" * 2000])  # out of range, but the conversion happened
    check_encoding(d, "l")
    d.check(["RPUSH", "k", *["e" * 100] * 70])
    d.check(["LINSERT", "k", "BEFORE", "nothere", "f" * 2000])
    check_encoding(d, "k")
    d.check(["LINSERT", "k", "BEFORE", "e" * 100, "f" * 2000])
    check_encoding(d, "k")
    for _ in range(40):
        d.check(["LMOVE", "k", "n", "LEFT", "RIGHT"])
        check_encoding(d, "k")
        check_encoding(d, "n")
    d.check(["LTRIM", "k", 0, 0])
    check_encoding(d, "k")


def test_encoding_config_fill(d: Differ) -> None:
    config_set(d, "list-max-listpack-size", "4")
    try:
        d.check(["RPUSH", "l", "a", "b", "c", "d"])
        check_encoding(d, "l")
        d.check(["RPUSH", "l", "e"])
        check_encoding(d, "l")
        d.check(["RPUSH", "l", *"fghijklm"])
        d.check(["LPOP", "l", 9])
        check_encoding(d, "l")
        d.check(["LPOP", "l", 3])
        check_encoding(d, "l")
        d.check(["LPOP", "l", 1])
        check_encoding(d, "l")
    finally:
        config_set(d, "list-max-listpack-size", "-2")


# -- the value type ----------------------------------------------------------------------------
def test_entry_sizes() -> None:
    from persistence.rdb.encode import lp_entry

    for v in [b"", b"a", b"0", b"127", b"128", b"-1", b"4095", b"-4096", b"4096", b"32767",
              b"-32769", b"8388607", b"8388608", b"2147483647", b"2147483648", b"-2147483649",
              b"9223372036854775807", b"9223372036854775808", b"01", b"-0", b"+1", b"1.5",
              b"x" * 63, b"x" * 64, b"x" * 125, b"x" * 126, b"x" * 4095, b"x" * 4096,
              b"x" * 16380, b"x" * 20000]:  # fmt: skip
        assert entry_size(v) == len(lp_entry(v)), v


def test_records_round_trip() -> None:
    from engine.types.base import type_info
    from persistence.rdb.writer import object_encoding

    for items in (
        [b"a", b"1"],
        [b"x" * 1000] * 9,
        [b"y" * 9000, b"z"],
        [b"%d" % i for i in range(5000)],
    ):
        lst = from_items(items)
        info = type_info(lst)
        rec = info.to_record(lst)
        assert rec == ListValue(items)
        back = info.from_record(rec)
        assert list(back.items) == items
        assert encoding(back) == object_encoding(rec)
        c = info.copy(lst)
        assert c is not lst and list(c.items) == items and c.nodes == lst.nodes
    assert isinstance(from_items([]), List)


# -- random sequences --------------------------------------------------------------------------
_KEYS = ["a", "b", "c"]
_VALUES = ["x", "y", "1", "-5000", "70000", "3000000000", "", "v" * 70, "w" * 500, "u" * 1500,
           "t" * 5000, "p" * 9000]  # fmt: skip
_val = st.sampled_from(_VALUES)
_key = st.sampled_from(_KEYS)
_idx = st.integers(-12, 12)
_push = st.tuples(
    st.sampled_from(["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]),
    _key,
    st.lists(_val, min_size=1, max_size=12),
).map(lambda t: [t[0], t[1], *t[2]])
_cmd = st.one_of(
    _push,
    _push,
    _push,
    st.tuples(st.sampled_from(["LPOP", "RPOP"]), _key).map(list),
    st.tuples(st.sampled_from(["LPOP", "RPOP"]), _key, st.integers(0, 8)).map(list),
    st.tuples(st.just("LRANGE"), _key, _idx, _idx).map(list),
    st.tuples(st.just("LINDEX"), _key, _idx).map(list),
    st.tuples(st.just("LSET"), _key, _idx, _val).map(list),
    st.tuples(st.just("LINSERT"), _key, st.sampled_from(["BEFORE", "AFTER"]), _val, _val).map(list),
    st.tuples(st.just("LREM"), _key, st.integers(-3, 3), _val).map(list),
    st.tuples(st.just("LTRIM"), _key, _idx, _idx).map(list),
    st.tuples(st.just("LPOS"), _key, _val, st.sampled_from(["RANK", "COUNT", "MAXLEN"]),
              st.integers(1, 3)).map(list),
    st.tuples(st.just("LMOVE"), _key, _key, st.sampled_from(["LEFT", "RIGHT"]),
              st.sampled_from(["LEFT", "RIGHT"])).map(list),
    st.tuples(st.just("RPOPLPUSH"), _key, _key).map(list),
    st.tuples(st.just("LMPOP"), st.just(2), _key, _key, st.sampled_from(["LEFT", "RIGHT"]),
              st.just("COUNT"), st.integers(1, 5)).map(list),
    st.tuples(st.just("LLEN"), _key).map(list),
)  # fmt: skip


_SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=25, deadline=None, suppress_health_check=_SUPPRESS)
@given(seq=st.lists(_cmd, min_size=1, max_size=25))
def test_random_sequences(real: RealServer, seq: list[list[Any]]) -> None:
    d = Differ(real)
    try:
        reset(d)
        for argv in seq:
            d.check(argv)
            for k in {str(a) for a in argv[1:3]} & set(_KEYS):
                check_encoding(d, k)
        data = d.engine.keyspace.dbs[0].data
        if any(data.get(k.encode()) for k in _KEYS):
            d.check(["BLPOP", *_KEYS, 0])
    finally:
        d.close()
