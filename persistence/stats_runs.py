"""What the raw RESP of a :class:`~persistence.aof.resp_scan.CommandRun` tells at once, for
persistence/stats.py's fast paths: whether its commands all have one size and one head (name
and argc), and the keys per slot from counts by CRC16."""

from __future__ import annotations

from collections import Counter
from itertools import repeat
from operator import add, and_

from persistence.aof.resp_scan import CommandRun


def same_head(run: CommandRun, size: int = 0) -> bool:
    """True when every command of ``run`` has the first one's argc and argv[0], seen in the raw
    RESP: each ``*`` of ``run.raw`` starts a command (so each match of
    ``*<argc>\\r\\n$<len>\\r\\n<name>`` is one such command, the name's bytes ending where its
    length says). With ``size`` (every command has that size, :func:`one_size`) the commands
    start every ``size`` bytes, and each byte of that head is compared at once in all of them
    (one strided slice per byte, ~1/50 of the bytes); else one C count over the run (the
    needle ends with the name, not CRLF, for long skips in the search)."""
    raw = run.raw
    if raw is None:
        return False
    first = run.argvs[0]
    head = b"*%d\r\n$%d\r\n%s" % (len(first), len(first[0]), first[0])
    at, end, n = run.raw_at, run.raw_at + run.size, len(run.argvs)
    if size <= 0:
        return raw.count(head, at, end) == n
    # the first command is ``size`` bytes and starts with head, so len(head) <= size
    return all(raw[at + i : end : size] == head[i : i + 1] * n for i in range(len(head)))


def one_size(run: CommandRun) -> int:
    """The size of every command of ``run`` when all have one size, else 0: the run's raw RESP
    has a ``*`` every size bytes (each ``*`` starts a command, and there are n); or the
    reader's ``step``, when it knows."""
    if run.step > 0:
        return run.step
    raw = run.raw
    n = len(run.argvs)
    size, rest = divmod(run.size, n)
    if raw is not None and not rest and raw[run.raw_at : run.raw_at + run.size : size] == b"*" * n:
        return size
    return 0


def slot_counts(crcs: Counter[int]) -> dict[str, int]:
    """Keys per slot, by slot, from counts by CRC16 of the key (or by slot already).

    One C pass over the up to 65,536 counts, in their order (a loop, or a lookup per CRC,
    costs ~25 ms: the CRC objects lie all over the heap): dict.update stores each (slot,
    get(slot) + count) pair before the next pair's get runs (every iterator here is lazy), so
    the counts of a slot's four CRCs add up."""
    slots: dict[int, int] = {}
    folded = list(map(and_, crcs, repeat(0x3FFF)))
    dict.update(slots, zip(folded, map(add, map(slots.get, folded, repeat(0)), crcs.values())))
    used = sorted(slots)
    return dict(zip(map(str, used), map(slots.__getitem__, used)))
