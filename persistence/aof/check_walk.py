"""The RESP walk of ``valkey-aof check``: one pass over the commands of an AOF's RESP part,
keeping valkey-check-aof's state (src/valkey-check-aof.c): the command and line counts, the
MULTI/EXEC state and ``ok_up_to`` (advanced only outside a transaction), and the first problem.
The walk is exact; :mod:`persistence.aof.check_ranges` runs it over byte ranges in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from persistence.aof.resp_scan import RespScanner, TornError, canonical_size
from persistence.errors import FormatError

Progress = Callable[[int], None]  # called with bytes done so far (over all files)
ProblemKind = Literal["truncated", "multi", "format", "checksum", "missing", "manifest", "not_last"]

IsCommand = Callable[[list[bytes]], bool]

EOF_IN_MULTI = "Reached EOF before reading EXEC for MULTI"  # src/valkey-check-aof.c


def default_is_command(argv: list[bytes]) -> bool:
    """Without a command table: a name of letters (tools pass the engine's table)."""
    return 0 < len(argv[0]) <= 64 and argv[0].replace(b"|", b"").isalpha()


@dataclass(slots=True)
class Walk:
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


SPECIAL = frozenset(_spellings(b"MULTI") | _spellings(b"EXEC"))


def walk_resp(
    f: BinaryIO,
    name: str,
    start: int,
    *,
    lines: int = 1,
    want_marks: bool = False,
    gap_reader: Callable[[int, int], bytes] | None = None,
    progress: Progress | None = None,
    progress_base: int = 0,
    commands: int = 0,
    multi_at: int = -1,
    ok_up_to: int | None = None,
) -> Walk:
    """Walk the RESP stream of ``f`` from offset ``start`` to its end or first problem. The
    state at ``start`` is ``lines``, ``commands``, ``multi_at`` (offset of an open MULTI, -1)
    and ``ok_up_to`` (default ``start``): a walk resumed with the state a walk up to ``start``
    had is that walk (persistence/aof/check_ranges.py relies on it)."""
    f.seek(start)
    scanner = RespScanner(f, file=name, base_offset=start)
    scanner.special = special = SPECIAL
    w = Walk(start if ok_up_to is None else ok_up_to, lines, commands)
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
            nargs = run.nargs if run.nargs >= 0 else sum(map(len, argvs))
            w.lines += len(argvs) + 2 * nargs
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


def _ok(w: Walk, multi_at: int) -> int:
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


def partial_lines(data: bytes) -> int:
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
