"""Copies of an AOF: :func:`salvage` (a repaired copy in a new directory: bad records are
skipped, scanning resyncs at the next valid command, unfinished transactions are dropped whole)
and :func:`truncate_to_timestamp` (a point-in-time copy ending before the first ``#TS:``
annotation later than a given second; :func:`timestamps` lists the marks). The originals are
never touched."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

from persistence.aof.check import CheckReport, _head, _is_rdb_head, _Src, check
from persistence.aof.check_walk import IsCommand, default_is_command, walk_resp
from persistence.aof.manifest import (
    Manifest,
    ManifestEntry,
    find_manifest,
    format_manifest,
    read_manifest,
)
from persistence.aof.resync import find_next_command
from persistence.atomic import atomic_file, fsync_dir
from persistence.errors import FormatError, PersistenceError
from persistence.fileio import open_input


@dataclass(slots=True)
class CopyReport:
    """What a salvage or point-in-time copy wrote: per file the bytes kept and the ranges
    dropped (offset, length, reason)."""

    out: str
    files: list[dict[str, object]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cut: tuple[str, int] | None = None  # truncate-to-timestamp: (file, offset) of the cut

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _prepare_out(outdir: Path) -> None:
    if outdir.exists() and (not outdir.is_dir() or any(outdir.iterdir())):
        raise FileExistsError(f"{outdir} exists and is not an empty directory")
    outdir.mkdir(parents=True, exist_ok=True)


def _copy_range(src: Path, dst: BinaryIO, start: int, end: int) -> None:
    with open_input(src) as f:
        f.seek(start)
        left = end - start
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            dst.write(chunk)
            left -= len(chunk)


def _dir_sources(folder: Path) -> tuple[list[_Src], Manifest]:
    """Without a usable manifest: the newest base and the incr files after it, by name."""
    import re

    pat = re.compile(r"^(?P<prefix>.+)\.(?P<seq>\d+)\.(?P<kind>base\.rdb|base\.aof|incr\.aof)$")
    bases: list[tuple[int, str]] = []
    incrs: list[tuple[int, str]] = []
    for c in sorted(folder.iterdir()):
        m = pat.match(c.name)
        if m and not c.name.startswith("temp-"):
            (bases if m["kind"].startswith("base") else incrs).append((int(m["seq"]), c.name))
    man = Manifest()
    out: list[_Src] = []
    if bases:
        seq, name = max(bases)
        man.base = ManifestEntry(name, seq, "b")
        out.append(_Src(name, folder / name, "base"))
    for seq, name in sorted(incrs):
        man.incrs.append(ManifestEntry(name, seq, "i"))
        out.append(_Src(name, folder / name, "incr"))
    return out, man


def _write_manifest(outdir: Path, manifest: Manifest, keep: set[str], name: str) -> None:
    m = Manifest(
        base=manifest.base if manifest.base is not None and manifest.base.name in keep else None,
        incrs=[e for e in manifest.incrs if e.name in keep],
    )
    with atomic_file(outdir / name, temp_name="temp-" + name) as f:
        f.write(format_manifest(m))


def salvage(
    path: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    *,
    is_command: IsCommand = default_is_command,
    verify_checksum: bool = True,
) -> CopyReport:
    """Write a repaired copy of ``path`` into the new directory ``outdir`` (see module doc)."""
    p, out = Path(path), Path(outdir)
    _prepare_out(out)
    rep = CopyReport(str(out))
    manifest_path: Path | None = None
    try:
        manifest_path = find_manifest(p)
        if manifest_path is None:
            if p.is_dir():
                raise FormatError("no AOF manifest in the directory", file=str(p))
            sources: list[_Src] = [_Src(p.name, p, "single")]
            manifest = None
        else:
            manifest = read_manifest(manifest_path)
            folder = manifest_path.parent
            sources = [
                _Src(e.name, folder / e.name, "base" if e.type == "b" else "incr")
                for e in manifest.files()
            ]
    except PersistenceError as e:
        folder = p if p.is_dir() else p.parent
        rep.warnings.append(f"{e.describe()}; rebuilt the file list from the file names")
        sources, manifest = _dir_sources(folder)
        manifest_path = folder / "appendonly.aof.manifest"
    kept: set[str] = set()
    for src in sources:
        if not src.path.is_file():
            rep.warnings.append(f"{src.name}: listed in the manifest but missing; left out")
            continue
        entry: dict[str, object] = {"name": src.name, "dropped": []}
        with atomic_file(out / src.name) as dst:
            _salvage_file(src, dst, entry, is_command, verify_checksum, rep)
        entry["size"] = os.path.getsize(out / src.name)
        rep.files.append(entry)
        kept.add(src.name)
    if manifest is not None and manifest_path is not None:
        _write_manifest(out, manifest, kept, manifest_path.name)
    fsync_dir(out)
    return rep


def _salvage_file(
    src: _Src,
    dst: BinaryIO,
    entry: dict[str, object],
    is_command: IsCommand,
    verify_checksum: bool,
    rep: CopyReport,
) -> None:
    dropped: list[tuple[int, int, str]] = entry["dropped"]  # type: ignore[assignment]
    size = os.path.getsize(src.path)
    if size == 0:
        return
    start = 0
    if _is_rdb_head(_head(src.path)):
        from persistence.rdb.reader import RdbReader  # lazy: only for RDB parts

        events: list[object] = []
        try:
            with open_input(src.path) as f:
                reader = RdbReader(f, file=src.name, verify_checksum=verify_checksum)
                for ev in reader:
                    events.append(ev)
                start = reader.end_offset
        except PersistenceError as e:
            _rewrite_rdb(src, dst, events)
            at = e.offset or 0
            dropped.append((at, size - at, e.message))
            rep.warnings.append(
                f"{src.name}: RDB damaged at offset {e.offset}; rewrote the {len(events)} "
                f"records before it"
            )
            return
        _copy_range(src.path, dst, 0, start)
        if start >= size:
            return
    pos = start
    with open_input(src.path) as f:
        while True:
            w = walk_resp(f, src.name, pos)
            if w.problem is None:
                _copy_range(src.path, dst, pos, w.end)
                return
            _copy_range(src.path, dst, pos, w.ok_up_to)
            kind, at, msg = w.problem
            nxt: int | None
            if kind in ("truncated", "multi"):
                nxt = None
            elif msg.startswith("Unexpected MULTI"):
                nxt = at  # the second MULTI itself is valid: drop the unfinished block only
            else:
                nxt = find_next_command(src.path, at + 1, is_command)
            end = size if nxt is None else nxt
            dropped.append((w.ok_up_to, end - w.ok_up_to, msg))
            if nxt is None:
                return
            pos = nxt


def _rewrite_rdb(src: _Src, dst: BinaryIO, events: list[object]) -> None:
    from persistence.rdb.writer import RdbWriteOptions, RdbWriter
    from persistence.records import FunctionLibrary, KeyRecord

    w = RdbWriter(dst, RdbWriteOptions(aof_base=src.kind == "base"), file=src.name)
    for ev in events:
        if isinstance(ev, FunctionLibrary):
            w.write_function(ev.code)
    db: int | None = None
    for ev in events:
        if isinstance(ev, KeyRecord):
            if ev.db != db:
                db = ev.db
                w.begin_db(db, keys=0, expires=0)
            w.write_record(ev)
    w.finish()


def timestamps(path: str | os.PathLike[str]) -> tuple[list[tuple[str, int, int]], CheckReport]:
    """The ``#TS:`` marks of ``path`` in load order: (file, offset, unix seconds)."""
    report, marks = check(path, want_marks=True)
    return marks, report


