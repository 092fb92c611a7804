"""Split a big file into byte ranges, work on the ranges in parallel, and prove they join exactly.

How it works (the API is small and generic: ``valkey-aof check`` uses it, ``inspect`` may too):

1. :func:`split` ``(path, start, end, parts) -> bounds``: ``parts + 1`` increasing offsets, the
   first ``start``, the last ``end``; each inner one is a *candidate* item boundary: the first
   offset at or after an even cut where ``align`` sees a plausible item start (by default
   :func:`resp_align`: a RESP command header ``*<digits>\\r\\n$`` right after a CRLF). Candidates
   are guesses: a value can hold bytes that look like a command.
2. :func:`run_ranges` ``(path, bounds, fn, jobs, pmap=...) -> Joined``: calls
   ``fn(path, bounds[i], bounds[i + 1])`` for every range, through ``pmap(call, items, jobs)``
   in up to ``jobs`` processes (persistence never forks: tools pass ``tools/parallel.py``
   ``fork_map``; without a ``pmap``, or with ``jobs=1``, in this process, in order). ``fn``
   returns ``(end, value)``: ``end`` is the offset where its parse stopped on an item
   boundary, which must equal its limit when the range parsed cleanly up to exactly the limit
   (read it through :func:`open_range`, which ends the file there), or None when it stopped
   anywhere else (damage, or the limit fell inside an item). ``value`` is any small picklable
   summary (workers send it back pickled).
3. The join is verified from the left: range 0 starts at a true boundary (the caller's
   ``start``); range ``i`` starts at a true boundary when range ``i - 1`` did and ended exactly
   at ``bounds[i]``: then the parse of ``[bounds[i-1], bounds[i])`` is the one a single pass over
   the whole file makes (a left-to-right parse that ends on an item boundary decides the same
   items). :attr:`Joined.trusted` counts the leading ranges so proven *and* complete (ended at
   their limit); the caller uses their values and redoes the rest sequentially from
   :attr:`Joined.resume_at` (a proven boundary), so its results never depend on the guesses.

:func:`default_jobs` is the automatic worker count: the CPUs this process may run on
(``os.sched_getaffinity``, which ``taskset`` narrows), at most :data:`MAX_JOBS`.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import BinaryIO, Generic, Protocol, TypeVar

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")

MAX_JOBS = 4
ALIGN_WINDOW = 1 << 16  # bytes read at each cut to find a candidate boundary
# a RESP command header right after a CRLF: '*', 1-9 digits, CRLF, then the first bulk's '$'
_RESP_HEAD = re.compile(rb"\r\n\*[1-9][0-9]{0,8}\r\n\$")

Align = Callable[[bytes, int], int]  # (window, from) -> index of a candidate in window, or -1
RangeFn = Callable[[str, int, int], tuple[int | None, T]]
Job = tuple[RangeFn[T], str, int, int]


class PMap(Protocol):
    """``[fn(x) for x in items]``, computed by up to ``jobs`` processes, in order."""

    def __call__(self, fn: Callable[[A], B], items: Sequence[A], jobs: int) -> list[B]: ...


def resp_align(window: bytes, at: int) -> int:
    """Index of the first plausible RESP command start in ``window[at:]`` (after a CRLF), or -1."""
    m = _RESP_HEAD.search(window, at)
    return -1 if m is None else m.start() + 2


def default_jobs() -> int:
    """Worker processes for ``--jobs auto``: usable CPUs, at most :data:`MAX_JOBS`."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_JOBS))


def split(
    path: str | os.PathLike[str], start: int, end: int, parts: int, *, align: Align = resp_align
) -> list[int]:
    """``parts + 1`` increasing offsets from ``start`` to ``end`` (see the module doc). A cut
    with no candidate in its window is dropped, so fewer ranges may come back."""
    bounds = [start]
    if parts > 1 and end > start:
        step = (end - start) // parts
        with open(path, "rb") as f:
            for i in range(1, parts):
                cut = start + i * step
                if cut <= bounds[-1]:
                    continue
                # read from 2 bytes before the cut: the CRLF before a '*' at the cut itself
                f.seek(cut - 2)
                window = f.read(min(ALIGN_WINDOW, end - cut + 2))
                j = align(window, 0)
                if j >= 0 and cut - 2 + j < end:
                    bounds.append(cut - 2 + j)
    bounds.append(end)
    return bounds


class _LimitedFile(io.FileIO):
    """A file read as if it ended at ``limit`` (under a BufferedReader: the scanner's refill,
    which seeks back over its unconsumed tail, works as on any plain file)."""

    def __init__(self, path: str | os.PathLike[str], limit: int) -> None:
        super().__init__(path, "rb")
        self.limit = limit

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        left = self.limit - self.tell()
        if left <= 0:
            return 0
        with memoryview(b) as view:
            return super().readinto(view[:left] if view.nbytes > left else view)

    def readall(self) -> bytes:
        return self.read(max(0, self.limit - self.tell()))

    def read(self, size: int | None = -1) -> bytes:
        left = max(0, self.limit - self.tell())
        return super().read(left if size is None or size < 0 or size > left else size)


def open_range(path: str | os.PathLike[str], start: int, limit: int) -> BinaryIO:
    """``path`` opened at ``start``, reading as if the file ended at ``limit``."""
    f = io.BufferedReader(_LimitedFile(path, limit))
    f.seek(start)
    return f


@dataclass(slots=True)
class RangeResult(Generic[T]):
    start: int
    limit: int
    end: int | None  # where the parse stopped on an item boundary (None: anywhere else)
    value: T


@dataclass(slots=True)
class Joined(Generic[T]):
    """The ranges in file order; the first ``trusted`` are proven and complete (module doc, 3)."""

    results: list[RangeResult[T]]
    trusted: int

    @property
    def resume_at(self) -> int | None:
        """Offset from which the caller must go on sequentially, None when all joined."""
        if self.trusted == len(self.results):
            return None
        return self.results[self.trusted].start


def _call(job: Job[T]) -> RangeResult[T]:
    fn, path, start, limit = job
    end, value = fn(path, start, limit)
    return RangeResult(start, limit, end, value)


def run_ranges(
    path: str | os.PathLike[str],
    bounds: Sequence[int],
    fn: RangeFn[T],
    jobs: int,
    *,
    pmap: PMap | None = None,
) -> Joined[T]:
    """``fn`` over each range ``[bounds[i], bounds[i+1])`` through ``pmap`` in up to ``jobs``
    processes; results in file order with the join verified (module doc, 2 and 3)."""
    p = os.fspath(path)
    work: list[Job[T]] = [(fn, p, a, b) for a, b in pairwise(bounds)]
    if jobs <= 1 or len(work) <= 1 or pmap is None:
        results = [_call(w) for w in work]
    else:
        results = pmap(_call, work, jobs)
    trusted = 0
    for r in results:
        if r.end != r.limit:
            break  # its start is proven, its result is not complete: the caller redoes it
        trusted += 1
    return Joined(results, trusted)
