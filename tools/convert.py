"""``valkey-aof convert``: the contents of any input written as an RDB, a single AOF, an
``appendonlydir`` or JSON.

The contents come from ``tools.rewrite.read_contents`` (a plain RDB is streamed, anything else is
replayed through the engine). RDB output goes through ``persistence.rdb.writer`` (``VALKEY080``, or
``REDIS0011`` which refuses what it cannot hold: ``UnsupportedForVersion`` names the key), AOF
output through the one encoder (``rewrite_commands``), JSON through ``tools.jsonview`` (the schema
of ``valkey-aof export``). Single-file outputs are written to a temp file and renamed into place;
``compress="lz4"`` writes them as an LZ4 frame (``persistence.fileio.open_output``), which every
reader here opens transparently.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

from persistence.aof.dirwriter import write_aof_dir
from persistence.aof.encoder import rewrite_commands
from persistence.aof.manifest import read_manifest
from persistence.atomic import fsync_dir
from persistence.fileio import open_output
from persistence.rdb.writer import RdbWriteOptions, RdbWriter
from tools.jsonview import records_to_json
from tools.rewrite import Contents, KeyFilter, Progress, Tally, check_output, read_contents, summary

Target = Literal["rdb", "aof", "aofdir", "json"]
TARGETS: tuple[Target, ...] = ("rdb", "aof", "aofdir", "json")
RDB_VERSIONS = (80, 11)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], compress: str | None) -> Iterator[BinaryIO]:
    """A temp file beside ``path`` (LZ4 frame if asked); fsynced and renamed over it on success."""
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    tmp = os.path.join(directory, f"temp-{os.getpid()}-{os.path.basename(target)}")
    try:
        with open_output(tmp, compress=compress) as f:
            yield f
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def check_options(to: str, *, base: str | None, rdb_version: int, compress: str | None) -> None:
    """ValueError for a combination that makes no sense (the CLI turns it into a usage error)."""
    if to not in TARGETS:
        raise ValueError(f"unknown output format {to!r}")
    if rdb_version not in RDB_VERSIONS:
        raise ValueError(f"--rdb-version must be 80 or 11, not {rdb_version}")
    if base is not None and to != "aofdir":
        raise ValueError("--base applies to --to aofdir only")
    if rdb_version != 80 and not (to == "rdb" or (to == "aofdir" and base in (None, "rdb"))):
        raise ValueError(
            "--rdb-version applies to RDB output (--to rdb, or aofdir with an rdb base)"
        )
    if compress not in (None, "lz4"):
        raise ValueError(f"unknown compression {compress!r}")
    if compress is not None and to == "aofdir":
        # valkey-server reads plain files only; LZ4 is for archival single files
        raise ValueError("--compress applies to single-file outputs (rdb, aof, json)")


def _write_rdb(
    out: Path, c: Contents, records: Iterator[Any], version: int, compress: str | None
) -> None:
    with atomic_output(out, compress) as f:
        w = RdbWriter(f, RdbWriteOptions(version=version), file=str(out))
        for code in c.functions:
            w.write_function(code)
        db: int | None = None
        for rec in records:
            if rec.db != db:  # records come grouped by db (tools.rewrite.Contents)
                db = rec.db
                w.begin_db(db, keys=0, expires=0)
            w.write_record(rec)
        w.finish()


def _write_aof(out: Path, c: Contents, records: Iterator[Any], compress: str | None) -> None:
    with atomic_output(out, compress) as f:
        for chunk in rewrite_commands(records, functions=c.functions):
            f.write(chunk)


def _write_json(out: Path, records: Iterator[Any], compress: str | None) -> None:
    recs = sorted(records, key=lambda r: (r.db, r.key))
    doc = {"keys": records_to_json(recs)}
    with atomic_output(out, compress) as f:
        f.write(json.dumps(doc, ensure_ascii=False, indent=1).encode() + b"\n")


def convert(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    to: Target,
    base: Literal["rdb", "aof"] | None = None,
    rdb_version: int = 80,
    compress: str | None = None,
    key_filter: KeyFilter | None = None,
    until: int | None = None,
    verify_checksum: bool = True,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write the contents of ``path`` to ``out`` in format ``to``; returns the summary."""
    check_options(to, base=base, rdb_version=rdb_version, compress=compress)
    started = time.monotonic()
    check_output(out, path, directory=(to == "aofdir"), force=force)
    o = Path(out)

    def use(c: Contents) -> tuple[Tally, list[Path]]:
        tally = Tally()
        total = len(c.records) if isinstance(c.records, list) else None
        records = tally.count(c.records, progress, total)
        if to == "aofdir":
            mpath = write_aof_dir(
                o,
                records,
                base=base or "rdb",
                functions=c.functions,
                rdb_options=RdbWriteOptions(version=rdb_version),
            )
            m = read_manifest(mpath)
            names = [e.name for e in ([m.base] if m.base else []) + m.incrs]
            return tally, [mpath.parent / n for n in names] + [mpath]
        o.parent.mkdir(parents=True, exist_ok=True)
        if to == "rdb":
            _write_rdb(o, c, records, rdb_version, compress)
        elif to == "aof":
            _write_aof(o, c, records, compress)
        else:
            _write_json(o, records, compress)
        return tally, [o]

    (tally, files), contents = read_contents(
        path,
        use,
        key_filter=key_filter,
        until=until,
        verify_checksum=verify_checksum,
        progress=progress,
    )
    extra: dict[str, Any] = {"to": to, "compress": compress}
    extra["base"] = (base or "rdb") if to == "aofdir" else None
    rdb_out = to == "rdb" or (to == "aofdir" and extra["base"] == "rdb")
    extra["rdb_version"] = rdb_version if rdb_out else None
    return summary("convert", path, out, contents, tally, files, started, **extra)
