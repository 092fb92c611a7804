"""RDB encoding primitives for writing: lengths, strings, doubles, listpacks, intsets, stream nodes.

Everything here is a pure function from Python values to the exact bytes Valkey 9.1 writes:
``rdbSaveLen``/``rdbSaveRawString`` (src/rdb.c), ``lpAppend``/``lpAppendInteger`` (src/listpack.c),
``intsetAdd`` (src/intset.c) and ``streamAppendItem`` (src/t_stream.c). The writer and the DUMP
payload builder compose these; nothing here knows about files.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Sequence

from persistence.format import d2string, double_to_int
from persistence.rdb import lzf
from persistence.records import StreamID

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
LONG_STR_SIZE = 21  # src/util.h: string2ll / lpStringToInt64 reject 21+ bytes

_CANONICAL_INT = re.compile(rb"(?:0|-?[1-9][0-9]*)\Z")


def canonical_int(s: bytes) -> int | None:
    """The int64 ``s`` spells in canonical decimal (strict string2ll, src/util.c), else None."""
    if not s or len(s) >= LONG_STR_SIZE or _CANONICAL_INT.match(s) is None:
        return None
    v = int(s)
    if v < INT64_MIN or v > INT64_MAX:
        return None
    return v


# ---- RDB lengths, strings, numbers ----------------------------------------------------------


def encode_length(n: int) -> bytes:
    """rdbSaveLen (src/rdb.c): 6-bit, 14-bit, 32-bit big-endian or 64-bit big-endian."""
    if n < 0:
        n &= (1 << 64) - 1  # rdbSaveLen takes uint64_t: -1 (SCG_INVALID_ENTRIES_READ) wraps
    if n < 1 << 6:
        return bytes((n,))
    if n < 1 << 14:
        return bytes((0x40 | (n >> 8), n & 0xFF))
    if n <= 0xFFFFFFFF:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def encode_int_string(v: int) -> bytes | None:
    """rdbEncodeInteger (src/rdb.c): INT8/INT16/INT32 special encodings, None if out of range."""
    if -(1 << 7) <= v < 1 << 7:
        return b"\xc0" + struct.pack("<b", v)
    if -(1 << 15) <= v < 1 << 15:
        return b"\xc1" + struct.pack("<h", v)
    if -(1 << 31) <= v < 1 << 31:
        return b"\xc2" + struct.pack("<i", v)
    return None


LEN6 = [bytes((n,)) for n in range(64)]  # 6-bit lengths, the commonest prefix
INT_FIRST = b"-0123456789"


def encode_string(s: bytes, *, compress: bool = True) -> bytes:
    """rdbSaveRawString (src/rdb.c): integer form, else LZF (len > 20, saves >= 4), else raw."""
    n = len(s)
    if n <= 11 and n and s[0] in INT_FIRST:
        v = canonical_int(s)
        if v is not None:
            enc = encode_int_string(v)
            if enc is not None:
                return enc
    if compress and n > 20:
        # rdbSaveLzfStringObject: the output buffer is len - 4 bytes, so keep it only if it fits.
        packed = lzf.compress(s)
        if packed is not None and len(packed) <= n - 4:
            return b"\xc3" + encode_length(len(packed)) + encode_length(n) + packed
    if n < 64:
        return LEN6[n] + s
    return encode_length(n) + s


def encode_millis(ms: int) -> bytes:
    """rdbSaveMillisecondTime (src/rdb.c): int64 little-endian."""
    return struct.pack("<q", ms)


def encode_binary_double(d: float) -> bytes:
    """rdbSaveBinaryDoubleValue (src/rdb.c): IEEE-754 binary64, little-endian."""
    return struct.pack("<d", d)


def encode_stream_id(sid: StreamID) -> bytes:
    """Stream IDs as rax keys: ms and seq as big-endian uint64 (src/t_stream.c streamEncodeID)."""
    return struct.pack(">QQ", sid.ms, sid.seq)


# ---- doubles as text (zset listpack scores) ------------------------------------------------


def zset_score_item(score: float) -> bytes | int:
    """What zzlInsertAt (src/t_zset.c) appends for a score: an integer if exact, else d2string."""
    i = double_to_int(score)
    return i if i is not None else d2string(score)


# ---- listpack ------------------------------------------------------------------------------

LP_HDR_SIZE = 6
LP_EOF = 0xFF
LP_HDR_NUMELE_UNKNOWN = 0xFFFF


def _lp_encode_int(v: int) -> bytes:
    """lpEncodeIntegerGetType (src/listpack.c)."""
    if 0 <= v <= 127:
        return bytes((v,))
    if -4096 <= v <= 4095:
        u = v + (1 << 13) if v < 0 else v
        return bytes((0xC0 | (u >> 8), u & 0xFF))
    if -32768 <= v <= 32767:
        return b"\xf1" + struct.pack("<h", v)
    if -8388608 <= v <= 8388607:
        return b"\xf2" + (v & 0xFFFFFF).to_bytes(3, "little")
    if -2147483648 <= v <= 2147483647:
        return b"\xf3" + struct.pack("<i", v)
    return b"\xf4" + struct.pack("<q", v)


def _lp_encode_str(s: bytes) -> bytes:
    """lpEncodeString (src/listpack.c): 6-bit, 12-bit or 32-bit length strings."""
    n = len(s)
    if n < 64:
        return bytes((0x80 | n,)) + s
    if n < 4096:
        return bytes((0xE0 | (n >> 8), n & 0xFF)) + s
    return b"\xf0" + struct.pack("<I", n) + s


def lp_backlen(n: int) -> bytes:
    """lpEncodeBacklen (src/listpack.c): 7 bits a byte, high group first; note the `<` bounds."""
    if n <= 127:
        return bytes((n,))
    if n < 16383:
        return bytes((n >> 7, (n & 127) | 128))
    if n < 2097151:
        return bytes((n >> 14, ((n >> 7) & 127) | 128, (n & 127) | 128))
    if n < 268435455:
        return bytes((n >> 21, ((n >> 14) & 127) | 128, ((n >> 7) & 127) | 128, (n & 127) | 128))
    return bytes(
        (
            (n >> 28) & 0xFF,
            ((n >> 21) & 127) | 128,
            ((n >> 14) & 127) | 128,
            ((n >> 7) & 127) | 128,
            (n & 127) | 128,
        )
    )


def lp_entry(item: bytes | int) -> bytes:
    """One listpack entry: encoding + data + backlen.

    Strings that are canonical int64 decimals are stored as integers (lpEncodeGetType /
    lpStringToInt64, src/listpack.c), exactly as lpAppend does.
    """
    if isinstance(item, int):
        enc = _lp_encode_int(item)
    else:
        v = canonical_int(item)
        enc = _lp_encode_int(v) if v is not None else _lp_encode_str(item)
    return enc + lp_backlen(len(enc))


def lp_from_entries(entries: Sequence[bytes]) -> bytes:
    """A listpack from encoded entries (header: uint32 LE total bytes, uint16 LE count)."""
    body = b"".join(entries)
    total = LP_HDR_SIZE + len(body) + 1
    count = len(entries) if len(entries) < LP_HDR_NUMELE_UNKNOWN else LP_HDR_NUMELE_UNKNOWN
    return struct.pack("<IH", total, count) + body + bytes((LP_EOF,))


def encode_listpack(items: Iterable[bytes | int]) -> bytes:
    """A listpack holding ``items`` as lpAppend/lpAppendInteger would build it."""
    return lp_from_entries([lp_entry(i) for i in items])


# ---- intset --------------------------------------------------------------------------------


def encode_intset(values: Iterable[int]) -> bytes:
    """An intset (src/intset.c): uint32 LE encoding 2/4/8, uint32 LE count, sorted LE values.

    The encoding is the smallest that holds every value (_intsetValueEncoding).
    """
    vals = sorted(set(values))
    width = 2
    for v in (vals[0], vals[-1]) if vals else ():
        if v < -(1 << 31) or v > (1 << 31) - 1:
            width = 8
        elif (v < -(1 << 15) or v > (1 << 15) - 1) and width < 4:
            width = 4
    fmt = {2: "h", 4: "i", 8: "q"}[width]
    return struct.pack(f"<II{len(vals)}{fmt}", width, len(vals), *vals)


# ---- stream listpack nodes -----------------------------------------------------------------

STREAM_ITEM_FLAG_NONE = 0  # src/stream.h
STREAM_ITEM_FLAG_DELETED = 1
STREAM_ITEM_FLAG_SAMEFIELDS = 2
STREAM_NODE_MAX_BYTES = 4096  # stream-node-max-bytes default (src/config.c)
STREAM_NODE_MAX_ENTRIES = 100  # stream-node-max-entries default


def encode_stream_nodes(
    entries: Iterable[tuple[StreamID, Sequence[tuple[bytes, bytes]]]],
    *,
    max_bytes: int = STREAM_NODE_MAX_BYTES,
    max_entries: int = STREAM_NODE_MAX_ENTRIES,
) -> list[tuple[StreamID, bytes]]:
    """Split live stream entries into (master ID, listpack) nodes as streamAppendItem does.

    Node layout (src/t_stream.c): master entry ``count, deleted, num-fields, field..., 0``, then per
    entry ``flags, ms-diff, seq-diff, [num-fields, field, value...]|[value...], lp-count``; the
    SAMEFIELDS flag drops the field names when they equal the master entry's. A new node starts
    when ``lp_bytes + fields/values size >= max_bytes`` or the node holds ``max_entries`` entries.
    """
    nodes: list[tuple[StreamID, bytes]] = []
    master: StreamID | None = None
    master_fields: list[bytes] = []
    parts: list[bytes] = []
    parts_size = 0
    count = 0

    def head(n: int) -> list[bytes]:
        items: list[bytes | int] = [n, 0, len(master_fields), *master_fields, 0]
        return [lp_entry(x) for x in items]

    for sid, fields in entries:
        if master is not None:
            lp_bytes = LP_HDR_SIZE + sum(map(len, head(count))) + parts_size + 1
            totelelen = sum(len(f) + len(v) for f, v in fields)
            if lp_bytes + totelelen >= max_bytes or count >= max_entries:
                nodes.append((master, lp_from_entries(head(count) + parts)))
                master = None
        if master is None:
            master = sid
            master_fields = [f for f, _ in fields]
            parts = []
            parts_size = 0
            count = 0
        same = len(fields) == len(master_fields) and all(
            f == mf for (f, _), mf in zip(fields, master_fields)
        )
        flags = STREAM_ITEM_FLAG_SAMEFIELDS if same else STREAM_ITEM_FLAG_NONE
        entry = [lp_entry(flags), lp_entry(sid.ms - master.ms), lp_entry(sid.seq - master.seq)]
        if not same:
            entry.append(lp_entry(len(fields)))
        for f, v in fields:
            if not same:
                entry.append(lp_entry(f))
            entry.append(lp_entry(v))
        # lp-count: the entry's listpack elements after the flags (src/t_stream.c)
        lp_count = len(fields) + 3 + (0 if same else len(fields) + 1)
        entry.append(lp_entry(lp_count))
        parts += entry
        parts_size += sum(map(len, entry))
        count += 1
    if master is not None:
        nodes.append((master, lp_from_entries(head(count) + parts)))
    return nodes
