"""Decoders for the blob encodings an RDB stores as one string: listpack, ziplist, zipmap, intset.

Each decoder takes the whole blob (bytes) and returns plain Python values. Corrupt input raises
:class:`BlobError` (a ``ValueError``) and nothing else: the RDB reader turns it into a
``FormatError`` carrying the file offset of the blob. Integers stored in listpacks and ziplists
come back as ``int`` from the ``*_items`` functions and as their decimal text from the
``*_strings`` functions (what Valkey returns when it reads such an element as a string).
"""

from __future__ import annotations

import struct

_u16 = struct.Struct("<H").unpack_from
_i16 = struct.Struct("<h").unpack_from
_i32 = struct.Struct("<i").unpack_from
_i64 = struct.Struct("<q").unpack_from
_u32 = struct.Struct("<I").unpack_from
_u32be = struct.Struct(">I").unpack_from
_lp_header = struct.Struct("<IH").unpack_from
_zl_header = struct.Struct("<IIH").unpack_from

LP_HDR_SIZE = 6  # src/listpack.c: total bytes (u32) + element count (u16)
LP_COUNT_UNKNOWN = 65535  # src/listpack.c LP_HDR_NUMELE_UNKNOWN
LP_EOF = 0xFF


class BlobError(ValueError):
    """A listpack/ziplist/zipmap/intset blob that is not what its format says."""


def _backlen_size(n: int) -> int:
    # src/listpack.c lpEncodeBacklen: 7 bits per byte
    if n <= 127:
        return 1
    if n < 16383:
        return 2
    if n < 2097151:
        return 3
    if n < 268435455:
        return 4
    return 5


def _lp_decode(blob: bytes, as_bytes: bool) -> list[bytes | int]:
    """Walk a listpack (src/listpack.c); see the module docstring for ``as_bytes``."""
    n = len(blob)
    if n < LP_HDR_SIZE + 1:
        raise BlobError(f"listpack of {n} bytes is shorter than its header")
    total, count = _lp_header(blob, 0)
    if total != n:
        raise BlobError(f"listpack header says {total} bytes, blob has {n}")
    out: list[bytes | int] = []
    append = out.append
    pos = LP_HDR_SIZE
    last = n - 1
    try:
        while pos < last:
            b = blob[pos]
            if b < 0x80:  # 0xxxxxxx: 7-bit unsigned int
                append(b"%d" % b if as_bytes else b)
                pos += 2
            elif b < 0xC0:  # 10xxxxxx: string, len < 64
                start = pos + 1
                end = start + (b & 0x3F)
                append(blob[start:end])
                pos = end + _backlen_size(end - pos)
            elif b < 0xE0:  # 110xxxxx yyyyyyyy: 13-bit signed int
                v = ((b & 0x1F) << 8) | blob[pos + 1]
                if v >= 4096:
                    v -= 8192
                append(b"%d" % v if as_bytes else v)
                pos += 3
            elif b < 0xF0:  # 1110xxxx yyyyyyyy: string, len < 4096
                start = pos + 2
                end = start + (((b & 0x0F) << 8) | blob[pos + 1])
                append(blob[start:end])
                pos = end + _backlen_size(end - pos)
            elif b == 0xF0:  # 32-bit length string
                start = pos + 5
                end = start + _u32(blob, pos + 1)[0]
                append(blob[start:end])
                pos = end + _backlen_size(end - pos)
            elif b == 0xF1:
                v = _i16(blob, pos + 1)[0]
                append(b"%d" % v if as_bytes else v)
                pos += 4
            elif b == 0xF2:
                if pos + 4 > n:
                    raise BlobError("listpack int24 past the end")
                v = int.from_bytes(blob[pos + 1 : pos + 4], "little", signed=True)
                append(b"%d" % v if as_bytes else v)
                pos += 5
            elif b == 0xF3:
                v = _i32(blob, pos + 1)[0]
                append(b"%d" % v if as_bytes else v)
                pos += 6
            elif b == 0xF4:
                v = _i64(blob, pos + 1)[0]
                append(b"%d" % v if as_bytes else v)
                pos += 10
            else:
                raise BlobError(f"bad listpack entry encoding 0x{b:02x} at blob offset {pos}")
    except (IndexError, struct.error) as e:
        raise BlobError(f"listpack entry runs past the end of the blob ({e})") from None
    if pos != last or blob[last] != LP_EOF:
        raise BlobError("listpack is not terminated by 0xFF at its last byte")
    if count != LP_COUNT_UNKNOWN and count != len(out):
        raise BlobError(f"listpack header says {count} elements, found {len(out)}")
    return out


def lp_items(blob: bytes) -> list[bytes | int]:
    """Listpack elements; integer-encoded elements as ``int``."""
    return _lp_decode(blob, False)


def lp_strings(blob: bytes) -> list[bytes]:
    """Listpack elements, integers as their decimal text."""
    return _lp_decode(blob, True)  # type: ignore[return-value]


