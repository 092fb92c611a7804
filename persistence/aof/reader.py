"""The streaming AOF reader: a single AOF file, a manifest, or an ``appendonlydir``.

:func:`read_aof` yields, in load order (base, then incr files in manifest order; history files
are skipped), an :class:`AofFileInfo` before each file, then that file's contents: the RDB
records of an RDB-preamble base as :class:`AofRecord`, and each RESP command as
:class:`AofCommand` with its file, byte offset, size, the last ``#TS:`` timestamp seen and the
db it runs in. Commands of a ``MULTI`` ... ``EXEC`` block are held back until ``EXEC`` is read.
A file that ends inside a command or an open ``MULTI`` gives a :class:`TornTail` when it is the
last file (Valkey's ``aof-load-truncated``), a :class:`TruncatedError` otherwise. Semantics follow
src/aof.c ``loadAppendOnlyFiles`` / ``loadSingleAppendOnlyFile`` (spec 4.5, 4.7).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, TypeAlias

from persistence.aof.manifest import Manifest, find_manifest, read_manifest
from persistence.aof.resp_scan import AofCommand, CommandRun, RespScanner, TornError
from persistence.errors import FormatError, MissingFileError, TruncatedError
from persistence.fileio import open_input

if TYPE_CHECKING:  # (persistence.records costs ~10 ms of start-up; the RDB reader imports it)
    from persistence.records import RdbEvent

FileKind: TypeAlias = Literal["base", "incr", "history", "single"]
FileFormat: TypeAlias = Literal["rdb", "resp", "empty"]


@dataclass(slots=True)
class AofFileInfo:
    name: str
    path: str
    kind: FileKind
    seq: int | None
    format: FileFormat
    size: int
    rdb_version: int | None = None


@dataclass(slots=True)
class AofRecord:
    event: RdbEvent
    file: str


@dataclass(slots=True)
class TornTail:
    file: str
    offset: int
    kind: Literal["truncated", "multi"]
    detail: str


AofItem: TypeAlias = AofFileInfo | AofCommand | AofRecord | TornTail
AofRunItem: TypeAlias = AofItem | CommandRun

_MULTI = b"MULTI"
_EXEC = b"EXEC"
_SELECT = b"SELECT"


def _variants(word: bytes) -> frozenset[bytes]:
    out = {b""}
    for c in word:
        ch = bytes([c])
        out = {p + ch.lower() for p in out} | {p + ch.upper() for p in out}
    return frozenset(out)


# every spelling of the three commands the reader acts on: one set lookup per command
_SPECIAL = _variants(_MULTI) | _variants(_EXEC) | _variants(_SELECT)

NOT_LAST_FILE = "the truncated file is not the last file"  # src/aof.c loadAppendOnlyFiles


@dataclass(slots=True)
class _Source:
    name: str
    path: Path
    kind: FileKind
    seq: int | None


def _sources(path: str | os.PathLike[str]) -> list[_Source]:
    p = Path(path)
    manifest_path = find_manifest(p)
    if manifest_path is None:
        if p.is_dir():
            raise MissingFileError("no AOF manifest in the directory", file=str(p))
        return [_Source(p.name, p, "single", None)]
    manifest: Manifest = read_manifest(manifest_path)
    folder = manifest_path.parent
    out: list[_Source] = []
    if manifest.base is not None:
        out.append(
            _Source(manifest.base.name, folder / manifest.base.name, "base", manifest.base.seq)
        )
    out.extend(_Source(e.name, folder / e.name, "incr", e.seq) for e in manifest.incrs)
    # a file listed in the manifest but missing on disk is fatal before anything loads (src/aof.c)
    for src in out:
        if not src.path.is_file():
            raise MissingFileError(
                f"The append log file {src.name} doesn't exist (listed in {manifest_path.name})",
                file=str(src.path),
            )
    return out


def _rdb_version(head: bytes) -> int | None:
    digits = head[6:9] if head.startswith(b"VALKEY") else head[5:9]
    return int(digits) if digits.isdigit() else None


def read_aof(
    path: str | os.PathLike[str],
    *,
    verify_checksum: bool = True,
    allow_torn_tail: bool = True,
) -> Iterator[AofItem]:
    """Stream everything in an AOF (see the module docstring).

    Each command object is made as it is consumed (``CommandRun.iter_commands``), not a run's
    worth at a time: a consumer that drops them leaves the cyclic GC almost nothing to do."""
    runs = read_aof_runs(path, verify_checksum=verify_checksum, allow_torn_tail=allow_torn_tail)
    for items in runs:
        for item in items:
            if type(item) is CommandRun:
                yield from item.iter_commands()
            else:
                yield item  # type: ignore[misc]


def read_aof_batches(
    path: str | os.PathLike[str],
    *,
    verify_checksum: bool = True,
    allow_torn_tail: bool = True,
    string_runs: bool = False,
) -> Iterator[list[AofItem]]:
    """:func:`read_aof` in lists of items (a few hundred commands each).

    ``string_runs``: an RDB preamble's runs of plain string keys come as ``StringRecords``
    events (``RdbReader(string_runs=True)``), for loaders."""
    runs = read_aof_runs(path, verify_checksum=verify_checksum, allow_torn_tail=allow_torn_tail,
                         string_runs=string_runs)  # fmt: skip
    for items in runs:
        if len(items) == 1 and type(items[0]) is CommandRun:
            yield items[0].commands()  # type: ignore[misc]
        else:
            yield _expand(items)


def read_aof_runs(
    path: str | os.PathLike[str],
    *,
    verify_checksum: bool = True,
    allow_torn_tail: bool = True,
    string_runs: bool = False,
    shaped: bool = False,
) -> Iterator[list[AofRunItem]]:
    """:func:`read_aof_batches` with consecutive commands as one :class:`CommandRun` (no
    object per command): the fast way to load and to count.

    ``shaped``: runs of commands of one layout are proved canonical without hiredis and come
    with ``shape`` set, their ``argvs`` built only when read (persistence/aof/shapes.py): for
    consumers that need a few columns (``CommandRun.column``), as ``valkey-aof inspect``."""
    sources = _sources(path)
    state = _State(string_runs=string_runs, shaped=shaped)
    for i, src in enumerate(sources):
        last = i == len(sources) - 1
        yield from _read_one(src, state, last, verify_checksum, allow_torn_tail)


def _expand(items: list[AofRunItem]) -> list[AofItem]:
    out: list[AofItem] = []
    for item in items:
        if type(item) is CommandRun:
            out.extend(item.commands())
        else:
            out.append(item)  # type: ignore[arg-type]
    return out


@dataclass(slots=True)
class _State:
    timestamp: int | None = None
    string_runs: bool = False
    shaped: bool = False


def _read_one(
    src: _Source, state: _State, last: bool, verify_checksum: bool, allow_torn_tail: bool
) -> Iterator[list[AofRunItem]]:
    name = str(src.path) if src.kind == "single" else src.name
    size = os.path.getsize(src.path)
    with open_input(src.path) as f:
        head = f.read(9)
        if not head:
            fmt: FileFormat = "empty"
        elif head.startswith((b"REDIS", b"VALKEY")):
            fmt = "rdb"
        else:
            fmt = "resp"
        version = _rdb_version(head) if fmt == "rdb" else None
        yield [AofFileInfo(src.name, str(src.path), src.kind, src.seq, fmt, size, version)]
        if fmt == "empty":
            return
        offset = 0
        initial = head
        if fmt == "rdb":
            # src/aof.c loadSingleAppendOnlyFile: load the RDB, then any remaining bytes are RESP
            end = yield from _read_rdb_part(f, name, verify_checksum, state.string_runs)
            f.seek(end)
            offset = end
            initial = b""
        yield from _read_resp(f, initial, offset, name, state, last, allow_torn_tail)


def _read_rdb_part(
    f: BinaryIO, name: str, verify_checksum: bool, string_runs: bool = False
) -> Generator[list[AofRunItem], None, int]:
    """Yield the records of the RDB at the start of ``f``; return the offset just past its
    checksum (the RESP tail of an old-style preamble AOF follows there, spec 4.5)."""
    from persistence.rdb.reader import RdbReader  # lazy: the sibling package is optional here

    f.seek(0)
    reader = RdbReader(f, file=name, verify_checksum=verify_checksum, string_runs=string_runs)
    batch: list[AofRunItem] = []
    for event in reader:
        batch.append(AofRecord(event, name))
        if len(batch) >= 256:
            yield batch
            batch = []
    if batch:
        yield batch
    end: int = reader.end_offset
    return end


def _read_resp(
    f: BinaryIO,
    initial: bytes,
    offset: int,
    name: str,
    state: _State,
    last: bool,
    allow_torn_tail: bool,
) -> Iterator[list[AofRunItem]]:
    """The RESP part of one file; consecutive commands come as :class:`CommandRun`."""
    pending: list[AofRunItem] | None = None  # commands of an open MULTI
    multi_offset = 0
    scanner = RespScanner(f, file=name, base_offset=offset, initial=initial)
    scanner.timestamp = state.timestamp
    # each file is loaded by a fresh fake client, so every file starts in db 0 (src/aof.c)
    scanner.db = 0
    scanner.special = special = _SPECIAL
    scanner.shaped = state.shaped
    last_end = offset  # end of the last complete command (src/aof.c valid_up_to)
    try:
        for run in scanner.runs():
            last_end = run.offset + run.size
            # (a shaped run's commands share one name, never a special one)
            if run.shape is not None or run.argvs[-1][0] not in special:
                if pending is None:
                    yield [run]
                else:
                    pending.append(run)
                continue
            # a special command always ends its run
            body, cmd = run.split_last()
            if body is not None:
                if pending is None:
                    yield [body]
                else:
                    pending.append(body)
            upper = cmd.argv[0].upper()
            if upper == _SELECT:
                scanner.db = cmd.db = _select_db(cmd.argv, scanner.db)
            elif upper == _MULTI:
                if pending is not None:
                    raise FormatError(
                        "Bad file format reading the append only file: Unexpected MULTI",
                        file=name, offset=cmd.offset,
                    )  # fmt: skip
                pending = []
                multi_offset = cmd.offset
            elif pending is None:  # EXEC without MULTI
                raise FormatError(
                    "Bad file format reading the append only file: Unexpected EXEC",
                    file=name, offset=cmd.offset,
                )  # fmt: skip
            else:
                pending.append(cmd)
                yield pending
                pending = None
                continue
            if pending is not None:
                pending.append(cmd)
            else:
                yield [cmd]
    except TornError as e:
        state.timestamp = scanner.timestamp
        if pending is not None:
            yield from _torn(
                name, multi_offset, "multi", last, allow_torn_tail,
                f"EOF inside a command at offset {e.offset} within the MULTI opened at offset "
                f"{multi_offset}",
            )  # fmt: skip
        else:
            detail = f"{e.message} at offset {e.offset}"
            yield from _torn(name, last_end, "truncated", last, allow_torn_tail, detail)
        return
    state.timestamp = scanner.timestamp
    if pending is not None:
        # src/aof.c: "Revert incomplete MULTI/EXEC transaction in AOF file"
        yield from _torn(
            name, multi_offset, "multi", last, allow_torn_tail,
            f"Revert incomplete MULTI/EXEC transaction in AOF file {name}",
        )  # fmt: skip


def _torn(
    name: str,
    offset: int,
    kind: Literal["truncated", "multi"],
    last: bool,
    allow: bool,
    detail: str,
) -> Iterator[list[AofRunItem]]:
    if not last:
        raise TruncatedError(f"Fatal error: {NOT_LAST_FILE} ({detail})", file=name, offset=offset)
    if not allow:
        hint = "use valkey-check-aof --fix or aof-load-truncated yes"
        raise TruncatedError(f"{detail}; {hint}", file=name, offset=offset)
    yield [TornTail(name, offset, kind, detail)]


def _select_db(argv: list[bytes], db: int) -> int:
    if len(argv) != 2:
        return db
    try:
        return int(argv[1])
    except ValueError:
        return db


# ---- slot migration records (spec 3.11, 8.8) -----------------------------------------------


@dataclass(slots=True)
class SyncSlotsMark:
    """``CLUSTER SYNCSLOTS ESTABLISH`` / ``FINISH`` as recorded in a target's AOF."""

    kind: Literal["establish", "finish"]
    job: bytes
    source: bytes | None = None
    ranges: list[tuple[int, int]] | None = None
    state: bytes | None = None
    message: bytes | None = None


