"""Loading at start-up and appending to the AOF (the I/O half of persistence).

Start-up (src/server.c loadDataFromDisk): with ``appendonly yes`` and a manifest, the AOF
directory is loaded (base through the RDB reader or as RESP, incr files replayed through the
engine's command table with expiry off); otherwise ``dump.rdb`` if present. A torn last command
is cut off on disk and logged (``aof-load-truncated yes``); any other damage stops the start with
the file, the offset and a hint to run ``valkey-aof check --fix``.

Appending: every execution unit's effects go through the one encoder into the current incr file,
with SELECT when the db changes (src/aof.c feedAppendOnlyFile). The server calls
:meth:`AofWriter.flush` once per event-loop turn before it sends replies, so ``appendfsync
always`` is a group commit: one write + one fsync for every client served in that turn.
``everysec`` fsyncs from a background thread once a second; ``no`` leaves it to the OS.

BGREWRITEAOF is in ``rewrite.py``, SAVE/BGSAVE in ``snapshot.py``; :class:`Durability` runs
them (one child at a time), polls the child from the cron and answers INFO persistence.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import threading
import time
from pathlib import Path

from engine.context import Effect
from engine.engine import Engine
from engine.loader import Loader
from engine.loader import LoadError as EngineLoadError
from engine.server import rewrite, snapshot
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
from persistence.aof.reader import read_aof_batches
from persistence.atomic import atomic_file
from persistence.errors import PersistenceError
from persistence.rdb.reader import read_rdb
from persistence.records import KeyRecord

log = logging.getLogger("valkey-engine")


class LoadError(Exception):
    """The data directory cannot be loaded; the server must not start."""


def aof_dir(engine: Engine) -> Path:
    return Path(str(engine.config["dir"])) / str(engine.config["appenddirname"])


def load_data(engine: Engine) -> str:
    """Load the data directory into ``engine``; returns what was loaded (for the log)."""
    cfg = engine.config
    d = aof_dir(engine)
    manifest = d / manifest_name(cfg["appendfilename"])
    rdb = Path(cfg["dir"]) / cfg["dbfilename"]
    engine.loading = True
    try:
        if cfg["appendonly"] and manifest.exists():
            n = _load_aof(engine, d)
            return f"DB loaded from append only file: {n} commands"
        if rdb.exists():
            n = 0
            try:
                for ev in read_rdb(rdb, verify_checksum=cfg["rdbchecksum"]):
                    if isinstance(ev, KeyRecord):
                        engine.keyspace.load_record(ev)
                        n += 1
            except PersistenceError as e:
                raise LoadError(
                    f"Can't load the RDB file {e.describe()}: the server will not start; "
                    f"check it with 'valkey-aof check {rdb}'"
                ) from e
            return f"DB loaded from disk: {n} keys"
        return "no data to load"
    except PersistenceError as e:
        raise LoadError(
            f"Bad file format reading the append only file {e.describe()}: make a backup of "
            f"your AOF directory, then run 'valkey-aof check --fix {d}'"
        ) from e
    finally:
        engine.loading = False


def _load_aof(engine: Engine, d: Path) -> int:
    loader = Loader(engine)
    try:
        batches = read_aof_batches(d, verify_checksum=engine.config["rdbchecksum"],
                                   allow_torn_tail=engine.config["aof-load-truncated"])  # fmt: skip
        result = loader.load(batches)
    except EngineLoadError as e:
        raise LoadError(f"Error reading the append only file {e.file} at offset {e.offset}: "
                        f"{e.message}") from e  # fmt: skip
    for item in result.torn:
        log.warning(
            "!!! Warning: short read while loading the AOF file %s!!! (offset %d: %s)",
            item.file, item.offset, item.detail,
        )  # fmt: skip
        if item.kind == "multi":
            log.warning("Revert incomplete MULTI/EXEC transaction in AOF file %s", item.file)
        os.truncate(d / item.file, item.offset)  # src/aof.c: aof-load-truncated cuts the file
        log.warning("AOF %s loaded anyway because aof-load-truncated is enabled", item.file)
    return result.commands


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
        self.incr_size = 0  # bytes in the current incr file
        self.current_size = 0  # aof_current_size: base + every incr
        self.base_size = 0  # aof_rewrite_base_size: aof_current_size after the last rewrite
        self.write_ok = True  # aof_last_write_status
        self.delayed_fsync = 0

    def file_size(self, name: str) -> int:
        try:
            return os.path.getsize(self.dir / name)
        except OSError:
            return 0

    def open(self) -> None:
        """Open the manifest's last incr file for appending, creating the directory if needed
        (src/aof.c aofOpenIfNeededOnServerStart: a base of the current data, seq 1, and an
        empty incr file)."""
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
        self.current_file = self.dir / m.incrs[-1].name
        self.fd = os.open(self.current_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.incr_size = os.fstat(self.fd).st_size
        # src/aof.c loadAppendOnlyFiles: aof_current_size = aof_rewrite_base_size = all files
        self.current_size = self.base_size = sum(self.file_size(e.name) for e in m.files())
        self.selected_db = -1
        if self.engine.config["appendfsync"] == "everysec":
            self.thread = threading.Thread(target=self._fsync_loop, name="aof-fsync", daemon=True)
            self.thread.start()

    def persist_manifest(self, m: Manifest) -> None:
        """Write the manifest as temp-<name>.manifest, fsync, rename, fsync the directory."""
        path = self.dir / manifest_name(self.prefix)
        with atomic_file(path, temp_name=temp_manifest_name(self.prefix)) as f:
            f.write(format_manifest(m))
        self.manifest = m

    def open_new_incr(self) -> None:
        """src/aof.c openNewIncrAofForAppend: seq + 1, persisted in the manifest, then appends
        go there; the old file is fsynced and closed in the background."""
        self.flush()
        m = self.manifest
        seq = (m.incrs[-1].seq if m.incrs else 0) + 1
        name = incr_name(self.prefix, seq)
        fd = os.open(self.dir / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
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

    def flush(self) -> None:
        """Write what was fed (and fsync with ``appendfsync always``)."""
        if not self.buf or self.fd < 0:
            return
        data = b"".join(self.buf)
        self.buf.clear()
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
                self.incr_size += n
                self.current_size += n
            if self.engine.config["appendfsync"] == "always":
                os.fsync(self.fd)
            else:
                self.unsynced = True
        except OSError as e:
            self.write_ok = False
            if self.engine.config["appendfsync"] == "always":
                # src/aof.c flushAppendOnlyFile: no reply may leave without its write on disk
                log.warning("Can't recover from AOF write error when the AOF fsync policy is "
                            "'always' (%s). Exiting...", e)  # fmt: skip
                os._exit(1)
            log.warning("Error writing to the AOF file: %s", e)
            self.buf.append(bytes(view))  # retried at the next flush
            return
        self.write_ok = True

    def _fsync_loop(self) -> None:
        while not self.stop.wait(1.0):
            if self.unsynced and self.fd >= 0:
                with self.lock:  # open_new_incr swaps the fd under this lock
                    self.unsynced = False
                    try:
                        os.fsync(self.fd)
                    except OSError as e:  # the loop must survive a bad disk; INFO will tell
                        self.write_ok = False
                        log.warning("AOF fsync failed: %s", e)

    def close(self) -> None:
        self.flush()
        self.stop.set()
        with self.lock:
            if self.fd >= 0:
                os.fsync(self.fd)
                os.close(self.fd)
                self.fd = -1


def _close_fd(fd: int, sync: bool) -> None:
    """src/bio.c BIO_CLOSE_AOF: fsync (unless already done) and close a retired incr file."""
    try:
        if sync:
            os.fsync(fd)
    except OSError as e:
        log.warning("Fsync of the previous AOF file failed: %s", e)
    finally:
        os.close(fd)


# -- the controller: one child at a time --------------------------------------------------
CHILD_BUSY = "busy"


class Durability:
    """SAVE/BGSAVE/BGREWRITEAOF for the commands, the cron's child polling, save points and
    automatic rewrites, INFO persistence and the shutdown save (src/server.c, src/rdb.c,
    src/aof.c). The commands reach it as ``engine.server_info["persistence"]`` and get a status
    word back (engine/commands/persistence.py turns it into Valkey's reply)."""

    def __init__(self, engine: Engine, aof: AofWriter | None) -> None:
        self.engine = engine
        self.aof = aof
        self.child_pid = -1
        self.child_type = ""  # "rdb" or "aof" (src/server.c server.child_type)
        self.child_start = 0.0
        self.dirty_at_fork = 0
        self.bgsave_scheduled = False
        self.rewrite_scheduled = False
        self.lastbgsave_ok = True
        self.lastbgsave_try = 0.0
        self.last_bgsave_secs = -1
        self.rdb_saves = 0
        self.rewrites = 0
        self.rewrite_ok = True
        self.rewrite_failures = 0  # consecutive
        self.last_rewrite_secs = -1
        self.retry_at = 0.0  # aofRewriteLimited
        self.retry_minutes = 0
        self.total_forks = 0
        self.latest_fork_usec = 0
        self.shut_down = False
        engine.server_info["lastsave"] = int(time.time())  # src/server.c initServer
        engine.server_info["persistence"] = self
        engine.info_providers["persistence"] = self.info
        previous = engine.info_providers.get("stats")
        engine.info_providers["stats"] = lambda: [
            *(previous() if previous else []),
            ("total_forks", str(self.total_forks)),
            ("latest_fork_usec", str(self.latest_fork_usec)),
        ]

    # -- commands -------------------------------------------------------------------------
    def save(self) -> str:
        if self.child_type == "rdb":
            return "in_progress"
        self.rdb_saves += 1
        try:
            snapshot.save_rdb(self.engine, snapshot.rdb_path(self.engine))
        except (OSError, PersistenceError) as e:
            log.warning("Failed saving the DB: %s", e)
            self.lastbgsave_ok = False
            return "failed"
        log.info("DB saved on disk")
        self.engine.stats.dirty = 0
        self.engine.server_info["lastsave"] = int(time.time())
        self.lastbgsave_ok = True
        return "ok"

    def bgsave(self, schedule: bool, in_exec: bool) -> str:
        if self.child_type == "rdb":
            return "in_progress"
        if self.child_pid > 0 or in_exec:
            if schedule or in_exec:
                self.bgsave_scheduled = True
                return "scheduled"
            return CHILD_BUSY
        return "started" if self._start_bgsave() else "failed"

    def bgsave_cancel(self) -> str:
        if self.child_type == "rdb":
            log.info("Background saving will terminate due to user request.")
            self._kill_child()
            return "cancelled"
        if self.bgsave_scheduled:
            log.info("Scheduled background saving will be cancelled due to user request.")
            self.bgsave_scheduled = False
            return "unscheduled"
        return "none"

    def bgrewriteaof(self, in_exec: bool) -> str:
        if self.child_type == "aof":
            return "in_progress"
        if self.child_pid > 0 or in_exec:
            self.rewrite_scheduled = True
            self.rewrite_failures = 0
            return "scheduled"
        return "started" if self._start_rewrite() else "failed"

    # -- children -------------------------------------------------------------------------
    def _forked(self, pid: int, kind: str, t0: float) -> None:
        self.latest_fork_usec = int((time.perf_counter() - t0) * 1e6)
        self.total_forks += 1
        self.child_pid, self.child_type, self.child_start = pid, kind, time.monotonic()

    def _start_bgsave(self) -> bool:
        engine = self.engine
        self.lastbgsave_try = time.time()
        self.dirty_at_fork = engine.stats.dirty
        path = snapshot.rdb_path(engine)
        t0 = time.perf_counter()
        try:
            pid = snapshot.fork_child(lambda: snapshot.save_rdb(engine, path), "RDB save")
        except OSError as e:
            gc.unfreeze()
            self.lastbgsave_ok = False
            log.warning("Can't save in background: fork: %s", e)
            return False
        self._forked(pid, "rdb", t0)
        self.rdb_saves += 1
        log.info("Background saving started by pid %d", pid)
        return True

    def _start_rewrite(self) -> bool:
        if self.aof is None:
            log.warning("Can't rewrite the AOF while appendonly is off")
            return False
        self.rewrite_scheduled = False
        self.rewrites += 1  # src/aof.c counts the attempt (stat_aof_rewrites)
        t0 = time.perf_counter()
        try:
            pid = rewrite.start_rewrite(self.aof)
        except (OSError, PersistenceError) as e:
            gc.unfreeze()
            self.rewrite_ok = False
            log.warning("Can't rewrite append only file in background: %s", e)
            return False
        self._forked(pid, "aof", t0)
        log.info("Background append only file rewriting started by pid %d", pid)
        return True

    def _kill_child(self) -> None:
        """killRDBChild / killAppendOnlyChild: the child's temp file goes, nothing else."""
        pid, kind = self.child_pid, self.child_type
        if pid <= 0:
            return
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGUSR1)  # src/server.c: SIGUSR1 is "killed by the parent"
            os.waitpid(pid, 0)
        self._child_gone()
        if kind == "rdb":
            snapshot.remove_temp_rdb(self.engine, pid)
        elif self.aof is not None:
            rewrite.remove_temp_rewrite(self.aof, pid)

    def _child_gone(self) -> None:
        self.child_pid, self.child_type = -1, ""
        gc.unfreeze()

    def poll_child(self) -> None:
        """src/server.c checkChildrenDone."""
        if self.child_pid <= 0:
            return
        try:
            pid, status = os.waitpid(self.child_pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.child_pid, 1 << 8
        if pid == 0:
            return
        kind = self.child_type
        secs = int(time.monotonic() - self.child_start)
        self._child_gone()
        code = os.waitstatus_to_exitcode(status)
        if kind == "rdb":
            self._bgsave_done(pid, code, secs)
        else:
            self._rewrite_done(pid, code, secs)

    def _bgsave_done(self, pid: int, code: int, secs: int) -> None:
        """src/rdb.c backgroundSaveDoneHandlerDisk."""
        self.last_bgsave_secs = secs
        if code == 0:
            log.info("Background saving terminated with success")
            self.engine.stats.dirty -= self.dirty_at_fork
            self.engine.server_info["lastsave"] = int(time.time())
            self.lastbgsave_ok = True
            return
        snapshot.remove_temp_rdb(self.engine, pid)
        if code > 0:
            log.warning("Background saving error")
            self.lastbgsave_ok = False
        else:
            log.warning("Background saving terminated by signal %d", -code)
            # SIGUSR1 is whitelisted: a child we killed is not an error
            self.lastbgsave_ok = self.lastbgsave_ok if -code == signal.SIGUSR1 else False

    def _rewrite_done(self, pid: int, code: int, secs: int) -> None:
        """src/aof.c backgroundRewriteDoneHandler."""
        aof = self.aof
        assert aof is not None
        self.last_rewrite_secs = secs
        if code == 0:
            log.info("Background AOF rewrite terminated with success")
            try:
                rewrite.finish_rewrite(aof, pid)
            except (OSError, PersistenceError) as e:
                log.warning("Error trying to install the rewritten AOF base: %s", e)
                code = 1
            else:
                log.info("Background AOF rewrite finished successfully")
                self.rewrite_ok = True
                self.rewrite_failures = 0
                return
        rewrite.remove_temp_rewrite(aof, pid)
        if code > 0:
            log.warning("Background AOF rewrite terminated with error")
        else:
            log.warning("Background AOF rewrite terminated by signal %d", -code)
        if code > 0 or -code != signal.SIGUSR1:
            self.rewrite_ok = False
            self.rewrite_failures += 1

    def rewrite_limited(self) -> bool:
        """src/aof.c aofRewriteLimited: after 3 failures in a row, wait 1, 2, 4 ... 60 min."""
        if self.rewrite_failures < 3:
            self.retry_at, self.retry_minutes = 0.0, 0
            return False
        now = time.time()
        if self.retry_at:
            if now < self.retry_at:
                return True
            self.retry_at = 0.0
            return False
        self.retry_minutes = min(60, self.retry_minutes * 2 or 1)
        self.retry_at = now + self.retry_minutes * 60
        log.warning("Background AOF rewrite has repeatedly failed and triggered the limit, "
                    "will retry in %d minutes", self.retry_minutes)  # fmt: skip
        return True

    # -- cron -----------------------------------------------------------------------------
    def cron(self) -> None:
        """The persistence part of serverCron, in its order."""
        if self.child_pid > 0:
            self.poll_child()
            if self.child_pid > 0:
                return
        cfg = self.engine.config
        if self.rewrite_scheduled and not self.rewrite_limited():
            self._start_rewrite()
            return
        now = time.time()
        dirty = self.engine.stats.dirty
        lastsave = self.engine.server_info["lastsave"]
        retry_ok = now - self.lastbgsave_try > 5 or self.lastbgsave_ok  # BGSAVE_RETRY_DELAY
        for secs, changes in snapshot.parse_save_points(str(cfg["save"])):
            if dirty >= changes and now - lastsave > secs and retry_ok:
                log.info("%d changes in %d seconds. Saving...", changes, secs)
                self._start_bgsave()
                return
        aof = self.aof
        perc = cfg["auto-aof-rewrite-percentage"]
        if aof is not None and perc and aof.current_size > cfg["auto-aof-rewrite-min-size"]:
            growth = aof.current_size * 100 // (aof.base_size or 1) - 100
            if growth >= perc and not self.rewrite_limited():
                log.info("Starting automatic rewriting of AOF on %d%% growth", growth)
                self._start_rewrite()
                return
        if self.bgsave_scheduled and retry_ok and self._start_bgsave():
            self.bgsave_scheduled = False

    # -- shutdown -------------------------------------------------------------------------
    def shutdown(self, opts: set[str]) -> bool:
        """src/server.c prepareForShutdown + finishShutdown; False: do not exit."""
        if self.child_type == "rdb":
            log.warning("There is a child saving an .rdb. Killing it!")
        elif self.child_type == "aof":
            log.warning("There is a child rewriting the AOF. Killing it!")
        self._kill_child()
        if self.aof is not None:
            log.info("Calling fsync() on the AOF file.")
            self.aof.flush()
            with self.aof.lock:
                if self.aof.fd >= 0:
                    os.fsync(self.aof.fd)
        points = snapshot.parse_save_points(str(self.engine.config["save"]))
        if (points and "nosave" not in opts) or "save" in opts:
            log.info("Saving the final RDB snapshot before exiting.")
            if self.save() != "ok":
                log.warning("Error trying to save the DB, can't exit.")
                if "force" not in opts:
                    return False
        self.shut_down = True
        return True

    # -- INFO -----------------------------------------------------------------------------
    def info(self) -> list[tuple[str, str]]:
        now = time.monotonic()
        rdb, rw = self.child_type == "rdb", self.child_type == "aof"
        running = str(int(now - self.child_start))
        aof = self.aof
        f = [
            ("rdb_bgsave_in_progress", "1" if rdb else "0"),
            ("rdb_last_save_time", str(self.engine.server_info["lastsave"])),
            ("rdb_last_bgsave_status", "ok" if self.lastbgsave_ok else "err"),
            ("rdb_last_bgsave_time_sec", str(self.last_bgsave_secs)),
            ("rdb_current_bgsave_time_sec", running if rdb else "-1"),
            ("rdb_saves", str(self.rdb_saves)),
            ("aof_rewrite_in_progress", "1" if rw else "0"),
            ("aof_rewrite_scheduled", "1" if self.rewrite_scheduled else "0"),
            ("aof_last_rewrite_time_sec", str(self.last_rewrite_secs)),
            ("aof_current_rewrite_time_sec", running if rw else "-1"),
            ("aof_last_bgrewrite_status", "ok" if self.rewrite_ok else "err"),
            ("aof_rewrites", str(self.rewrites)),
            ("aof_rewrites_consecutive_failures", str(self.rewrite_failures)),
            ("aof_last_write_status", "ok" if aof is None or aof.write_ok else "err"),
        ]
        if aof is not None:
            f += [
                ("aof_current_size", str(aof.current_size)),
                ("aof_base_size", str(aof.base_size)),
                ("aof_pending_rewrite", "1" if self.rewrite_scheduled else "0"),
                ("aof_buffer_length", str(sum(len(b) for b in aof.buf))),
                ("aof_pending_bio_fsync", "0"),
                ("aof_delayed_fsync", str(aof.delayed_fsync)),
            ]
        return f
