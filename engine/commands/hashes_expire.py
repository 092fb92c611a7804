"""The active expiry job of hash fields (src/db.c dbReclaimExpiredFields, src/expire.c
activeExpireCycle FIELDS job; spec valkey9.md 1.7).

How this works: every TTL given to a field pushes (expiry ms, key) on the db's ``field_heap``
(stale entries allowed) and puts the key in ``volatile_keys`` (Valkey's
keys_with_volatile_items). The job pops the due entries, deletes the hash's fields whose expiry
is before now, in expiry order, propagates ``HDEL key f...`` in batches of at most 1024 and,
when the hash became empty, ``UNLINK``/``DEL key``; each batch is its own execution unit.
Whenever a popped hash keeps volatile fields, (its earliest expiry, key) is pushed back, so a
hash loaded with TTLs needs only one entry.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

from engine.commands.hashes import delete_field
from engine.commands.hashes_ttl import EXPIRE_BULK_LIMIT
from engine.context import ClientState, Ctx, Effect
from engine.types.hashes import Hash

if TYPE_CHECKING:
    from engine.engine import Engine

_INTERNAL = ClientState(id=0)


def active_expire_fields(engine: Engine, max_fields: int) -> list[list[Effect]]:
    """Reclaim due hash fields (src/db.c dbReclaimExpiredFields): for each due hash, HDEL the
    expired fields in batches of <= 1024, ``UNLINK``/``DEL`` the key when it becomes empty, each
    batch its own execution unit (MULTI/EXEC around HDEL + UNLINK, observed). At most
    ``max_fields`` fields per database per call. Returns the units' effects."""
    units: list[list[Effect]] = []
    now = engine.clock.now_ms()
    ks = engine.keyspace
    for db in ks.dbs:
        heap = db.field_heap
        budget = max_fields
        while heap and budget > 0:
            ms, key = heap[0]
            if ms >= now:  # due when now > expiry
                break
            heapq.heappop(heap)
            h = db.data.get(key)
            if type(h) is not Hash or not h.expires:
                continue
            due = sorted((e, f) for f, e in h.expires.items() if e < now)
            if not due:  # a stale entry: the TTL changed since
                heapq.heappush(heap, (min(h.expires.values()), key))
                continue
            if len(due) > budget:
                due = due[:budget]
                heapq.heappush(heap, (ms, key))  # come back for the rest
            budget -= len(due)
            fields = [f for _, f in due]
            for i in range(0, len(fields), EXPIRE_BULK_LIMIT):
                batch = fields[i : i + EXPIRE_BULK_LIMIT]
                ctx = Ctx(engine, _INTERNAL, now)
                ctx.db = db
                for f in batch:
                    delete_field(h, f)
                ks.stats_expired_fields += len(batch)
                ctx.also([b"HDEL", key, *batch])
                ctx.notify("x", b"hexpired", key)
                if not h.data:
                    db.delete(key)
                    ctx.also([b"UNLINK" if ks.lazyfree_lazy_expire else b"DEL", key])
                    ctx.notify("g", b"del", key)
                ctx.modified(key)
                effects = ctx.effects
                if len(effects) > 1:
                    effects = [(-1, [b"MULTI"]), *effects, (-1, [b"EXEC"])]
                units.append(effects)
            if h.expires:
                heapq.heappush(heap, (min(h.expires.values()), key))
            elif h.data:
                db.volatile_keys.discard(key)
        if len(heap) > 2 * len(db.volatile_keys) + 1024:
            _rebuild_heap(db.field_heap, db.volatile_keys, db.data)
    return units


def _rebuild_heap(heap: list[tuple[int, bytes]], keys: set[bytes], data: dict[bytes, Any]) -> None:
    heap.clear()
    for key in keys:
        h = data.get(key)
        if type(h) is Hash and h.expires:
            heap.extend((e, key) for e in set(h.expires.values()))
    heapq.heapify(heap)
