"""The slot-migration snapshot: a forked child writes the slots' keys into a pipe (spec 3.6).

How this works: :func:`fork_snapshot` opens a pipe and forks. The child owns a copy-on-write
view of the keyspace as of the fork; it walks ``db = 0 .. n-1``, each range in order, each slot,
and writes ``SELECT db`` + the AOF-rewrite commands of every key (``record_commands``, the one
encoder, via :func:`engine.cluster.migration.encode_snapshot`) and finally
``CLUSTER SYNCSLOTS SNAPSHOT-EOF`` into the pipe with blocking writes, then exits 0 (1 on any
error). The parent reads the other end without blocking and forwards it to the target's socket,
reading only while the socket's write buffer is below its high-water mark, so a slow target
slows the child down instead of filling the parent's memory (src/replication.c
slotMigrationPipeReadHandler). Writes made meanwhile wait in the job (``SourceJob._held``).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
from collections.abc import Iterator

from engine.cluster.migration import encode_snapshot
from engine.cluster.syncslots import Ranges
from engine.engine import Engine
from engine.server.snapshot import _close_inherited_fds, _log_fds
from persistence.records import KeyRecord

log = logging.getLogger("valkey-engine")

WRITE_CHUNK = 256 * 1024


def slot_records(engine: Engine, ranges: Ranges) -> Iterator[KeyRecord]:
    """Every key of ``ranges``, db by db, range by range, slot by slot
    (src/cluster_migrateslots.c childSnapshotForSyncSlot)."""
    for db in engine.keyspace.dbs:
        if not db.data:
            continue
        for s, e in ranges:
            for slot in range(s, e + 1):
                yield from db.slot_records(slot)


def write_snapshot(engine: Engine, ranges: Ranges, fd: int) -> None:
    """The child's work: the whole snapshot into ``fd`` (blocking)."""
    os.set_blocking(fd, True)
    parts: list[bytes] = []
    size = 0
    for chunk in encode_snapshot(slot_records(engine, ranges), ranges):
        parts.append(chunk)
        size += len(chunk)
        if size >= WRITE_CHUNK:
            _write_all(fd, b"".join(parts))
            parts, size = [], 0
    if parts:
        _write_all(fd, b"".join(parts))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def fork_snapshot(engine: Engine, ranges: Ranges) -> tuple[int, int]:
    """Fork the snapshot child; returns (pid, read end of its pipe, non-blocking)."""
    r, w = os.pipe()
    for h in log.handlers:
        h.flush()
    gc.freeze()  # the parent's collector must not touch (and so copy) every shared page
    try:
        pid = os.fork()
    except OSError:
        gc.unfreeze()
        os.close(r)
        os.close(w)
        raise
    if pid:
        os.close(w)
        os.set_blocking(r, False)
        return pid, r
    code = 1
    try:  # the child: never returns into the event loop
        gc.disable()
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        _close_inherited_fds(_log_fds() | {w})
        write_snapshot(engine, ranges, w)
        os.close(w)
        code = 0
    except BaseException as e:
        with contextlib.suppress(BaseException):
            log.warning("Slot migration snapshot child failed: %s", e)
    finally:
        with contextlib.suppress(BaseException):
            for h in log.handlers:
                h.flush()
        os._exit(code)
