"""Faults (issue 4 and issue 8): AOF write and fsync errors (in-process with failing system
calls, and on a real full tmpfs when the machine lets us mount one), MISCONF refusals and the
recovery, failed BGSAVE/BGREWRITEAOF, CONFIG SET appendonly at runtime, the old single-file AOF
upgrade, aof-disable-auto-gc, and kill -9 at every step of the manifest switch and during SAVE.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from enginesrv import engine_server
from redis.backoff import NoBackoff
from redis.retry import Retry
from test_durability import cmd, manifest_lines, persistence, snapshot, wait_for

from engine.config import Config
from engine.engine import Engine
from engine.errors import MISCONF_RDB, misconf_aof
from engine.server import aof_writer, rewrite
from engine.server import snapshot as snapshot_mod
from engine.server.aof_writer import AofWriter, split_held
from engine.server.durability import Durability
from persistence.aof.encoder import encode_command
from persistence.aof.manifest import read_manifest
from persistence.resp.frames import Error

ENOSPC = misconf_aof(os.strerror(errno.ENOSPC))


# -- in-process: the writer and the controller with failing system calls --------------------
def make(tmp_path: Path, **conf: str) -> tuple[Engine, AofWriter, Durability]:
    config = Config()
    config.set("dir", str(tmp_path))
    config.set("save", "")
    for k, v in conf.items():
        config.set(k.replace("_", "-"), v)
    engine = Engine(config)
    aof = AofWriter(engine)
    aof.open()
    return engine, aof, Durability(engine, aof)


def run(engine: Engine, aof: AofWriter, *argv: bytes) -> Any:
    client = engine.clients.get(1) or engine.new_client()
    reply, effects = engine.execute(client, list(argv))
    if effects:
        aof.feed(effects)
    return reply


def incr_bytes(aof: AofWriter) -> bytes:
    assert aof.current_file is not None
    return aof.current_file.read_bytes()


class Disk:
    """Replaces the writer's write/fsync: ``full`` fails writes (after ``room`` bytes),
    ``bad_fsync`` fails fsyncs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        self.room = 0
        self.bad_fsync = False
        self.errno = errno.ENOSPC
        monkeypatch.setattr(aof_writer, "_write", self.write)
        monkeypatch.setattr(aof_writer, "_fsync", self.fsync)

    def write(self, fd: int, data: Any) -> int:
        if self.full:
            if self.room <= 0:
                raise OSError(self.errno, os.strerror(self.errno))
            n = os.write(fd, bytes(data[: self.room]))
            self.room -= n
            return n
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        if self.bad_fsync:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.fsync(fd)


def test_write_error_refuses_writes_then_recovers(tmp_path: Path, monkeypatch: Any) -> None:
    engine, aof, d = make(tmp_path, appendfsync="everysec")
    disk = Disk(monkeypatch)
    assert run(engine, aof, b"SET", b"a", b"1") is not None
    assert aof.flush()
    before = incr_bytes(aof)
    disk.full, disk.room = True, 10  # a short write, then ENOSPC: cut off again (ftruncate)
    run(engine, aof, b"SET", b"b", b"2")
    assert aof.flush()  # everysec: the reply may go (Valkey), later writes are refused
    assert incr_bytes(aof) == before
    assert engine.disk_error == ENOSPC
    assert dict(d.info())["aof_last_write_status"] == "err"
    for argv in ([b"SET", b"c", b"3"], [b"PING"], [b"INCR", b"n"]):
        assert run(engine, aof, *argv) == Error(ENOSPC.encode())
    # no rewrite while the buffer is not on disk: its data must not land in the new incr file
    assert d.bgrewriteaof(False) == "failed"
    assert len(aof.manifest.incrs) == 1
    assert run(engine, aof, b"GET", b"a") == b"1"  # reads are served
    run(engine, aof, b"MULTI")
    assert run(engine, aof, b"SET", b"c", b"3") == Error(ENOSPC.encode())
    assert run(engine, aof, b"EXEC").message.startswith(b"EXECABORT")
    disk.full = False
    assert aof.flush()  # what the cron does ten times a second
    assert engine.disk_error is None
    assert dict(d.info())["aof_last_write_status"] == "ok"
    assert incr_bytes(aof) == before + encode_command([b"SET", b"b", b"2"])
    assert run(engine, aof, b"SET", b"c", b"3") is not None


