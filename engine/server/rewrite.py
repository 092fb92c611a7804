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

With AOF just turned on at runtime (``aof.waiting``, src/aof.c AOF_WAIT_REWRITE) step 1 opens
``temp-<appendfilename>.incr`` instead, and step 3 renames it to the next incr file of the
manifest before persisting it; a failed child takes that temp file with it and a new attempt is
scheduled (durability.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from engine.cluster import syncslots as S
from engine.server.aof_writer import temp_incr_name
from engine.server.faults import crash_point
from engine.server.snapshot import fork_child, open_imports, rdb_options, write_rdb_base
from persistence.aof.dirwriter import write_base
from persistence.aof.manifest import Manifest, ManifestEntry, base_name, incr_name

if TYPE_CHECKING:
    from engine.server.aof_writer import AofWriter

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
        if preamble:  # strings straight from the db dicts (snapshot.write_rdb_base)
            write_rdb_base(engine, target)
            log.info("Successfully created the temporary AOF base file %s", target.name)
            return
        write_base(
            target,
            engine.keyspace.records(),
            base="rdb" if preamble else "aof",
            timestamp=int(time.time()) if stamp else None,
            rdb_options=rdb_options(engine, aof_base=True),
            prefix=[
                S.message_argv(S.Establish(name, tuple(ranges), source or None))
                for name, source, ranges in open_imports(engine)
            ],
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
    crash_point("rewrite-base-renamed")
    incrs = list(old.incrs)
    if aof.waiting:  # the temp incr becomes the manifest's next incr file
        iseq = (incrs[-1].seq if incrs else 0) + 1
        name = incr_name(aof.prefix, iseq)
        temp = temp_incr_name(aof.prefix)
        os.replace(aof.dir / temp, aof.dir / name)
        log.info("Successfully renamed the temporary AOF incr file %s into %s", temp, name)
        incrs.append(ManifestEntry(name, iseq, "i"))
        aof.current_file = aof.dir / name
    history = list(old.history)
    if old.base is not None:
        history.append(ManifestEntry(old.base.name, old.base.seq, "h"))
    # src/aof.c markRewrittenIncrAofAsHistory: every incr but the current one (all of them
    # when AOF is off: there is no current one)
    cut = len(incrs) if aof.offline else len(incrs) - 1
    history += [ManifestEntry(e.name, e.seq, "h") for e in incrs[:cut]]
    m = Manifest(base=ManifestEntry(new_base, seq, "b"), history=history, incrs=incrs[cut:])
    aof.persist_manifest(m)
    aof.waiting = False  # AOF_WAIT_REWRITE -> AOF_ON
    log.info("Successfully renamed the temporary AOF base file %s into %s", tmp.name, new_base)
    aof.base_size = aof.current_size = aof.file_size(new_base) + aof.incr_size
    if not engine.config["aof-disable-auto-gc"]:
        aof.delete_history()


def remove_temp_rewrite(aof: AofWriter, child_pid: int) -> None:
    """src/aof.c aofRemoveTempFile: the finished temp base and the one still being written
    (persistence/atomic.py names it ``temp-<pid>-<target name>``)."""
    d = Path(str(aof.engine.config["dir"]))
    name = temp_rewrite_name(child_pid)
    for path in (d / name, d / f"temp-{child_pid}-{name}"):
        with contextlib.suppress(OSError):
            os.unlink(path)
