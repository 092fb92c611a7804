"""The byte cursor under the RDB reader: primitives over one in-memory window of the file.

How this works: the reader keeps a window of the file as ``bytes`` (the whole file when it is a
regular file of reasonable size, else a growing chunk) and parses one record at a time with the
primitives below. They do no bounds checks on the fast path: running off the window shows up as
``IndexError`` / ``struct.error`` (or :class:`Short` for a string slice), and the reader then
either refills the window and re-parses the record from its start, or reports a truncated file.
That keeps every primitive to a few bytecodes. Parsing a record has no side effects until it
returns, which is what makes the retry safe.
"""

from __future__ import annotations

import struct

from persistence.errors import FormatError
from persistence.rdb.lzf import LzfError, decompress

_u32be = struct.Struct(">I").unpack_from
_u64be = struct.Struct(">Q").unpack_from
_i16 = struct.Struct("<h").unpack_from
_i32 = struct.Struct("<i").unpack_from
_i64 = struct.Struct("<q").unpack_from
_f32 = struct.Struct("<f").unpack_from
_f64 = struct.Struct("<d").unpack_from

LEN_64_MAX = (1 << 64) - 1


class Short(Exception):
    """Internal: the window ends before the bytes a primitive needs (never leaves the reader)."""


class Cursor:
    """A read position in ``buf``; ``base`` is the file offset of ``buf[0]``."""

    __slots__ = ("base", "buf", "end", "file", "pos")

    def __init__(self, buf: bytes, *, file: str, base: int = 0) -> None:
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.base = base
        self.file = file

    # ---- errors ------------------------------------------------------------------------------

    def error(self, message: str, pos: int | None = None) -> FormatError:
        """A FormatError at ``pos`` (window position; default: the current one)."""
        return FormatError(
            message, file=self.file, offset=self.base + (self.pos if pos is None else pos)
        )

    def offset(self, pos: int | None = None) -> int:
        return self.base + (self.pos if pos is None else pos)

    # ---- fixed-size fields -------------------------------------------------------------------

    def u8(self) -> int:
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def raw(self, n: int) -> bytes:
        pos = self.pos
        end = pos + n
        if end > self.end:
            raise Short
        self.pos = end
        return self.buf[pos:end]

    def skip(self, n: int) -> None:
        end = self.pos + n
        if end > self.end:
            raise Short
        self.pos = end

    def i32le(self) -> int:
        v: int = _i32(self.buf, self.pos)[0]
        self.pos += 4
        return v

    def i64le(self) -> int:
        v: int = _i64(self.buf, self.pos)[0]
        self.pos += 8
        return v

    def f64le(self) -> float:
        v: float = _f64(self.buf, self.pos)[0]
        self.pos += 8
        return v

    def f32le(self) -> float:
        v: float = _f32(self.buf, self.pos)[0]
        self.pos += 4
        return v

    def stream_id(self) -> tuple[int, int]:
        """A raw 16-byte stream ID: ms and seq as big-endian u64 (src/t_stream.c streamEncodeID)."""
        pos = self.pos
        if pos + 16 > self.end:
            raise Short
        self.pos = pos + 16
        return _u64be(self.buf, pos)[0], _u64be(self.buf, pos + 8)[0]

    # ---- length and string encodings (src/rdb.c rdbLoadLenByRef, rdbGenericLoadStringObject) --

    def length(self) -> int:
        buf = self.buf
        pos = self.pos
        b = buf[pos]
        if b < 0x40:
            self.pos = pos + 1
            return b
        if b < 0x80:
            v = ((b & 0x3F) << 8) | buf[pos + 1]
            self.pos = pos + 2
            return v
        if b == 0x80:
            v = _u32be(buf, pos + 1)[0]
            self.pos = pos + 5
            return v  # type: ignore[no-any-return]
        if b == 0x81:
            v = _u64be(buf, pos + 1)[0]
            self.pos = pos + 9
            return v  # type: ignore[no-any-return]
        raise self.error(f"Unknown length encoding {b} in rdbLoadLen()", pos)

    def string(self) -> bytes:
        buf = self.buf
        pos = self.pos
        b = buf[pos]
        if b < 0x40:
            start = pos + 1
            end = start + b
        elif b < 0x80:
            start = pos + 2
            end = start + (((b & 0x3F) << 8) | buf[pos + 1])
        elif b >= 0xC0:
            return self._encoded_string(b, pos)
        elif b == 0x80:
            start = pos + 5
            end = start + _u32be(buf, pos + 1)[0]
        elif b == 0x81:
            start = pos + 9
            end = start + _u64be(buf, pos + 1)[0]
        else:
            raise self.error(f"Unknown length encoding {b} in rdbLoadLen()", pos)
        if end > self.end:
            raise Short
        self.pos = end
        return buf[start:end]

    def _encoded_string(self, b: int, pos: int) -> bytes:
        buf = self.buf
        enc = b & 0x3F
        if enc == 0:  # RDB_ENC_INT8
            v = buf[pos + 1]
            self.pos = pos + 2
            return b"%d" % (v - 256 if v >= 128 else v)
        if enc == 1:  # RDB_ENC_INT16
            v = _i16(buf, pos + 1)[0]
            self.pos = pos + 3
            return b"%d" % v
        if enc == 2:  # RDB_ENC_INT32
            v = _i32(buf, pos + 1)[0]
            self.pos = pos + 5
            return b"%d" % v
        if enc == 3:  # RDB_ENC_LZF: len compressed, len original, data
            self.pos = pos + 1
            clen = self.length()
            ulen = self.length()
            data = self.raw(clen)
            try:
                return decompress(data, ulen)
            except LzfError as e:
                raise self.error(f"Invalid LZF compressed string: {e}", pos) from None
        raise self.error(f"Unknown RDB string encoding type {enc}", pos)

    def skip_string(self) -> None:
        """Step over one RDB string without building it (LZF data is not decompressed)."""
        buf = self.buf
        pos = self.pos
        b = buf[pos]
        if b < 0x40:
            end = pos + 1 + b
        elif b < 0x80:
            end = pos + 2 + (((b & 0x3F) << 8) | buf[pos + 1])
        elif b == 0x80:
            end = pos + 5 + _u32be(buf, pos + 1)[0]
        elif b == 0x81:
            end = pos + 9 + _u64be(buf, pos + 1)[0]
        elif b == 0xC0:
            end = pos + 2
        elif b == 0xC1:
            end = pos + 3
        elif b == 0xC2:
            end = pos + 5
        elif b == 0xC3:
            self.pos = pos + 1
            clen = self.length()
            self.length()
            end = self.pos + clen
        else:
            raise self.error(f"Unknown RDB string encoding {b}", pos)
        if end > self.end:
            raise Short
        self.pos = end

    def string_double(self) -> float:
        """The old text double of type-3 zsets: 1-byte length, 253/254/255 = nan/+inf/-inf."""
        pos = self.pos
        n = self.buf[pos]
        if n == 253:
            self.pos = pos + 1
            return float("nan")
        if n == 254:
            self.pos = pos + 1
            return float("inf")
        if n == 255:
            self.pos = pos + 1
            return float("-inf")
        end = pos + 1 + n
        if end > self.end:
            raise Short
        self.pos = end
        try:
            return float(self.buf[pos + 1 : end])
        except ValueError:
            raise self.error("bad double value", pos) from None

    def skip_string_double(self) -> None:
        n = self.buf[self.pos]
        self.skip(1 if n >= 253 else 1 + n)
