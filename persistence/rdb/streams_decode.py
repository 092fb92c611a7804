"""Streams in RDB: STREAM_LISTPACKS (15, v1), _2 (19) and _3 (21), and their listpack entries.

RDB layout (src/rdb.c rdbSaveObject / rdbLoadObject): len node count; per node an RDB string
master ID (16 bytes, ms and seq big-endian) and an RDB string listpack; len length; len last-id
ms, seq; [v2+: first-id ms, seq, max-deleted-id ms, seq, entries-added]; len group count; per
group: name, last-id ms, seq, [v2+: entries-read], global PEL (len n; n x raw 16-byte ID,
int64 LE delivery time, len delivery count), consumers (len n; n x name, int64 LE seen time,
[v3: int64 LE active time], len n x raw 16-byte ID of its PEL).

Listpack of one node (src/t_stream.c, comment at the top): the master entry
``count, deleted, num-fields, field-1 .. field-N, 0`` then per entry
``flags, ms-diff, seq-diff,`` then either the N values (flag SAMEFIELDS) or
``num-fields, field-1, value-1, ..`` and finally ``lp-count``. IDs are relative to the master ID.
Entries flagged DELETED are skipped.
"""

from __future__ import annotations

import struct

from persistence.rdb import constants as C
from persistence.rdb.cursor import LEN_64_MAX, Cursor
from persistence.rdb.decode import BlobError, lp_items
from persistence.records import (
    StreamConsumer,
    StreamGroup,
    StreamID,
    StreamPending,
    StreamValue,
)

STREAM_ITEM_FLAG_DELETED = 1  # src/stream.h
STREAM_ITEM_FLAG_SAMEFIELDS = 2  # src/stream.h
_id_struct = struct.Struct(">QQ")

Entry = tuple[StreamID, list[tuple[bytes, bytes]]]


def _int(x: bytes | int) -> int:
    if isinstance(x, int):
        return x
    try:
        return int(x)
    except ValueError:
        raise BlobError(f"stream listpack holds {x!r} where a number belongs") from None


def _text(x: bytes | int) -> bytes:
    return b"%d" % x if isinstance(x, int) else x


def stream_listpack_entries(master: StreamID, blob: bytes) -> list[Entry]:
    """The live entries of one stream node listpack (raises BlobError on a corrupt one)."""
    els = lp_items(blob)
    if not els:
        raise BlobError("Empty listpack inside stream")
    try:
        count = _int(els[0])
        deleted = _int(els[1])
        nmf = _int(els[2])
        if nmf < 0 or 3 + nmf >= len(els):
            raise BlobError("bad master entry field count")
        master_fields = [_text(f) for f in els[3 : 3 + nmf]]
        i = 3 + nmf
        if _int(els[i]) != 0:
            raise BlobError("master entry is not terminated by 0")
        i += 1
        n = len(els)
        out: list[Entry] = []
        seen_deleted = 0
        mms, mseq = master.ms, master.seq
        while i < n:
            flags = _int(els[i])
            ms = mms + _int(els[i + 1])
            seq = mseq + _int(els[i + 2])
            i += 3
            if flags & STREAM_ITEM_FLAG_SAMEFIELDS:
                vals = els[i : i + nmf]
                if len(vals) != nmf:
                    raise BlobError("entry runs past the end of the listpack")
                i += nmf
                fields = [(f, _text(v)) for f, v in zip(master_fields, vals)]
            else:
                nf = _int(els[i])
                i += 1
                kv = els[i : i + 2 * nf]
                if nf < 0 or len(kv) != 2 * nf:
                    raise BlobError("entry runs past the end of the listpack")
                i += 2 * nf
                fields = [(_text(kv[j]), _text(kv[j + 1])) for j in range(0, 2 * nf, 2)]
            _int(els[i])  # lp-count, only used to walk backwards
            i += 1
            if flags & STREAM_ITEM_FLAG_DELETED:
                seen_deleted += 1
            else:
                out.append((StreamID(ms, seq), fields))
    except IndexError:
        raise BlobError("stream entry runs past the end of the listpack") from None
    if count != len(out) or deleted != seen_deleted:
        raise BlobError(
            f"master entry counts {count} live / {deleted} deleted entries, "
            f"found {len(out)} / {seen_deleted}"
        )
    return out


