"""``valkey-aof rewrite``: offline compaction of any input into a fresh ``appendonlydir``.

How it works: :func:`read_contents` turns PATH (an RDB, a single AOF, a manifest or an
``appendonlydir``) into :class:`Contents`: function libraries plus key records grouped by db in
ascending order, filtered (``--db``, ``--match``, ``--slot``, ``--type``) and renumbered
(``--map-db``). A plain RDB is streamed record by record from the RDB reader (filters skip values
without decoding them) straight into the writer; everything else is replayed through the engine
(``engine.loader``) the way valkey-server loads it, optionally only up to a point in time
(``--until``: the commands before the first ``#TS:`` annotation later than TS, as
``valkey-check-aof --truncate-to-timestamp`` cuts, src/valkey-check-aof.c). :func:`rewrite` then
writes the records through ``persistence.aof.dirwriter`` (the one encoder / the RDB writer).
``tools.convert`` writes the same contents in the other output formats.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from engine.clock import SystemClock
from engine.config import Config
from engine.engine import Engine
from engine.loader import Loader, LoadError
from persistence.aof.dirwriter import write_aof_dir
from persistence.aof.manifest import find_manifest, read_manifest
from persistence.aof.reader import AofFileInfo, AofItem, AofRecord, read_aof_batches
from persistence.aof.resp_scan import AofCommand
from persistence.crc import key_slot
from persistence.errors import FormatError
from persistence.fileio import is_lz4, open_input
from persistence.rdb.glob import glob_match
from persistence.rdb.reader import RdbFilter, RdbReader
from persistence.records import FunctionLibrary, KeyRecord, SlotImport

TYPE_NAMES = ("string", "list", "set", "zset", "hash", "stream")
MAX_SLOT = 16383
InputKind = Literal["rdb", "aof", "manifest", "appendonlydir"]
# progress(phase, done, total): phase "read" counts input bytes, "write" counts keys
Progress = Callable[[str, int, int | None], None]
T = TypeVar("T")


class OutputError(Exception):
    """The output cannot be written where asked (exists, overlaps the input, ...)."""


# ---- filters -------------------------------------------------------------------------------


def parse_slots(text: str) -> list[tuple[int, int]]:
    """``"0-100,200,300-400"`` -> inclusive ranges; ValueError on anything else."""
    out: list[tuple[int, int]] = []
    for part in text.split(","):
        a, sep, b = part.strip().partition("-")
        lo = int(a)
        hi = int(b) if sep else lo
        if not 0 <= lo <= hi <= MAX_SLOT:
            raise ValueError(f"bad slot range {part.strip()!r} (slots are 0-{MAX_SLOT})")
        out.append((lo, hi))
    return out


def parse_map_db(items: Iterable[str]) -> dict[int, int]:
    """``["0:3", "5:0"]`` -> {0: 3, 5: 0}; ValueError on a bad or repeated FROM."""
    out: dict[int, int] = {}
    for item in items:
        a, sep, b = item.partition(":")
        if not sep:
            raise ValueError(f"bad db mapping {item!r} (want FROM:TO)")
        src, dst = int(a), int(b)
        if src < 0 or dst < 0:
            raise ValueError(f"bad db mapping {item!r} (dbs are >= 0)")
        if src in out:
            raise ValueError(f"db {src} is mapped twice")
        out[src] = dst
    return out


@dataclass
class KeyFilter:
    dbs: set[int] | None = None
    match: bytes | None = None
    slots: list[tuple[int, int]] | None = None
    types: set[str] | None = None
    map_db: dict[int, int] = field(default_factory=dict)

    def slot_set(self) -> set[int] | None:
        if self.slots is None:
            return None
        return {s for lo, hi in self.slots for s in range(lo, hi + 1)}

    def rdb_filter(self) -> RdbFilter | None:
        if self.dbs is None and self.match is None and self.slots is None and self.types is None:
            return None
        return RdbFilter(self.dbs, self.match, self.types, self.slot_set())

    def wants(self, rec: KeyRecord) -> bool:
        if self.dbs is not None and rec.db not in self.dbs:
            return False
        if self.types is not None and rec.type_name not in self.types:
            return False
        if self.match is not None and not glob_match(self.match, rec.key):
            return False
        if self.slots is not None:
            slot = key_slot(rec.key)
            return any(lo <= slot <= hi for lo, hi in self.slots)
        return True


def remap(records: Iterable[KeyRecord], map_db: dict[int, int]) -> list[KeyRecord]:
    """Records renumbered by ``map_db`` and regrouped by db; a key landing twice is an error."""
    out: list[KeyRecord] = []
    seen: set[tuple[int, bytes]] = set()
    for r in records:
        db = map_db.get(r.db, r.db)
        if (db, r.key) in seen:
            raise OutputError(f"--map-db puts key {r.key!r} twice into db {db}")
        seen.add((db, r.key))
        r.db = db
        out.append(r)
    out.sort(key=lambda r: r.db)  # stable: keeps each db's key order
    return out


# ---- reading -------------------------------------------------------------------------------


def input_kind(path: str | os.PathLike[str]) -> InputKind:
    p = Path(path)
    if p.is_dir():
        return "appendonlydir"
    if find_manifest(p) is not None:
        return "manifest"
    with open_input(p) as f:
        head = f.read(9)
    return "rdb" if head.startswith((b"REDIS", b"VALKEY")) else "aof"


@dataclass
class Contents:
    """What a reader produced: records grouped by db (ascending), and what was learnt."""

    kind: InputKind
    records: Iterable[KeyRecord]
    functions: list[bytes] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # --until: {"file", "offset", "timestamp"}: the first command not replayed (it follows the
    # first #TS annotation later than TS) and that annotation's timestamp
    until_cut: dict[str, Any] | None = None
    close: Callable[[], None] = lambda: None


class _NeedEngine(Exception):
    """The RDB stream holds something only a replay handles (a RESP tail, a slot import)."""

    def __init__(self, kind: InputKind = "rdb") -> None:
        super().__init__(kind)
        self.kind: InputKind = kind


def _stream_rdb(
    path: str | os.PathLike[str], flt: KeyFilter, verify_checksum: bool, progress: Progress | None
) -> Contents:
    f = open_input(path)
    try:
        total = None if is_lz4(path) else os.path.getsize(path)
        reader = RdbReader(
            f, file=str(path), verify_checksum=verify_checksum, filter=flt.rdb_filter()
        )
        events = iter(reader)
        functions: list[bytes] = []
        first: KeyRecord | None = None
        for ev in events:  # function libraries come before the first db (src/rdb.c rdbSaveRio)
            if isinstance(ev, KeyRecord):
                first = ev
                break
            if isinstance(ev, FunctionLibrary):
                functions.append(ev.code)
            elif isinstance(ev, SlotImport):
                raise _NeedEngine
    except BaseException:
        f.close()
        raise

    def records() -> Iterator[KeyRecord]:
        if first is None:
            _check_end()
            return
        yield first
        n = 0
        for ev in events:
            if isinstance(ev, KeyRecord):
                yield ev
                n += 1
                if progress is not None and n % 1024 == 0 and ev.offset is not None:
                    progress("read", ev.offset, total)
            elif isinstance(ev, SlotImport):
                raise _NeedEngine
            elif isinstance(ev, FunctionLibrary):
                raise _NeedEngine  # a library after the keys: let the loader sort it out
        _check_end()

    def _check_end() -> None:
        # an old-style single AOF: RDB preamble + RESP tail (spec 4.5)
        if reader.trailing or f.read(1):
            raise _NeedEngine("aof")
        if progress is not None and total is not None:
            progress("read", total, total)

    recs: Iterable[KeyRecord] = records()
    if flt.map_db:
        recs = remap(recs, flt.map_db)
    return Contents("rdb", recs, functions, close=f.close)


def _until_batches(
    batches: Iterable[list[AofItem]], until: int, cut: dict[str, Any]
) -> Iterator[list[AofItem]]:
    """Batches up to the first command after a ``#TS:`` annotation later than ``until``.

    A batch is one MULTI/EXEC block at most: a cut inside it drops the whole block, as loading a
    file truncated there reverts the incomplete transaction (src/aof.c).
    """
    for batch in batches:
        for i, item in enumerate(batch):
            if type(item) is AofCommand and item.timestamp is not None and item.timestamp > until:
                cut.update(file=item.file, offset=item.offset, timestamp=item.timestamp)
                multi = any(
                    type(c) is AofCommand and c.argv[0].upper() == b"MULTI" for c in batch[:i]
                )
                keep = [] if multi else batch[:i]
                if keep:
                    yield keep
                return
        yield batch


def _tracked(
    batches: Iterable[list[AofItem]], progress: Progress, total: int | None
) -> Iterator[list[AofItem]]:
    done_files = 0
    current = 0
    for batch in batches:
        for item in batch:
            if isinstance(item, AofFileInfo):
                done_files += current
                current = item.size
        last = batch[-1]
        pos = 0
        if type(last) is AofCommand:
            pos = last.offset + last.size
        elif isinstance(last, AofRecord) and last.event.offset is not None:
            pos = last.event.offset
        progress("read", done_files + min(pos, current), total)
        yield batch
    if total is not None:
        progress("read", total, total)


def _input_size(path: str | os.PathLike[str]) -> int | None:
    p = Path(path)
    manifest = find_manifest(p)
    files = [p] if manifest is None else [c for c in manifest.parent.iterdir() if c.is_file()]
    if manifest is not None:
        files = [c for c in files if ".incr." in c.name or ".base." in c.name]
    try:
        if any(is_lz4(c) for c in files):
            return None
        return sum(c.stat().st_size for c in files)
    except OSError:
        return None


def _replay(
    path: str | os.PathLike[str],
    kind: InputKind,
    flt: KeyFilter,
    verify_checksum: bool,
    until: int | None,
    progress: Progress | None,
) -> Contents:
    """Load ``path`` into a fresh engine (as tools.export.load_engine does) and take its keys."""
    engine = Engine(Config(), SystemClock())
    batches: Iterable[list[AofItem]] = read_aof_batches(
        path, verify_checksum=verify_checksum, allow_torn_tail=True, string_runs=True
    )
    cut: dict[str, Any] = {}
    if until is not None:
        batches = _until_batches(batches, until, cut)
    if progress is not None:
        batches = _tracked(batches, progress, _input_size(path))
    try:
        result = Loader(engine).load(batches)
    except LoadError as e:
        raise FormatError(e.message, file=e.file, offset=e.offset) from e
    warnings: list[str] = []
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
    records = [r for r in engine.keyspace.records() if flt.wants(r)]
    if flt.map_db:
        records = remap(records, flt.map_db)
    return Contents(kind, records, result.functions, warnings, cut or None)


def read_contents(
    path: str | os.PathLike[str],
    use: Callable[[Contents], T],
    *,
    key_filter: KeyFilter | None = None,
    until: int | None = None,
    verify_checksum: bool = True,
    progress: Progress | None = None,
) -> tuple[T, Contents]:
    """Read ``path`` and hand its contents to ``use`` (which writes them); returns both.

    A plain RDB is streamed; if it turns out to need a replay (a RESP tail after the RDB, a slot
    import), ``use`` sees an exception from the records iterator and is called again with the
    replayed contents, so ``use`` must write atomically (every writer here does).
    """
    flt = key_filter or KeyFilter()
    kind = input_kind(path)
    if kind == "rdb" and until is None:
        try:
            c = _stream_rdb(path, flt, verify_checksum, progress)
            try:
                return use(c), c
            finally:
                c.close()
        except _NeedEngine as e:
            kind = e.kind
    c = _replay(path, kind, flt, verify_checksum, until, progress)
    return use(c), c


# ---- counting what is written --------------------------------------------------------------


@dataclass
class Tally:
    keys: int = 0
    expires: int = 0
    by_db: Counter[int] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)

    def count(
        self, records: Iterable[KeyRecord], progress: Progress | None, total: int | None
    ) -> Iterator[KeyRecord]:
        for r in records:
            self.keys += 1
            self.by_db[r.db] += 1
            self.by_type[r.type_name] += 1
            if r.expire_at_ms is not None:
                self.expires += 1
            if progress is not None and self.keys % 1024 == 0:
                progress("write", self.keys, total)
            yield r
        if progress is not None:
            progress("write", self.keys, total if total is not None else self.keys)

    def as_json(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "expires": self.expires,
            "keys_by_db": {str(db): n for db, n in sorted(self.by_db.items())},
            "keys_by_type": {t: n for t, n in sorted(self.by_type.items())},
        }


def summary(
    command: str,
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    contents: Contents,
    tally: Tally,
    files: list[Path],
    started: float,
    **extra: Any,
) -> dict[str, Any]:
    """The ``--json`` document of rewrite and convert (the same keys for both)."""
    return {
        "command": command,
        "input": os.fspath(path),
        "input_kind": contents.kind,
        "output": os.fspath(out),
        **extra,
        "files": [{"name": p.name, "path": str(p), "size": p.stat().st_size} for p in files],
        **tally.as_json(),
        "functions": len(contents.functions),
        "until": contents.until_cut,
        "warnings": list(contents.warnings),
        "seconds": round(time.monotonic() - started, 3),
    }


def check_output(
    out: str | os.PathLike[str], path: str | os.PathLike[str], *, directory: bool, force: bool
) -> None:
    """Refuse to clobber: an existing output needs ``force``; the input is never overwritten."""
    o = Path(out).resolve()
    src = Path(path).resolve()
    if o == src or (src.is_file() and o == src.parent) or (src.is_dir() and src in o.parents):
        raise OutputError(f"{out}: the output would overwrite the input {path}")
    if directory:
        if o.exists() and not o.is_dir():
            raise OutputError(f"{out}: exists and is not a directory")
        if o.is_dir() and any(o.iterdir()) and not force:
            raise OutputError(f"{out}: directory is not empty (--force writes into it)")
    else:
        if o.is_dir():
            raise OutputError(f"{out}: is a directory")
        if o.exists() and not force:
            raise OutputError(f"{out}: exists (--force overwrites it)")


# ---- rewrite -------------------------------------------------------------------------------


def rewrite(
    path: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    *,
    base: Literal["rdb", "aof"] = "rdb",
    key_filter: KeyFilter | None = None,
    until: int | None = None,
    verify_checksum: bool = True,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write ``outdir`` as a fresh appendonlydir (base seq 1, empty incr seq 1, manifest)."""
    started = time.monotonic()
    check_output(outdir, path, directory=True, force=force)

    def use(c: Contents) -> tuple[Tally, Path]:
        tally = Tally()
        total = len(c.records) if isinstance(c.records, list) else None
        mpath = write_aof_dir(
            outdir, tally.count(c.records, progress, total), base=base, functions=c.functions
        )
        return tally, mpath

    (tally, mpath), contents = read_contents(
        path,
        use,
        key_filter=key_filter,
        until=until,
        verify_checksum=verify_checksum,
        progress=progress,
    )
    d = mpath.parent
    m = read_manifest(mpath)
    names = [e.name for e in ([m.base] if m.base else []) + m.incrs]
    files = [d / n for n in names] + [mpath]
    return summary(
        "rewrite",
        path,
        outdir,
        contents,
        tally,
        files,
        started,
        to="aofdir",
        compress=None,
        base=base,
        rdb_version=80 if base == "rdb" else None,
    )
