"""The AOF writer: the current incr file, the fsync policy, the manifest and write errors.

How this works: every execution unit's effects go through the one encoder into ``buf``, with
SELECT when the db changes (src/aof.c feedAppendOnlyFile). The server calls :meth:`flush` once
per event-loop turn before it sends replies, so ``appendfsync always`` is a group commit: one
write + one fsync for every client served in that turn. ``everysec`` fsyncs from a background
thread once a second; ``no`` leaves it to the OS.

Write errors (disk full, read-only, EIO) follow src/aof.c flushAppendOnlyFile: a short write is
cut off again with ftruncate, the data stays in ``buf`` and is retried at every flush (the cron
schedules one ten times a second), ``aof_last_write_status`` is ``err`` and the durability
controller refuses writes with ``-MISCONF`` until a write succeeds ("AOF write error looks
solved"). Valkey exits on an error with ``appendfsync always`` because its replies may already
be in the output buffers; ours are not: :meth:`flush` answers False and the server keeps every
non-error reply of that turn and later ones (see :func:`split_held`) until the data is on disk,
so nothing is acknowledged (or observed by a read) that a crash could lose, and the server
recovers by itself when space returns. A failed fsync is treated as a failed write (the file is
cut back and the data written again) because after a failed fsync the kernel may have dropped
the dirty pages.

A writer in ``waiting`` state is AOF being turned on at runtime (src/aof.c AOF_WAIT_REWRITE): it
appends to ``temp-<appendfilename>.incr`` until the first rewrite installs a base and renames
that file into the manifest's next incr file (rewrite.py).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.context import Effect
from engine.engine import Engine
from engine.server.faults import crash_point
from engine.server.snapshot import rdb_options
from persistence.aof.dirwriter import BaseFormat, write_aof_dir
from persistence.aof.encoder import encode_command, timestamp_annotation
from persistence.aof.manifest import (
    Manifest,
    ManifestEntry,
    base_name,
    format_manifest,
    incr_name,
    manifest_name,
    read_manifest,
    temp_manifest_name,
)
from persistence.atomic import fsync_dir

log = logging.getLogger("valkey-engine")

WRITE_ERROR_LOG_RATE = 30.0  # src/aof.c AOF_WRITE_LOG_ERROR_RATE (seconds)
APPENDFSYNC = "appendfsync"  # (Config.values key: read once per event-loop turn)
# the system calls of the append path, by name so the fault tests can make them fail
_write = os.write
_fsync = os.fsync


def aof_dir(engine: Engine) -> Path:
    return Path(str(engine.config["dir"])) / str(engine.config["appenddirname"])


def temp_incr_name(prefix: str) -> str:
    return f"temp-{prefix}.incr"  # src/aof.c getTempIncrAofName


def _open_append(path: Path, *, truncate: bool = False) -> int:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_TRUNC if truncate else 0)
    return os.open(path, flags, 0o644)


class AofWriter:
    """The current incr file: appends, the fsync policy, the manifest and the AOF sizes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        cfg = engine.config
        self.dir = aof_dir(engine)
        self.prefix = str(cfg["appendfilename"])
        self.fd = -1
        self.buf: list[bytes] = []
        self.selected_db = -1
        self.last_ts = 0
        self.unsynced = False
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.current_file: Path | None = None
        self.manifest = Manifest()
        self.waiting = False  # AOF_WAIT_REWRITE: turned on at runtime, no base of our own yet
        self.offline = False  # appendonly no: only BGREWRITEAOF's base and manifest
        self.incr_size = 0  # bytes in the current incr file
        self.current_size = 0  # aof_current_size: base + every incr
        self.base_size = 0  # aof_rewrite_base_size: aof_current_size after the last rewrite
        self.write_ok = True  # aof_last_write_status (the write half)
        self.fsync_ok = True  # aof_bio_fsync_status (the everysec thread)
        self.write_errno = 0  # aof_last_write_errno
        self.need_fsync = False  # always: bytes written whose fsync has not succeeded yet
        self.last_error_log = 0.0
        self.delayed_fsync = 0
        self.on_status: Callable[[], None] | None = None  # write status changed

    def file_size(self, name: str) -> int:
        try:
            return os.path.getsize(self.dir / name)
        except OSError:
            return 0

    # -- opening --------------------------------------------------------------------------
    def open(self) -> None:
        """Open the manifest's last incr file for appending, creating the directory if needed
        (src/aof.c aofOpenIfNeededOnServerStart: a base of the current data, seq 1, and an
        empty incr file), then drop history files (aofDelHistoryFiles on start)."""
        manifest = self.dir / manifest_name(self.prefix)
        if not manifest.exists():
            base: BaseFormat = "rdb" if self.engine.config["aof-use-rdb-preamble"] else "aof"
            ts = int(time.time()) if self.engine.config["aof-timestamp-enabled"] else None
            opts = rdb_options(self.engine, aof_base=True)
            write_aof_dir(self.dir, self.engine.keyspace.records(), base=base, prefix=self.prefix,
                          timestamp=ts, rdb_options=opts)  # fmt: skip
            log.info("Creating AOF base file %s on server start",
                     base_name(self.prefix, 1, rdb=base == "rdb"))  # fmt: skip
        self.manifest = m = read_manifest(manifest)
        if not m.incrs:  # an upgraded old-style AOF: its first incr file (src/aof.c)
            name = incr_name(self.prefix, 1)
            os.close(_open_append(self.dir / name, truncate=True))
            self.persist_manifest(Manifest(m.base, list(m.history), [ManifestEntry(name, 1, "i")]))
            log.info("Creating AOF incr file %s on server start", name)
            m = self.manifest
        self.current_file = self.dir / m.incrs[-1].name
        self.fd = _open_append(self.current_file)
        self.incr_size = os.fstat(self.fd).st_size
        # src/aof.c loadAppendOnlyFiles: aof_current_size = aof_rewrite_base_size = all files
        self.current_size = self.base_size = sum(self.file_size(e.name) for e in m.files())
        self.selected_db = -1
        self._start_fsync_thread()
        if m.history and not self.engine.config["aof-disable-auto-gc"]:
            self.delete_history()

    def open_waiting(self) -> None:
        """src/aof.c startAppendOnly: AOF_WAIT_REWRITE; the rewrite opens the temp incr."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / manifest_name(self.prefix)
        self.manifest = read_manifest(path) if path.exists() else Manifest()
        self.waiting = True
        self._start_fsync_thread()

    @classmethod
    def for_offline_rewrite(cls, engine: Engine) -> AofWriter:
        """For BGREWRITEAOF with appendonly no: no incr file, every incr becomes history."""
        w = cls(engine)
        w.offline = True
        w.dir.mkdir(parents=True, exist_ok=True)
        path = w.dir / manifest_name(w.prefix)
        w.manifest = read_manifest(path) if path.exists() else Manifest()
        return w

    def _start_fsync_thread(self) -> None:
        # always running, so CONFIG SET appendfsync everysec takes effect at once
        self.thread = threading.Thread(target=self._fsync_loop, name="aof-fsync", daemon=True)
        self.thread.start()

    # -- the manifest ---------------------------------------------------------------------
    def persist_manifest(self, m: Manifest) -> None:
        """Write ``temp-<name>.manifest``, fsync, rename, fsync the directory (src/aof.c
        persistAofManifest), with the crash points of the fault tests between the steps."""
        path = self.dir / manifest_name(self.prefix)
        tmp = self.dir / temp_manifest_name(self.prefix)
        try:
            with open(tmp, "wb") as f:
                f.write(format_manifest(m))
                f.flush()
                os.fsync(f.fileno())
            crash_point("manifest-temp-written")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.dir)
        crash_point("manifest-renamed")
        self.manifest = m

    def delete_history(self) -> None:
        """src/aof.c aofDelHistoryFiles."""
        m = self.manifest
        if not m.history:
            return
        for e in m.history:
            log.info("Removing the history file %s in the background", e.name)
            (self.dir / e.name).unlink(missing_ok=True)
        crash_point("history-removed")
        self.persist_manifest(Manifest(base=m.base, history=[], incrs=m.incrs))

    def open_new_incr(self) -> None:
        """src/aof.c openNewIncrAofForAppend: seq + 1, persisted in the manifest, then appends
        go there; the old file is fsynced and closed in the background. Waiting for the first
        rewrite, a fresh ``temp-<name>.incr`` instead, outside the manifest."""
        if self.offline:  # src/aof.c: only when AOF is on
            return
        self.flush()
        if self.buf or self.need_fsync:
            # a failed AOF write: that data belongs before the fork; in the new incr file it
            # would be applied twice (the child's base has it), so no rewrite until it is written
            raise OSError(errno.EIO, "the AOF buffer can't be written to disk yet")
        m = self.manifest
        if self.waiting:
            name = temp_incr_name(self.prefix)
            fd = _open_append(self.dir / name, truncate=True)
        else:
            seq = (m.incrs[-1].seq if m.incrs else 0) + 1
            name = incr_name(self.prefix, seq)
            fd = _open_append(self.dir / name, truncate=True)  # src/aof.c: O_TRUNC
            try:
                new = Manifest(base=m.base, history=list(m.history),
                               incrs=[*m.incrs, ManifestEntry(name, seq, "i")])  # fmt: skip
                self.persist_manifest(new)
            except OSError:
                os.close(fd)
                raise
        with self.lock:
            old, self.fd = self.fd, fd
            self.unsynced = False
        self.current_file = self.dir / name
        self.incr_size = 0
        self.selected_db = -1  # src/aof.c: the first command in the new file gets a SELECT
        self.last_ts = 0  # spec 8.6: every incr file gets a #TS: at its first write
        log.info("Creating AOF incr file %s on background rewrite", name)
        if old >= 0:
            policy = self.engine.config["appendfsync"]
            threading.Thread(target=_close_fd, args=(old, policy != "always"), daemon=True).start()

    def drop_temp_incr(self) -> None:
        """A rewrite failed while waiting: its temp incr and buffer go (src/aof.c
        backgroundRewriteDoneHandler, aofDelTempIncrAofFile); the next attempt starts anew."""
        with self.lock:
            fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)
        self.buf.clear()
        self.need_fsync = False
        log.info("Removing the temp incr aof file %s in the background",
                 temp_incr_name(self.prefix))  # fmt: skip
        (self.dir / temp_incr_name(self.prefix)).unlink(missing_ok=True)

    # -- appending ------------------------------------------------------------------------
    def feed(self, effects: list[Effect]) -> None:
        buf = self.buf
        if self.engine.config["aof-timestamp-enabled"]:
            now = int(time.time())
            if now > self.last_ts:
                buf.append(timestamp_annotation(now))
                self.last_ts = now
        for db, argv in effects:
            if db != -1 and db != self.selected_db:
                buf.append(encode_command([b"SELECT", b"%d" % db]))
                self.selected_db = db
            buf.append(encode_command(argv))

    def flush(self) -> bool:
        """Write what was fed (and fsync with ``appendfsync always``). False: ``always`` and
        some of it is not on disk, so no reply of this turn may leave (see the docstring)."""
        buf = self.buf
        if not buf and not self.need_fsync:
            return True
        if self.fd < 0:  # waiting with no rewrite running: the next base has these changes
            buf.clear()
            return True
        data = buf[0] if len(buf) == 1 else b"".join(buf)
        always = self.engine.config.values[APPENDFSYNC] == "always"
        start = self.incr_size
        written = 0
        try:
            written = _write(self.fd, data)  # (all of it, but for a full disk or a signal)
            if written < len(data):
                view = memoryview(data)
                while written < len(data):
                    written += _write(self.fd, view[written:])
            if always:
                _fsync(self.fd)
        except OSError as e:
            self._failed(e, data, start, written, always)
            return not always
        buf.clear()
        self.need_fsync = False
        self.incr_size += written
        self.current_size += written
        if not always:
            self.unsynced = True
        if not self.write_ok:
            log.info("AOF write error looks solved. The server can write again.")  # src/aof.c
            self.write_ok = True
            if self.on_status is not None:
                self.on_status()
        return True

    def _failed(self, e: OSError, data: bytes, start: int, written: int, always: bool) -> None:
        """src/aof.c flushAppendOnlyFile's error branch (without the exit for ``always``)."""
        self.write_errno = e.errno or errno.EIO
        now = time.monotonic()
        can_log = now - self.last_error_log > WRITE_ERROR_LOG_RATE
        if can_log:
            self.last_error_log = now
            text = os.strerror(self.write_errno)
            if written == len(data):  # the write went through, its fsync did not
                log.warning("Fail to fsync the AOF file: %s", text)  # src/bio.c's words
            else:
                log.warning("Error writing to the AOF file: %s", text)  # src/aof.c's words
            if always:
                log.warning("appendfsync is 'always': the replies wait until the AOF write "
                            "succeeds (retried every cron tick)")  # fmt: skip
        if written:
            try:
                os.ftruncate(self.fd, start)  # src/aof.c: remove the short write
                written = 0
            except OSError as e2:
                if can_log:
                    log.warning("Could not remove short write from the append-only file. The "
                                "server may refuse to load the AOF the next time it starts. "
                                "ftruncate: %s", e2.strerror)  # fmt: skip
        if written:  # partly in the file: keep the rest; with always an fsync must follow
            self.incr_size += written
            self.current_size += written
            rest = data[written:]
            self.buf[:] = [rest] if rest else []
            self.need_fsync = always
        else:
            self.buf[:] = [data] if data else []
            self.need_fsync = always and not data
        if self.write_ok:
            self.write_ok = False
            if self.on_status is not None:
                self.on_status()

    def _fsync_loop(self) -> None:
        while not self.stop.wait(1.0):
            if self.unsynced and self.fd >= 0 and self.engine.config["appendfsync"] != "no":
                with self.lock:  # open_new_incr swaps the fd under this lock
                    self.unsynced = False
                    try:
                        _fsync(self.fd)
                    except OSError as e:  # src/bio.c: remembered, reported, retried
                        if self.fsync_ok:
                            log.warning("Fail to fsync the AOF file: %s", e.strerror)
                        self.fsync_ok = False
                        self.write_errno = e.errno or errno.EIO
                        self.unsynced = True
                    else:
                        self.fsync_ok = True

    def close(self) -> None:
        """Shutdown or appendonly no (src/aof.c stopAppendOnly): flush, fsync, close."""
        self.flush()
        self.stop.set()
        with self.lock:
            fd, self.fd = self.fd, -1
        if fd >= 0:
            try:
                os.fsync(fd)
            except OSError as e:
                log.warning("Fail to fsync the AOF file: %s", e.strerror)
            os.close(fd)
        if self.waiting:
            (self.dir / temp_incr_name(self.prefix)).unlink(missing_ok=True)
        self.buf.clear()


