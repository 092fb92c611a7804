"""Records as JSON: the schema of the fixtures' ``expected.json`` (shared/fixtures/README.md).

One object per key: ``db``, ``key``, ``type``, ``encoding`` (when known), ``expire_at_ms``,
``value``; hashes add ``field_expire_at_ms``, streams ``stream_meta`` and ``stream_groups``. Bytes
that are valid UTF-8 become JSON strings, others ``{"base64": ...}``. Strings longer than
:data:`BIG_STRING` also carry ``value_len`` and ``value_sha256`` (as the fixtures do), so a reader
can compare without the value. Collections are printed in a canonical order: sets and hash fields
sorted by bytes, sorted sets by (score, member), streams by ID.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from persistence.format import d2string
from persistence.records import (
    HashValue,
    KeyRecord,
    ListValue,
    SetValue,
    StreamGroup,
    StreamID,
    StreamValue,
    StringValue,
    ZSetValue,
)

BIG_STRING = 1024  # our choice: the fixtures mark strings of 3000+ bytes, and none of 34..2999
JSON = dict[str, Any]


def text(b: bytes) -> str | dict[str, str]:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(b).decode("ascii")}


def untext(v: str | dict[str, str]) -> bytes:
    if isinstance(v, dict):
        return base64.b64decode(v["base64"])
    return v.encode("utf-8")


def record_to_json(rec: KeyRecord, *, with_encoding: bool = True) -> JSON:
    out: JSON = {"db": rec.db, "key": text(rec.key), "type": rec.type_name}
    if with_encoding and rec.encoding:
        out["encoding"] = rec.encoding
    out["expire_at_ms"] = rec.expire_at_ms
    v = rec.value
    if isinstance(v, StringValue):
        out["value"] = text(v.value)
        if len(v.value) > BIG_STRING:
            out["value_len"] = len(v.value)
            out["value_sha256"] = hashlib.sha256(v.value).hexdigest()
    elif isinstance(v, ListValue):
        out["value"] = [text(x) for x in v.items]
    elif isinstance(v, SetValue):
        out["value"] = [text(x) for x in sorted(v.members)]
    elif isinstance(v, ZSetValue):
        items = sorted(v.items, key=lambda it: (it[1], it[0]))
        out["value"] = [[text(m), d2string(s).decode()] for m, s in items]
    elif isinstance(v, HashValue):
        out["value"] = [[text(f), text(x)] for f, x in sorted(v.items)]
        out["field_expire_at_ms"] = [[text(f), ms] for f, ms in sorted(v.expires.items())]
    elif isinstance(v, StreamValue):
        out["value"] = [
            [str(sid), [[text(f), text(x)] for f, x in fields]] for sid, fields in v.entries
        ]
        out["stream_meta"] = {
            "length": v.length,
            "last-generated-id": str(v.last_id),
            "max-deleted-entry-id": str(v.max_deleted_id),
            "entries-added": v.entries_added,
            "recorded-first-entry-id": str(v.first_id),
        }
        out["stream_groups"] = [_group_json(v, g) for g in v.groups]
    return out


def _group_json(s: StreamValue, g: StreamGroup) -> JSON:
    return {
        "name": text(g.name),
        "last_delivered_id": str(g.last_id),
        "entries_read": g.entries_read if g.entries_read >= 0 else None,
        "lag": stream_group_lag(s, g),
        "pel": [[str(p.id), text(p.consumer), p.delivery_time_ms, p.delivery_count] for p in g.pel],
        "consumers": [
            {
                "name": text(c.name),
                "seen_time_ms": c.seen_time_ms,
                "active_time_ms": c.active_time_ms,
                "pel": [[str(pid), *_pel_times(g, pid)] for pid in c.pel],
            }
            for c in g.consumers
        ],
    }


def _pel_times(g: StreamGroup, pid: StreamID) -> list[int]:
    for p in g.pel:
        if p.id == pid:
            return [p.delivery_time_ms, p.delivery_count]
    return [0, 0]


_ZERO = StreamID(0, 0)
_MAX = StreamID(2**64 - 1, 2**64 - 1)


def _has_tombstones(s: StreamValue, start: StreamID) -> bool:
    # src/t_stream.c streamRangeHasTombstones (end = max)
    if not s.length or s.max_deleted_id == _ZERO:
        return False
    if s.first_id > s.max_deleted_id:
        return False
    return start <= s.max_deleted_id <= _MAX


def _estimate_distance(s: StreamValue, sid: StreamID) -> int | None:
    # src/t_stream.c streamEstimateDistanceFromFirstEverEntry; None = SCG_INVALID_ENTRIES_READ
    if not s.entries_added:
        return 0
    if not s.length and sid <= s.last_id:
        return s.entries_added
    if sid == s.last_id:
        return s.entries_added
    if sid > s.last_id:
        return None
    if s.max_deleted_id == _ZERO or s.max_deleted_id < s.first_id:
        if sid < s.first_id:
            return s.entries_added - s.length
        if sid == s.first_id:
            return s.entries_added - s.length + 1
    return None


def stream_group_lag(s: StreamValue, g: StreamGroup) -> int | None:
    """XINFO's ``lag`` of a group (src/t_stream.c streamReplyWithCGLag)."""
    if not s.entries_added:
        return 0
    if g.entries_read >= 0 and not _has_tombstones(s, g.last_id):
        return s.entries_added - g.entries_read
    read = _estimate_distance(s, g.last_id)
    return None if read is None else s.entries_added - read


def records_to_json(records: list[KeyRecord], *, with_encoding: bool = True) -> list[JSON]:
    ordered = sorted(records, key=lambda r: (r.db, r.key))
    return [record_to_json(r, with_encoding=with_encoding) for r in ordered]
