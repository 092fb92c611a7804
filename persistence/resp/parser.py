"""Sans-IO RESP parsers: bytes in, commands (server side) or frames (client side) out.

How this works (h11 style, no sockets): ``feed(data)`` appends to one linear ``bytearray`` with
a read offset; ``next_command()`` / ``next_frame()`` parse from the offset and return ``None`` /
``NEED_MORE`` when a whole unit is not there yet. The buffer is compacted (one ``del``) once the
consumed prefix is large, never re-sliced per field.

:class:`RequestParser` accepts exactly what valkey-server 9.1.2 accepts from a client
(src/networking.c processMultibulkBuffer / processInlineBuffer), with the same limits and the
same error texts, checked against a real server in tests/test_resp.py. Its fast path hands
arrays of bulk strings to ``hiredis.Reader``; every command hiredis returns is checked against
the raw bytes (each element is a ``$`` bulk, each bulk ends in CRLF, lengths within
proto-max-bulk-len), which proves that Valkey would have parsed the same command from the same
bytes. Anything else (inline commands, odd input, an incomplete command, a hiredis error) goes
to the exact pure-Python parser (:mod:`persistence.resp.exact`), which produces Valkey's error
texts and never buffers an announced bulk longer than proto-max-bulk-len. Its integers, inline
splitting and error type live in :mod:`persistence.resp.tokens`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

import hiredis

from persistence.resp.exact import INT_MAX, PROTO_INLINE_MAX_SIZE, ExactParser
from persistence.resp.tokens import ProtocolError, split_args, string2ll

PROTO_MAX_BULK_LEN: Final = 512 * 1024 * 1024  # proto-max-bulk-len default, src/config.c
_COMPACT_AT: Final = 64 * 1024


# --------------------------------------------------------------------------------------------
# Server side: client requests
# --------------------------------------------------------------------------------------------

_ARRAY_HDR_LEN = [len(b"*%d\r\n" % i) for i in range(10000)]
# hiredis allocates an aggregate of the announced size as soon as it reads the header (and
# frees it element by element): never show it an aggregate header of 100000 or more. False
# positives inside bulk data only cost a trip through the slow path.
# The search is for rb"[*%~>|][0-9]{6}" without the regex engine, whose set-up costs more than a
# small read: bytes map to a class letter (m: an aggregate type byte, d: a digit, x: anything
# else), then one find (tests/test_resp_properties.py holds it to the regex)
_BYTE_CLASS = bytes(
    0x6D if b in b"*%~>|" else 0x64 if 0x30 <= b <= 0x39 else 0x78 for b in range(256)
)


def find_big_aggregate(buf: bytes | bytearray, start: int) -> int:
    """End offset of the first big aggregate header in ``buf[start:]``, else -1."""
    i = (buf[start:] if start else buf).translate(_BYTE_CLASS).find(b"mdddddd")
    return -1 if i < 0 else start + i + 7


# bytes a canonical bulk of each size takes ("$<size>\r\n<data>\r\n"), for sizes below 10000
_BULK_SPAN = [len(b"$%d\r\n" % i) + i + 2 for i in range(10000)]


# what RequestParser._next returns when hiredis is in sync again
_HIREDIS: Final[list[bytes]] = []

# RequestParser.same_after: commands per run, bytes per command (one size), bytes per run (other
# sizes), shapes whose patterns are kept
RUN_MAX: Final = 256
_RUN_SIZE_MAX: Final = 4096
_RUN_BYTES_MAX: Final = 256 * 1024
_RUN_SHAPES_MAX: Final = 1024
# (name, size of each argument) -> (one command's canonical encoding with a group per argument
# after the name, any number of them back to back)
_RUN_PATTERNS: dict[tuple[Any, ...], tuple[re.Pattern[bytes], re.Pattern[bytes]]] = {}


def _run_patterns(shape: tuple[Any, ...]) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    name = shape[0]
    one = b"\\*%d\r\n\\$%d\r\n%b\r\n" % (len(shape) - 1, len(name), re.escape(name))
    for size in shape[2:]:
        one += b"\\$%d\r\n(.{%d})\r\n" % (size, size)
    pats = re.compile(one, re.S), re.compile(b"(?:%b)+" % one, re.S)
    if len(_RUN_PATTERNS) >= _RUN_SHAPES_MAX:
        _RUN_PATTERNS.clear()
    _RUN_PATTERNS[shape] = pats
    return pats


class RequestParser(ExactParser):
    """What Valkey accepts from a client: multibulk (``*N $len arg``) and inline commands.

    >>> p = RequestParser()
    >>> p.feed(b"*2\\r\\n$4\\r\\nECHO\\r\\n$2\\r\\nhi\\r\\nPING\\r\\n")
    >>> list(p.commands())
    [[b'ECHO', b'hi'], [b'PING']]

    Empty commands (``*0``, ``*-1``, blank inline lines) are skipped as Valkey does. After a
    :class:`ProtocolError` the parser stays failed (Valkey closes the connection).
    """

    __slots__ = (
        "_error",
        "_fast",
        "_hi",
        "_last",
        "_last_n",
        "_pre",
        "_pre_i",
        "_raw_start",
        "_run_ends",
        "_run_stop",
        "_shape",
        "_slow_until",
        "_span",
        "_tried",
        "more",
        "shape_argc",
        "shape_name",
        "shape_size",
    )

    def __init__(self, *, max_bulk_len: int = PROTO_MAX_BULK_LEN, fast: bool = True) -> None:
        self._buf = bytearray()
        self._pos = 0  # read offset in _buf
        self._base = 0  # stream offset of _buf[0]
        self._max_bulk = max_bulk_len
        # next_command's table: sizes it indexes are at most max_bulk_len (bigger ones: _verify_big)
        self._span = _BULK_SPAN if max_bulk_len >= 9999 else _BULK_SPAN[: max_bulk_len + 1]
        self._fast = fast
        self._hi: hiredis.Reader | None = None  # in sync with _buf[_pos:] while not None
        self._error: ProtocolError | None = None
        self._slow_until = 0  # stream offset before which the fast path stays off
        # multibulk state, as in Valkey's client struct (multibulklen, bulklen, argv)
        self._mbulk = 0
        self._bulklen = -1
        self._args: list[bytes] = []
        self._start = 0  # _buf offset where the command being parsed began
        # _buf offset of the last command returned when it was a multibulk (see last_raw)
        self._raw_start = -1
        # the end offsets of the run same_after last found when its sizes vary (else None)
        self._run_ends: list[int] | None = None
        # stream offset where the last run same_after found ends: none is looked for before it
        # (a run handler that stopped inside one leaves the rest to single commands, so no byte
        # is scanned twice)
        self._run_stop = 0
        # after next_command returned a command: False when no byte follows it (the next call
        # would return None); True when some may
        self.more = True
        # shaped reads (feed): the last command the hot path returned; the shape of the
        # commands this client sends (their pattern, size, name, argument count); the commands
        # of a read that was all of that shape, unread from pre_i on (hiredis has not seen
        # their bytes: it is in sync with what came before them)
        self._last: list[bytes] | None = None
        self._last_n = 1  # its size in bytes
        self._shape: tuple[re.Pattern[bytes], int, bytes, int] | None = None
        # the shape's size in bytes (the size of a read sole() may take), name as spelt and
        # argument count (those of what sole() returns)
        self.shape_size = -1
        self.shape_name = b""
        self.shape_argc = 0
        self._pre: list[Any] | None = None
        self._pre_i = 0
        self._tried: tuple[Any, ...] | None = None  # a shape _learn saw once

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as commands."""
        return len(self._buf) - (self._start if self._mbulk else self._pos)

    def last_raw(self) -> bytes | None:
        """The bytes of the command the last :meth:`next_command` returned, when it came as a
        multibulk (else None), until the next call. Both paths accept only the canonical form
        (string2ll lengths, CRLF checked), so these are exactly ``encode_command(argv)``: the
        server writes them as the AOF record of a command propagated as it came."""
        start = self._raw_start
        if start < 0:
            return None
        return bytes(self._buf[start : self._pos])

    @property
    def offset(self) -> int:
        """Stream offset just after the last command returned."""
        return self._base + (self._start if self._mbulk else self._pos)

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        """Buffer ``data``; returns the buffer's size, which :attr:`buffered` never exceeds."""
        buf = self._buf
        hi = self._hi
        pos = self._pos
        if hi is not None and pos == len(buf) and type(data) is bytes:
            # all buffered bytes were returned as commands: the buffer starts over (no bigger
            # buffer to grow, copied by realloc, for every read of a pipelining client)
            if pos:
                self._base += pos
                buf.clear()
                self._pos = 0
            # a shaped read: every command in it has the shape of the client's last ones, so
            # one regex reads them all (and proves them canonical); hiredis is not needed
            shape = self._shape
            if (
                (shape is None or len(data) % shape[1])
                and self._last is not None
                and not len(data) % self._last_n
                and data
            ):
                shape = self._learn()
            if shape is not None and not len(data) % shape[1] and data:
                found = shape[0].findall(data)
                if len(found) * shape[1] == len(data):
                    buf += data
                    self._pre = found
                    self._pre_i = 0
                    return len(buf)
            # the big-aggregate search needs only the new bytes (find_big_aggregate, inline)
            if data.translate(_BYTE_CLASS).find(b"mdddddd") < 0:
                buf += data
                hi.feed(data)
                return len(buf)
        if self._pre is not None:  # a shaped read not all read: hiredis catches up first
            self._unshape()
        if self._error is not None or not data:
            return len(buf)
        old = len(buf)
        buf += data
        if self._hi is not None:
            # a header may begin in what was buffered (the common case returned above)
            big = find_big_aggregate(buf, max(old - 7, self._pos))
            if big < 0:
                self._hi.feed(data if type(data) is bytes else bytes(data))
            else:
                self._hi = None
                self._slow_until = self._base + big
        return len(buf)

    def sole(self, data: bytes, accept: Mapping[bytes, object]) -> Any:
        """``data`` read at once, when it is one whole command of the client's shape (see
        :meth:`feed`), nothing else is buffered and ``accept`` has a true value for its name as
        spelt (:attr:`shape_name`): its arguments after the name, a tuple (the argument itself
        when there is one: :attr:`shape_argc` 2). The command is read, as by :meth:`feed` then
        :meth:`next_command` (with :attr:`more` False), except that :meth:`last_raw` gives None
        for it (``data`` is its bytes). Else None, and nothing changed: :meth:`feed` ``data``.
        The server's hot path for a client that sends one command at a time."""
        shape = self._shape
        if (
            shape is None
            or len(data) != shape[1]
            or self._pos != len(self._buf)
            or self._hi is None
            or type(data) is not bytes
            or not accept.get(shape[2])
        ):
            return None
        m = shape[0].match(data)  # (of the shape's size: a match is all of data)
        if m is None:
            return None
        pos = self._pos
        if pos:
            self._buf.clear()
            self._pos = 0
        self._base += pos + shape[1]
        self._raw_start = -1
        self.more = False
        return m[1] if shape[3] == 2 else m.groups()

    def sole_run(
        self, data: bytes, accept: Mapping[bytes, object]
    ) -> tuple[bytes, int, list[Any]] | None:
        """:meth:`sole` for a read of several commands, all of the client's shape: their name
        as spelt, argument count and arguments after the name (a tuple each; the argument
        itself when there is one), at most RUN_MAX of them, none read yet: :meth:`skip` reads
        those the caller has done. Else None: :meth:`feed` ``data``."""
        shape = self._shape
        if (
            shape is None
            or len(data) % shape[1]
            or len(data) > RUN_MAX * shape[1]  # (more than one run: feed them)
            or self._pos != len(self._buf)
            or self._hi is None
            or type(data) is not bytes
            or not accept.get(shape[2])
        ):
            return None
        found = shape[0].findall(data)
        if not found or len(found) * shape[1] != len(data):
            return None
        return shape[2], shape[3], found

    def skip(self, data: bytes, n: int) -> None:
        """The first ``n`` bytes of ``data`` (what :meth:`sole_run` found) were read by the
        caller: :meth:`feed` the rest."""
        if self._pos:
            self._buf.clear()
        self._base += self._pos + n
        self._pos = 0
        self._raw_start = -1
        self.more = False
        if n < len(data):
            self.feed(data[n:])

    def _learn(self) -> tuple[re.Pattern[bytes], int, bytes, int] | None:
        """The shape of the last command the hot path returned (a read of a multiple of its
        size came; else the current shape)."""
        cmd = self._last
        assert cmd is not None
        self._last = None  # (once per command: a read that is not of its shape costs one try)
        n = self._last_n
        if len(cmd) < 2 or n > _RUN_SIZE_MAX:
            return self._shape
        shape = (cmd[0], *map(len, cmd))
        pats = _RUN_PATTERNS.get(shape)
        if pats is None:
            # a shape seen once may be chance (commands of varied sizes): its pattern is made
            # the second time it comes
            if shape != self._tried:
                self._tried = shape
                return self._shape
            pats = _run_patterns(shape)
        return self._set_shape(pats[0], n, cmd)

    def _set_shape(
        self, one: re.Pattern[bytes], size: int, cmd: list[bytes]
    ) -> tuple[re.Pattern[bytes], int, bytes, int]:
        """The client's shape is now that of ``cmd`` (``one``: its pattern, ``size``: bytes)."""
        self._shape = shape = (one, size, cmd[0], len(cmd))
        self.shape_size = size
        self.shape_name = cmd[0]
        self.shape_argc = len(cmd)
        return shape

    def _unshape(self) -> None:
        """Hand the unread commands of a shaped read to hiredis (new bytes are coming)."""
        self._pre = None
        assert self._hi is not None
        if self._pos < len(self._buf):
            self._hi.feed(bytes(self._buf[self._pos :]))

    def same_after(self, cmd: list[bytes], limit: int = RUN_MAX) -> list[Any]:
        """The complete commands right behind ``cmd`` (what :meth:`next_command` just returned,
        from its hot path) with its name as spelt and its argument sizes, at most ``limit``:
        their arguments after the name, a tuple each (the argument itself when there is one).
        One regex proves them canonical (their bytes match ``cmd``'s encoding at every byte but
        the arguments'); they stay unread until :meth:`take`."""
        pre = self._pre
        if pre is not None:  # a shaped read: cmd was its command before pre_i
            i = self._pre_i
            return pre[i : i + limit]
        start = self._raw_start
        if start < 0 or self._hi is None:
            return []
        buf = self._buf
        pos = self._pos
        size = pos - start
        if len(cmd) < 2 or self._base + pos < self._run_stop:
            return []
        # the common miss (another command next) costs one compare
        head = _ARRAY_HDR_LEN[len(cmd)] + self._span[len(cmd[0])]
        if buf[pos : pos + head] != buf[start : start + head]:
            return []
        self._run_ends = None
        k = (len(buf) - pos) // size
        if k and size <= _RUN_SIZE_MAX:  # commands of cmd's size: one regex for all
            shape = (cmd[0], *map(len, cmd))
            one, many = _RUN_PATTERNS.get(shape) or _run_patterns(shape)
            end = pos + min(k, limit) * size
            found = one.findall(buf, pos, end)
            if len(found) * size != end - pos:
                m = many.match(buf, pos, end)  # a gap: the run is what matches from pos on
                end = pos if m is None else m.end()
                found = one.findall(buf, pos, end) if m is not None else []
            if found:
                self._run_stop = self._base + end
                self._set_shape(one, size, cmd)
                return found
        return self._same_name_after(cmd, pos, limit)

    def _same_name_after(self, cmd: list[bytes], pos: int, limit: int) -> list[Any]:
        """same_after for the commands behind ``cmd`` of its name and argument count but other
        sizes: hiredis on a copy of them (the parser's own reader stays where it is), each
        proved as next_command proves one; their end offsets go to ``_run_ends`` for take."""
        buf = self._buf
        hi = hiredis.Reader()
        hi.feed(bytes(buf[pos : pos + _RUN_BYTES_MAX]))  # (a command cut here ends the run)
        name = cmd[0]
        argc = len(cmd)
        hdr = _ARRAY_HDR_LEN[argc]
        span = self._span
        stop = pos + _RUN_BYTES_MAX
        found: list[Any] = []
        ends: list[int] = []
        p = pos
        try:
            while len(found) < limit and p < stop:
                c = hi.gets()
                if type(c) is not list or len(c) != argc or c[0] != name:
                    break
                q = p + hdr
                for arg in c:  # next_command's proof (inline in both: per-command hot paths)
                    if buf[q] != 0x24:
                        break
                    q += span[len(arg)]
                    if buf[q - 2] != 13 or buf[q - 1] != 10:
                        break
                else:
                    found.append(tuple(c[1:]) if argc > 2 else c[1])
                    ends.append(q)
                    p = q
                    continue
                break
        except (hiredis.ProtocolError, TypeError, IndexError):
            pass  # (an error, a RESP3 type, a $-1, an argument of 10000 bytes or more)
        if ends:
            self._run_ends = ends
            self._run_stop = self._base + ends[-1]
        return found

    def take(self, n: int) -> bytes | None:
        """Read the first ``n`` commands :meth:`same_after` gave; returns the bytes of the command
        :meth:`next_command` returned and of these (``encode_command`` of each, in order), or
        None for an inline command (``n`` 0: no run follows one)."""
        start = self._raw_start
        if start < 0:
            return None
        pos = self._pos
        buf = self._buf
        pre = self._pre
        if pre is not None:  # a shaped read
            end = pos + n * (pos - start)
            self._pos = end
            self._pre_i += n
            if self._pre_i == len(pre):
                self._pre = None
                self.more = False
            return bytes(buf[start:end])
        ends = self._run_ends
        end = pos + n * (pos - start) if ends is None or not n else ends[n - 1]
        if n:
            self._pos = end
            hi = self._hi = hiredis.Reader()  # in sync again: it read only the first command
            self.more = end < len(buf)
            if self.more:
                hi.feed(bytes(buf[end:]))
        return bytes(buf[start:end])

    def commands(self) -> Iterator[list[bytes]]:
        """Every complete command buffered so far."""
        while (cmd := self.next_command()) is not None:
            yield cmd

    def next_command(self) -> list[bytes] | None:
        """The next complete command, or None when more data is needed."""
        pre = self._pre
        if pre is not None:  # a shaped read (feed)
            shape = self._shape
            assert shape is not None
            i = self._pre_i
            self._raw_start = start = self._pos
            self._pos = start + shape[1]
            self._pre_i = i + 1
            if i + 1 == len(pre):
                self._pre = None
                self.more = False
            else:
                self.more = True
            return [shape[2], pre[i]] if shape[3] == 2 else [shape[2], *pre[i]]
        fast = True
        while True:
            hi = self._hi
            if hi is not None:  # the hot path: hiredis in sync (so no error, no partial command)
                buf = self._buf
                pos = self._pos
                size = len(buf)
                if pos >= size:  # everything consumed: start the buffer over
                    if pos:
                        self._base += pos
                        buf.clear()
                        self._pos = 0
                    return None
                if pos >= _COMPACT_AT and pos * 2 >= size:  # (after the last_raw() window)
                    del buf[:pos]
                    self._base += pos
                    self._pos = pos = 0
                    size = len(buf)
                try:
                    cmd = hi.gets()
                except (hiredis.ProtocolError, TypeError):  # TypeError: a RESP3 map, list key
                    cmd = None
                if type(cmd) is list and buf[pos] == 0x2A:
                    # proof that these bytes are cmd's canonical encoding, which is all Valkey
                    # reads: a '$' where each element starts (so hiredis read a bulk there and
                    # ``arg`` is bytes, or None for $-1, whose len() raises; a simple string,
                    # verbatim string or nested aggregate element fails this at its own start),
                    # the lengths' digits in canonical form (string2ll: the table's span), CRLF
                    # after each bulk. The array header's form shows in the first '$'.
                    n = len(cmd)
                    p = pos + (_ARRAY_HDR_LEN[n] if n < 10000 else len(b"*%d\r\n" % n))
                    span = self._span
                    try:
                        for arg in cmd:
                            if buf[p] != 0x24:
                                break
                            p += span[len(arg)]
                            if buf[p - 2] != 13 or buf[p - 1] != 10:
                                break
                        else:
                            if cmd:
                                self._raw_start = pos
                                self._pos = p
                                self.more = p < size
                                self._last = cmd
                                self._last_n = p - pos
                                return cmd
                            if buf[pos:p] == b"*0\r\n":  # skipped, as Valkey does
                                self._pos = p
                                continue
                    except TypeError:
                        pass
                    except IndexError:  # an argument of 10000 bytes or more
                        p = self._verify_big(cmd, pos)
                        if p >= 0:
                            self._raw_start = pos
                            self._pos = p
                            self.more = True
                            return cmd
                # incomplete, or not provably what Valkey reads: the exact parser
                self._hi = None
                fast = False
            cmd = self._next(fast)
            if cmd is not _HIREDIS:
                return cmd
            fast = True

    def _next(self, fast: bool) -> list[bytes] | None:
        """next_command without the hot path; ``fast`` False: no hiredis for the first try.
        Returns ``_HIREDIS`` when hiredis is in sync again (next_command's hot path goes on)."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        self._raw_start = -1
        self.more = True
        while True:
            pos = self._pos
            if pos >= len(buf):
                # a command half read keeps its bytes (its start offset and last_raw need them)
                if pos and not self._mbulk:
                    self._base += pos
                    buf.clear()
                    self._pos = 0
                return None
            if self._mbulk == 0 and pos >= _COMPACT_AT and pos * 2 >= len(buf):
                del buf[:pos]  # what was returned, after its last_raw() window
                self._base += pos
                self._pos = pos = 0
            if (
                fast
                and self._fast
                and self._mbulk == 0
                and buf[pos] == 0x2A
                and self._base + pos >= self._slow_until
            ):
                big = find_big_aggregate(buf, pos)
                if big < 0:
                    self._hi = hiredis.Reader()
                    self._hi.feed(bytes(buf[pos:]))
                    return _HIREDIS
                self._slow_until = self._base + big
            fast = True
            try:
                cmd = self._slow_one()
            except ProtocolError as exc:
                self._error = exc
                self._hi = None
                raise
            if cmd is None:
                return None
            if cmd:
                # a multibulk's bytes are canonical RESP; an inline command's are not
                self._raw_start = self._start if buf[self._start] == 0x2A else -1
                return cmd

    def _verify_big(self, cmd: list[bytes], pos: int) -> int:
        """next_command's proof for any argument size, with the max_bulk_len check: the end
        offset of ``cmd`` if the bytes at ``pos`` are its canonical encoding, else -1."""
        buf = self._buf
        n = len(cmd)
        p = pos + len(b"*%d\r\n" % n)
        max_bulk = self._max_bulk
        try:
            for arg in cmd:
                if buf[p] != 0x24:
                    return -1
                size = len(arg)
                if size > max_bulk:
                    return -1
                p += len(b"$%d\r\n" % size) + size + 2
                if buf[p - 2] != 13 or buf[p - 1] != 10:
                    return -1
        except (TypeError, IndexError):
            return -1
        return p


__all__ = [
    "INT_MAX",
    "PROTO_INLINE_MAX_SIZE",
    "PROTO_MAX_BULK_LEN",
    "ProtocolError",
    "RequestParser",
    "split_args",
    "string2ll",
]
