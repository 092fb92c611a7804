"""Loading at start-up and appending to the AOF (the I/O half of persistence).

Start-up (src/server.c loadDataFromDisk): with ``appendonly yes`` and a manifest, the AOF
directory is loaded (base through the RDB reader or as RESP, incr files replayed through the
engine's command table with expiry off); otherwise ``dump.rdb`` if present. A torn last command
is cut off on disk and logged (``aof-load-truncated yes``); any other damage stops the start with
the file, the offset and a hint to run ``valkey-aof check --fix``.

Appending (the incr file, fsync policies, write errors) is ``aof_writer.py``; BGREWRITEAOF is
``rewrite.py``, SAVE/BGSAVE ``snapshot.py``. :class:`Durability` runs the children (one at a
time), polls them from the cron, answers INFO persistence, turns ``appendonly`` on and off at
runtime (src/aof.c startAppendOnly/stopAppendOnly) and keeps ``engine.disk_error``, the MISCONF
refusal of writes while the server can't persist (src/server.c writeCommandsDeniedByDiskError).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from engine.engine import Engine
from engine.errors import AOF_ENABLE_FAILED, MISCONF_RDB, CommandError, misconf_aof
from engine.loader import Loader
from engine.loader import LoadError as EngineLoadError
from engine.server import rewrite, snapshot
from engine.server.aof_writer import AofWriter, aof_dir, split_held, upgrade_old_aof
from persistence.aof.manifest import manifest_name
from persistence.aof.reader import read_aof_runs
from persistence.errors import PersistenceError
from persistence.rdb.reader import read_rdb
from persistence.records import KeyRecord, StringRecords

__all__ = ["AofWriter", "Durability", "LoadError", "aof_dir", "load_data", "split_held"]

log = logging.getLogger("valkey-engine")


class LoadError(Exception):
    """The data directory cannot be loaded; the server must not start."""


def load_data(engine: Engine) -> str:
    """Load the data directory into ``engine``; returns what was loaded (for the log)."""
    cfg = engine.config
    d = aof_dir(engine)
    manifest = d / manifest_name(cfg["appendfilename"])
    rdb = Path(cfg["dir"]) / cfg["dbfilename"]
    engine.loading = True
    try:
        upgrade_old_aof(engine)
        if cfg["appendonly"] and manifest.exists():
            n = _load_aof(engine, d)
            return f"DB loaded from append only file: {n} commands"
        if rdb.exists():
            n = 0
            try:
                for ev in read_rdb(rdb, verify_checksum=cfg["rdbchecksum"], string_runs=True):
                    if type(ev) is StringRecords:
                        engine.keyspace.load_strings(ev)
                        n += len(ev.keys)
                    elif isinstance(ev, KeyRecord):
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


class _StartupLoader(Loader):
    """Also leaves the slot imports still open at the end in ``server_info``: the migration
    I/O fails them ("Process restarted") and closes them in the AOF (spec 3.11)."""

    def finish(self) -> None:
        if self.imports:
            self.engine.server_info["unfinished_imports"] = dict(self.imports)
        super().finish()


def _load_aof(engine: Engine, d: Path) -> int:
    loader = _StartupLoader(engine)
    try:
        batches = read_aof_runs(d, verify_checksum=engine.config["rdbchecksum"],
                                allow_torn_tail=engine.config["aof-load-truncated"],
                                string_runs=True)  # fmt: skip
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
        self.rw: AofWriter | None = None  # the writer of the running (or last) rewrite
        self.server: Any = None  # the Server (main.py sets it): its ``aof`` follows ours
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
        self.cow_size = self.cow_peak = 0  # current_cow_size / current_cow_peak (child alive)
        self.cow_sampled = 0.0
        self.rdb_last_cow = self.aof_last_cow = 0
        engine.server_info["lastsave"] = int(time.time())  # src/server.c initServer
        if aof is not None:
            aof.on_status = self.refresh_disk_error
        cfg = engine.config
        cfg.on_change["appendonly"] = self.set_appendonly
        cfg.on_change["aof-disable-auto-gc"] = self._auto_gc_changed
        cfg.on_change["save"] = cfg.on_change["stop-writes-on-bgsave-error"] = lambda _v: (
            self.refresh_disk_error()
        )
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
            # src/rdb.c rdbSave: a failed SAVE leaves lastbgsave_status (checked on 9.1.2)
            return "failed"
        log.info("DB saved on disk")
        self.engine.stats.dirty = 0
        self.engine.server_info["lastsave"] = int(time.time())
        self.lastbgsave_ok = True
        self.refresh_disk_error()
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
        self.cow_size = self.cow_peak = 0

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
        self.rewrite_scheduled = False
        self.rewrites += 1  # src/aof.c counts the attempt (stat_aof_rewrites)
        t0 = time.perf_counter()
        try:
            # appendonly no: BGREWRITEAOF still writes a base-only directory (src/aof.c)
            self.rw = self.aof or AofWriter.for_offline_rewrite(self.engine)
            pid = rewrite.start_rewrite(self.rw)
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
        snapshot.child_cow_size(pid)
        self._child_gone()
        if kind == "rdb":
            snapshot.remove_temp_rdb(self.engine, pid)
        elif self.rw is not None:
            rewrite.remove_temp_rewrite(self.rw, pid)

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
        cow = snapshot.child_cow_size(pid)
        if kind == "rdb":
            self.rdb_last_cow = cow  # INFO rdb_last_cow_size / aof_last_cow_size
        else:
            self.aof_last_cow = cow
        self._child_gone()
        code = os.waitstatus_to_exitcode(status)
        if kind == "rdb":
            self._bgsave_done(pid, code, secs)
        else:
            self._rewrite_done(pid, code, secs)
        self.refresh_disk_error()

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
        aof = self.rw
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
        if aof.waiting:  # src/aof.c: drop the temp incr, try again (AOF_WAIT_REWRITE)
            aof.drop_temp_incr()
            self.rewrite_scheduled = True

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
        self.refresh_disk_error()  # the fsync thread's status, CONFIG SET save ...
        if self.child_pid > 0:
            self.poll_child()
            if self.child_pid > 0:
                now = time.monotonic()
                if now - self.cow_sampled >= 1.0:  # src/server.c: once a second is enough
                    self.cow_sampled = now
                    self.cow_size = snapshot.private_dirty(self.child_pid)
                    self.cow_peak = max(self.cow_peak, self.cow_size)
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
        if (aof is not None and not aof.waiting and aof.write_ok and perc
                and aof.current_size > cfg["auto-aof-rewrite-min-size"]):  # fmt: skip
            growth = aof.current_size * 100 // (aof.base_size or 1) - 100
            if growth >= perc and not self.rewrite_limited():
                log.info("Starting automatic rewriting of AOF on %d%% growth", growth)
                self._start_rewrite()
                return
        if self.bgsave_scheduled and retry_ok and self._start_bgsave():
            self.bgsave_scheduled = False

    # -- disk errors ----------------------------------------------------------------------
    def refresh_disk_error(self) -> None:
        """src/server.c writeCommandsDeniedByDiskError: the RDB case first, then the AOF's
        failed write or failed background fsync; ``engine.disk_error`` is what writes get."""
        cfg = self.engine.config
        aof = self.aof
        err: str | None = None
        if (cfg["stop-writes-on-bgsave-error"] and not self.lastbgsave_ok
                and snapshot.parse_save_points(str(cfg["save"]))):  # fmt: skip
            err = MISCONF_RDB
        elif aof is not None and not (aof.write_ok and aof.fsync_ok):
            err = misconf_aof(os.strerror(aof.write_errno))
        self.engine.disk_error = err

    # -- appendonly at runtime ------------------------------------------------------------
    def set_appendonly(self, on: Any) -> None:
        """CONFIG SET appendonly (src/config.c updateAppendonly)."""
        if on and self.aof is None:
            if not self._start_appendonly():
                self.engine.config.values["appendonly"] = False
                raise CommandError(
                    "ERR CONFIG SET failed (possibly related to argument 'appendonly') - "
                    + AOF_ENABLE_FAILED
                )
        elif not on and self.aof is not None:
            self._stop_appendonly()
        self.refresh_disk_error()

    def _attach(self, aof: AofWriter | None) -> None:
        self.aof = aof
        if self.server is not None:
            self.server.aof = aof

    def _start_appendonly(self) -> bool:
        """src/aof.c startAppendOnly: AOF_WAIT_REWRITE until a rewrite writes the base. The
        rewrite is always scheduled for the cron (Valkey does so when a child runs or inside
        EXEC): forking here, inside a command, could split a transaction between the base and
        the incr file; until the fork the changes only need to be in the keyspace."""
        if self.child_type == "aof":  # an appendonly-no rewrite: its manifest is not ours
            log.info("AOF was enabled but there is already an AOF rewriting in background. "
                     "Stopping background AOF and starting a rewrite now.")  # fmt: skip
            self._kill_child()
        aof = AofWriter(self.engine)
        try:
            aof.open_waiting()
        except (OSError, PersistenceError) as e:
            log.warning("Can't open or create append-only dir %s: %s", aof.dir, e)
            return False
        aof.on_status = self.refresh_disk_error
        self._attach(aof)
        self.rewrite_scheduled = True
        self.rewrite_failures = 0
        if self.child_pid > 0:
            log.info("AOF was enabled but there is already another background operation. An "
                     "AOF background was scheduled to start when possible.")  # fmt: skip
        return True

    def _stop_appendonly(self) -> None:
        """src/aof.c stopAppendOnly: flush, fsync, close; a running rewrite is killed."""
        aof = self.aof
        assert aof is not None
        if self.child_type == "aof":
            log.info("Killing running AOF rewrite child: %d", self.child_pid)
            self._kill_child()
        aof.close()
        self.rewrite_scheduled = False
        self._attach(None)

    def _auto_gc_changed(self, disabled: Any) -> None:
        """src/config.c updateAofAutoGCEnabled: switching it back on removes history now."""
        if not disabled and self.aof is not None and not self.aof.waiting:
            self.aof.delete_history()

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
            with self.aof.lock, contextlib.suppress(OSError):  # a bad disk: close() logs it
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
        alive = self.child_pid > 0
        sampled = alive and self.cow_sampled >= self.child_start
        f = [
            ("current_cow_peak", str(self.cow_peak if alive else 0)),
            ("current_cow_size", str(self.cow_size if alive else 0)),
            ("current_cow_size_age", str(int(now - self.cow_sampled) if sampled else 0)),
            ("rdb_last_cow_size", str(self.rdb_last_cow)),
            ("aof_last_cow_size", str(self.aof_last_cow)),
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
            (
                "aof_last_write_status",
                "ok" if aof is None or (aof.write_ok and aof.fsync_ok) else "err",
            ),
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
