"""Shaped segments: runs of commands of one layout, proved canonical without parsing them.

How it works: an AOF of fixed-width keys and values (a bulk load) is made of commands that
differ only in their data bytes. When the RESP scanner (persistence/aof/resp_scan.py) has found
a segment whose ``k`` commands all have one size (``_step``: a ``*`` every ``size`` bytes),
:func:`shape_of` reads the layout of the first command: ``*<argc>\\r\\n`` then, per argument,
``$<len>\\r\\n<len bytes>\\r\\n``, every length written canonically (the bytes Valkey writes).
:meth:`Shape.holds` then compares every byte of that layout that is not an argument's data
(the headers, the CRLFs and the command name) in all ``k`` commands at once, one strided slice
per byte position. When they all match, every command of the segment is the RESP array hiredis
would read there (same headers, so same lengths and same data spans), of one name and argc: the
segment is canonical RESP without hiredis, and a consumer that only needs some arguments (the
keys, for ``valkey-aof inspect``) takes each column with one ``struct`` unpack
(:meth:`Shape.column`), without a list per command. :meth:`Shape.argvs` builds the argument
lists when something asks for them (``CommandRun.argvs``), with the same values hiredis gives.
The scanner's other segment helpers live here too: :func:`step_of` (equal spacing) and
:func:`parse_segment` (a segment in one hiredis call).
"""

from __future__ import annotations

from collections import deque
from struct import Struct

import hiredis

__all__ = ["Shape", "parse_segment", "shape_of", "step_of"]

_CRLF = b"\r\n"
_MAX_CACHED = 8  # struct formats (one per column and command count) kept per shape


def _canonical(digits: bytes) -> int:
    """The number ``digits`` writes canonically (no sign, no leading zero), else -1."""
    if not digits.isdigit() or (digits[:1] == b"0" and len(digits) > 1) or len(digits) > 18:
        return -1
    return int(digits)


def step_of(buf: bytes, pos: int, stop: int, k: int) -> int:
    """The size of every command of buf[pos:stop] when its ``k`` '*' bytes (``k`` >= 1) are
    equally spaced and each is followed by a CR at the same place, within 6 bytes (so none
    starts a big array header), else 0. Two strided slices: the common AOF of fixed-width
    keys and values needs neither the big-header search nor a size per command."""
    step = (stop - pos) // k
    if step * k != stop - pos:
        return 0
    cr = buf.find(b"\r", pos, pos + 7) - pos
    if cr < 2 or buf[pos:stop:step] != b"*" * k or buf[pos + cr : stop : step] != b"\r" * k:
        return 0
    return step


def parse_segment(
    buf: bytes, pos: int, stop: int, k: int
) -> tuple[list[list[bytes]], list[bytes]] | None:
    """(buf[pos:stop] as exactly ``k`` non-empty arrays of bulk strings, all their arguments
    in order), or None."""
    reader = hiredis.Reader()
    reader.feed(b"*%d\r\n" % k)
    reader.feed(buf, pos, stop - pos)
    try:
        cmds = reader.gets()
    except (hiredis.ProtocolError, TypeError):
        return None
    if type(cmds) is not list or reader.has_data() or not all(cmds):
        return None
    # flatten (list.extend per command is cheaper than chain.from_iterable) and type-check:
    # join raises TypeError unless every argument is bytes, extend unless every command is
    # iterable; the count of arguments comes for free
    args: list[bytes] = []
    try:
        deque(map(args.extend, cmds), 0)
        b"".join(args)
    except TypeError:
        return None
    return cmds, args


class Shape:
    """The layout of a canonical RESP command of ``size`` bytes: argument ``j`` is the
    ``lengths[j]`` bytes at ``starts[j]``; every other byte, and the name's, is fixed."""

    __slots__ = ("_checks", "_structs", "argc", "lengths", "name", "size", "starts", "template")

    def __init__(self, template: bytes, starts: tuple[int, ...], lengths: tuple[int, ...]):
        self.template = template  # the first command's bytes
        self.size = len(template)
        self.starts = starts
        self.lengths = lengths
        self.argc = len(starts)
        self.name = template[starts[0] : starts[0] + lengths[0]]
        fixed = set(range(self.size))
        for start, n in zip(starts[1:], lengths[1:]):
            fixed.difference_update(range(start, start + n))
        self._checks: dict[int, list[tuple[int, bytes]]] = {}  # k -> [(position, k bytes)]
        self._structs: dict[tuple[int, int], Struct] = {}
        self._checks[0] = [(i, template[i : i + 1]) for i in sorted(fixed)]

    def holds(self, buf: bytes, pos: int, k: int) -> bool:
        """True when each of the ``k`` commands of ``size`` bytes from ``buf[pos]`` has this
        layout: every fixed byte compared in all of them at once (one strided slice each)."""
        checks = self._checks.get(k)
        if checks is None:
            if len(self._checks) > _MAX_CACHED:
                self._checks = {0: self._checks[0]}
            checks = self._checks[k] = [(i, c * k) for i, c in self._checks[0]]
        size = self.size
        stop = pos + size * k
        return all(buf[pos + i : stop : size] == expected for i, expected in checks)

    def column(self, buf: bytes, pos: int, k: int, j: int) -> list[bytes]:
        """Argument ``j`` of each of the ``k`` commands from ``buf[pos]`` (one C call)."""
        st = self._structs.get((j, k))
        if st is None:
            if len(self._structs) >= _MAX_CACHED:
                self._structs.clear()
            start, n = self.starts[j], self.lengths[j]
            rest = self.size - start - n
            one = (f"{start}x" if start else "") + f"{n}s" + (f"{rest}x" if rest else "")
            st = self._structs[(j, k)] = Struct(one * k)
        return list(st.unpack_from(buf, pos))

    def argvs(self, buf: bytes, pos: int, k: int) -> tuple[list[list[bytes]], list[bytes]]:
        """(each command's argument list, all arguments in order) of the ``k`` commands."""
        parts = []
        at = 0
        for start, n in zip(self.starts, self.lengths):
            parts.append(f"{start - at}x{n}s" if start > at else f"{n}s")
            at = start + n
        one = "".join(parts) + f"{self.size - at}x"  # (the last CRLF: at least 2)
        flat = list(Struct(one * k).unpack_from(buf, pos))
        return list(map(list, zip(*[iter(flat)] * self.argc))), flat


def shape_of(buf: bytes, pos: int, size: int) -> Shape | None:
    """The layout of the command of ``size`` bytes at ``buf[pos]`` when it is a canonical RESP
    array of bulk strings taking exactly those bytes, else None."""
    end = pos + size
    if end > len(buf) or buf[pos] != 42:  # '*'
        return None
    nl = buf.find(_CRLF, pos, end)
    argc = _canonical(buf[pos + 1 : nl]) if nl > pos else -1
    if argc < 1:
        return None
    at = nl + 2
    starts: list[int] = []
    lengths: list[int] = []
    for _ in range(argc):
        if at >= end or buf[at] != 36:  # '$'
            return None
        nl = buf.find(_CRLF, at, end)
        n = _canonical(buf[at + 1 : nl]) if nl > at else -1
        if n < 0 or nl + 4 + n > end or buf[nl + 2 + n : nl + 4 + n] != _CRLF:
            return None
        starts.append(nl + 2 - pos)
        lengths.append(n)
        at = nl + 4 + n
    if at != end:
        return None
    return Shape(buf[pos:end], tuple(starts), tuple(lengths))