def truncate_to_timestamp(
    path: str | os.PathLike[str], outdir: str | os.PathLike[str], ts: int
) -> CopyReport:
    """Copy ``path`` to ``outdir`` up to the first ``#TS:`` annotation later than ``ts``
    (src/valkey-check-aof.c processAnnotations), dropping the files after it. The originals
    are not touched. Raises FormatError when the input is damaged before the cut."""
    p, out = Path(path), Path(outdir)
    marks, report = timestamps(p)
    cut = next(((f, off) for f, off, t in marks if t > ts), None)
    pr = report.problem
    if pr is not None:
        names = [fc.name for fc in report.files]
        before = cut is None or (
            names.index(pr.file) < names.index(cut[0]) if pr.file in names else True
        )
        if pr.file == (cut[0] if cut else None):
            before = pr.offset is None or (cut is not None and pr.offset < cut[1])
        if before:
            raise FormatError(
                f"damaged before the cut point: {pr.message} (check, then --salvage first)",
                file=pr.file, offset=pr.offset,
            )  # fmt: skip
    if cut is not None and cut[1] == 0 and report.files and report.files[0].name == cut[0]:
        # src/valkey-check-aof.c
        raise FormatError(f"AOF {cut[0]} has nothing before timestamp {ts}, aborting...")
    _prepare_out(out)
    rep = CopyReport(str(out), cut=cut)
    if cut is None:
        rep.warnings.append(f"Truncate nothing to timestamp {ts}: no #TS mark is later")
    kept: set[str] = set()
    for fc in report.files:
        src = Path(fc.path)
        end = fc.size if cut is None or fc.name != cut[0] else cut[1]
        with atomic_file(out / fc.name) as dst:
            _copy_range(src, dst, 0, end)
        rep.files.append({"name": fc.name, "size": end, "dropped": [] if end == fc.size else
                          [(end, fc.size - end, f"after timestamp {ts}")]})  # fmt: skip
        kept.add(fc.name)
        if cut is not None and fc.name == cut[0]:
            break
    manifest_path = find_manifest(p)
    if manifest_path is not None:
        _write_manifest(out, read_manifest(manifest_path), kept, manifest_path.name)
    fsync_dir(out)
    return rep
