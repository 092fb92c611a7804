"""The RESP walk of ``valkey-aof check`` over byte ranges in parallel, with the one-pass result.

How it works: :func:`walk_parallel` splits the RESP part ``[start, size)`` at candidate command
boundaries and walks each range in a worker process (:mod:`persistence.aof.ranges`). A worker
reads its range through :func:`~persistence.aof.ranges.open_range` (EOF at the range's end) and
sums it up in a :class:`RangeSummary`: commands, lines, the end of its last command, and its
MULTI/EXEC commands as a function of the state it is entered in, which it cannot know: valid
from outside a transaction (the first is MULTI, then they alternate), valid from inside (the
first is EXEC, then they alternate), and the state after them. Any problem in a range (a format
error, EOF at the range's end inside an item because the candidate was no boundary) makes it
end elsewhere than at its limit.

The parent adds the summaries up from the left for as long as the join is proven and the
MULTI/EXEC sequence stays valid from the state reached; from the first range where either
fails it resumes :func:`~persistence.aof.check_walk.walk_resp` sequentially at that range's
start (a proven boundary) with the state reached there. So the problem, its offset, message
and line, ``ok_up_to`` and every count are the one-pass walk's, whatever the candidates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from persistence.aof.check_walk import (
    EOF_IN_MULTI,
    SPECIAL,
    Progress,
    Walk,
    walk_resp,
)
from persistence.aof.ranges import PMap, open_range, run_ranges, split
from persistence.aof.resp_scan import RespScanner, canonical_size
from persistence.fileio import is_lz4, open_input

# (persistence/aof/check.py PARALLEL_MIN decides which RESP parts come here)
RANGE_MIN = 2 << 20  # no range smaller than this (bytes)
RANGES_PER_JOB = 1  # ranges per process (each process takes a contiguous block of ranges)


@dataclass(slots=True)
class RangeSummary:
    """What one range adds to the walk (module doc)."""

    commands: int = 0
    lines: int = 0
    last_end: int = -1  # end of the last command, -1: no command
    first_special: bytes = b""  # b"MULTI" / b"EXEC" of the first such command, b"" if none
    alternating: bool = True  # MULTI and EXEC alternate within the range
    last_special: bytes = b""
    last_multi_at: int = -1  # offset of the last MULTI


def walk_range(path: str, start: int, limit: int) -> tuple[int | None, RangeSummary]:
    """Worker: walk ``[start, limit)`` of ``path`` (a :data:`~persistence.aof.ranges.RangeFn`)."""
    s = RangeSummary()
    with open_range(path, start, limit) as f:
        scanner = RespScanner(f, file=os.path.basename(path), base_offset=start)
        scanner.special = special = SPECIAL
        try:
            for run in scanner.runs():
                argvs = run.argvs
                s.commands += len(argvs)
                nargs = run.nargs if run.nargs >= 0 else sum(map(len, argvs))
                s.lines += len(argvs) + 2 * nargs
                s.last_end = run.offset + run.size
                head = argvs[-1][0]
                if head in special:
                    kind = head.upper()
                    if kind == s.last_special:
                        s.alternating = False
                    if not s.first_special:
                        s.first_special = kind
                    s.last_special = kind
                    if kind == b"MULTI":
                        s.last_multi_at = s.last_end - canonical_size(argvs[-1])
        except Exception:  # whatever it is, the sequential walk redoes the range
            return None, s
        return scanner.base + len(scanner.buf), s


@dataclass(slots=True)
class _State:
    lines: int
    commands: int
    ok_up_to: int
    multi_at: int = -1

    def add(self, r: RangeSummary) -> bool:
        """Add range ``r`` walked from this state; False if its MULTI/EXEC are not valid here."""
        if r.first_special:
            expect = b"EXEC" if self.multi_at >= 0 else b"MULTI"
            if not r.alternating or r.first_special != expect:
                return False
            self.multi_at = r.last_multi_at if r.last_special == b"MULTI" else -1
        self.lines += r.lines
        self.commands += r.commands
        if self.multi_at >= 0:
            self.ok_up_to = self.multi_at
        elif r.last_end >= 0:
            self.ok_up_to = r.last_end
        return True


def walk_parallel(
    path: Path,
    name: str,
    start: int,
    size: int,
    *,
    lines: int,
    jobs: int,
    pmap: PMap | None = None,
    progress: Progress | None = None,
    progress_base: int = 0,
) -> Walk:
    """The :func:`~persistence.aof.check_walk.walk_resp` result for ``path`` from ``start``
    (``size`` bytes long), walked by up to ``jobs`` processes through ``pmap`` (module doc)."""
    parts = min(jobs * RANGES_PER_JOB, max(1, (size - start) // RANGE_MIN))
    bounds = split(path, start, size, parts) if jobs > 1 and not is_lz4(path) else [start]
    state = _State(lines, 0, start)
    resume = start
    if len(bounds) > 2:
        joined = run_ranges(path, bounds, walk_range, jobs, pmap=pmap)
        for r in joined.results[: joined.trusted]:
            if not state.add(r.value):
                break
            resume = r.limit
            if progress is not None:
                progress(progress_base + resume)
    if resume >= size and len(bounds) > 2:  # every range joined: the end of the file
        w = Walk(state.ok_up_to, state.lines, state.commands, end=size)
        if state.multi_at >= 0:
            w.problem = ("multi", state.multi_at, EOF_IN_MULTI)
        return w
    with open_input(path) as f:
        return walk_resp(
            f, name, resume, lines=state.lines, commands=state.commands,
            multi_at=state.multi_at, ok_up_to=state.ok_up_to, progress=progress,
            progress_base=progress_base,
        )  # fmt: skip
