"""``valkey-aof export``: the logical contents of an RDB, AOF file, manifest or appendonlydir.

AOF input is replayed into records by :mod:`tools.applier` (a stop-gap until the engine's
command table does it). Damaged input follows valkey-server 9.1.2's defaults
(``aof-load-truncated yes``, ``rdbchecksum yes``): a torn tail of the last file is cut off with a
warning, anything else is an error naming the file and offset.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from persistence.aof.reader import AofRecord, TornTail, read_aof
from persistence.aof.resp_scan import AofCommand
from persistence.errors import FormatError
from persistence.rdb.reader import glob_match
from persistence.records import KeyRecord, SlotImport
from tools.applier import Applier, ApplyError


@dataclass
class ExportResult:
    records: list[KeyRecord]
    warnings: list[str] = field(default_factory=list)


def load_contents(
    path: str | os.PathLike[str],
    *,
    verify_checksum: bool = True,
    now_ms: int | None = None,
    db: int | None = None,
    match: bytes | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Replay ``path`` and return its final keys (sorted by db, key).

    Raises :class:`persistence.errors.PersistenceError` (with file and offset) on bad input.
    """
    applier = Applier()
    warnings: list[str] = []
    failed = 0
    for item in read_aof(path, verify_checksum=verify_checksum, allow_torn_tail=True):
        if isinstance(item, AofCommand):
            try:
                applier.apply(item.argv)
            except ApplyError as e:
                # src/aof.c: an unknown command (or bad arity) aborts loading; any other error is
                # a reply the loading client discards, so the command simply has no effect.
                if e.kind != "runtime":
                    raise FormatError(str(e), file=item.file, offset=item.offset) from e
                failed += 1
                if failed == 1:
                    warnings.append(
                        f"{item.file}: command at offset {item.offset} failed while loading "
                        f"and was skipped, as valkey-server does: {e}"
                    )
            if progress is not None:
                progress(item.offset)
        elif isinstance(item, AofRecord):
            if isinstance(item.event, KeyRecord):
                applier.load_record(item.event)
            elif isinstance(item.event, SlotImport):
                applier.load_slot_import(item.event)
        elif isinstance(item, TornTail):
            if item.kind == "multi":
                warnings.append(
                    f"{item.file}: Revert incomplete MULTI/EXEC transaction at offset "
                    f"{item.offset}; loaded everything before it ({item.detail})"
                )
            else:
                warnings.append(
                    f"{item.file}: AOF truncated at offset {item.offset}; loaded every "
                    f"complete command before it ({item.detail})"
                )
    if failed > 1:
        warnings.append(f"{failed} commands in all failed while loading and were skipped")
    applier.finish()
    records = applier.records(now_ms=now_ms)
    if db is not None:
        records = [r for r in records if r.db == db]
    if match is not None:
        records = [r for r in records if glob_match(match, r.key)]
    return ExportResult(records, warnings)
