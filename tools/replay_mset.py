"""Runs of plain ``SET key value`` as ``MSET`` for ``valkey-aof replay`` (standalone targets).

Why: a replay into one server is bound by the server's CPU, and valkey-server executes one
``MSET`` of 16 pairs in far less time than 16 ``SET`` commands (one dispatch, one reply). The
end state is the same: MSET overwrites a key of any type and clears its TTL as SET does, fires
one ``set`` keyspace event per key, and a key given twice keeps its last value
(src/t_string.c msetGenericCommand). Only plain SETs (exactly three arguments, the name in any
case) are batched, each run of them outside MULTI/EXEC in one db (a segment) into MSETs of at
most ``pairs`` pairs; a run of one stays a SET, everything else keeps the file's bytes.

How this works: :func:`batch` returns the bytes to send and, for each reply, the position of
the first command it answers (``Piece.groups``). A uniform run of the fast scanner (fixed-size
commands, tools/replay_fastscan.py) is rewritten without parsing: every command is the 13-byte
header ``*3\\r\\n$3\\r\\nSET\\r\\n`` and then its key/value part, so removing the headers (one
``bytes.replace``, exact when nothing but the n headers was removed) leaves the parts at a
fixed stride, sliced ``pairs`` at a time behind an MSET header. A run of SETs of varied sizes
is split at the header the same way; a mixed run walks its commands (the general path).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate, chain, product
from operator import itemgetter

from persistence.aof.encoder import encode_command
from tools.replay_conn import Cmd
from tools.replay_fastscan import ARG_SIZE, ARGC_SIZE, RawCmds

MSET_PAIRS = 16  # measured: benchmarks/replay.py (16-64 alike, 256 slower)
MAX_PAIRS = 1024
SET_NAMES = frozenset(bytes(p) for p in product(*((c, c | 0x20) for c in b"SET")))
HEADER = 13  # len(b"*3\r\n$3\r\nSET\r\n")
_MSET = [b"*%d\r\n$4\r\nMSET\r\n" % (1 + 2 * m) for m in range(MAX_PAIRS + 1)]

_FIRST = itemgetter(0)
Batched = tuple[bytes, Sequence[int]]  # the bytes to send, the first command of each reply


def mset_header(pairs: int) -> bytes:
    return _MSET[pairs] if pairs <= MAX_PAIRS else b"*%d\r\n$4\r\nMSET\r\n" % (1 + 2 * pairs)


def _set_header(data: bytes) -> bool:
    """``data`` starts with a canonical ``SET`` header (the name in any case)."""
    return data[:8] == b"*3\r\n$3\r\n" and data[8:11] in SET_NAMES and data[11:13] == b"\r\n"


def batch(cmds: Sequence[Cmd], data: bytes, pairs: int) -> Batched | None:
    """``data`` (the bytes of ``cmds``) with runs of plain SETs as MSETs of at most ``pairs``
    pairs; None when nothing is batched."""
    if pairs < 2 or len(cmds) < 2:
        return None
    if type(cmds) is RawCmds:
        if cmds.unparsed:
            return _uniform(data, cmds.n, cmds.step, pairs)
        argvs = cmds.argvs
        names = set(map(_FIRST, argvs))
        if names.isdisjoint(SET_NAMES):
            return None
        if len(names) == 1 and set(map(len, argvs)) == {3}:
            done = _all_sets(data, len(argvs), pairs)
            if done is not None:
                return done
        sizes = [ARGC_SIZE[len(a)] + sum(map(ARG_SIZE.__getitem__, map(len, a))) for a in argvs]
        return _general(argvs, [0, *accumulate(sizes)], data, pairs, canonical=True)
    argvs = [c.argv for c in cmds]
    if not any(a[0] in SET_NAMES for a in argvs):
        return None
    offsets = [0, *accumulate(c.size for c in cmds)]
    if offsets[-1] != len(data):  # sizes that do not add up: leave the segment alone
        return None
    return _general(argvs, offsets, data, pairs, canonical=False)


def _uniform(data: bytes, n: int, step: int, pairs: int) -> Batched | None:
    """``n`` commands of ``step`` bytes each, all of the first one's shape and name."""
    if step <= HEADER or not _set_header(data):
        return None
    head = data[:HEADER]
    body = step - HEADER
    # the n real headers are there; the header has no border (its one '*' opens it), so no
    # other hit overlaps them: the result is n bodies exactly when nothing else was removed
    bodies = data.replace(head, b"")
    if len(bodies) != n * body:  # a value holds the header's bytes: cut at the stride
        bodies = b"".join([data[i : i + body] for i in range(HEADER, n * step, step)])
    return _chunks(bodies, body, data, n, step, pairs)


