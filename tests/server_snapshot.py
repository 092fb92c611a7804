"""Read a live server's logical contents in the schema of the fixtures' expected.json.

The same recipe the fixtures were made with (shared/fixtures/README.md): SCAN, TYPE, PEXPIRETIME,
the value per type, HPEXPIRETIME for hash fields, XINFO STREAM FULL for streams. Works against
any server speaking RESP2 (valkey-server or ours).
"""

from __future__ import annotations

from typing import Any

import redis

from tools.jsonview import text


def _pairs(flat: list[Any]) -> dict[bytes, Any]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


class Raw:
    """Raw RESP2 replies: one connection of the client's pool, without redis-py's callbacks."""

    def __init__(self, client: redis.Redis):
        kw = {**client.connection_pool.connection_kwargs, "protocol": 2}
        self.conn = redis.Connection(**kw)

    def execute_command(self, *args: Any) -> Any:
        self.conn.send_command(*args)
        return self.conn.read_response()


def _s(b: bytes) -> str:
    return b.decode()


def snapshot(client: redis.Redis, dbs: range = range(16)) -> list[dict[str, Any]]:
    raw = Raw(client)
    out: list[dict[str, Any]] = []
    for db in dbs:
        raw.execute_command("SELECT", db)
        cursor = b"0"
        keys: list[bytes] = []
        while True:
            cursor, batch = raw.execute_command("SCAN", cursor, "COUNT", 1000)
            keys.extend(batch)
            if cursor in (b"0", 0):
                break
        for key in sorted(set(keys)):
            out.append(_key(raw, db, key))
    raw.conn.disconnect()
    return out


def _key(c: Raw, db: int, key: bytes) -> dict[str, Any]:
    typ = _s(c.execute_command("TYPE", key))
    pexp = int(c.execute_command("PEXPIRETIME", key))
    rec: dict[str, Any] = {
        "db": db,
        "key": text(key),
        "type": typ,
        "expire_at_ms": pexp if pexp >= 0 else None,
    }
    if typ == "string":
        rec["value"] = text(c.execute_command("GET", key))
    elif typ == "list":
        rec["value"] = [text(x) for x in c.execute_command("LRANGE", key, 0, -1)]
    elif typ == "set":
        rec["value"] = [text(x) for x in sorted(c.execute_command("SMEMBERS", key))]
    elif typ == "zset":
        flat = c.execute_command("ZRANGE", key, 0, -1, "WITHSCORES")
        rec["value"] = [[text(flat[i]), _s(flat[i + 1])] for i in range(0, len(flat), 2)]
    elif typ == "hash":
        flat = c.execute_command("HGETALL", key)
        fields = sorted(_pairs(flat).items())
        rec["value"] = [[text(f), text(v)] for f, v in fields]
        names = [f for f, _ in fields]
        ttls = c.execute_command("HPEXPIRETIME", key, "FIELDS", len(names), *names) if names else []
        rec["field_expire_at_ms"] = [
            [text(f), int(t)] for f, t in zip(names, ttls, strict=True) if int(t) >= 0
        ]
    elif typ == "stream":
        _stream(c, key, rec)
    return rec


def _stream(c: Raw, key: bytes, rec: dict[str, Any]) -> None:
    info = _pairs(c.execute_command("XINFO", "STREAM", key, "FULL", "COUNT", 0))
    rec["value"] = [
        [_s(sid), [[text(fv[i]), text(fv[i + 1])] for i in range(0, len(fv), 2)]]
        for sid, fv in info[b"entries"]
    ]
    rec["stream_meta"] = {
        "length": int(info[b"length"]),
        "last-generated-id": _s(info[b"last-generated-id"]),
        "max-deleted-entry-id": _s(info[b"max-deleted-entry-id"]),
        "entries-added": int(info[b"entries-added"]),
        "recorded-first-entry-id": _s(info[b"recorded-first-entry-id"]),
    }
    groups = []
    for g in info[b"groups"]:
        g = _pairs(g)
        groups.append(
            {
                "name": text(g[b"name"]),
                "last_delivered_id": _s(g[b"last-delivered-id"]),
                "entries_read": g[b"entries-read"],
                "lag": g[b"lag"],
                "pel": [[_s(i), text(cn), int(t), int(n)] for i, cn, t, n in g[b"pending"]],
                "consumers": [
                    {
                        "name": text(cc[b"name"]),
                        "seen_time_ms": int(cc[b"seen-time"]),
                        "active_time_ms": int(cc[b"active-time"]),
                        "pel": [[_s(i), int(t), int(n)] for i, t, n in cc[b"pending"]],
                    }
                    for cc in map(_pairs, g[b"consumers"])
                ],
            }
        )
    rec["stream_groups"] = groups