def ziplist_items(blob: bytes, as_bytes: bool = True) -> list[bytes | int]:
    """Ziplist elements (src/ziplist.c, Redis <= 6.2 / RDB types 10, 12, 13 and quicklist 1)."""
    n = len(blob)
    if n < 11:
        raise BlobError(f"ziplist of {n} bytes is shorter than its header")
    total, _tail, count = _zl_header(blob, 0)
    if total != n:
        raise BlobError(f"ziplist header says {total} bytes, blob has {n}")
    out: list[bytes | int] = []
    append = out.append
    pos = 10
    last = n - 1
    try:
        while pos < last:
            # prevlen: 1 byte, or 0xFE + 4 bytes (src/ziplist.c ZIP_BIG_PREVLEN)
            pos += 1 if blob[pos] < 0xFE else 5
            enc = blob[pos]
            kind = enc >> 6
            v: int
            if kind == 0:  # 00pppppp: string len < 64
                start = pos + 1
                end = start + (enc & 0x3F)
            elif kind == 1:  # 01pppppp qqqqqqqq: 14-bit big-endian length
                start = pos + 2
                end = start + (((enc & 0x3F) << 8) | blob[pos + 1])
            elif enc == 0x80:  # 10000000 + 4-byte big-endian length
                start = pos + 5
                end = start + _u32be(blob, pos + 1)[0]
            elif kind == 2:
                raise BlobError(f"bad ziplist string encoding 0x{enc:02x}")
            else:
                if enc == 0xC0:
                    v = _i16(blob, pos + 1)[0]
                    pos += 3
                elif enc == 0xD0:
                    v = _i32(blob, pos + 1)[0]
                    pos += 5
                elif enc == 0xE0:
                    v = _i64(blob, pos + 1)[0]
                    pos += 9
                elif enc == 0xF0:  # int24
                    if pos + 4 > n:
                        raise BlobError("ziplist int24 past the end")
                    v = int.from_bytes(blob[pos + 1 : pos + 4], "little", signed=True)
                    pos += 4
                elif enc == 0xFE:  # int8
                    v = blob[pos + 1]
                    if v >= 128:
                        v -= 256
                    pos += 2
                elif 0xF1 <= enc <= 0xFD:  # 1111xxxx: immediate 0..12
                    v = (enc & 0x0F) - 1
                    pos += 1
                else:
                    raise BlobError(f"bad ziplist entry encoding 0x{enc:02x}")
                append(b"%d" % v if as_bytes else v)
                continue
            if end > last:
                raise BlobError("ziplist string runs past the end of the blob")
            append(blob[start:end])
            pos = end
    except (IndexError, struct.error) as e:
        raise BlobError(f"ziplist entry runs past the end of the blob ({e})") from None
    if pos != last or blob[last] != 0xFF:
        raise BlobError("ziplist is not terminated by 0xFF at its last byte")
    if count != 0xFFFF and count != len(out):  # src/ziplist.c: UINT16_MAX = count unknown
        raise BlobError(f"ziplist header says {count} entries, found {len(out)}")
    return out


def ziplist_strings(blob: bytes) -> list[bytes]:
    return ziplist_items(blob, True)  # type: ignore[return-value]


def zipmap_pairs(blob: bytes) -> list[tuple[bytes, bytes]]:
    """Zipmap field/value pairs (src/zipmap.c, Redis <= 2.4 hashes, RDB type 9).

    Layout: <zmlen:1> (<len>field <len><free:1>value<free bytes>)* 0xFF, where <len> is one
    byte < 254, or 254 followed by a 4-byte little-endian length.
    """
    n = len(blob)
    out: list[tuple[bytes, bytes]] = []
    pos = 1
    try:
        while True:
            b = blob[pos]
            if b == 0xFF:
                break
            if b < 0xFE:
                klen = b
                pos += 1
            elif b == 0xFE:
                klen = _u32(blob, pos + 1)[0]
                pos += 5
            field = blob[pos : pos + klen]
            pos += klen
            b = blob[pos]
            if b < 0xFE:
                vlen = b
                pos += 1
            elif b == 0xFE:
                vlen = _u32(blob, pos + 1)[0]
                pos += 5
            else:
                raise BlobError("zipmap ends between a field and its value")
            free = blob[pos]
            pos += 1
            value = blob[pos : pos + vlen]
            pos += vlen + free
            if pos > n or len(field) != klen:
                raise BlobError("zipmap entry runs past the end of the blob")
            out.append((field, value))
    except (IndexError, struct.error) as e:
        raise BlobError(f"zipmap entry runs past the end of the blob ({e})") from None
    if pos != n - 1:
        raise BlobError("zipmap has bytes after its end marker")
    return out


_INTSET_FMT = {2: "h", 4: "i", 8: "q"}


def intset_members(blob: bytes) -> list[bytes]:
    """Intset members as decimal text (src/intset.c: u32 encoding, u32 count, sorted LE ints)."""
    n = len(blob)
    if n < 8:
        raise BlobError(f"intset of {n} bytes is shorter than its header")
    enc, count = struct.unpack_from("<II", blob, 0)
    fmt = _INTSET_FMT.get(enc)
    if fmt is None:
        raise BlobError(f"bad intset encoding {enc}")
    if 8 + enc * count != n:
        raise BlobError(f"intset of {count} x {enc} bytes does not fit a {n}-byte blob")
    return [b"%d" % v for v in struct.unpack_from(f"<{count}{fmt}", blob, 8)]


def pairs(items: list[bytes], what: str) -> list[tuple[bytes, bytes]]:
    if len(items) % 2:
        raise BlobError(f"{what} has an odd number of elements")
    it = iter(items)
    return list(zip(it, it))


def parse_score(raw: bytes | int) -> float:
    """A sorted-set score stored as a listpack/ziplist element (text or integer)."""
    if isinstance(raw, int):
        return float(raw)
    try:
        return float(raw)
    except ValueError:
        raise BlobError(f"bad sorted set score {raw!r}") from None


def zset_pairs(items: list[bytes | int], what: str) -> list[tuple[bytes, float]]:
    if len(items) % 2:
        raise BlobError(f"{what} has an odd number of elements")
    out: list[tuple[bytes, float]] = []
    for i in range(0, len(items), 2):
        m = items[i]
        out.append((b"%d" % m if isinstance(m, int) else m, parse_score(items[i + 1])))
    return out
