"""``valkey-aof export``: the logical contents of an RDB, AOF file, manifest or appendonlydir.

The input is replayed into a fresh engine through its command table (``engine.loader``), the
way valkey-server loads it. Damaged input follows valkey-server 9.1.2's defaults
(``aof-load-truncated yes``, ``rdbchecksum yes``): a torn tail of the last file is cut off with a
warning, anything else is an error naming the file and offset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from engine.clock import ManualClock, SystemClock
from engine.config import Config
from engine.engine import Engine
from engine.loader import Loader, LoadError
from persistence.aof.reader import read_aof_batches
from persistence.errors import FormatError
from persistence.rdb.glob import glob_match
from persistence.records import HashValue, KeyRecord


@dataclass
class ExportResult:
    records: list[KeyRecord]
    warnings: list[str] = field(default_factory=list)
    functions: list[bytes] = field(default_factory=list)


def load_engine(
    path: str | os.PathLike[str], *, verify_checksum: bool = True, now_ms: int | None = None
) -> tuple[Engine, list[str], list[bytes]]:
    """A fresh engine holding the contents of ``path``, plus warnings and function libraries.

    Raises :class:`persistence.errors.PersistenceError` (with file and offset) on bad input.
    """
    engine = Engine(Config(), ManualClock(now_ms) if now_ms is not None else SystemClock())
    warnings: list[str] = []
    try:
        result = Loader(engine).load(
            read_aof_batches(
                path, verify_checksum=verify_checksum, allow_torn_tail=True, string_runs=True
            )
        )
    except LoadError as e:
        raise FormatError(e.message, file=e.file, offset=e.offset) from e
    for t in result.torn:
        what = "Revert incomplete MULTI/EXEC transaction" if t.kind == "multi" else "AOF truncated"
        warnings.append(
            f"{t.file}: {what} at offset {t.offset}; loaded every complete command before it "
            f"({t.detail})"
        )
    if result.skipped_errors:
        file, offset, msg = result.skipped_errors[0]
        warnings.append(
            f"{file}: {len(result.skipped_errors)} command(s) failed while loading and were "
            f"skipped, as valkey-server does; the first at offset {offset}: {msg}"
        )
    return engine, warnings, result.functions


def load_contents(
    path: str | os.PathLike[str],
    *,
    verify_checksum: bool = True,
    now_ms: int | None = None,
    db: int | None = None,
    match: bytes | None = None,
) -> ExportResult:
    """The final keys of ``path`` (sorted by db, key), as a loaded server would hold them."""
    engine, warnings, functions = load_engine(path, verify_checksum=verify_checksum, now_ms=now_ms)
    records = list(engine.keyspace.records())
    if now_ms is not None:
        records = drop_expired(records, now_ms)
    if db is not None:
        records = [r for r in records if r.db == db]
    if match is not None:
        records = [r for r in records if glob_match(match, r.key)]
    records.sort(key=lambda r: (r.db, r.key))
    return ExportResult(records, warnings, functions)


def drop_expired(records: list[KeyRecord], now_ms: int) -> list[KeyRecord]:
    """Keys and hash fields whose expiry is at or before ``now_ms`` are gone."""
    out: list[KeyRecord] = []
    for r in records:
        if r.expire_at_ms is not None and r.expire_at_ms <= now_ms:
            continue
        v = r.value
        if isinstance(v, HashValue) and v.expires:
            dead = {f for f, ms in v.expires.items() if ms <= now_ms}
            if dead:
                items = [(f, x) for f, x in v.items if f not in dead]
                if not items:
                    continue
                live = {f: ms for f, ms in v.expires.items() if f not in dead}
                r = KeyRecord(r.db, r.key, HashValue(items, live), r.expire_at_ms, r.encoding)
        out.append(r)
    return out
