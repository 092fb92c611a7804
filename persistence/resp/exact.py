"""The exact request parser: Valkey's own state machine for one command (src/networking.c
processMultibulkBuffer / processInlineBuffer), with its limits and error texts. A mixin of
:class:`~persistence.resp.parser.RequestParser`, which takes this way whatever its fast paths
do not prove (inline commands, odd input, an incomplete command, a hiredis error).

How this works: the multibulk state (count left, the bulk length being read, the arguments so
far) lives on the parser between reads, as in Valkey's client struct, so a command may arrive
in any number of pieces; no announced bulk longer than proto-max-bulk-len is ever buffered.
"""

from __future__ import annotations

from typing import Final

from persistence.resp.tokens import ProtocolError, split_args, string2ll

PROTO_INLINE_MAX_SIZE: Final = 64 * 1024  # src/server.h
INT_MAX: Final = 2**31 - 1


class ExactParser:
    """``_slow_one``: the next command, exactly as Valkey parses it (RequestParser's state)."""

    # the buffer and offsets (set by RequestParser.__init__, which documents them) and the
    # multibulk state, as in Valkey's client struct (multibulklen, bulklen, argv)
    __slots__ = ("_args", "_base", "_buf", "_bulklen", "_max_bulk", "_mbulk", "_pos", "_start")
    _buf: bytearray
    _pos: int
    _base: int
    _start: int
    _max_bulk: int
    _mbulk: int
    _bulklen: int
    _args: list[bytes]

    def _fail(self, message: str) -> ProtocolError:
        return ProtocolError(message, offset=self._base + self._start)

    def _slow_one(self) -> list[bytes] | None:
        """processInputBuffer for one command: args, [] for an empty command, None for more."""
        buf = self._buf
        pos = self._pos
        if self._mbulk == 0:
            self._start = pos
            if buf[pos] != 0x2A:
                return self._inline()
            # multibulk count line (processMultibulkBuffer)
            cr = buf.find(b"\r", pos)
            if cr < 0:
                if len(buf) - pos > PROTO_INLINE_MAX_SIZE:
                    raise self._fail("Protocol error: too big mbulk count string")
                return None
            if cr + 1 >= len(buf):
                return None
            if buf[cr + 1] != 10:  # Valkey 9.0.x patch releases check the LF
                raise self._fail("Protocol error: invalid CRLF in request")
            count = string2ll(bytes(buf[pos + 1 : cr]))
            if count is None or count > INT_MAX:
                raise self._fail("Protocol error: invalid multibulk length")
            self._pos = cr + 2
            if count <= 0:
                return []
            self._mbulk = count
            self._bulklen = -1
            self._args = []
        args = self._args
        max_bulk = self._max_bulk
        while self._mbulk:
            pos = self._pos
            if self._bulklen == -1:
                cr = buf.find(b"\r", pos)
                if cr < 0:
                    if len(buf) - pos > PROTO_INLINE_MAX_SIZE:
                        raise self._fail("Protocol error: too big bulk count string")
                    return None
                if cr + 1 >= len(buf):
                    return None
                if buf[pos] != 0x24:
                    # addReplyErrorFormat maps CR/LF to spaces (src/networking.c)
                    got = " " if buf[pos] in (10, 13) else chr(buf[pos])
                    raise self._fail(f"Protocol error: expected '$', got '{got}'")
                if buf[cr + 1] != 10:
                    raise self._fail("Protocol error: invalid CRLF in request")
                size = string2ll(bytes(buf[pos + 1 : cr]))
                if size is None or size < 0 or size > max_bulk:
                    raise self._fail("Protocol error: invalid bulk length")
                self._pos = pos = cr + 2
                self._bulklen = size
            size = self._bulklen
            if len(buf) - pos < size + 2:
                return None
            end = pos + size
            if buf[end] != 13 or buf[end + 1] != 10:
                raise self._fail("Protocol error: invalid CRLF in request")
            args.append(bytes(buf[pos:end]))
            self._pos = end + 2
            self._bulklen = -1
            self._mbulk -= 1
        self._args = []
        return args

    def _inline(self) -> list[bytes] | None:
        """processInlineBuffer: one line up to LF, split with sdssplitargs."""
        buf = self._buf
        pos = self._pos
        nl = buf.find(b"\n", pos)
        # Valkey finds the LF with strchr, so a NUL byte before it hides it (src/networking.c)
        if nl >= 0 and buf.find(b"\0", pos, nl) >= 0:
            nl = -1
        if nl < 0:
            if len(buf) - pos > PROTO_INLINE_MAX_SIZE:
                raise self._fail("Protocol error: too big inline request")
            return None
        end = nl - 1 if nl > pos and buf[nl - 1] == 13 else nl
        args = split_args(memoryview(buf)[pos:end]) if end > pos else []
        if args is None:
            raise self._fail("Protocol error: unbalanced quotes in request")
        self._pos = nl + 1
        return args
