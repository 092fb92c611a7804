"""Atomic slot migration between live engine nodes (issue 6 acceptance).

Three nodes with 16 databases; slots of node 0 filled with every type (key TTLs, hash-field
TTLs) in dbs 0, 3 and 15 move to node 1 with CLUSTER MIGRATESLOTS while RedisCluster writers
keep writing to them in several dbs. A fake source drives a target by hand to watch the hidden
keys, the AOF records and the cleanup; a fake target checks the stream a source sends.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from clusterutil import engine_cluster, start_node, stop_node, wait_for, wait_ready
from migrationutil import Writer, contents, fill, migrate, migrations, tag_for, wait_job
from realserver import free_port

from engine.cluster import syncslots as S
from persistence.aof.encoder import encode_command
from persistence.resp.parser import RequestParser

DBS = (0, 3, 15)
MOVED_SLOTS = (100, 101, 2000)
RANGES = ((100, 101), (2000, 2000))
JOB = b"ab" * 20


def test_migrate_every_type_across_dbs_with_live_writers(tmp_path: Path) -> None:
    with engine_cluster(tmp_path, 3) as cl:
        src, dst = cl.client(0), cl.client(1)
        tags = [tag_for(s) for s in MOVED_SLOTS]
        stay = tag_for(300)  # node 0 keeps this slot
        for db in DBS:
            c = cl.client(0, db=db)
            for t in (*tags, stay):
                fill(c, t + b"%d" % db)
            c.close()
        before = {db: _slots_contents(cl.client(0, db=db), tags) for db in DBS}
        writers = [Writer(cl, db, tags[0] + b":w%d" % db) for db in DBS]
        writers.append(Writer(cl, 3, tags[2] + b":w"))
        for w in writers:
            w.start()
        wait_for(lambda: all(w.acked > 20 for w in writers))
        migrate(src, cl.ids[1], *RANGES)
        job = wait_job(src)
        assert job[b"state"] == b"success", job
        assert job[b"operation"] == b"EXPORT" and job[b"slot_ranges"] == b"100-101 2000-2000"
        imp = wait_job(dst)
        assert imp[b"state"] == b"success" and imp[b"operation"] == b"IMPORT"
        assert imp[b"name"] == job[b"name"]
        acked = [w.acked for w in writers]
        wait_for(lambda: all(w.acked > a + 20 for w, a in zip(writers, acked, strict=True)))
        for w in writers:
            w.finish()
            assert not w.errors, w.errors
        for db in DBS:
            target = cl.client(1, db=db)
            assert _slots_contents(target, tags) == before[db], f"db {db}"
            origin = cl.client(0, db=db)
            wait_for(lambda o=origin: all(_count(o, s) == 0 for s in MOVED_SLOTS))
            assert origin.exists(stay + b"%d:s0" % db)  # other slots stay
            assert target.execute_command("HPEXPIRETIME", tags[1] + b"%d:h" % db, "FIELDS",
                                          1, "f1") == [4102444799000]  # fmt: skip
        for w in writers:
            got = cl.client(1, db=w.db).lrange(w.key, 0, -1)
            assert got == [b"%d" % i for i in range(w.acked)], f"db {w.db}: lost or doubled"
        with pytest.raises(redis.exceptions.MovedError, match=f"100 127.0.0.1:{cl.nodes[1].port}"):
            src.get(tags[0] + b"0:s0")
        assert dst.dbsize() == cl.client(1, db=0).dbsize() > 0


def _slots_contents(c: Any, tags: list[bytes]) -> dict[bytes, Any]:
    out: dict[bytes, Any] = {}
    for t in tags:
        out.update({k: v for k, v in contents(c, t + b"*").items() if b":w" not in k})
    return out


def _count(c: Any, slot: int) -> int:
    return int(c.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot))


# ---- a target driven by hand ---------------------------------------------------------------


def _send(sock: socket.socket, *argv: bytes) -> None:
    sock.sendall(encode_command(list(argv)))


def _read_commands(sock: socket.socket, parser: RequestParser, want: bytes) -> list[list[bytes]]:
    """Commands from ``sock`` until one whose third word is ``want``."""
    got: list[list[bytes]] = []
    sock.settimeout(10)
    while True:
        for argv in parser.commands():
            got.append(argv)
            if len(argv) > 2 and argv[2].upper() == want:
                return got
        data = sock.recv(65536)
        if not data:
            raise AssertionError(f"EOF before {want!r}: {got}")
        parser.feed(data)


def test_imported_keys_hidden_then_dropped_with_the_link(tmp_path: Path) -> None:
    with engine_cluster(tmp_path, 2) as cl:
        target = cl.client(1, db=3)
        tag = tag_for(100)  # node 0's slot
        sock = socket.create_connection(("127.0.0.1", cl.nodes[1].port))
        est = [b"CLUSTER", b"SYNCSLOTS", b"ESTABLISH", b"SOURCE", cl.ids[0].encode(), b"NAME",
               JOB, b"SLOTSRANGE", b"100", b"100"]  # fmt: skip
        _send(sock, *est)
        assert sock.recv(100) == b"+OK\r\n"
        stream = [[b"CLUSTER", b"SYNCSLOTS", b"ACK"], [b"SELECT", b"3"],
                  [b"SET", tag + b"a", b"1"], [b"SET", tag + b"old", b"x"],
                  [b"PEXPIREAT", tag + b"old", b"1000"],  # past TTLs are stored, not applied
                  [b"HSETEX", tag + b"h", b"PXAT", b"4102444800000", b"FIELDS", b"1", b"f", b"v"],
                  [b"CLUSTER", b"SYNCSLOTS", b"SNAPSHOT-EOF"]]  # fmt: skip
        sock.sendall(b"".join(encode_command(a) for a in stream))
        got = _read_commands(sock, RequestParser(), b"REQUEST-PAUSE")
        assert got[-1] == [b"CLUSTER", b"SYNCSLOTS", b"REQUEST-PAUSE"]
        assert migrations(target)[0][b"state"] == b"waiting-for-paused"
        # the keys are there (per-slot count) but hidden from DBSIZE, KEYS, SCAN, RANDOMKEY
        assert _count(target, 100) == 3
        assert target.dbsize() == 0 and target.keys() == [] and target.randomkey() is None
        assert list(target.scan_iter()) == []
        with pytest.raises(redis.ResponseError, match=r"Slot import in progress\."):
            target.execute_command("CLUSTER", "SETSLOT", 100, "STABLE")
        assert not target.info("keyspace")
        sock.close()  # the source is gone: the import fails and its keys go
        job = wait_job(target)
        assert job[b"state"] == b"failed"
        assert job[b"message"].startswith(b"Connection lost to source.")
        assert _count(target, 100) == 0
        aof = _incr_commands(cl.nodes[1].dir)
        i = aof.index(est)
        assert [b"SET", tag + b"a", b"1"] in aof[i:]
        assert [b"UNLINK", tag + b"a"] in aof[i:]
        assert aof[-1][:7] == [b"CLUSTER", b"SYNCSLOTS", b"FINISH", b"STATE", b"FAILED", b"NAME",
                               JOB]  # fmt: skip


def _incr_commands(d: Path) -> list[list[bytes]]:
    p = RequestParser()
    for f in sorted((d / "appendonlydir").glob("*.incr.aof")):
        p.feed(f.read_bytes())
    return [a for a in p.commands()]


# ---- a source watched by a fake target -----------------------------------------------------


def test_source_streams_select_before_live_writes_and_cancels(tmp_path: Path) -> None:
    """The fake target answers ESTABLISH and reads, but never asks for the pause: the source
    stays in ``replicating``. A write to db 0 made after a snapshot that ended in db 2 arrives
    after ``SELECT 0`` (Valkey 9.1.2 sent it without: fixtures/valkey-9.1.2/slot_migration).
    CANCELSLOTMIGRATIONS then ends the job and the source keeps every key."""
    port, fake_port = free_port(), free_port()
    me, fake = "1" * 40, "2" * 40
    d = tmp_path / "n0"
    d.mkdir()
    (d / "nodes.conf").write_text(
        f"{me} 127.0.0.1:{port}@{port + 1},,shard-id={me} myself,master - 0 0 1 connected "
        f"0-16383\n{fake} 127.0.0.1:{fake_port}@{fake_port + 1},,shard-id={fake} master - 0 0 2 "
        "connected\nvars currentEpoch 2 lastVoteEpoch 0\n"
    )
    listener = socket.create_server(("127.0.0.1", fake_port))
    srv = start_node(d, port=port)
    try:
        wait_ready(srv)
        c = srv.client()
        wait_for(lambda: b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO"))
        tag = tag_for(100)
        for db in (0, 2):
            srv.client(db=db).set(tag + b"k%d" % db, b"v")
        migrate(c, fake, (100, 100))
        listener.settimeout(10)
        while True:  # the bus may knock too: the migration link is the one with ESTABLISH
            link, _ = listener.accept()
            parser = RequestParser()
            link.settimeout(10)
            first = link.recv(65536)
            parser.feed(first)
            cmds = list(parser.commands())
            if cmds and S.is_syncslots(cmds[0]):
                break
            link.close()
        assert cmds[0][2] == b"ESTABLISH" and cmds[0][4] == me.encode()
        link.sendall(b"+OK\r\n")
        got = _read_commands(link, parser, b"SNAPSHOT-EOF")
        assert [b"SELECT", b"2"] in got and [b"SET", tag + b"k2", b"v"] in got
        wait_job(c, (b"replicating",))
        srv.client(db=0).rpush(tag + b"list", b"new")
        link.settimeout(5)
        tail: list[list[bytes]] = []
        while len(tail) < 2:
            parser.feed(link.recv(65536))
            tail += [a for a in parser.commands() if not S.is_syncslots(a)]
        assert tail[:2] == [[b"SELECT", b"0"], [b"RPUSH", tag + b"list", b"new"]]
        assert c.execute_command("CLUSTER", "CANCELSLOTMIGRATIONS") == b"OK"
        job = wait_job(c)
        assert job[b"state"] == b"cancelled" and job[b"message"] == b""
        deadline = time.monotonic() + 5
        while link.recv(65536) and time.monotonic() < deadline:
            pass  # the source closed the link
        assert srv.client(db=0).lrange(tag + b"list", 0, -1) == [b"new"]
        assert srv.client(db=2).get(tag + b"k2") == b"v"
        srv.client(db=0).set(tag + b"after", b"1")  # still served here
        with pytest.raises(Exception, match="No migrations ongoing"):
            c.execute_command("CLUSTER", "CANCELSLOTMIGRATIONS")
        link.close()
    finally:
        listener.close()
        stop_node(srv)


@pytest.mark.parametrize("preamble", ["yes", "no"])
def test_rewrite_and_save_during_an_import_keep_no_strays(tmp_path: Path, preamble: str) -> None:
    """A BGREWRITEAOF and a BGSAVE on the target while an import runs write its keys with the
    job (RDB opcode 243, or ESTABLISH at the head of a RESP base; spec 3.11): after a SIGKILL
    mid-import, the restarted node drops them from the new base and from dump.rdb alike."""
    with engine_cluster(tmp_path, 2) as cl:
        target = cl.client(1)
        target.config_set("aof-use-rdb-preamble", preamble)
        tag = tag_for(100)  # node 0's slot
        sock = socket.create_connection(("127.0.0.1", cl.nodes[1].port))
        _send(sock, b"CLUSTER", b"SYNCSLOTS", b"ESTABLISH", b"SOURCE", cl.ids[0].encode(),
              b"NAME", JOB, b"SLOTSRANGE", b"100", b"100")  # fmt: skip
        assert sock.recv(100) == b"+OK\r\n"
        stream = [[b"CLUSTER", b"SYNCSLOTS", b"ACK"], [b"SELECT", b"0"],
                  [b"SET", tag + b"a", b"1"], [b"RPUSH", tag + b"l", b"x"]]  # fmt: skip
        sock.sendall(b"".join(encode_command(a) for a in stream))
        wait_for(lambda: _count(target, 100) == 2)
        target.set(b"mine", b"kept")  # a slot of node 1: survives everything
        for cmd, field in (("BGREWRITEAOF", "aof_rewrite_in_progress"),
                           ("BGSAVE", "rdb_bgsave_in_progress")):  # fmt: skip
            target.execute_command(cmd)
            wait_for(lambda f=field: target.info("persistence")[f] == 0, timeout=30)
        sock.sendall(encode_command([b"SET", tag + b"b", b"2"]))  # into the new incr file
        wait_for(lambda: _count(target, 100) == 3)
        node = cl.nodes[1]
        stop_node(node, "kill")
        for use_rdb in (False, True):  # the AOF dir, then dump.rdb alone
            if use_rdb:
                import shutil

                shutil.rmtree(node.dir / "appendonlydir")
            args = () if not use_rdb else ("--appendonly", "no")
            srv = start_node(node.dir, *args, port=node.port)
            try:
                wait_ready(srv)
                c = srv.client()
                wait_for(lambda c=c: b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO"))
                assert c.get(b"mine") == b"kept"
                assert _count(c, 100) == 0, use_rdb  # the unfinished import's keys are gone
                c.close()
            finally:
                stop_node(srv)
        sock.close()