def _all_sets(data: bytes, n: int, pairs: int) -> Batched | None:
    """``n`` SETs of varied sizes, one name spelling, canonical bytes."""
    if not _set_header(data):
        return None
    head = data[:HEADER]
    parts = data.split(head)
    if len(parts) != n + 1:  # a value holds the header's bytes: the general path
        return None
    full = n - n % pairs
    mset = mset_header(pairs)
    # `pairs` parts at a time (zip over one iterator) joined at C speed, no loop per MSET
    groups = zip(*[iter(parts[1 : full + 1])] * pairs, strict=False)
    out = [mset, mset.join(map(b"".join, groups))] if full else []
    rest = n - full
    if rest == 1:
        out.append(head + parts[-1])
    elif rest:
        out.append(mset_header(rest))
        out.append(b"".join(parts[full + 1 :]))
    return b"".join(out), range(0, n, pairs)


def _chunks(bodies: bytes, size: int, data: bytes, n: int, step: int, pairs: int) -> Batched:
    """Key/value parts of ``size`` bytes each: ``pairs`` at a time behind an MSET header."""
    chunk = pairs * size
    full = n - n % pairs
    mset = mset_header(pairs)
    cuts = map(slice, range(0, full * size, chunk), range(chunk, full * size + 1, chunk))
    out = [mset, mset.join(map(bodies.__getitem__, cuts))] if full else []
    rest = n - full
    if rest == 1:
        out.append(data[full * step :])
    elif rest:
        out.append(mset_header(rest))
        out.append(bodies[full * size :])
    return b"".join(out), range(0, n, pairs)


def _general(
    argvs: Sequence[list[bytes]], offsets: list[int], data: bytes, pairs: int, *, canonical: bool
) -> Batched | None:
    """Command by command: runs of plain SETs batched, everything else as ``data`` has it.
    ``canonical``: each SET's key/value part is its bytes after the 13-byte header; else it is
    encoded again from its argv (the reader may have read a non-canonical file)."""
    n = len(argvs)
    flags = [len(a) == 3 and a[0] in SET_NAMES for a in argvs]
    out: list[bytes] = []
    groups: list[int] = []
    batched = False
    i = 0
    while i < n:
        j = i
        if not flags[i]:
            while j < n and not flags[j]:
                j += 1
            groups.extend(range(i, j))
            out.append(data[offsets[i] : offsets[j]])
            i = j
            continue
        while j < n and flags[j]:
            j += 1
        for a in range(i, j, pairs):
            b = min(a + pairs, j)
            groups.append(a)
            if b - a == 1:
                out.append(data[offsets[a] : offsets[b]])
                continue
            batched = True
            if canonical:  # the header, then the SETs' own key/value bytes
                out.append(mset_header(b - a))
                out.extend(data[offsets[k] + HEADER : offsets[k + 1]] for k in range(a, b))
            else:
                out.append(
                    encode_command(
                        [b"MSET", *chain.from_iterable(argvs[k][1:] for k in range(a, b))]
                    )
                )
        i = j
    if not batched:
        return None
    return b"".join(out), groups


def batched_commands(groups: Sequence[int], n: int) -> tuple[int, int]:
    """(commands carried by MSETs, MSETs) among ``n`` commands answered by replies ``groups``."""
    if type(groups) is range:
        rest = n % groups.step
        msets = n // groups.step + (1 if rest > 1 else 0)
        return n - (1 if rest == 1 else 0), msets
    ends = [*groups[1:], n]
    spans = [e - a for a, e in zip(groups, ends) if e - a > 1]
    return sum(spans), len(spans)
