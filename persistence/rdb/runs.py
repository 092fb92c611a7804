"""Fast paths for the commonest RDB content: runs of plain string keys.

How this works. Reading: :func:`scan_strings` walks consecutive ``[EXPIRETIME_MS] type 0 key
value`` records straight over the reader's window with index arithmetic, appending keys and values
to two lists, and stops (without consuming it) at the first record it does not handle in full:
another type or opcode, a length form over 14 bits, LZF data that does not decompress, or a
record that runs past the window. The caller's general loop then deals with that record exactly
as before, so errors, offsets and truncation reports do not change. The reader hands such a run
to a loader as one :class:`~persistence.records.StringRecords` event (opt-in,
``RdbReader(string_runs=True)``).

Writing: :func:`string_record` is ``[EXPIRETIME_MS] 0 key value`` as ``rdbSaveKeyValuePair``
(src/rdb.c) writes it for a string, without building records or value objects.
"""

from __future__ import annotations

import struct

from persistence.rdb.encode import encode_string
from persistence.rdb.lzf import LzfError, decompress

_i16 = struct.Struct("<h").unpack_from
_i32 = struct.Struct("<i").unpack_from
_i64 = struct.Struct("<q").unpack_from
_pack_ms = struct.Struct("<q").pack

OPCODE_EXPIRETIME_MS = 252


def _short_length(buf: bytes, pos: int) -> tuple[int, int] | None:
    """A 6- or 14-bit RDB length at ``pos``: (length, next pos); None for other forms."""
    b = buf[pos]
    if b < 0x40:
        return b, pos + 1
    if b < 0x80:
        return ((b & 0x3F) << 8) | buf[pos + 1], pos + 2
    return None


def _encoded_string(buf: bytes, pos: int, end: int, b: int) -> tuple[bytes, int] | None:
    """An RDB_ENC_INT8/16/32 or LZF string at ``pos`` (``b`` = its first byte): (bytes, next
    pos). None for anything else, LZF past ``end`` or LZF that does not decompress: the general
    path decides (and reports the error at the same offset)."""
    if b == 0xC0:
        v = buf[pos + 1]
        return b"%d" % (v - 256 if v >= 128 else v), pos + 2
    if b == 0xC1:
        return b"%d" % _i16(buf, pos + 1)[0], pos + 3
    if b == 0xC2:
        return b"%d" % _i32(buf, pos + 1)[0], pos + 5
    if b == 0xC3:  # RDB_ENC_LZF: compressed length, original length, data
        clen = _short_length(buf, pos + 1)
        if clen is None:
            return None
        ulen = _short_length(buf, clen[1])
        if ulen is None:
            return None
        data_end = ulen[1] + clen[0]
        if data_end > end:
            return None
        try:
            return decompress(buf[ulen[1] : data_end], ulen[0]), data_end
        except LzfError:
            return None
    return None


def scan_strings(
    buf: bytes,
    pos: int,
    end: int,
    keys: list[bytes],
    values: list[bytes],
    expires: list[tuple[int, int]],
    limit: int,
) -> int:
    """Append up to ``limit`` plain string records from ``buf[pos:end]``; return where it stopped.

    ``expires`` gets ``(index into keys, absolute ms)`` for records with an EXPIRETIME_MS prefix.
    Only whole records are taken: the returned position is always a record boundary.
    """
    kapp = keys.append
    vapp = values.append
    n0 = len(keys)
    stop = n0 + limit
    start = pos
    try:
        while len(keys) < stop:
            start = pos
            t = buf[pos]
            ms = None
            if t == OPCODE_EXPIRETIME_MS:
                ms = _i64(buf, pos + 1)[0]
                pos += 9
                t = buf[pos]
            if t != 0:
                return start
            # the key
            b = buf[pos + 1]
            if b < 0x40:
                ks = pos + 2
                pos = ks + b
            elif b < 0x80:
                ks = pos + 3
                pos = ks + (((b & 0x3F) << 8) | buf[pos + 2])
            else:
                got = _encoded_string(buf, pos + 1, end, b)
                if got is None:
                    return start
                key, pos = got
                ks = -1
            if ks >= 0:
                if pos > end:
                    return start
                key = buf[ks:pos]
            # the value
            b = buf[pos]
            if b < 0x40:
                vs = pos + 1
                pos = vs + b
            elif b < 0x80:
                vs = pos + 2
                pos = vs + (((b & 0x3F) << 8) | buf[pos + 1])
            else:
                got = _encoded_string(buf, pos, end, b)
                if got is None:
                    return start
                value, pos = got
                vs = -1
            if vs >= 0:
                if pos > end:
                    return start
                value = buf[vs:pos]
            if ms is not None:
                expires.append((len(keys), ms))
            kapp(key)
            vapp(value)
        return pos
    except (IndexError, struct.error):
        return start


def string_record(key: bytes, value: bytes, expire_ms: int | None, compress: bool) -> bytes:
    """One string key as the RDB writer emits it: EXPIRETIME_MS prefix, type 0, key, value."""
    body = b"\x00" + encode_string(key, compress=compress) + encode_string(value, compress=compress)
    if expire_ms is None:
        return body
    return b"\xfc" + _pack_ms(expire_ms) + body
