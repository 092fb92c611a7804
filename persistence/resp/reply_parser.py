"""Sans-IO RESP reply parser (client side): bytes in, typed frames out.

Used by the replay tool, the cluster bus and slot-migration links, and the tests. The request
side (what a server accepts from a client) is :mod:`persistence.resp.parser`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from persistence.resp import frames as F
from persistence.resp.parser import _COMPACT_AT
from persistence.resp.tokens import ProtocolError, string2ll


class _NeedMore:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_MORE"


NEED_MORE: Final = _NeedMore()


class _Incomplete(Exception):
    def __init__(self, need: int) -> None:
        self.need = need  # buffer length needed before a retry can succeed


_DOUBLE_WORDS = {b"inf": float("inf"), b"-inf": float("-inf"), b"nan": float("nan")}
# aggregates nested deeper than this are refused (the parser recurses once per level)
MAX_REPLY_NESTING: Final = 128


class _Agg:
    """An aggregate being built: its type byte, how many items it still needs, the items."""

    __slots__ = ("items", "kind", "left")

    def __init__(self, kind: int, left: int) -> None:
        self.kind = kind
        self.left = left  # items still to come (attributes do not count)
        self.items: list[F.Frame] = []


class ReplyParser:
    """Any RESP2/RESP3 reply stream -> frames (for the replay tool and tests).

    ``feed(data)``; ``next_frame()`` returns a frame or :data:`NEED_MORE`. Bad input raises
    :class:`ProtocolError`, after which the parser stays failed.

    How this works: one element (a scalar, or an aggregate's header) is parsed at a time; open
    aggregates wait on a stack with the items they already have. When the buffer ends inside an
    element, the stack and the position are kept, so the next feed resumes there: a wide reply
    that arrives in many small reads is parsed once, not again from its start on every read.
    """

    __slots__ = ("_base", "_buf", "_error", "_need", "_pos", "_stack")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._base = 0
        self._need = 0
        self._error: ProtocolError | None = None
        self._stack: list[_Agg] = []

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is None:
            self._buf += data

    def frames(self) -> Iterator[F.Frame]:
        while not isinstance(frame := self.next_frame(), _NeedMore):
            yield frame

    def next_frame(self) -> F.Frame | _NeedMore:
        if self._error is not None:
            raise self._error
        buf = self._buf
        stack = self._stack
        while True:
            pos = self._pos
            if pos >= len(buf) or len(buf) < self._need:
                return NEED_MORE
            try:
                value, end = self._element(pos, len(stack))
            except _Incomplete as inc:
                self._need = inc.need
                return NEED_MORE
            except ProtocolError as exc:
                self._error = exc
                raise
            self._need = 0
            self._pos = end
            if end >= _COMPACT_AT and end * 2 >= len(buf):
                del buf[:end]
                self._base += end
                self._pos = 0
            if value is None:  # an aggregate header with items to come: now on the stack
                continue
            while stack:  # a complete element: give it to the open aggregates
                top = stack[-1]
                top.items.append(value)
                if not isinstance(value, F.Attribute):
                    top.left -= 1
                if top.left:
                    break
                stack.pop()
                value = _build(top.kind, top.items)
            else:
                return value

    def _fail(self, message: str, at: int) -> ProtocolError:
        return ProtocolError(message, offset=self._base + at)

    def _line(self, pos: int) -> tuple[bytes, int]:
        crlf = self._buf.find(b"\r\n", pos)
        if crlf < 0:
            raise _Incomplete(len(self._buf) + 1)
        return bytes(self._buf[pos:crlf]), crlf + 2

    def _length(self, text: bytes, at: int, what: str) -> int:
        n = string2ll(text)
        if n is None or n < -1:
            raise self._fail(f"Protocol error: invalid {what} length", at)
        return n

    def _blob(self, pos: int, size: int) -> tuple[bytes, int]:
        end = pos + size
        if len(self._buf) < end + 2:
            raise _Incomplete(end + 2)
        if self._buf[end : end + 2] != b"\r\n":
            raise self._fail("Protocol error: invalid CRLF in reply", end)
        return bytes(self._buf[pos:end]), end + 2

    def _element(self, pos: int, depth: int) -> tuple[F.Frame | None, int]:
        """One element at ``pos``: (frame, end), or (None, end) after pushing a non-empty
        aggregate's header onto the stack."""
        buf = self._buf
        kind = buf[pos]
        line, nxt = self._line(pos + 1)
        if kind == 0x2B:  # +
            return F.SimpleString(line), nxt
        if kind == 0x2D:  # -
            return F.Error(line), nxt
        if kind == 0x3A:  # :
            v = string2ll(line)
            if v is None:
                raise self._fail("Protocol error: invalid integer", pos)
            return F.Integer(v), nxt
        if kind in (0x24, 0x21, 0x3D):  # $ ! =
            n = self._length(line, pos, "bulk")
            if n == -1:
                if kind != 0x24:
                    raise self._fail("Protocol error: invalid bulk length", pos)
                return F.Bulk(None), nxt
            data, nxt = self._blob(nxt, n)
            if kind == 0x24:
                return F.Bulk(data), nxt
            if kind == 0x21:
                return F.Error(data), nxt
            if len(data) < 4 or data[3] != 0x3A:
                raise self._fail("Protocol error: invalid verbatim string", pos)
            return F.Verbatim(data[:3], data[4:]), nxt
        if kind in (0x2A, 0x7E, 0x3E, 0x25, 0x7C):  # * ~ > % |
            n = self._length(line, pos, "aggregate")
            if n == -1:
                if kind != 0x2A:
                    raise self._fail("Protocol error: invalid aggregate length", pos)
                return F.Array(None), nxt
            if depth >= MAX_REPLY_NESTING:
                raise self._fail("Protocol error: reply nested too deeply", pos)
            if kind in (0x25, 0x7C):  # a map or an attribute holds n pairs
                n *= 2
            if n == 0:
                return _build(kind, []), nxt
            self._stack.append(_Agg(kind, n))
            return None, nxt
        if kind == 0x5F:  # _
            if line:
                raise self._fail("Protocol error: invalid null", pos)
            return F.Null(), nxt
        if kind == 0x23:  # #
            if line not in (b"t", b"f"):
                raise self._fail("Protocol error: invalid boolean", pos)
            return F.Boolean(line == b"t"), nxt
        if kind == 0x2C:  # ,
            return F.Double(self._double(line, pos)), nxt
        if kind == 0x28:  # (
            body = line[1:] if line[:1] == b"-" else line
            if not body or not body.isdigit() or not body.isascii():
                raise self._fail("Protocol error: invalid big number", pos)
            try:
                value = int(line)
            except ValueError:  # longer than sys.get_int_max_str_digits() (4300 by default)
                raise self._fail("Protocol error: big number too long", pos) from None
            return F.BigNumber(value), nxt
        raise self._fail(f"Protocol error, got {chr(kind)!r} as reply type byte", pos)

    def _double(self, line: bytes, pos: int) -> float:
        word = _DOUBLE_WORDS.get(line.lower())
        if word is not None:
            return word
        text = line.decode("ascii", "replace")
        if not text or any(c not in "0123456789+-.eE" for c in text):
            raise self._fail("Protocol error: invalid double", pos)
        try:
            return float(text)
        except ValueError:
            raise self._fail("Protocol error: invalid double", pos) from None


def _build(kind: int, items: list[F.Frame]) -> F.Frame:
    """The frame of a finished aggregate (maps and attributes pair their non-attribute items)."""
    if kind == 0x2A:
        return F.Array(items)
    if kind == 0x7E:
        return F.Set(items)
    if kind == 0x3E:
        return F.Push(items)
    plain: list[F.Frame] = [f for f in items if not isinstance(f, F.Attribute)]
    pairs = list(zip(plain[0::2], plain[1::2]))
    return F.Map(pairs) if kind == 0x25 else F.Attribute(pairs)


__all__ = ["MAX_REPLY_NESTING", "NEED_MORE", "ReplyParser"]