def parse_syncslots(argv: list[bytes]) -> SyncSlotsMark | None:
    """Recognise ``CLUSTER SYNCSLOTS ESTABLISH SOURCE <id> NAME <job> SLOTSRANGE a b [a b ...]``
    and ``CLUSTER SYNCSLOTS FINISH STATE SUCCESS|FAILED NAME <job> MESSAGE <text>``; None for
    anything else (including malformed ones)."""
    if len(argv) < 3 or argv[0].upper() != b"CLUSTER" or argv[1].upper() != b"SYNCSLOTS":
        return None
    sub = argv[2].upper()
    if sub not in (b"ESTABLISH", b"FINISH"):
        return None
    opts: dict[bytes, bytes] = {}
    ranges: list[tuple[int, int]] = []
    i = 3
    while i < len(argv):
        key = argv[i].upper()
        if key == b"SLOTSRANGE":
            i += 1
            while i + 1 < len(argv) and argv[i].isdigit() and argv[i + 1].isdigit():
                ranges.append((int(argv[i]), int(argv[i + 1])))
                i += 2
            continue
        if i + 1 >= len(argv):
            return None
        opts[key] = argv[i + 1]
        i += 2
    job = opts.get(b"NAME")
    if job is None:
        return None
    if sub == b"ESTABLISH":
        return SyncSlotsMark("establish", job, source=opts.get(b"SOURCE"), ranges=ranges)
    return SyncSlotsMark("finish", job, state=opts.get(b"STATE"), message=opts.get(b"MESSAGE"))
