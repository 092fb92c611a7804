"""Validate and fix AOFs: the library behind ``valkey-aof check``.

How it works: :func:`check` walks the files the way src/valkey-check-aof.c does (manifest, base,
incr files in order; an RDB part through the RDB reader with its CRC64, then RESP through the one
scanner, :class:`~persistence.aof.resp_scan.RespScanner`, in :mod:`~persistence.aof.check_walk`),
but it recognises ``VALKEY080`` bases (9.0/9.1's checker only tests for ``REDIS``, spec 4.8) and
stops at the first problem with its file, offset, valkey-check-aof's line number and an excerpt.
It never writes. A big RESP part is walked in byte ranges by several processes
(:mod:`~persistence.aof.check_ranges`) with the same result.

- :func:`fix` cuts a damaged *tail* of the last file in place (a torn command, an open MULTI, zero
  padding: nothing valid follows), never damage with valid commands after it.
- Copies (``--salvage``, ``--truncate-to-timestamp``) are in :mod:`persistence.aof.copies`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from persistence.aof.check_walk import (
    IsCommand,
    ProblemKind,
    Progress,
    Walk,
    default_is_command,
    partial_lines,
    walk_resp,
)
from persistence.aof.manifest import Manifest, find_manifest, read_manifest
from persistence.errors import ChecksumError, FormatError, PersistenceError, TruncatedError
from persistence.fileio import open_input

if TYPE_CHECKING:
    from persistence.aof.ranges import PMap

EXCERPT = 48  # bytes shown from the problem offset
# a RESP part at least this big is walked in ranges by several processes (check_ranges.py)
PARALLEL_MIN = 8 << 20

__all__ = ["CheckReport", "FileCheck", "IsCommand", "Problem", "ProblemKind", "Progress",
           "check", "default_is_command", "excerpt", "find_next_command", "fix"]  # fmt: skip


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
    jobs: int | None = None,
    pmap: PMap | None = None,
) -> tuple[CheckReport, list[tuple[str, int, int]]]:
    """Check ``path``; returns the report and, with ``want_marks``, the ``#TS`` marks seen as
    (file, offset, seconds). Never raises for damaged input: the problem is in the report.
    ``jobs``: processes for a big RESP part (None: :func:`~persistence.aof.ranges.default_jobs`;
    1: this process only), started by ``pmap`` (tools/parallel.py ``fork_map``; None: this
    process only). The report is the same whatever ``jobs`` and ``pmap``."""
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
            src, fc, last, lines, verify_checksum, is_command, progress, done, want_marks, marks,
            jobs, pmap,
        )  # fmt: skip
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
    jobs: int | None,
    pmap: PMap | None,
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
    if pmap is not None and not want_marks and jobs != 1 and fc.size - start >= PARALLEL_MIN:
        w = _walk_big(src, fc.size, start, lines, progress, done, jobs, pmap)
    else:
        w = _walk_one(src, start, lines, want_marks, progress, done)
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
        extra = partial_lines(f.read(1 << 16)) if kind != "multi" else 0
    fc.ok_up_to_line = w.lines + extra
    tail = kind in ("truncated", "multi") or (
        kind == "format" and find_next_command(src.path, at + 1, is_command) is None
    )
    if kind in ("truncated", "multi") and not last:
        msg = f"Fatal error: the truncated file is not the last file ({msg})"  # src/aof.c
        kind = "not_last"
    return _problem(src, kind, at, msg, fc.ok_up_to_line, last, tail), w.lines


def _walk_big(
    src: _Src,
    size: int,
    start: int,
    lines: int,
    progress: Progress | None,
    done: int,
    jobs: int | None,
    pmap: PMap,
) -> Walk:
    """A big RESP part: in ranges by up to ``jobs`` processes (the one-pass result)."""
    if jobs is None and hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < 2:
        jobs = 1  # one usable CPU (taskset): what default_jobs() says, without importing ranges
    if jobs is None:
        from persistence.aof.ranges import default_jobs  # lazy: only big files pay for these

        jobs = default_jobs()
    if jobs <= 1:
        return _walk_one(src, start, lines, False, progress, done)
    from persistence.aof import check_ranges

    return check_ranges.walk_parallel(
        src.path, src.name, start, size, lines=lines, jobs=jobs, pmap=pmap, progress=progress,
        progress_base=done,
    )  # fmt: skip


def _walk_one(
    src: _Src, start: int, lines: int, want_marks: bool, progress: Progress | None, done: int
) -> Walk:
    with open_input(src.path) as f:
        g = open_input(src.path)
        try:

            def gap(a: int, b: int) -> bytes:
                g.seek(a)
                return g.read(b - a)

            return walk_resp(
                f, src.name, start, lines=lines, want_marks=want_marks, gap_reader=gap,
                progress=progress, progress_base=done,
            )  # fmt: skip
        finally:
            g.close()


def _problem(
    src: _Src, kind: ProblemKind, offset: int | None, msg: str, line: int, last: bool, tail: bool
) -> Problem:
    pr = Problem(src.name, str(src.path), offset, kind, msg, line, tail, last)
    if offset is not None:
        pr.excerpt_hex, pr.excerpt_text = excerpt(src.path, offset)
    return pr


# ---- resync --------------------------------------------------------------------------------


def find_next_command(
    path: Path, start: int, is_command: IsCommand = default_is_command
) -> int | None:
    """Offset of the first valid command (or ``#TS:`` line) at or after ``start``, else None
    (:mod:`persistence.aof.resync`, loaded only when a problem is found)."""
    from persistence.aof.resync import find_next_command as find

    return find(path, start, is_command)


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