def test_short_writes_are_written_on(tmp_path: Path, monkeypatch: Any) -> None:
    """A write(2) that takes only part of the turn's bytes (a signal, a nearly full disk) is
    not an error: the rest is written after it, in order (src/aof.c flushAppendOnlyFile
    retries the rest the same way)."""
    engine, aof, _ = make(tmp_path, appendfsync="everysec")
    calls: list[int] = []

    def short(fd: int, data: Any) -> int:
        calls.append(len(data))
        return os.write(fd, bytes(data[:7]))

    monkeypatch.setattr(aof_writer, "_write", short)
    for i in range(3):
        run(engine, aof, b"SET", b"k%d" % i, b"v" * 20)
    want = b"".join(aof.buf)  # (a SELECT first, then the three)
    assert want.endswith(
        b"".join(encode_command([b"SET", b"k%d" % i, b"v" * 20]) for i in range(3))
    )
    assert aof.flush()
    assert incr_bytes(aof) == want
    assert len(calls) == -(-len(want) // 7)  # 7 bytes a call, each starting where one ended
    assert engine.disk_error is None


def test_always_holds_replies_until_the_data_is_on_disk(tmp_path: Path, monkeypatch: Any) -> None:
    engine, aof, _ = make(tmp_path, appendfsync="always")
    disk = Disk(monkeypatch)
    disk.bad_fsync = True  # written but not durable: cut back and written again later
    run(engine, aof, b"SET", b"a", b"1")
    assert not aof.flush()
    assert incr_bytes(aof) == b""
    assert engine.disk_error == misconf_aof(os.strerror(errno.EIO))

    class Conn:
        def __init__(self, *out: bytes) -> None:
            self.out = list(out)

    ok, refused, mixed = Conn(b"+OK\r\n"), Conn(b"-MISCONF x\r\n"), Conn(b"-ERR\r\n", b":1\r\n")
    release, held = split_held([ok, refused, mixed])
    assert release == [refused] and held == [ok, mixed]
    disk.bad_fsync = False
    disk.full = True  # now the disk is full: still held
    assert not aof.flush()
    disk.full = False
    assert aof.flush()
    assert engine.disk_error is None
    assert incr_bytes(aof) == encode_command([b"SELECT", b"0"]) + encode_command(
        [b"SET", b"a", b"1"]
    )


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.sent.append(data)


class FakeConn:
    def __init__(self, *out: bytes) -> None:
        self.out = list(out)
        self.transport = FakeTransport()
        self.closing = False
        self.paused = False


def test_server_flush_holds_replies_with_always(tmp_path: Path, monkeypatch: Any) -> None:
    """The server end of the turn (server.py flush): with a failed ``always`` write only
    error-only output leaves; the rest waits, in order, and goes once the write succeeds."""
    from engine.server.server import Server

    engine, aof, _ = make(tmp_path, appendfsync="always")
    server = Server(engine, aof)
    disk = Disk(monkeypatch)
    disk.full = True
    run(engine, aof, b"SET", b"a", b"1")
    acked, refused = FakeConn(b"+OK\r\n"), FakeConn(b"-" + ENOSPC.encode() + b"\r\n")
    server.pending = [acked, refused]
    server.flush()
    assert refused.transport.sent and not acked.transport.sent
    assert server.pending == [acked]
    acked.out.append(b"$1\r\n1\r\n")  # a later read on the same connection queues behind
    server.flush()  # the cron's retry, still failing
    assert not acked.transport.sent
    disk.full = False
    server.flush()
    assert acked.transport.sent == [b"+OK\r\n$1\r\n1\r\n"] and server.pending == []


def test_everysec_fsync_error_is_reported(tmp_path: Path, monkeypatch: Any) -> None:
    engine, aof, d = make(tmp_path, appendfsync="everysec")
    disk = Disk(monkeypatch)
    disk.bad_fsync = True
    run(engine, aof, b"SET", b"a", b"1")
    assert aof.flush()
    wait_for(lambda: not aof.fsync_ok, 5)
    d.cron()
    assert engine.disk_error == misconf_aof(os.strerror(errno.EIO))
    assert dict(d.info())["aof_last_write_status"] == "err"
    disk.bad_fsync = False
    wait_for(lambda: aof.fsync_ok, 5)
    d.cron()
    assert engine.disk_error is None


def _fail(*_a: Any, **_k: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def wait_child(d: Durability) -> None:
    wait_for(lambda: (d.cron(), d.child_pid <= 0)[1], 20)


def test_failed_bgsave_and_rewrite_keep_old_files(tmp_path: Path, monkeypatch: Any) -> None:
    engine, aof, d = make(tmp_path, appendfsync="everysec")
    run(engine, aof, b"SET", b"a", b"1")
    aof.flush()
    assert d.save() == "ok"
    dump = (tmp_path / "dump.rdb").read_bytes()
    manifest = read_manifest(aof.dir / "appendonly.aof.manifest")
    monkeypatch.setattr(snapshot_mod, "save_rdb", _fail)
    monkeypatch.setattr(rewrite, "write_base", _fail)
    monkeypatch.setattr(rewrite, "write_rdb_base", _fail, raising=False)  # the preamble path
    engine.config.set("save", "3600 1")
    assert d.bgsave(False, False) == "started"
    wait_child(d)
    info = dict(d.info())
    assert info["rdb_last_bgsave_status"] == "err"
    assert engine.disk_error == MISCONF_RDB
    assert run(engine, aof, b"SET", b"b", b"2") == Error(MISCONF_RDB.encode())
    engine.config.set("stop-writes-on-bgsave-error", "no")
    assert engine.disk_error is None
    assert d.bgrewriteaof(False) == "started"
    wait_child(d)
    assert dict(d.info())["aof_last_bgrewrite_status"] == "err"
    assert (tmp_path / "dump.rdb").read_bytes() == dump
    m = read_manifest(aof.dir / "appendonly.aof.manifest")
    assert m.base == manifest.base and len(m.incrs) == 2  # old files + the new incr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("temp-")]
    aof.close()


# -- a real full disk (a 1 MB tmpfs; needs root) ---------------------------------------------
@contextlib.contextmanager
def small_tmpfs(path: Path) -> Iterator[Path]:
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                       capture_output=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def resize(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def test_full_disk_with_always_loses_nothing_acknowledged(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        with engine_server(disk, "--appendfsync", "always", "--save", "") as srv:
            acked: list[int] = []
            stop = threading.Event()
            blob = os.urandom(40_000)

            def writer() -> None:  # its reply for the write that hit the full disk is held
                w = srv.client(socket_timeout=60)
                i = 0
                while not stop.is_set():
                    w.set(f"k{i}", blob)
                    acked.append(i)
                    i += 1

            t = threading.Thread(target=writer, daemon=True)
            t.start()
            c = srv.client(socket_timeout=10)
            wait_for(lambda: cmd(c, "SET", "probe", "1") == "ERR " + ENOSPC)
            n = len(acked)
            time.sleep(0.5)
            assert len(acked) == n and t.is_alive()  # not acknowledged while not durable
            assert cmd(c, "PING") == "ERR " + ENOSPC
            # the writer ends with its held write: else it could fill the returned space again
            # before the probe below gets through (a race a faster server lost)
            stop.set()
            resize(disk, "8m")  # space returns: the retry (every cron tick) succeeds
            wait_for(lambda: cmd(c, "SET", "probe", "1") == "OK")
            wait_for(lambda: len(acked) > n)  # the held reply went out
            t.join(30)
            assert not t.is_alive()
            assert persistence(c)["aof_last_write_status"] == "ok"
            before = snapshot(c)
            srv.stop()
        assert "Error writing to the AOF file" in srv.log
        assert "AOF write error looks solved" in srv.log
        with engine_server(disk, "--save", "") as srv:
            c = srv.client()
            assert snapshot(c) == before
            assert all(c.exists(f"k{i}") for i in acked)


@pytest.mark.real
def test_full_disk_replies_as_valkey(tmp_path: Path) -> None:
    """everysec on a full disk, side by side with valkey-server: the same refusals, the same
    INFO status, and both recover when space returns."""
    from realserver import real_server

    seen: list[list[Any]] = []
    for name in ("valkey", "ours"):
        with small_tmpfs(tmp_path / name) as disk:
            if name == "valkey":
                ctx: Any = real_server(disk, "--appendonly", "yes", "--appendfsync", "everysec")
            else:
                ctx = engine_server(disk, "--appendfsync", "everysec", "--save", "")
            with ctx as srv:
                c = srv.client()
                c.set("big", b"x" * 1_500_000)  # acknowledged (everysec); its write fails
                wait_for(lambda c=c: persistence(c)["aof_last_write_status"] == "err")
                got = [cmd(c, "SET", "k", "v"), cmd(c, "PING"), cmd(c, "GET", "k")]
                got += [cmd(c, "MULTI"), cmd(c, "INCR", "n"), cmd(c, "EXEC")]
                resize(disk, "8m")
                wait_for(lambda c=c: persistence(c)["aof_last_write_status"] == "ok")
                got += [cmd(c, "SET", "k", "v"), c.strlen("big")]
                seen.append(got)
    assert seen[0] == seen[1]
    assert seen[1][:2] == ["ERR " + ENOSPC] * 2


@pytest.mark.real
def test_failed_bgsave_on_a_full_disk_as_valkey(tmp_path: Path) -> None:
    """A BGSAVE that fills the disk: rdb_last_bgsave_status err, the previous dump.rdb intact,
    no temp file left, writes refused with the RDB MISCONF text until ``save ""``."""
    from realserver import real_server

    seen: list[list[Any]] = []
    for name in ("valkey", "ours"):
        with small_tmpfs(tmp_path / name) as disk:
            args = ("--appendonly", "no", "--save", "3600 1")
            ctx: Any = (real_server if name == "valkey" else engine_server)(disk, *args)
            with ctx as srv:
                c = srv.client()
                c.set("a", os.urandom(400_000))
                assert cmd(c, "SAVE") == "OK"
                dump = (disk / "dump.rdb").read_bytes()
                c.set("b", os.urandom(400_000))
                got = [cmd(c, "BGSAVE")]
                wait_for(lambda c=c: persistence(c)["rdb_bgsave_in_progress"] == 0)
                got += [persistence(c)["rdb_last_bgsave_status"], cmd(c, "SET", "k", "v")]
                got += [cmd(c, "PING"), cmd(c, "SAVE"), persistence(c)["rdb_last_bgsave_status"]]
                got += [cmd(c, "CONFIG", "SET", "save", "")]
                got += [cmd(c, "SET", "k", "v")]
                assert (disk / "dump.rdb").read_bytes() == dump
                assert not [n for n in os.listdir(disk) if n.startswith("temp-")]
                seen.append(got)
    assert seen[0] == seen[1]
    assert seen[1][1:4] == ["err", "ERR " + MISCONF_RDB, "ERR " + MISCONF_RDB]


# -- CONFIG SET appendonly at runtime (src/aof.c startAppendOnly / stopAppendOnly) -----------
def test_config_set_appendonly_at_runtime(tmp_path: Path) -> None:
    with engine_server(tmp_path, "--appendonly", "no", "--save", "") as srv:
        c = srv.client()
        c.set("before", "1")
        c.rpush("list", "a", "b")
        info = persistence(c)
        assert info["aof_enabled"] == 0 and "aof_current_size" not in info
        assert not (tmp_path / "appendonlydir").exists()
        assert cmd(c, "CONFIG", "SET", "appendonly", "yes") == "OK"
        assert persistence(c)["aof_enabled"] == 1
        c.set("during", "2")  # in the base, or in temp-appendonly.aof.incr if the child runs
        wait_for(lambda: persistence(c)["aof_rewrite_scheduled"] == 0)
        wait_for(lambda: persistence(c)["aof_rewrite_in_progress"] == 0)
        info = persistence(c)
        assert info["aof_enabled"] == 1 and info["aof_last_bgrewrite_status"] == "ok"
        assert info["aof_rewrite_scheduled"] == 0 and info["aof_current_size"] > 0
        c.set("after", "3")
        assert manifest_lines(tmp_path) == [
            "file appendonly.aof.1.base.rdb seq 1 type b",
            "file appendonly.aof.1.incr.aof seq 1 type i",
        ]
        assert sorted(os.listdir(tmp_path / "appendonlydir")) == [
            "appendonly.aof.1.base.rdb", "appendonly.aof.1.incr.aof", "appendonly.aof.manifest"
        ]  # fmt: skip
        before = snapshot(c)
        assert cmd(c, "CONFIG", "SET", "appendonly", "no") == "OK"
        assert persistence(c)["aof_enabled"] == 0
        c.set("not-in-the-aof", "4")
        srv.stop("kill")
    with engine_server(tmp_path, "--save", "") as srv:
        c = srv.client()
        assert snapshot(c) == before
        # on again with the old directory: a new base, the old files go as history
        assert cmd(c, "CONFIG", "SET", "appendonly", "no") == "OK"
        assert cmd(c, "CONFIG", "SET", "appendonly", "yes") == "OK"
        wait_for(lambda: persistence(c)["aof_rewrite_scheduled"] == 0)
        wait_for(lambda: persistence(c)["aof_rewrite_in_progress"] == 0)
        c.set("x", "5")
        before = snapshot(c)
    assert manifest_lines(tmp_path) == [
        "file appendonly.aof.2.base.rdb seq 2 type b",
        "file appendonly.aof.2.incr.aof seq 2 type i",
    ]
    with engine_server(tmp_path, "--save", "") as srv:
        assert snapshot(srv.client()) == before


def test_bgrewriteaof_with_appendonly_off_writes_a_base_only_dir(tmp_path: Path) -> None:
    """As valkey-server 9.1.2: a base and a manifest without incr files; the next rewrite's
    base replaces it (history removed); the directory loads once appendonly is on."""
    with engine_server(tmp_path, "--appendonly", "no", "--save", "") as srv:
        c = srv.client()
        c.set("a", "1")
        for seq in (1, 2):
            assert cmd(c, "BGREWRITEAOF") == "Background append only file rewriting started"
            wait_for(lambda: persistence(c)["aof_rewrite_in_progress"] == 0)
            assert manifest_lines(tmp_path) == [
                f"file appendonly.aof.{seq}.base.rdb seq {seq} type b"
            ]
        info = persistence(c)
        assert info["aof_enabled"] == 0 and info["aof_last_bgrewrite_status"] == "ok"
        assert sorted(os.listdir(tmp_path / "appendonlydir")) == [
            "appendonly.aof.2.base.rdb", "appendonly.aof.manifest"
        ]  # fmt: skip
    with engine_server(tmp_path, "--save", "") as srv:
        assert srv.client().get("a") == b"1"
    assert manifest_lines(tmp_path) == [
        "file appendonly.aof.2.base.rdb seq 2 type b",
        "file appendonly.aof.1.incr.aof seq 1 type i",
    ]


# -- the old single-file appendonly.aof (src/aof.c aofUpgradePrepare) ------------------------
OLD_AOF = b"".join(
    encode_command(a)
    for a in ([b"SELECT", b"0"], [b"SET", b"a", b"1"], [b"RPUSH", b"l", b"x", b"y"],
              [b"SELECT", b"2"], [b"HSET", b"h", b"f", b"v"])
)  # fmt: skip
UPGRADED = [
    "file appendonly.aof seq 1 type b",
    "file appendonly.aof.1.incr.aof seq 1 type i",
]


def test_old_style_aof_is_upgraded(tmp_path: Path) -> None:
    (tmp_path / "appendonly.aof").write_bytes(OLD_AOF)
    with engine_server(tmp_path, "--save", "") as srv:
        c = srv.client()
        assert c.get("a") == b"1" and c.lrange("l", 0, -1) == [b"x", b"y"]
        c.execute_command("SELECT", 2)
        assert c.hgetall("h") == {b"f": b"v"}
        c.set("new", "1")
        before = snapshot(c)
    assert "Successfully migrated an old-style AOF file" in srv.log
    assert not (tmp_path / "appendonly.aof").exists()
    assert manifest_lines(tmp_path) == UPGRADED
    assert (tmp_path / "appendonlydir" / "appendonly.aof").read_bytes() == OLD_AOF
    with engine_server(tmp_path, "--save", "") as srv:
        assert snapshot(srv.client()) == before


def test_upgrade_interrupted_after_the_manifest(tmp_path: Path) -> None:
    """aofUpgradePrepare writes the manifest, then moves the file: a crash in between is
    finished at the next start (case 3 of src/aof.c loadAppendOnlyFiles)."""
    (tmp_path / "appendonly.aof").write_bytes(OLD_AOF)
    d = tmp_path / "appendonlydir"
    d.mkdir()
    (d / "appendonly.aof.manifest").write_text("file appendonly.aof seq 1 type b\n")
    with engine_server(tmp_path, "--save", "") as srv:
        assert srv.client().get("a") == b"1"
    assert manifest_lines(tmp_path) == UPGRADED


@pytest.mark.real
def test_upgrade_matches_valkey(tmp_path: Path) -> None:
    from realserver import real_server

    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for p in (ours, theirs):
        p.mkdir()
        (p / "appendonly.aof").write_bytes(OLD_AOF)
    with real_server(theirs, "--appendonly", "yes") as real:
        expected = snapshot(real.client())
    with engine_server(ours, "--save", "") as srv:
        assert snapshot(srv.client()) == expected
    assert manifest_lines(ours) == manifest_lines(theirs) == UPGRADED
    assert sorted(os.listdir(ours / "appendonlydir")) == sorted(
        os.listdir(theirs / "appendonlydir")
    )
    with real_server(ours, "--appendonly", "yes") as real:  # and valkey loads ours
        assert snapshot(real.client()) == expected


# -- aof-disable-auto-gc (hidden config, src/aof.c aofDelHistoryFiles) ------------------------
def test_aof_disable_auto_gc_keeps_history(tmp_path: Path) -> None:
    with engine_server(tmp_path, "--save", "", "--aof-disable-auto-gc", "yes") as srv:
        c = srv.client()
        assert c.config_get("*").get("aof-disable-auto-gc") is None  # hidden from patterns
        assert c.config_get("aof-disable-auto-gc") == {"aof-disable-auto-gc": "yes"}
        c.set("a", "1")
        assert cmd(c, "BGREWRITEAOF").startswith("Background append only file rewriting")
        wait_for(lambda: persistence(c)["aof_rewrite_in_progress"] == 0)
        assert manifest_lines(tmp_path) == [
            "file appendonly.aof.2.base.rdb seq 2 type b",
            "file appendonly.aof.1.base.rdb seq 1 type h",
            "file appendonly.aof.1.incr.aof seq 1 type h",
            "file appendonly.aof.2.incr.aof seq 2 type i",
        ]
        assert (tmp_path / "appendonlydir" / "appendonly.aof.1.incr.aof").exists()
        assert cmd(c, "CONFIG", "SET", "aof-disable-auto-gc", "no") == "OK"  # removes them now
        assert manifest_lines(tmp_path) == [
            "file appendonly.aof.2.base.rdb seq 2 type b",
            "file appendonly.aof.2.incr.aof seq 2 type i",
        ]
        assert not (tmp_path / "appendonlydir" / "appendonly.aof.1.incr.aof").exists()
        before = snapshot(c)
    with engine_server(tmp_path, "--save", "") as srv:
        assert snapshot(srv.client()) == before


# -- kill -9 at every step of the manifest switch, and during SAVE (issue 8) -----------------
# a BGREWRITEAOF persists the manifest three times: the new incr (before the fork), the new
# base with the old files as history, the history gone; ":n" is the n-th of them
SWITCH_POINTS = [
    "manifest-renamed:1",  # the new incr is listed; the child was not forked yet
    "rewrite-base-renamed",  # the new base is in place, not in the manifest
    "manifest-temp-written:2",  # the new manifest is written but not renamed
    "manifest-renamed:2",  # the new manifest is in place, the history files are not removed
    "history-removed",  # history unlinked, still listed as history in the manifest
]


@pytest.mark.parametrize("point", SWITCH_POINTS)
def test_kill_during_manifest_switch_leaves_a_loadable_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    monkeypatch.setenv("VALKEY_ENGINE_CRASH_AT", point)
    with engine_server(tmp_path, "--appendfsync", "always", "--save", "") as srv:
        c = srv.client(socket_timeout=10, retry=Retry(NoBackoff(), 0))
        c.mset({f"k{i}": i for i in range(200)})
        c.hset("h", mapping={"a": "1", "b": "2"})
        before = snapshot(c)
        cmd(c, "BGREWRITEAOF")  # no reply if the kill comes before it ends (":1" points)
        srv.proc.wait(20)
    assert srv.proc.returncode == -signal.SIGKILL
    assert f"Crash point {point} reached" in srv.log
    monkeypatch.delenv("VALKEY_ENGINE_CRASH_AT")
    with engine_server(tmp_path, "--save", "") as srv:
        c = srv.client()
        assert snapshot(c) == before
        if point not in ("manifest-renamed:1", "rewrite-base-renamed"):
            return
        # stray files (an incr or base not in the manifest) are overwritten by the next rewrite
        c.set("after", "1")
        assert cmd(c, "BGREWRITEAOF").startswith("Background append only file rewriting")
        wait_for(lambda: persistence(c)["aof_rewrite_in_progress"] == 0)
        assert persistence(c)["aof_last_bgrewrite_status"] == "ok"
    assert not [n for n in os.listdir(tmp_path / "appendonlydir") if n.startswith("temp-")]


def test_kill_during_save_keeps_the_previous_dump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine()
    engine.execute(engine.new_client(), [b"SET", b"old", b"1"])
    snapshot_mod.save_rdb(engine, tmp_path / "dump.rdb")
    dump = (tmp_path / "dump.rdb").read_bytes()
    monkeypatch.setenv("VALKEY_ENGINE_CRASH_AT", "rdb-save-midway")
    with engine_server(tmp_path, "--appendonly", "no", "--save", "") as srv:
        c = srv.client(retry=Retry(NoBackoff(), 0))
        c.set("new", "2")
        assert cmd(c, "SAVE") is None  # killed in the middle: no reply
        srv.proc.wait(10)
    assert srv.proc.returncode == -signal.SIGKILL
    assert (tmp_path / "dump.rdb").read_bytes() == dump
    monkeypatch.delenv("VALKEY_ENGINE_CRASH_AT")
    with engine_server(tmp_path, "--appendonly", "no", "--save", "") as srv:
        c = srv.client()
        assert c.get("old") == b"1" and c.get("new") is None
