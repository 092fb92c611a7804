"""Write a complete multi-part AOF directory: base (RDB preamble or RESP), an empty incr file and
the manifest, the way Valkey lays out a freshly rewritten ``appendonlydir`` (spec 4.2, 4.3).

Used by ``valkey-aof rewrite``/``convert`` and by tests; the server's own AOF life cycle (new incr
files, history, the manifest switch after BGREWRITEAOF) builds on the same pieces.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from persistence.aof.encoder import rewrite_commands
from persistence.aof.manifest import (
    DEFAULT_FILENAME,
    Manifest,
    ManifestEntry,
    base_name,
    format_manifest,
    incr_name,
    manifest_name,
    temp_manifest_name,
)
from persistence.atomic import atomic_file, fsync_dir
from persistence.rdb.writer import RdbWriteOptions, RdbWriter
from persistence.records import KeyRecord

BaseFormat = Literal["rdb", "aof"]


def write_base(
    path: str | os.PathLike[str],
    records: Iterable[KeyRecord],
    *,
    base: BaseFormat = "rdb",
    functions: Iterable[bytes] = (),
    timestamp: int | None = None,
    rdb_options: RdbWriteOptions | None = None,
    prefix: Iterable[list[bytes]] = (),
) -> None:
    """One base file: a ``VALKEY080`` RDB with ``aof-base 1``, or RESP from the one encoder
    (``prefix``: commands before the keys, RESP base only)."""
    functions = list(functions)
    with atomic_file(path) as f:
        if base == "rdb":
            opts = dataclasses.replace(rdb_options or RdbWriteOptions(), aof_base=True)
            w = RdbWriter(f, opts, file=os.fspath(path))
            for code in functions:
                w.write_function(code)
            db: int | None = None
            for rec in records:
                if rec.db != db:
                    db = rec.db
                    w.begin_db(db, keys=0, expires=0)
                w.write_record(rec)
            w.finish()
        else:
            chunks = rewrite_commands(
                records, functions=functions, timestamp=timestamp, prefix=prefix
            )
            for chunk in chunks:
                f.write(chunk)


def write_aof_dir(
    directory: str | os.PathLike[str],
    records: Iterable[KeyRecord],
    *,
    base: BaseFormat = "rdb",
    prefix: str = DEFAULT_FILENAME,
    seq: int = 1,
    functions: Iterable[bytes] = (),
    timestamp: int | None = None,
    rdb_options: RdbWriteOptions | None = None,
) -> Path:
    """Create ``directory`` with base ``seq``, an empty incr ``seq`` and the manifest.

    Records must come grouped by db (ascending), as readers and keyspaces give them.
    Returns the manifest path. The manifest is written last, atomically, so a crash leaves no
    manifest pointing at a half-written base.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    bname = base_name(prefix, seq, rdb=(base == "rdb"))
    iname = incr_name(prefix, seq)
    write_base(
        d / bname,
        records,
        base=base,
        functions=functions,
        timestamp=timestamp,
        rdb_options=rdb_options,
    )
    with atomic_file(d / iname):
        pass
    manifest = Manifest(base=ManifestEntry(bname, seq, "b"), incrs=[ManifestEntry(iname, seq, "i")])
    mpath = d / manifest_name(prefix)
    with atomic_file(mpath, temp_name=temp_manifest_name(prefix)) as f:
        f.write(format_manifest(manifest))
    fsync_dir(d)
    return mpath