def _close_fd(fd: int, sync: bool) -> None:
    """src/bio.c BIO_CLOSE_AOF: fsync (unless already done) and close a retired incr file."""
    try:
        if sync:
            os.fsync(fd)
    except OSError as e:
        log.warning("Fsync of the previous AOF file failed: %s", e)
    finally:
        os.close(fd)


def split_held(pending: list[Any]) -> tuple[list[Any], list[Any]]:
    """``appendfsync always`` and the AOF write failed: (connections whose output may leave,
    connections held). Only output made of error replies (the MISCONF refusals) leaves; a
    connection with anything else keeps all of it, in order, until the data is on disk."""
    release: list[Any] = []
    held: list[Any] = []
    for conn in pending:
        out = conn.out
        (release if all(chunk[:1] == b"-" for chunk in out) else held).append(conn)
    return release, held


def upgrade_old_aof(engine: Engine) -> bool:
    """An old single-file ``appendonly.aof`` in ``dir`` becomes the base of the AOF directory
    (src/aof.c loadAppendOnlyFiles + aofUpgradePrepare): the manifest is written first, then
    the file is moved; a crash between them is case 3 below and is finished at the next start."""
    cfg = engine.config
    prefix = str(cfg["appendfilename"])
    old = Path(str(cfg["dir"])) / prefix
    if not cfg["appendonly"] or not old.is_file():
        return False
    d = aof_dir(engine)
    mpath = d / manifest_name(prefix)
    m = read_manifest(mpath) if mpath.is_file() else Manifest()
    no_dir = not d.is_dir()  # 1. no AOF directory
    empty = m.base is None and not m.incrs  # 2. no (or an empty) manifest
    # 3. a manifest of only that file as base, and the file not moved yet (a crash in between)
    half = m.base is not None and not m.incrs and m.base.name == prefix
    if not (no_dir or empty or (half and not (d / prefix).exists())):
        return False
    d.mkdir(parents=True, exist_ok=True)
    w = AofWriter(engine)
    w.persist_manifest(Manifest(base=ManifestEntry(prefix, 1, "b")))
    os.rename(old, d / prefix)
    fsync_dir(d)
    fsync_dir(d.parent)
    log.info("Successfully migrated an old-style AOF file (%s) into the AOF directory (%s).",
             prefix, cfg["appenddirname"])  # fmt: skip
    return True
