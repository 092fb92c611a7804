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
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from engine.context import Effect
from engine.engine import Engine
from engine.loader import Loader
from engine.loader import LoadError as EngineLoadError
from persistence.aof.dirwriter import BaseFormat, write_aof_dir
from persistence.aof.encoder import encode_command, timestamp_annotation
from persistence.aof.manifest import manifest_name, read_manifest
from persistence.aof.reader import read_aof_batches
from persistence.errors import PersistenceError
from persistence.rdb.reader import read_rdb
from persistence.rdb.writer import RdbWriteOptions
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
            for ev in read_rdb(rdb, verify_checksum=cfg["rdbchecksum"]):
                if isinstance(ev, KeyRecord):
                    engine.keyspace.load_record(ev)
                    n += 1
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
        result = loader.load(read_aof_batches(d, verify_checksum=engine.config["rdbchecksum"]))
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
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        cfg = engine.config
        self.dir = aof_dir(engine)
        self.prefix = cfg["appendfilename"]
        self.fd = -1
        self.buf: list[bytes] = []
        self.selected_db = -1
        self.last_ts = 0
        self.unsynced = False
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.current_file: Path | None = None
        self.size = 0

    def open(self) -> None:
        """Open the manifest's last incr file for appending, creating the directory if needed
        (src/aof.c: a fresh base of the current data, seq 1, and an empty incr file)."""
        manifest = self.dir / manifest_name(self.prefix)
        if not manifest.exists():
            base: BaseFormat = "rdb" if self.engine.config["aof-use-rdb-preamble"] else "aof"
            ts = int(time.time()) if self.engine.config["aof-timestamp-enabled"] else None
            write_aof_dir(self.dir, self.engine.keyspace.records(), base=base, prefix=self.prefix,
                          timestamp=ts, rdb_options=RdbWriteOptions(
                              compression=self.engine.config["rdbcompression"],
                              checksum=self.engine.config["rdbchecksum"]))  # fmt: skip
        m = read_manifest(manifest)
        self.current_file = self.dir / m.incrs[-1].name
        self.fd = os.open(self.current_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.size = os.fstat(self.fd).st_size
        self.selected_db = -1
        if self.engine.config["appendfsync"] == "everysec":
            self.thread = threading.Thread(target=self._fsync_loop, name="aof-fsync", daemon=True)
            self.thread.start()

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
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.size += len(data)
        policy = self.engine.config["appendfsync"]
        if policy == "always":
            os.fsync(self.fd)
        else:
            self.unsynced = True

    def _fsync_loop(self) -> None:
        while not self.stop.wait(1.0):
            if self.unsynced and self.fd >= 0:
                self.unsynced = False
                try:
                    os.fsync(self.fd)
                except OSError as e:  # the loop must survive a bad disk; INFO will tell
                    log.warning("AOF fsync failed: %s", e)

    def close(self) -> None:
        self.flush()
        self.stop.set()
        if self.fd >= 0:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
