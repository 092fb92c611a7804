"""Validate, fix, salvage and cut AOFs: the library behind ``valkey-aof check``.

How it works: :func:`check` walks the files the way src/valkey-check-aof.c does (manifest, base,
incr files in order; an RDB part through the RDB reader with its CRC64, then RESP through the one
scanner, :class:`~persistence.aof.resp_scan.RespScanner`), but it recognises ``VALKEY080`` bases
(9.0/9.1's checker only tests for ``REDIS``, spec 4.8) and stops at the first problem with its
file, offset, valkey-check-aof's line number and an excerpt. It never writes.

- :func:`fix` cuts a damaged *tail* of the last file in place (a torn command, an open MULTI, zero
  padding: nothing valid follows), never damage with valid commands after it.
- :func:`salvage` writes a repaired copy to a new directory: bad records are skipped, scanning
  resyncs at the next valid command, unfinished transactions are dropped whole.
- :func:`truncate_to_timestamp` writes a point-in-time copy ending before the first ``#TS:``
  annotation later than the given second; :func:`timestamps` lists the marks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from persistence.aof.manifest import (
    Manifest,
    ManifestEntry,
    find_manifest,
    format_manifest,
    read_manifest,
)
from persistence.aof.resp_scan import RespScanner, TornError, canonical_size
from persistence.atomic import atomic_file, fsync_dir
from persistence.errors import ChecksumError, FormatError, PersistenceError, TruncatedError
from persistence.fileio import open_input

Progress = Callable[[int], None]  # called with bytes done so far (over all files)
IsCommand = Callable[[list[bytes]], bool]
ProblemKind = Literal["truncated", "multi", "format", "checksum", "missing", "manifest", "not_last"]

EXCERPT = 48  # bytes shown from the problem offset
RESYNC_MAX_ARGC = 1 << 20
RESYNC_MAX_BULK = 512 << 20  # proto-max-bulk-len default (src/config.c)
EOF_IN_MULTI = "Reached EOF before reading EXEC for MULTI"  # src/valkey-check-aof.c


def default_is_command(argv: list[bytes]) -> bool:
    """Without a command table: a name of letters (tools pass the engine's table)."""
    return 0 < len(argv[0]) <= 64 and argv[0].replace(b"|", b"").isalpha()


@dataclass(slots=True)
class Problem:
    file: str
    path: str
    offset: int | None
    kind: ProblemKind
    message: str
    line: int | None = None
    tail: bool = False  # nothing valid follows in the file: cutting here loses no command
    last_file: bool = False
    excerpt_hex: list[str] = field(default_factory=list)
    excerpt_text: str = ""

    @property
    def fixable(self) -> bool:
        return self.tail and self.last_file and self.offset is not None


@dataclass(slots=True)
class FileCheck:
    name: str
    path: str
    kind: str  # base | incr | single | rdb
    format: str  # rdb | resp | empty | preamble
    size: int
    status: str = "unchecked"  # ok | empty | damaged | unchecked | missing
    rdb_version: int | None = None
    commands: int = 0
    timestamps: int = 0
    ok_up_to: int = 0
    ok_up_to_line: int = 1
    diff: int = 0


@dataclass(slots=True)
class CheckReport:
    path: str
    input: str  # manifest | aof | rdb
    files: list[FileCheck] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["ok"] = self.ok
        if self.problem is not None:
            d["problem"]["fixable"] = self.problem.fixable
        return d


@dataclass(slots=True)
class _Src:
    name: str
    path: Path
    kind: str


# ---- inputs --------------------------------------------------------------------------------


def _is_rdb_head(head: bytes) -> bool:
    return head.startswith((b"REDIS", b"VALKEY"))


def _head(path: Path, n: int = 9) -> bytes:
    with open_input(path) as f:
        return f.read(n)


def _sources(path: Path, report: CheckReport) -> tuple[list[_Src], Manifest | None]:
    manifest_path = find_manifest(path)
    if manifest_path is None:
        if path.is_dir():
            raise FormatError("no AOF manifest in the directory", file=str(path))
        report.input = "rdb" if _is_rdb_head(_head(path)) and _rdb_only(path) else "aof"
        return [_Src(path.name, path, "rdb" if report.input == "rdb" else "single")], None
    report.input = "manifest"
    manifest = read_manifest(manifest_path)
    folder = manifest_path.parent
    report.history = [h.name for h in manifest.history]
    out = [
        _Src(e.name, folder / e.name, "base" if e.type == "b" else "incr") for e in manifest.files()
    ]
    return out, manifest


def _rdb_only(path: Path) -> bool:
    """A plain RDB (``dump.rdb``) rather than an old-style preamble AOF: by name."""
    return not path.name.endswith(".aof")


# ---- the RESP walk -------------------------------------------------------------------------


@dataclass(slots=True)
class _Walk:
    """Result of walking one RESP stream: ``ok_up_to`` is outside any MULTI (src/valkey-check-aof.c
    keeps ``pos`` only while not inside MULTI)."""

    ok_up_to: int
    lines: int
    commands: int
    problem: tuple[ProblemKind, int, str] | None = None  # kind, offset of the bad item, message
    marks: list[tuple[int, int]] = field(default_factory=list)  # (#TS offset, seconds)
    end: int = 0


def _spellings(word: bytes) -> set[bytes]:
    out = {b""}
    for c in word:
        ch = bytes([c])
        out = {p + ch.lower() for p in out} | {p + ch.upper() for p in out}
    return out


_SPECIAL = frozenset(_spellings(b"MULTI") | _spellings(b"EXEC"))


def _walk_resp(
    f: BinaryIO,
    name: str,
    start: int,
    *,
    lines: int = 1,
    want_marks: bool = False,
    gap_reader: Callable[[int, int], bytes] | None = None,
    progress: Progress | None = None,
    progress_base: int = 0,
) -> _Walk:
    f.seek(start)
    scanner = RespScanner(f, file=name, base_offset=start)
    scanner.special = special = _SPECIAL
    w = _Walk(start, lines, 0)
    multi_at = -1
    prev_end = start
    ts: int | None = None
    shown = start  # progress is reported every 64 KB
    try:
        for run in scanner.runs():
            if want_marks and gap_reader is not None and run.timestamp != ts:
                w.marks.extend(_marks_in(gap_reader(prev_end, run.offset), prev_end))
                ts = run.timestamp
            argvs = run.argvs
            prev_end = run.offset + run.size
            w.commands += len(argvs)
            w.lines += len(argvs) + 2 * sum(map(len, argvs))
            head = argvs[-1][0]
            if head in special:
                at = prev_end - canonical_size(argvs[-1])  # offset of the special command
                if head.upper() == b"MULTI":
                    if multi_at >= 0:
                        w.problem = ("format", at, f"Unexpected MULTI in AOF {name}")
                        return w
                    multi_at = w.ok_up_to = at
                    continue
                if multi_at < 0:
                    w.ok_up_to = at
                    w.problem = ("format", at, f"Unexpected EXEC in AOF {name}")
                    return w
                multi_at = -1
            if multi_at < 0:
                w.ok_up_to = prev_end
            if progress is not None and prev_end - shown >= 1 << 16:
                shown = prev_end
                progress(progress_base + prev_end)
    except TornError as e:
        w.problem = ("multi" if multi_at >= 0 else "truncated", _ok(w, multi_at), e.message)
        return w
    except FormatError as e:
        w.problem = ("format", e.offset if e.offset is not None else w.ok_up_to, e.message)
        if multi_at >= 0:
            w.ok_up_to = multi_at
        return w
    w.end = scanner.base + len(scanner.buf)
    if want_marks and gap_reader is not None and prev_end < w.end:
        w.marks.extend(_marks_in(gap_reader(prev_end, w.end), prev_end))
    if multi_at >= 0:
        w.ok_up_to = multi_at
        w.problem = ("multi", multi_at, EOF_IN_MULTI)
    return w


def _ok(w: _Walk, multi_at: int) -> int:
    if multi_at >= 0:
        w.ok_up_to = multi_at
    return w.ok_up_to


def _marks_in(gap: bytes, at: int) -> Iterator[tuple[int, int]]:
    pos = 0
    for line in gap.splitlines(keepends=True):
        if line.startswith(b"#TS:"):
            body = line[4:].rstrip(b"\r\n")
            if body.isdigit():
                yield at + pos, int(body)
        pos += len(line)


def _partial_lines(data: bytes) -> int:
    """Lines valkey-check-aof counts inside an item it fails on (src/valkey-check-aof.c readLong,
    readString: +1 per header line, +1 per complete bulk)."""
    if not data.startswith(b"*"):
        return 0
    n = 0
    pos = 0
    nl = data.find(b"\n", 0, 128)
    if nl < 1 or data[nl - 1] != 13:
        return 0
    try:
        argc = int(data[1 : nl - 1])
    except ValueError:
        return 0
    n += 1
    pos = nl + 1
    for _ in range(argc):
        nl = data.find(b"\n", pos, pos + 128)
        if nl < 0 or data[pos] != 36 or data[nl - 1] != 13:
            return n
        try:
            ln = int(data[pos + 1 : nl - 1])
        except ValueError:
            return n
        n += 1
        pos = nl + 1 + ln + 2
        if pos > len(data) or data[pos - 2 : pos] != b"\r\n":
            return n
        n += 1
    return n


# ---- excerpts ------------------------------------------------------------------------------


def excerpt(path: Path, offset: int, n: int = EXCERPT) -> tuple[list[str], str]:
    """A hex dump (16 bytes a line) and an escaped text view of ``n`` bytes at ``offset``."""
    with open_input(path) as f:
        f.seek(offset)
        data = f.read(n)
    rows = []
    for i in range(0, len(data), 16):
        chunk = data[i : i + 16]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        rows.append(f"{offset + i:08x}  {hexpart:<47}  |{text}|")
    return rows, data.decode("latin-1").encode("unicode_escape").decode("ascii")


# ---- check ---------------------------------------------------------------------------------


def check(
    path: str | os.PathLike[str],
    *,
    verify_checksum: bool = True,
    is_command: IsCommand = default_is_command,
    progress: Progress | None = None,
    want_marks: bool = False,
) -> tuple[CheckReport, list[tuple[str, int, int]]]:
    """Check ``path``; returns the report and, with ``want_marks``, the ``#TS`` marks seen as
    (file, offset, seconds). Never raises for damaged input: the problem is in the report."""
    p = Path(path)
    report = CheckReport(str(p), "aof")
    marks: list[tuple[str, int, int]] = []
    try:
        sources, _ = _sources(p, report)
    except PersistenceError as e:
        kind: ProblemKind = "missing" if "no AOF manifest" in e.message else "manifest"
        report.problem = Problem(e.file or str(p), e.file or str(p), e.offset, kind, e.message)
        return report, marks
    for src in sources:
        if not src.path.is_file():
            report.files.append(FileCheck(src.name, str(src.path), src.kind, "empty", 0, "missing"))
            # src/aof.c: a file listed in the manifest but missing on disk is fatal
            msg = f"The append log file {src.name} doesn't exist"
            report.problem = Problem(src.name, str(src.path), None, "missing", msg)
            return report, marks
    lines = 1
    done = 0
    for i, src in enumerate(sources):
        last = i == len(sources) - 1
        fc = FileCheck(src.name, str(src.path), src.kind, "resp", os.path.getsize(src.path))
        report.files.append(fc)
        problem, lines = _check_one(
            src, fc, last, lines, verify_checksum, is_command, progress, done, want_marks, marks
        )
        done += fc.size
        if problem is not None:
            fc.status = "damaged"
            report.problem = problem
            for rest in sources[i + 1 :]:
                size = os.path.getsize(rest.path)
                report.files.append(FileCheck(rest.name, str(rest.path), rest.kind, "?", size))
            break
    return report, marks


def _check_one(
    src: _Src,
    fc: FileCheck,
    last: bool,
    lines: int,
    verify_checksum: bool,
    is_command: IsCommand,
    progress: Progress | None,
    done: int,
    want_marks: bool,
    marks: list[tuple[str, int, int]],
) -> tuple[Problem | None, int]:
    if fc.size == 0:
        fc.format = fc.status = "empty"
        return None, lines
    head = _head(src.path)
    start = 0
    if _is_rdb_head(head):
        from persistence.rdb.reader import RdbFilter, RdbReader  # lazy: only for RDB parts

        fc.format = "rdb"
        try:
            with open_input(src.path) as f:
                reader = RdbReader(
                    f, file=src.name, verify_checksum=verify_checksum, filter=RdbFilter(dbs=set())
                )
                fc.rdb_version = reader.header.version
                for _ in reader:
                    pass
                start = reader.end_offset
        except PersistenceError as e:
            kind: ProblemKind = (
                "checksum"
                if isinstance(e, ChecksumError)
                else "truncated"
                if isinstance(e, TruncatedError)
                else "format"
            )
            return _problem(src, kind, e.offset, e.message, lines, last, tail=False), lines
        fc.ok_up_to = start
        if src.kind == "rdb" or start >= fc.size:
            fc.status = "ok"
            if progress is not None:
                progress(done + fc.size)
            return None, lines
        fc.format = "preamble"
    with open_input(src.path) as f:
        g = open_input(src.path)
        try:

            def gap(a: int, b: int) -> bytes:
                g.seek(a)
                return g.read(b - a)

            w = _walk_resp(
                f, src.name, start, lines=lines, want_marks=want_marks, gap_reader=gap,
                progress=progress, progress_base=done,
            )  # fmt: skip
        finally:
            g.close()
    marks.extend((src.name, off, ts) for off, ts in w.marks)
    fc.commands = w.commands
    fc.timestamps = len(w.marks)
    fc.ok_up_to = w.ok_up_to
    fc.ok_up_to_line = w.lines
    fc.diff = fc.size - w.ok_up_to
    if w.problem is None:
        fc.status = "ok"
        return None, w.lines
    kind, at, msg = w.problem
    with open_input(src.path) as f:
        f.seek(at)
        extra = _partial_lines(f.read(1 << 16)) if kind != "multi" else 0
    fc.ok_up_to_line = w.lines + extra
    tail = kind in ("truncated", "multi") or (
        kind == "format" and find_next_command(src.path, at + 1, is_command) is None
    )
    if kind in ("truncated", "multi") and not last:
        msg = f"Fatal error: the truncated file is not the last file ({msg})"  # src/aof.c
        kind = "not_last"
    return _problem(src, kind, at, msg, fc.ok_up_to_line, last, tail), w.lines


def _problem(
    src: _Src, kind: ProblemKind, offset: int | None, msg: str, line: int, last: bool, tail: bool
) -> Problem:
    pr = Problem(src.name, str(src.path), offset, kind, msg, line, tail, last)
    if offset is not None:
        pr.excerpt_hex, pr.excerpt_text = excerpt(src.path, offset)
    return pr


# ---- resync --------------------------------------------------------------------------------


def parse_command_at(buf: bytes, i: int) -> tuple[list[bytes], int] | Literal[False] | None:
    """A strict parse of one canonical command at ``buf[i]``: (argv, size), None when it is not
    one, False when ``buf`` ends before it does."""
    nl = buf.find(b"\r\n", i, i + 24)
    if nl < 0:
        return False if len(buf) - i < 24 else None
    digits = buf[i + 1 : nl]
    if not digits.isdigit():
        return None
    argc = int(digits)
    if not 0 < argc <= RESYNC_MAX_ARGC:
        return None
    pos = nl + 2
    argv: list[bytes] = []
    for _ in range(argc):
        if pos >= len(buf):
            return False
        if buf[pos] != 36:  # '$'
            return None
        nl = buf.find(b"\r\n", pos, pos + 24)
        if nl < 0:
            return False if len(buf) - pos < 24 else None
        digits = buf[pos + 1 : nl]
        if not digits.isdigit() or int(digits) > RESYNC_MAX_BULK:
            return None
        n = int(digits)
        end = nl + 2 + n
        if end + 2 > len(buf):
            return False
        if buf[end : end + 2] != b"\r\n":
            return None
        argv.append(buf[nl + 2 : end])
        pos = end + 2
    return argv, pos - i


def find_next_command(
    path: Path, start: int, is_command: IsCommand = default_is_command
) -> int | None:
    """Offset of the first valid command (or ``#TS:`` line) at or after ``start``, else None."""
    with open_input(path) as f:
        f.seek(start)
        buf = f.read(1 << 20)
        base = start
        i = 0
        eof = False
        while True:
            star = buf.find(b"*", i)
            hashm = buf.find(b"#TS:", i)
            cands = [c for c in (star, hashm) if c >= 0]
            if not cands:
                if eof:
                    return None
                more = f.read(1 << 20)
                eof = not more
                base += len(buf) - 16
                buf = buf[-16:] + more
                i = 0
                continue
            c = min(cands)
            if c == hashm:
                nl = buf.find(b"\r\n", c, c + 40)
                if nl > 0 and buf[c + 4 : nl].isdigit():
                    return base + c
                if nl < 0 and not eof and len(buf) - c < 40:
                    res: object = False
                else:
                    i = c + 1
                    continue
            else:
                res = parse_command_at(buf, c)
                if res is not None and res is not False and is_command(res[0]):
                    return base + c
            if res is False and not eof:
                more = f.read(max(1 << 20, len(buf)))
                eof = not more
                buf = buf[c:] + more
                base += c
                i = 0
                continue
            i = c + 1


# ---- fix -----------------------------------------------------------------------------------


def fix(problem: Problem) -> int:
    """Cut the damaged tail of the last file at ``problem.offset``; returns the bytes removed."""
    if not problem.fixable or problem.offset is None:
        raise FormatError(
            "only a damaged tail of the last file can be cut in place (use --salvage)",
            file=problem.file,
            offset=problem.offset,
        )
    size = os.path.getsize(problem.path)
    with open(problem.path, "r+b") as f:
        f.truncate(problem.offset)
        f.flush()
        os.fsync(f.fileno())
    return size - problem.offset


# ---- copies: salvage and point in time -----------------------------------------------------


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
            w = _walk_resp(f, src.name, pos)
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
