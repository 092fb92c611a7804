"""Pipelined runs (Engine.execute_run, RequestParser.same_after/take, the run handlers of SET,
GET, the pushes and HSET): a pipeline sent in one read must leave exactly what the same
commands leave one read each (replies, AOF bytes, keys, TTLs, encodings, stats), whatever the
mix of TTLs, expired keys, wrong types, MULTI, WATCH, SELECT, RESP3 and conversions; and over
sockets what valkey-server 9.1.2 answers and writes."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from enginesrv import engine_server
from realserver import real_server

from engine.clock import ManualClock
from engine.engine import Engine
from engine.server import config_file
from engine.server.connection import Connection
from engine.server.durability import AofWriter, load_data
from engine.server.server import Server
from engine.types.hashes import Hash
from engine.types.lists import List
from persistence.aof.encoder import encode_command
from persistence.resp.parser import RequestParser


class Capture:
    """The transport methods Server and Connection use; keeps what is written."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def writelines(self, chunks: list[bytes]) -> None:
        for c in chunks:
            self.data += c

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 6379)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class World:
    """An in-process server with the AOF on, one connection, a manual clock."""

    def __init__(self, path: Path, runs: bool = True, clients: int = 1, list_fill: int = 4) -> None:
        """``runs`` False: every command through Engine.execute, none through a run handler,
        and no read waits for the others of its loop turn (Server.coalesce)."""
        path.mkdir()
        config, _ = config_file.load(
            ["--appendonly", "yes", "--dir", str(path), "--save", "", "--aof-use-rdb-preamble",
             "no", "--list-max-listpack-size", str(list_fill), "--hash-max-listpack-entries", "6"]
        )  # fmt: skip
        self.path = path
        self.clock = ManualClock()
        self.engine = Engine(config, clock=self.clock)
        load_data(self.engine)
        self.aof = AofWriter(self.engine)
        self.aof.open()
        self.server = Server(self.engine, self.aof)
        self.server.coalesce = runs
        self.conns: list[Connection] = []
        self.outs: list[Capture] = []
        for _ in range(clients):
            conn = Connection(self.server)
            out = Capture()
            conn.connection_made(out)  # type: ignore[arg-type]
            self.conns.append(conn)
            self.outs.append(out)
        self.conn, self.out = self.conns[0], self.outs[0]
        self.runs = 0  # commands done in runs
        execute_run = self.engine.execute_run

        def counting(*args: Any) -> list[bytes]:
            replies = execute_run(*args)
            self.runs += len(replies)
            return replies

        self.engine.execute_run = counting  # type: ignore[method-assign]
        if not runs:
            self.engine.run_command = lambda name: None  # type: ignore[method-assign]

    def send(self, data: bytes) -> None:
        self.conn.data_received(data)
        self.server.flush()

    def feed(self, i: int, data: bytes) -> None:
        """A read of client ``i``, inside the current loop turn (ended by :meth:`turn`)."""
        self.conns[i].data_received(data)

    def turn(self) -> None:
        self.server.flush()

    def finish(self) -> tuple[bytes, bytes, Any, Any]:
        self.aof.close()
        aof = b"".join(p.read_bytes() for p in sorted(self.path.rglob("*.incr.aof")))
        stats = self.engine.stats
        calls = {n: (s.calls, s.failed_calls) for n, s in stats.commands.items()}
        state = []
        for db in self.engine.keyspace.dbs:
            for key, value in sorted(db.data.items()):
                if type(value) is List:
                    shown: Any = ("list", list(value.items), value.lp, value.nodes, value.fill)
                elif type(value) is Hash:
                    shown = ("hash", dict(value.data), value.listpack, dict(value.expires))
                else:
                    shown = value
                state.append((db.id, key, shown, db.expires.get(key)))
        counters = (calls, stats.total_commands_processed, stats.dirty)
        replies = b"\0".join(bytes(o.data) for o in self.outs)
        return replies, aof, state, counters


def w(*args: bytes) -> bytes:
    return encode_command(list(args))


