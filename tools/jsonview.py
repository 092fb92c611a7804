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
from persistence.stream_lag import group_lag

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


def stream_group_lag(s: StreamValue, g: StreamGroup) -> int | None:
    """XINFO's ``lag`` of a group (src/t_stream.c streamReplyWithCGLag, shared with the engine)."""
    return group_lag(
        s.entries_added, s.length, _t(s.first_id), _t(s.last_id), _t(s.max_deleted_id),
        _t(g.last_id), g.entries_read,
    )  # fmt: skip


def _t(sid: StreamID) -> tuple[int, int]:
    return (sid.ms, sid.seq)


def records_to_json(records: list[KeyRecord], *, with_encoding: bool = True) -> list[JSON]:
    ordered = sorted(records, key=lambda r: (r.db, r.key))
    return [record_to_json(r, with_encoding=with_encoding) for r in ordered]
