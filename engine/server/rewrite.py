"""BGREWRITEAOF: the multi-part AOF rewrite (src/aof.c rewriteAppendOnlyFileBackground and
backgroundRewriteDoneHandler, spec 4.2/4.3).

How this works:
1. :func:`start_rewrite` flushes what was fed, opens a new incr file (seq + 1), persists a
   manifest that lists it after the old ones and switches appends to it (openNewIncrAofForAppend).
   From here a crash leaves old base + old incrs + new incr, which loads.
2. It forks; the child writes the new base from its copy-on-write keyspace, as a ``VALKEY080``
   RDB with ``aof-base 1`` or as RESP from the one encoder, to ``temp-rewriteaof-bg-<pid>.aof`` in
   the data directory (fsynced), and exits.
3. :func:`finish_rewrite` (the parent, when the child exited 0) renames it to
   ``<appendfilename>.<base seq + 1>.base.<rdb|aof>``, marks the old base and every incr but the
   current one as history, persists the manifest atomically and, unless ``aof-disable-auto-gc``,
   deletes the history files and persists the manifest again without them (aofDelHistoryFiles).
   A failed or killed child only loses its temp file: the manifest is still the one of step 1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from engine.server.snapshot import fork_child, rdb_options
from persistence.aof.dirwriter import write_base
from persistence.aof.manifest import Manifest, ManifestEntry, base_name

if TYPE_CHECKING:
    from engine.server.durability import AofWriter

log = logging.getLogger("valkey-engine")


def temp_rewrite_name(child_pid: int) -> str:
    return f"temp-rewriteaof-bg-{child_pid}.aof"  # src/aof.c rewriteAppendOnlyFileBackground


def start_rewrite(aof: AofWriter) -> int:
    """Open the new incr file and fork the child; returns its pid (raises OSError)."""
    aof.open_new_incr()
    engine = aof.engine
    data_dir = Path(str(engine.config["dir"]))
    preamble = bool(engine.config["aof-use-rdb-preamble"])
    stamp = bool(engine.config["aof-timestamp-enabled"])

    def child() -> None:
        target = data_dir / temp_rewrite_name(os.getpid())
        write_base(
            target,
            engine.keyspace.records(),
            base="rdb" if preamble else "aof",
            timestamp=int(time.time()) if stamp else None,
            rdb_options=rdb_options(engine, aof_base=True),
        )
        log.info("Successfully created the temporary AOF base file %s", target.name)

    return fork_child(child, "AOF rewrite")


def finish_rewrite(aof: AofWriter, child_pid: int) -> None:
    """Install the child's base and retire what it replaces (the parent, child exited 0)."""
    engine = aof.engine
    tmp = Path(str(engine.config["dir"])) / temp_rewrite_name(child_pid)
    old = aof.manifest
    seq = old.base.seq + 1 if old.base is not None else 1
    new_base = base_name(aof.prefix, seq, rdb=bool(engine.config["aof-use-rdb-preamble"]))
    os.replace(tmp, aof.dir / new_base)
    history = list(old.history)
    if old.base is not None:
        history.append(ManifestEntry(old.base.name, old.base.seq, "h"))
    # src/aof.c markRewrittenIncrAofAsHistory: every incr but the current one
    history += [ManifestEntry(e.name, e.seq, "h") for e in old.incrs[:-1]]
    m = Manifest(base=ManifestEntry(new_base, seq, "b"), history=history, incrs=old.incrs[-1:])
    aof.persist_manifest(m)
    log.info("Successfully renamed the temporary AOF base file %s into %s", tmp.name, new_base)
    aof.base_size = aof.current_size = aof.file_size(new_base) + aof.incr_size
    if not engine.config.values.get("aof-disable-auto-gc", False):
        delete_history(aof)


def delete_history(aof: AofWriter) -> None:
    """src/aof.c aofDelHistoryFiles."""
    m = aof.manifest
    if not m.history:
        return
    for e in m.history:
        log.info("Removing the history file %s in the background", e.name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(aof.dir / e.name)
    aof.persist_manifest(Manifest(base=m.base, history=[], incrs=m.incrs))


def remove_temp_rewrite(aof: AofWriter, child_pid: int) -> None:
    """src/aof.c aofRemoveTempFile: the finished temp base and the one still being written
    (persistence/atomic.py names it ``temp-<pid>-<target name>``)."""
    d = Path(str(aof.engine.config["dir"]))
    name = temp_rewrite_name(child_pid)
    for path in (d / name, d / f"temp-{child_pid}-{name}"):
        with contextlib.suppress(OSError):
            os.unlink(path)
