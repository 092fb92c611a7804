"""RDB snapshots (SAVE, BGSAVE, save points) and the fork helper both child kinds use.

How this works: :func:`fork_child` forks; the child drops what it must not hold (the parent's
sockets, its signal handlers, the AOF fd), runs one function over its copy-on-write keyspace and
leaves with ``os._exit`` (0 = success), never returning into the event loop. The parent only
records the pid; :class:`~engine.server.durability.Durability` polls it from the server cron with
``waitpid(WNOHANG)`` (src/server.c checkChildrenDone) and calls the done handler here or in
``rewrite.py``.

``dump.rdb`` is written to ``temp-<pid>.rdb`` in the data directory, fsynced, renamed over
``dbfilename`` and the directory fsynced (src/rdb.c rdbSave), so a crash or a killed child
leaves the previous dump intact.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from engine.engine import Engine
from engine.server.faults import crash_point
from engine.types.base import type_info
from persistence.atomic import atomic_file
from persistence.crc import key_slot
from persistence.rdb.writer import RdbWriteOptions, RdbWriter
from persistence.records import Value

log = logging.getLogger("valkey-engine")


def rdb_options(engine: Engine, *, aof_base: bool = False) -> RdbWriteOptions:
    cfg = engine.config
    return RdbWriteOptions(
        compression=bool(cfg["rdbcompression"]),
        checksum=bool(cfg["rdbchecksum"]),
        aof_base=aof_base,
        cluster_slot_info=bool(cfg["cluster-enabled"]) and not aof_base,
    )


def open_imports(engine: Engine) -> list[tuple[bytes, bytes, list[tuple[int, int]]]]:
    """Slot imports still running (job name, source id, ranges). A dump or AOF base written
    now records them (RDB opcode 243, or an ESTABLISH at the head of a RESP base; spec 3.11,
    src/rdb.c rdbSaveRio), so a restart drops their hidden keys instead of keeping strays."""
    host = engine.migration
    if host is None:
        return []
    return [(j.name, j.source_id, list(j.ranges)) for j in host.m.imports() if not j.finished]


def rdb_path(engine: Engine) -> Path:
    return Path(str(engine.config["dir"])) / str(engine.config["dbfilename"])


def temp_rdb_name(pid: int) -> str:
    return f"temp-{pid}.rdb"  # src/rdb.c rdbSave / rdbRemoveTempFile


def save_rdb(engine: Engine, path: Path, *, pid: int | None = None) -> None:
    """Write the whole keyspace as ``path`` (atomically), streaming one db at a time."""
    opts = rdb_options(engine)
    tmp = temp_rdb_name(os.getpid() if pid is None else pid)
    with atomic_file(path, temp_name=tmp) as f:
        w = RdbWriter(f, opts, file=str(path))
        for name, _source, ranges in open_imports(engine):
            w.write_slot_import(name, ranges)
        for db in engine.keyspace.dbs:
            if not db.data:
                continue
            if opts.cluster_slot_info:  # src/rdb.c rdbSaveDb: cluster mode iterates per slot
                recs = iter(sorted(db.records(), key=lambda r: key_slot(r.key)))
                w.write_db(db.id, recs, keys=len(db.data), expires=len(db.expires))
            else:
                w.begin_db(db.id, keys=len(db.data), expires=len(db.expires))
                w.write_items(db.id, db.data.items(), db.expires, _to_value)
            crash_point("rdb-save-midway")
        w.finish()


def _to_value(value: object) -> Value:
    return type_info(value).to_record(value)


def write_rdb_base(engine: Engine, path: Path) -> None:
    """The RDB-preamble AOF base of the keyspace (the rewrite child): ``aof-base 1``, real
    RESIZEDB counts as rdbSaveRio writes them; strings straight from the db dicts."""
    with atomic_file(path) as f:
        w = RdbWriter(f, rdb_options(engine, aof_base=True), file=str(path))
        for name, _source, ranges in open_imports(engine):
            w.write_slot_import(name, ranges)
        for db in engine.keyspace.dbs:
            if db.data:
                w.begin_db(db.id, keys=len(db.data), expires=len(db.expires))
                w.write_items(db.id, db.data.items(), db.expires, _to_value)
        w.finish()


def remove_temp_rdb(engine: Engine, child_pid: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(Path(str(engine.config["dir"])) / temp_rdb_name(child_pid))


def parse_save_points(text: str) -> list[tuple[int, int]]:
    """``save "3600 1 300 100"`` -> [(3600, 1), (300, 100)]; empty disables (src/config.c)."""
    parts = text.split()
    out = []
    for i in range(0, len(parts) - 1, 2):
        with contextlib.suppress(ValueError):
            out.append((int(parts[i]), int(parts[i + 1])))
    return out


def _log_fds() -> set[int]:
    fds = set()
    for h in log.handlers:
        stream = getattr(h, "stream", None)
        if stream is not None:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                fds.add(stream.fileno())
    return fds


def _close_inherited_fds(keep: set[int]) -> None:
    """src/server.c closeChildUnusedResourceAfterFork: the child must not keep the parent's
    sockets open (a client the parent closes would otherwise not see EOF)."""
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


_cow_pipes: dict[int, int] = {}  # child pid -> read end of its child-info pipe


def private_dirty(pid: int | str = "self") -> int:
    """src/zmalloc.c zmalloc_get_private_dirty: the Private_Dirty bytes of a process (in a
    fork child: the pages copied on write, what INFO calls cow_size)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Private_Dirty:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def child_cow_size(pid: int) -> int:
    """What the (finished) child reported through its pipe (src/childinfo.c); 0 if nothing."""
    fd = _cow_pipes.pop(pid, -1)
    if fd < 0:
        return 0
    try:
        os.set_blocking(fd, False)
        data = os.read(fd, 32)
    except OSError:
        data = b""
    finally:
        os.close(fd)
    return int(data) if data.isdigit() else 0


def fork_child(body: Callable[[], None], what: str) -> int:
    """Fork; the child runs ``body`` and exits 0 after reporting its copy-on-write size, or 1
    after logging why. Returns the pid."""
    for h in log.handlers:
        h.flush()
    rfd, wfd = os.pipe()
    gc.freeze()  # the parent's collector must not touch (and so copy) every shared page
    try:
        pid = os.fork()
    except OSError:
        os.close(rfd)
        os.close(wfd)
        raise
    if pid:
        os.close(wfd)
        _cow_pipes[pid] = rfd
        return pid
    code = 1
    try:
        gc.disable()
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        _close_inherited_fds(_log_fds() | {wfd})
        body()
        cow = private_dirty()
        mb = cow >> 20  # src/childinfo.c sendChildInfoGeneric's log line
        log.info("Fork CoW for %s: current %d MB, peak %d MB, average %d MB",
                 what.removesuffix(" save"), mb, mb, mb)  # fmt: skip
        os.write(wfd, b"%d" % cow)
        code = 0
    except BaseException as e:  # the child must never unwind into the parent's event loop
        with contextlib.suppress(BaseException):
            log.warning("%s child failed: %s", what, e)
    finally:
        with contextlib.suppress(BaseException):
            for h in log.handlers:
                h.flush()
        os._exit(code)