def pipeline(rng: random.Random) -> Iterator[bytes]:
    """Commands in stretches of one shape (runs) and odd ones between them."""
    for _ in range(rng.randrange(1, 8)):
        kind = rng.randrange(16)
        n = rng.choice((1, 2, 3, 5, 17, 40, 300))
        form = rng.choice((b"%02d", b"%d"))  # one size, or sizes that vary
        for _ in range(n):
            k = form % rng.randrange(12)
            v = form % rng.randrange(100)
            if kind < 3:
                yield w(b"SET" if kind else b"set", b"k" + k, b"v" + v)
            elif kind < 5:
                yield w(b"GET", b"k" + k)
            elif kind == 5:
                yield w(b"GET", b"l" + k[1:])  # wrong type half of the time
            elif kind < 8:
                name = (b"LPUSH", b"RPUSH", b"LPUSHX", b"RPUSHX")[rng.randrange(4)]
                yield w(name, b"l" + k[1:], b"x" + v)
            elif kind == 8:
                yield w(b"LPUSH", b"l" + k[1:], b"a" + v, b"b" + v)
            elif kind < 11:
                yield w(b"HSET", b"h" + k[1:], b"f" + v, b"v" + k)
            elif kind == 11:
                yield w(b"HSET", b"k" + k, b"f", b"v")  # wrong type, or a new hash
            else:
                break
        if kind >= 12:
            yield rng.choice(
                [
                    w(b"SET", b"k%02d" % rng.randrange(12), b"t", b"PX", b"%d" % rng.randrange(9)),
                    w(b"PEXPIRE", b"l%d" % rng.randrange(10), b"%d" % rng.randrange(1, 9)),
                    w(b"HPEXPIRE", b"h%d" % rng.randrange(10), b"5", b"FIELDS", b"1", b"f01"),
                    w(b"DEL", b"k%02d" % rng.randrange(12), b"l%d" % rng.randrange(10)),
                    w(b"SELECT", b"%d" % rng.randrange(2)),
                    w(b"MULTI") + w(b"SET", b"k01", b"m1") + w(b"SET", b"k02", b"m2") + w(b"EXEC"),
                    w(b"WATCH", b"k05") + w(b"SET", b"k05", b"w1") + w(b"SET", b"k06", b"w2"),
                    w(b"UNWATCH"),
                    w(b"HELLO", b"3"),
                    w(b"HELLO", b"2"),
                    w(b"CLIENT", b"REPLY", b"SKIP") + w(b"SET", b"k07", b"s") * 2,
                    w(b"CONFIG", b"SET", b"notify-keyspace-events", b"KEA"),
                    w(b"CONFIG", b"SET", b"notify-keyspace-events", b""),
                    w(b"PING"),
                    w(b"BLPOP", b"l%d" % rng.randrange(10), b"0"),
                ]
            )  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_one_read_equals_one_read_per_command(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    a, b = World(tmp_path / "a"), World(tmp_path / "b", runs=False)
    for _ in range(6):
        cmds = list(pipeline(rng))
        a.send(b"".join(cmds))
        for c in cmds:
            p = RequestParser()
            p.feed(c)
            while (argv := p.next_command()) is not None:
                b.send(encode_command(argv))
        gap = rng.randrange(0, 6)
        a.clock.advance(gap)
        b.clock.advance(gap)
    got, want = a.finish(), b.finish()
    assert got[0] == want[0]  # replies
    assert got[1] == want[1]  # AOF
    assert got[2] == want[2]  # keys, values, encodings, TTLs
    assert got[3] == want[3]  # calls, failed calls, commands processed, dirty
    assert b.runs == 0


def test_runs_happen_and_split_at_their_limit(tmp_path: Path) -> None:
    a = World(tmp_path / "a")
    a.send(b"".join(w(b"SET", b"key:%06d" % i, b"xxx") for i in range(1000)))
    assert a.runs == 999  # the first write goes the long way: the AOF's first SELECT
    a.send(b"".join(w(b"GET", b"key:%06d" % i) for i in range(1000)))
    assert a.runs == 1999
    a.send(w(b"GET", b"key:000001"))  # a run of one
    assert a.runs == 2000
    replies, aof, _, (calls, processed, dirty) = a.finish()
    assert replies == b"+OK\r\n" * 1000 + b"$3\r\nxxx\r\n" * 1001
    assert aof.endswith(b"".join(w(b"SET", b"key:%06d" % i, b"xxx") for i in range(1000)))
    assert calls["set"] == (1000, 0) and calls["get"] == (1001, 0)
    assert processed == 2001 and dirty == 1000


def test_a_run_split_across_reads(tmp_path: Path) -> None:
    """A command cut in two by the read boundary ends the run; the rest runs after."""
    a, b = World(tmp_path / "a"), World(tmp_path / "b", runs=False)
    data = b"".join(w(b"RPUSH", b"l", b"v%03d" % i) for i in range(100))
    data = w(b"RPUSH", b"l", b"first") + data
    for cut in (7, 333, 1000, len(data)):
        a.send(data[:cut])
        a.send(data[cut:])
        b.send(data)
    got, want = a.finish(), b.finish()
    assert got == want


def test_expired_keys_stop_a_run(tmp_path: Path) -> None:
    a = World(tmp_path / "a")
    a.send(w(b"SET", b"k05", b"old", b"PX", b"10") + w(b"SET", b"k06", b"old", b"PX", b"1000"))
    a.clock.advance(20)
    a.send(b"".join(w(b"SET", b"k%02d" % i, b"new") for i in range(10)))
    _, aof, state, _ = a.finish()
    # the expired key's UNLINK comes before its SET (one unit); the live TTL is gone
    unit = w(b"MULTI") + w(b"UNLINK", b"k05") + w(b"SET", b"k05", b"new") + w(b"EXEC")
    assert w(b"SET", b"k04", b"new") + unit + w(b"SET", b"k06", b"new") in aof
    assert all(exp is None for _, _, _, exp in state)
    assert a.runs == 9  # k00..k04 in one run, k05 the long way, k06..k09 in another


@pytest.mark.real
def test_pipelined_runs_as_valkey_answers_and_writes(tmp_path: Path) -> None:
    rng = random.Random(7)
    chunks = [
        w(b"CONFIG", b"SET", b"list-max-listpack-size", b"4")
        + w(b"CONFIG", b"SET", b"hash-max-listpack-entries", b"6"),
        b"".join(w(b"SET", b"key:%04d" % i, b"v%04d" % i) for i in range(600)),
        b"".join(w(b"GET", b"key:%04d" % rng.randrange(700)) for i in range(600)),
        w(b"RPUSH", b"l", b"x") + b"".join(w(b"LPUSH", b"l", b"%03d" % i) for i in range(300)),
        w(b"HSET", b"h", b"f", b"v"),
        b"".join(w(b"HSET", b"h", b"f%02d" % i, b"v") for i in range(60)),
        b"".join(w(b"HSET", b"h", b"f%03d" % (i % 9), b"w") for i in range(50)),
        w(b"GET", b"l") + w(b"GET", b"h") + w(b"GET", b"key:0001"),  # errors in a run
        b"".join(w(b"GET", b"nokey%d" % i) for i in range(9)),  # (HELLO's reply differs)
        w(b"SELECT", b"4") + b"".join(w(b"set", b"k%d" % i, b"v") for i in range(9)),
        w(b"LPUSHX", b"nol", b"v") + w(b"LPUSHX", b"nol", b"w") + w(b"LPUSH", b"l", b"a", b"b") * 5,
    ]  # fmt: skip
    probe = [w(b"LRANGE", b"l", b"0", b"-1"), w(b"OBJECT", b"ENCODING", b"l"),
             w(b"HGETALL", b"h"), w(b"OBJECT", b"ENCODING", b"h"), w(b"DBSIZE")]  # fmt: skip
    args = ("--appendonly", "yes", "--appendfsync", "always", "--save", "")

    def talk(port: int) -> bytes:
        got = b""
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.settimeout(10)
            for chunk in [*chunks, b"".join(probe), w(b"PING")]:
                s.sendall(chunk)
                time.sleep(0.02)
            while not got.endswith(b"+PONG\r\n"):
                data = s.recv(1 << 20)
                assert data, "connection closed"
                got += data
        return got

    with engine_server(tmp_path / "ours", *args) as srv:
        ours = talk(srv.port)
    with real_server(tmp_path / "valkey", *args) as rs:
        theirs = talk(rs.port)
    assert ours == theirs

    def incr(d: Path) -> bytes:
        return b"".join(p.read_bytes() for p in sorted((d / "appendonlydir").glob("*.incr.aof")))

    assert incr(tmp_path / "ours") == incr(tmp_path / "valkey")


def test_inline_commands_and_big_values(tmp_path: Path) -> None:
    """Inline commands are runs of one whose AOF record is encoded; GET runs of big values stop
    at 64 KB of replies and go on after."""
    a, b = World(tmp_path / "a"), World(tmp_path / "b", runs=False)
    big = [w(b"SET", b"big%02d" % i, bytes([65 + i]) * 30000) for i in range(12)]
    traffic = [
        b"SET inline v1\r\nSET inline2 v2\r\nGET inline\r\nLPUSH l a\r\nLPUSH l b\r\n",
        b"".join(big),
        b"".join(w(b"GET", b"big%02d" % i) for i in range(12)) * 2,
        b"HSET h f v\r\n" + w(b"HSET", b"h", b"g", b"w") * 3 + b"GET nokey\r\n",
    ]
    for data in traffic:
        a.send(data)
        b.send(data)
    assert a.runs > 30
    assert a.finish() == b.finish()


@pytest.mark.parametrize("form", [b"%06d", b"%d"])
def test_stopped_runs_are_not_scanned_again(
    tmp_path: Path, form: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run handler that stops at its first command (LPUSHX on missing keys, WRONGTYPE) leaves
    the run's other commands to single runs: each byte is looked at once, not once per command."""
    scanned = []
    same_after = RequestParser.same_after

    def counting(self: RequestParser, cmd: list[bytes], limit: int = 256) -> list[Any]:
        found = same_after(self, cmd, limit)
        scanned.append(len(found))
        return found

    monkeypatch.setattr(RequestParser, "same_after", counting)
    a, b = World(tmp_path / "a"), World(tmp_path / "b", runs=False)
    traffic = [
        w(b"SET", b"s", b"v"),
        b"".join(w(b"LPUSHX", form % i, b"v") for i in range(2000)),
        b"".join(w(b"HSET", b"s", form % i, b"v") for i in range(2000)),
    ]
    for data in traffic:
        a.send(data)
        b.send(data)
    assert a.finish() == b.finish()
    assert sum(scanned) < 2 * 4000


@pytest.mark.real
def test_blocked_clients_get_their_keys_between_pipelined_commands(tmp_path: Path) -> None:
    """src/server.c processCommand serves clients blocked on a key after each command (a run
    that creates a list stops there); the served client's own next commands wait for the end
    of the pipeline (src/blocked.c processUnblockedClients)."""

    def talk(port: int) -> list[bytes]:
        a = socket.create_connection(("127.0.0.1", port))
        b = socket.create_connection(("127.0.0.1", port))
        got = []
        with a, b:
            a.sendall(w(b"BLPOP", b"l", b"0") + w(b"SET", b"x", b"1"))
            time.sleep(0.2)
            b.sendall(
                w(b"LPUSH", b"l", b"a") + w(b"LPUSH", b"l", b"b") + w(b"GET", b"x")
                + w(b"LRANGE", b"l", b"0", b"-1")
            )  # fmt: skip
            time.sleep(0.3)
            for s in (a, b):
                s.settimeout(5)
                got.append(s.recv(1 << 16))
        return got

    with engine_server(tmp_path / "ours") as srv:
        ours = talk(srv.port)
    with real_server(tmp_path / "valkey") as rs:
        theirs = talk(rs.port)
    assert ours == theirs


def test_long_pipeline_of_varied_sizes(tmp_path: Path) -> None:
    """Runs of varied sizes end at 256 commands or 256 KB (a command cut there starts the next)."""
    rng = random.Random(3)
    a, b = World(tmp_path / "a"), World(tmp_path / "b", runs=False)
    data = b"".join(
        w(b"SET", b"k%d" % rng.randrange(10 ** rng.randrange(1, 6)), b"v" * rng.randrange(900))
        for _ in range(3000)
    )
    a.send(data)
    b.send(data)
    a.send(b"".join(w(b"GET", b"k%d" % i) for i in range(3000)))
    b.send(b"".join(w(b"GET", b"k%d" % i) for i in range(3000)))
    assert a.runs == 5999
    assert a.finish() == b.finish()


def test_monitor_sees_every_command_of_a_run(tmp_path: Path) -> None:
    """With a MONITOR client, pipelined commands go one at a time (each gets its line)."""
    with engine_server(tmp_path / "ours") as srv:
        mon = socket.create_connection(("127.0.0.1", srv.port))
        cli = socket.create_connection(("127.0.0.1", srv.port))
        with mon, cli:
            mon.settimeout(5)
            cli.settimeout(5)
            mon.sendall(w(b"MONITOR"))
            assert mon.recv(100) == b"+OK\r\n"
            cli.sendall(b"".join(w(b"SET", b"key%d" % i, b"v") for i in range(20)))
            got = b""
            while got.count(b"+OK\r\n") < 20:
                got += cli.recv(1 << 16)
            lines = b""
            while lines.count(b'"SET"') < 20:
                lines += mon.recv(1 << 16)
            assert [b'"key%d"' % i in lines for i in range(20)] == [True] * 20


def end_turn(rng: random.Random, a: World, b: World) -> None:
    """The end of an event-loop turn in both worlds, then the same few milliseconds pass."""
    a.turn()
    b.turn()
    gap = rng.randrange(0, 6)
    a.clock.advance(gap)
    b.clock.advance(gap)


def assert_same(a: World, b: World) -> None:
    got, want = a.finish(), b.finish()
    assert got[0] == want[0]  # replies of each client
    assert got[1] == want[1]  # AOF
    assert got[2] == want[2]  # keys, values, encodings, TTLs
    assert got[3] == want[3]  # calls, failed calls, commands processed, dirty


@pytest.mark.parametrize("seed", range(30))
def test_reads_of_one_loop_turn_run_together(tmp_path: Path, seed: int) -> None:
    """Single commands of several clients' reads in one loop turn run as one run (join,
    run_group); what they leave is what each read run as it came leaves, whatever else the
    turn holds (pipelines, MULTI, WATCH, SELECT, RESP3, expired keys, new keys)."""
    rng = random.Random(seed)
    a = World(tmp_path / "a", clients=5)
    b = World(tmp_path / "b", runs=False, clients=5)
    for _ in range(8):
        for _ in range(rng.randrange(1, 30)):
            i = rng.randrange(5)
            cmds = list(pipeline(rng))
            if not cmds:
                continue
            # mostly one command a read (as a client waiting for each reply sends them)
            data = cmds[0] if rng.random() < 0.8 else b"".join(cmds)
            a.feed(i, data)
            b.feed(i, data)
        end_turn(rng, a, b)
    assert_same(a, b)


def test_a_group_serves_blocked_clients_between_its_commands(tmp_path: Path) -> None:
    """Single LPUSHes of several clients in one loop turn: the first makes the list, its
    waiter gets that element before the next push runs (as one read at a time does)."""
    a = World(tmp_path / "a", clients=4)
    b = World(tmp_path / "b", runs=False, clients=4)
    for world in (a, b):
        world.feed(0, w(b"BLPOP", b"l", b"0"))
        world.turn()
        world.feed(1, w(b"LPUSH", b"l", b"a"))
        world.feed(2, w(b"LPUSH", b"l", b"b"))
        world.feed(3, w(b"LRANGE", b"l", b"0", b"-1"))
        world.feed(0, w(b"LPUSH", b"l", b"c"))
        world.turn()
    got, want = a.finish(), b.finish()
    assert got == want
    assert b"*2\r\n$1\r\nl\r\n$1\r\na\r\n" in got[0]  # the waiter got "a"


def test_a_group_that_unblocks_a_client_of_another_kind(tmp_path: Path) -> None:
    """A group runs because a read of another kind comes (Runs.start_group); a client it
    unblocks goes on with a single command of a third kind, which starts a group of its own:
    that group runs before the new read's command joins one (the kinds are not mixed)."""
    a = World(tmp_path / "a", clients=4)
    b = World(tmp_path / "b", runs=False, clients=4)
    for world in (a, b):
        world.feed(0, w(b"SET", b"x", b"1"))
        world.turn()
        world.feed(0, w(b"BLPOP", b"l", b"0"))
        world.turn()
        world.feed(0, w(b"GET", b"x"))  # read while blocked: it waits in the buffer
        world.turn()
        world.feed(1, w(b"LPUSH", b"l", b"a"))  # a group of LPUSH
        world.feed(2, w(b"SET", b"k", b"v"))  # runs it: client 0 gets "a", then its GET
        world.feed(3, w(b"SET", b"k2", b"v2"))
        world.turn()
    got, want = a.finish(), b.finish()
    assert got == want
    assert got[0].split(b"\0")[0].endswith(b"$1\r\n1\r\n")  # client 0's GET x


@pytest.mark.parametrize("seed", range(20))
def test_reads_of_the_clients_shape(tmp_path: Path, seed: int) -> None:
    """Clients that keep sending commands of one shape, one a read or several: most reads
    join the loop turn's group at once (Server.join_read, RequestParser.sole) or run at once
    (Server.run_read, RequestParser.sole_run), and what they leave is what each read run as
    it came leaves, with the odd other command between them (SELECT, HELLO, MULTI, WATCH,
    keyspace events, a blocked client, a pipeline) and runs that stop part-way (expired
    keys, wrong types, LPUSHX on a missing list, a list made for a waiter)."""
    rng = random.Random(seed)
    a = World(tmp_path / "a", clients=5)
    b = World(tmp_path / "b", runs=False, clients=5)
    hits = {"join_read": 0, "run_read": 0}
    for name in hits:
        method = getattr(a.server, name)

        def counting(conn: Connection, data: bytes, name: str = name, method: Any = method) -> bool:
            done = bool(method(conn, data))
            hits[name] += done
            return done

        setattr(a.server, name, counting)
    shapes = [
        lambda: w(b"SET", b"k%02d" % rng.randrange(12), b"v%02d" % rng.randrange(100)),
        lambda: w(b"set", b"k%02d" % rng.randrange(12), b"v%d" % rng.randrange(100)),
        lambda: w(b"GET", b"k%02d" % rng.randrange(12)),
        lambda: w(b"GET", b"l%d" % rng.randrange(10)),
        lambda: w(b"LPUSH", b"l%d" % rng.randrange(10), b"x%02d" % rng.randrange(100)),
        lambda: w(b"RPUSHX", b"l%d" % rng.randrange(10), b"x%02d" % rng.randrange(100)),
        lambda: w(b"HSET", b"h%d" % rng.randrange(10), b"f%02d" % rng.randrange(9), b"vv"),
        lambda: w(b"HSET", b"k%02d" % rng.randrange(12), b"f", b"v"),
    ]
    mine = [rng.choice(shapes) for _ in range(5)]
    for _ in range(10):
        for _ in range(rng.randrange(1, 40)):
            i = rng.randrange(5)
            if rng.random() < 0.6:
                data = mine[i]()
            elif rng.random() < 0.75:
                data = b"".join(mine[i]() for _ in range(rng.randrange(2, 20)))
            else:
                data = b"".join(pipeline(rng))
                if rng.random() < 0.3:
                    mine[i] = rng.choice(shapes)
            a.feed(i, data)
            b.feed(i, data)
        end_turn(rng, a, b)
    assert_same(a, b)
    assert hits["join_read"] > 20, hits  # (run_read: test_run_reads_happen_and_stop)


def test_reads_of_one_command_in_two_dbs(tmp_path: Path) -> None:
    """Writes of the sole path (Server.join_read) in another db than the AOF's last SELECT
    are not its bytes as they came: they go the way that writes the SELECT first."""
    a = World(tmp_path / "a", clients=2)
    b = World(tmp_path / "b", runs=False, clients=2)
    for world in (a, b):
        world.feed(1, w(b"SELECT", b"1"))
        world.turn()
        for i in range(6):
            world.feed(0, w(b"SET", b"k%d" % i, b"v0"))
            world.feed(1, w(b"SET", b"k%d" % i, b"v1"))
            world.feed(1, w(b"GET", b"k%d" % i))
            world.turn()
    got, want = a.finish(), b.finish()
    assert got == want
    assert got[1].count(b"SELECT") > 6


def test_turn_groups_of_two_dbs_run_in_runs(tmp_path: Path) -> None:
    """A loop turn's single commands from clients of two dbs (or protocols) run as runs, one
    for each stretch of one db and protocol (Engine.execute_run stops before a client that
    differs), not one at a time; replies, AOF and keys as with each run alone."""
    a = World(tmp_path / "a", clients=4)
    b = World(tmp_path / "b", runs=False, clients=4)
    for world in (a, b):
        for i in (2, 3):
            world.feed(i, w(b"SELECT", b"1"))
        world.feed(3, w(b"HELLO", b"3"))
        world.turn()
        for i in range(4):
            world.feed(i, w(b"SET", b"k%d" % i, b"v%d" % i))
        world.turn()
    before = a.runs
    for world in (a, b):
        for k in range(6):
            for i in (0, 2, 1, 3) if k % 2 else (0, 1, 2, 3):
                world.feed(i, w(b"GET", b"k%d" % ((i + k) % 4)))
            world.turn()
    assert a.runs - before == 24  # (all of them)
    assert a.finish() == b.finish()


def test_hot_objects_keep_their_attributes_inline(tmp_path: Path) -> None:
    """The objects of the hot paths have at most 30 attributes each: CPython 3.11 keeps an
    instance's attributes in its fast layout (shared keys, Objects/dictobject.c
    SHARED_KEYS_MAX_SIZE) only up to 30; past that every attribute load and method call on it
    takes a slower path (the server's went 6% dearer per -P 1 SET at 31)."""
    world = World(tmp_path / "w")
    conn = world.conn
    for obj in (world.server, conn, conn.client, world.engine, world.aof):
        assert len(vars(obj)) <= 30, type(obj).__name__


def test_run_reads_happen_and_stop(tmp_path: Path) -> None:
    """Pipelined reads of the client's shape run at once (Server.run_read) and stop where a
    run stops: an expired key, a wrong type, a list made for a waiter; the rest is read and
    run as it came, in order, with the waiter served between."""
    a = World(tmp_path / "a", clients=2)
    b = World(tmp_path / "b", runs=False, clients=2)
    run_read = a.server.run_read
    done = []

    def counting(conn: Connection, data: bytes) -> bool:
        done.append(run_read(conn, data))
        return done[-1]

    a.server.run_read = counting  # type: ignore[method-assign]
    for world in (a, b):
        world.feed(0, w(b"SET", b"kx", b"v0", b"PX", b"5") + w(b"HSET", b"k9", b"f", b"v"))
        world.feed(1, w(b"BLPOP", b"l4", b"0"))
        world.turn()
        world.clock.advance(10)
        for k in range(2):
            world.feed(0, b"".join(w(b"SET", b"k%d" % i, b"v%d" % k) for i in range(5)))
            world.turn()
        world.feed(0, b"".join(w(b"SET", b"k" + c, b"v2") for c in (b"2", b"3", b"x", b"4", b"5")))
        world.turn()
        world.feed(0, b"".join(w(b"GET", b"k%d" % i) for i in (2, 3, 4, 0)))
        world.turn()
        world.feed(0, b"".join(w(b"GET", b"k%d" % i) for i in (0, 1, 9, 2, 3)))  # k9: a hash
        world.turn()
        for k in range(2):
            world.feed(0, b"".join(w(b"RPUSH", b"l%d" % (i + 4 * k), b"x%d" % k) for i in range(4)))
            world.turn()
        big = b"".join(w(b"RPUSH", b"l%d" % (i % 10), b"y%d" % (i % 10)) for i in range(600))
        world.feed(0, big)
        world.turn()  # (more than one run in a read: fed, run by process)
    assert done == [True] * 4 + [False]
    got, want = a.finish(), b.finish()
    assert got == want
    assert b"*2\r\n$2\r\nl4\r\n$2\r\nx1\r\n" in got[0]  # the waiter got its element


@pytest.mark.parametrize("seed", range(12))
def test_pushes_to_one_quicklist_in_a_row(tmp_path: Path, seed: int) -> None:
    """Single pushes to one quicklist in a row (a group, or a pipelined run) are pushed
    together (List._ql_push_all) and leave the nodes each push alone leaves, across node
    limits (size-limited nodes of 4 KB), with values of every listpack entry size: integers,
    empty, 63/64 bytes, and bigger than a node."""
    rng = random.Random(seed)
    a = World(tmp_path / "a", clients=4, list_fill=-1)
    b = World(tmp_path / "b", runs=False, clients=4, list_fill=-1)
    values = [b"", b"7", b"-12", b"300", b"99999", b"1" * 20, b"x" * 63, b"y" * 64, b"z" * 300,
              b"w" * 5000, b"007", b"abc"]  # fmt: skip
    for _ in range(40):
        for _ in range(rng.randrange(1, 12)):
            i = rng.randrange(4)
            name = rng.choice((b"LPUSH", b"RPUSH", b"LPUSHX", b"RPUSHX"))
            key = b"l%d" % rng.randrange(2)
            data = b"".join(
                w(name, key if rng.random() < 0.9 else b"l2", rng.choice(values))
                for _ in range(rng.choice((1, 1, 3, 40)))
            )
            a.feed(i, data)
            b.feed(i, data)
        end_turn(rng, a, b)
    assert_same(a, b)