def _sid(cur: Cursor) -> StreamID:
    ms = cur.length()
    return StreamID(ms, cur.length())


def load_stream(cur: Cursor, t: int) -> StreamValue:
    entries: list[Entry] = []
    for _ in range(cur.length()):
        kpos = cur.pos
        key = cur.string()
        if len(key) != 16:
            raise cur.error("Stream node key entry is not the size of a stream ID", kpos)
        ms, seq = _id_struct.unpack(key)
        bpos = cur.pos
        blob = cur.string()
        try:
            entries.extend(stream_listpack_entries(StreamID(ms, seq), blob))
        except BlobError as e:
            raise cur.error(f"Stream listpack integrity check failed: {e}", bpos) from None
    length = cur.length()
    last_id = _sid(cur)
    if t >= C.TYPE_STREAM_LISTPACKS_2:
        first_id = _sid(cur)
        max_deleted = _sid(cur)
        entries_added = cur.length()
    else:
        # src/rdb.c: v1 has no such fields; Valkey derives them (streamGetEdgeID for first-id)
        first_id = entries[0][0] if entries else StreamID(0, 0)
        max_deleted = StreamID(0, 0)
        entries_added = length
    groups: list[StreamGroup] = []
    for _ in range(cur.length()):
        name = cur.string()
        gid = _sid(cur)
        entries_read = -1  # SCG_INVALID_ENTRIES_READ (src/stream.h)
        if t >= C.TYPE_STREAM_LISTPACKS_2:
            entries_read = cur.length()
            if entries_read == LEN_64_MAX:
                entries_read = -1
        pel: list[StreamPending] = []
        by_id: dict[tuple[int, int], StreamPending] = {}
        for _ in range(cur.length()):
            ms, seq = cur.stream_id()
            nack = StreamPending(StreamID(ms, seq), b"", cur.i64le(), cur.length())
            pel.append(nack)
            by_id[(ms, seq)] = nack
        consumers: list[StreamConsumer] = []
        for _ in range(cur.length()):
            cname = cur.string()
            seen = cur.i64le()
            active = cur.i64le() if t >= C.TYPE_STREAM_LISTPACKS_3 else -1
            cpel: list[StreamID] = []
            for _ in range(cur.length()):
                ppos = cur.pos
                raw = cur.stream_id()
                found = by_id.get(raw)
                if found is None:
                    raise cur.error("Consumer entry not found in group global PEL", ppos)
                found.consumer = cname
                cpel.append(found.id)
            consumers.append(StreamConsumer(cname, seen, active, cpel))
        groups.append(StreamGroup(name, gid, entries_read, pel, consumers))
    return StreamValue(
        entries=entries,
        length=length,
        last_id=last_id,
        first_id=first_id,
        max_deleted_id=max_deleted,
        entries_added=entries_added,
        groups=groups,
    )


def skip_stream(cur: Cursor, t: int) -> None:
    """Step over a stream value without decoding its listpacks."""
    sk = cur.skip_string
    ln = cur.length
    for _ in range(ln()):
        sk()
        sk()
    ln()
    ln()
    ln()
    if t >= C.TYPE_STREAM_LISTPACKS_2:
        for _ in range(5):
            ln()
    for _ in range(ln()):
        sk()
        ln()
        ln()
        if t >= C.TYPE_STREAM_LISTPACKS_2:
            ln()
        for _ in range(ln()):
            cur.skip(24)
            ln()
        for _ in range(ln()):
            sk()
            cur.skip(16 if t >= C.TYPE_STREAM_LISTPACKS_3 else 8)
            cur.skip(16 * ln())
