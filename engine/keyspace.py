"""Numbered databases of keys, key TTLs with lazy and active expiry, WATCH bookkeeping.

How this works: a :class:`Database` is two dicts, ``data`` (key -> value object) and ``expires``
(key -> absolute ms), as in Valkey. A key is expired when ``now > expire`` (src/db.c
keyIsExpired). Lookups through :meth:`Database.lookup` delete an expired key on access and
propagate ``UNLINK`` (``lazyfree-lazy-expire yes``, the Valkey 9 default) in the current unit;
while loading, nothing expires. Active expiry uses a heap of (expire ms, key) per database with
lazy removal of stale entries, so each cycle touches only keys that are really due.
Hash fields with TTLs keep their own heap of (earliest field expiry, key), fed by the hash type.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from engine.errors import WRONGTYPE, CommandError
from engine.types.base import BY_CLASS, type_info
from engine.types.hashes import Hash
from engine.types.strings import encoding as string_encoding
from persistence.crc import key_slot
from persistence.records import KeyRecord, StringRecords, StringValue

if TYPE_CHECKING:
    from engine.context import ClientState, Ctx


class Database:
    __slots__ = (
        "data",
        "expires",
        "field_heap",
        "heap",
        "id",
        "keyspace",
        "slot_keys",
        "volatile_keys",
    )

    def __init__(self, db_id: int, keyspace: Keyspace) -> None:
        self.id = db_id
        self.keyspace = keyspace
        self.data: dict[bytes, Any] = {}
        self.expires: dict[bytes, int] = {}
        self.heap: list[tuple[int, bytes]] = []  # (expire ms, key), stale entries allowed
        # hashes that have volatile fields (Valkey's keys_with_volatile_items), maintained by
        # the hash type, and a heap of (earliest field expiry, key) for the active field job
        self.volatile_keys: set[bytes] = set()
        self.field_heap: list[tuple[int, bytes]] = []
        # cluster mode only: slot -> its keys in this db, in insertion order (Valkey's per-slot
        # kvstore dicts), for CLUSTER COUNTKEYSINSLOT / GETKEYSINSLOT / FLUSHSLOT and migration
        self.slot_keys: dict[int, dict[bytes, None]] | None = None

    def __len__(self) -> int:
        """The keys clients can see: imported keys of hidden slots do not count (spec 3.10)."""
        hidden = self.keyspace.hidden_slots
        if hidden and self.slot_keys is not None:
            keys = self.slot_keys
            return len(self.data) - sum(len(keys.get(s, ())) for s in hidden)
        return len(self.data)

    def visible(self, key: bytes) -> bool:
        """False for a key of a slot being imported (hidden from KEYS, SCAN, RANDOMKEY)."""
        hidden = self.keyspace.hidden_slots
        return not hidden or key_slot(key) not in hidden

    # -- lookups --------------------------------------------------------------------------
    def lookup(self, ctx: Ctx, key: bytes) -> Any:
        """The value of ``key`` or None; an expired key is deleted here (lazy expiry)."""
        value = self.data.get(key)
        if value is None:
            return None
        exp = self.expires.get(key)
        if exp is not None and ctx.now_ms > exp and not ctx.engine.loading:
            self.expire_key(ctx, key)
            return None
        return value

    def lookup_as(self, ctx: Ctx, key: bytes, cls: type) -> Any:
        """Like :meth:`lookup`, but WRONGTYPE unless the value is a ``cls``."""
        value = self.lookup(ctx, key)
        if value is not None and type(value) is not cls:
            raise CommandError(WRONGTYPE)
        return value

    def exists(self, ctx: Ctx, key: bytes) -> bool:
        return self.lookup(ctx, key) is not None

    # -- writes ---------------------------------------------------------------------------
    def set(self, key: bytes, value: Any, *, keep_ttl: bool = False) -> None:
        """Store ``value`` (overwriting); the old TTL goes unless ``keep_ttl`` (setKey)."""
        old = self.data.get(key)
        if old is not None and old is not value:
            self._forget(key, old)
        elif old is None and self.slot_keys is not None:
            self._index(key)
        self.data[key] = value
        if not keep_ttl and key in self.expires:
            del self.expires[key]
        if type(value) is Hash and value.expires:
            self.track_fields(key, min(value.expires.values()))

    def add(self, key: bytes, value: Any) -> None:
        """Store a new key (the caller checked it does not exist)."""
        self.data[key] = value
        if self.slot_keys is not None:
            self._index(key)
        if type(value) is Hash and value.expires:
            self.track_fields(key, min(value.expires.values()))

    def delete(self, key: bytes) -> bool:
        value = self.data.pop(key, None)
        if value is None:
            return False
        self.expires.pop(key, None)
        self._forget(key, value)
        if self.slot_keys is not None:
            slot = key_slot(key)
            keys = self.slot_keys[slot]
            del keys[key]
            if not keys:
                del self.slot_keys[slot]
        return True

    def _index(self, key: bytes) -> None:
        assert self.slot_keys is not None
        slot = key_slot(key)
        keys = self.slot_keys.get(slot)
        if keys is None:
            keys = self.slot_keys[slot] = {}
        keys[key] = None

    def keys_in_slot(self, slot: int) -> dict[bytes, None]:
        """The keys of ``slot`` in this db (cluster mode; empty otherwise)."""
        if self.slot_keys is None:
            return {}
        return self.slot_keys.get(slot, {})

    def _forget(self, key: bytes, value: Any) -> None:
        if key in self.volatile_keys:
            self.volatile_keys.discard(key)

    def track_fields(self, key: bytes, when_ms: int) -> None:
        """The hash at ``key`` has a field expiring at ``when_ms``: index it for the active
        field expiry job (Valkey's keys_with_volatile_items; stale heap entries allowed).
        Keys of hidden slots stay out of the heap until :meth:`Keyspace.unhide_slots`."""
        self.volatile_keys.add(key)
        if self.keyspace.hidden_slots and key_slot(key) in self.keyspace.hidden_slots:
            self.keyspace.hidden_volatile.append((self.id, key))
            return
        heapq.heappush(self.field_heap, (when_ms, key))

    def set_expire(self, key: bytes, when_ms: int) -> None:
        self.expires[key] = when_ms
        if self.keyspace.hidden_slots and key_slot(key) in self.keyspace.hidden_slots:
            # active expiry skips imported keys (spec 3.10): indexed when unhidden
            self.keyspace.hidden_volatile.append((self.id, key))
            return
        heapq.heappush(self.heap, (when_ms, key))
        if len(self.heap) > 2 * len(self.expires) + 1024:
            self.heap = [(ms, k) for k, ms in self.expires.items()]
            heapq.heapify(self.heap)

    def get_expire(self, key: bytes) -> int | None:
        return self.expires.get(key)

    def persist(self, key: bytes) -> bool:
        return self.expires.pop(key, None) is not None

    def expire_key(self, ctx: Ctx, key: bytes) -> None:
        """Delete an expired key and propagate it (src/db.c deleteExpiredKeyAndPropagate)."""
        self.delete(key)
        ks = self.keyspace
        ks.stats_expired_keys += 1
        ctx.notify("x", b"expired", key, self.id)
        ctx.modified(key, self.id)
        ctx.also([b"UNLINK" if ks.lazyfree_lazy_expire else b"DEL", key], self.id)

    def due_keys(self, now_ms: int, limit: int) -> list[bytes]:
        """Up to ``limit`` keys whose TTL passed (``now > expire``), popped from the heap."""
        heap = self.heap
        out: list[bytes] = []
        expires = self.expires
        while heap and len(out) < limit:
            ms, key = heap[0]
            if ms >= now_ms:
                break
            heapq.heappop(heap)
            if expires.get(key) == ms and self.visible(key):
                out.append(key)
        return out

    def clear(self) -> int:
        n = len(self.data)
        self.data.clear()
        self.expires.clear()
        self.heap.clear()
        self.volatile_keys.clear()
        self.field_heap.clear()
        if self.slot_keys is not None:
            self.slot_keys.clear()
        return n

    # -- records --------------------------------------------------------------------------
    def record(self, key: bytes) -> KeyRecord:
        """One key as a record (the key must exist)."""
        value = self.data[key]
        info = type_info(value)
        return KeyRecord(
            self.id, key, info.to_record(value), self.expires.get(key), info.encoding(value)
        )

    def slot_records(self, slot: int) -> Iterator[KeyRecord]:
        """The records of ``slot``'s keys in this db (cluster mode), in index order."""
        for key in list(self.keys_in_slot(slot)):
            yield self.record(key)

    def records(self) -> Iterator[KeyRecord]:
        expires = self.expires
        for key, value in self.data.items():
            if type(value) is bytes:  # strings: the commonest, without the registry calls
                yield KeyRecord(
                    self.id, key, StringValue(value), expires.get(key), string_encoding(value)
                )
                continue
            info = type_info(value)
            yield KeyRecord(
                self.id, key, info.to_record(value), expires.get(key), info.encoding(value)
            )

    def load_record(self, rec: KeyRecord) -> None:
        info = _BY_RECORD[type(rec.value)]
        self.set(rec.key, info.from_record(rec.value))
        if rec.expire_at_ms is not None:
            self.set_expire(rec.key, rec.expire_at_ms)

    def load_strings(
        self, keys: list[bytes], values: list[bytes], expires: list[tuple[int, int]]
    ) -> None:
        """A run of string keys (``StringRecords``): what ``load_record`` of each, in order,
        leaves, in one dict update (strings are plain bytes in the keyspace)."""
        data = self.data
        before = len(data)
        data.update(zip(keys, values))
        if len(data) - before != len(keys):
            # a key already there or repeated in the run: set() dropped its TTL and its volatile
            # fields; only the last record of a key decides its TTL
            last = {k: i for i, k in enumerate(keys)}
            for k in last:
                self.expires.pop(k, None)
                self.volatile_keys.discard(k)
            expires = [(i, ms) for i, ms in expires if last[keys[i]] == i]
        if self.slot_keys is not None:
            for k in keys:
                self._index(k)
        for i, ms in expires:
            self.set_expire(keys[i], ms)


_BY_RECORD: dict[type, Any] = {}


def _index_record_types() -> None:
    from persistence import records as r

    names = {"string": r.StringValue, "list": r.ListValue, "set": r.SetValue,
             "zset": r.ZSetValue, "hash": r.HashValue, "stream": r.StreamValue}  # fmt: skip
    for info in BY_CLASS.values():
        _BY_RECORD[names[info.name]] = info


class Keyspace:
    def __init__(self, databases: int = 16) -> None:
        self.dbs = [Database(i, self) for i in range(databases)]
        self.watchers: dict[tuple[int, bytes], set[ClientState]] = {}
        self.lazyfree_lazy_expire = True  # Valkey 9 default
        self.stats_expired_keys = 0
        self.stats_expired_fields = 0
        # slots being imported by an atomic slot migration (spec 3.10): their keys exist but
        # are not counted, listed or actively expired until the slots are ours (or dropped)
        self.hidden_slots: set[int] = set()
        self.hidden_volatile: list[tuple[int, bytes]] = []  # (db, key) with TTLs, not indexed

    def enable_slot_index(self) -> None:
        """Cluster mode: keep a per-slot key index in every db (Database.slot_keys)."""
        for db in self.dbs:
            if db.slot_keys is None:
                db.slot_keys = {}
                for key in db.data:
                    db._index(key)

    def hide_slots(self, ranges: Iterable[tuple[int, int]]) -> None:
        for s, e in ranges:
            self.hidden_slots.update(range(s, e + 1))

    def unhide_slots(self, ranges: Iterable[tuple[int, int]]) -> None:
        """The slots become visible: their keys with TTLs join the active-expiry heaps (only
        those: the cost does not grow with the number of keys)."""
        slots = {x for s, e in ranges for x in range(s, e + 1) if x in self.hidden_slots}
        self.hidden_slots.difference_update(slots)
        keep: list[tuple[int, bytes]] = []
        for db_id, key in self.hidden_volatile:
            if key_slot(key) not in slots:
                keep.append((db_id, key))
                continue
            db = self.dbs[db_id]
            exp = db.expires.get(key)
            if exp is not None:
                heapq.heappush(db.heap, (exp, key))
            value = db.data.get(key)
            if type(value) is Hash and value.expires:
                heapq.heappush(db.field_heap, (min(value.expires.values()), key))
        self.hidden_volatile = keep

    def count_keys_in_slot(self, slot: int) -> int:
        """countKeysInSlot (src/cluster.c): over every db."""
        return sum(len(db.keys_in_slot(slot)) for db in self.dbs)

    # -- WATCH ----------------------------------------------------------------------------
    def watch(self, client: ClientState, db: int, key: bytes) -> None:
        self.watchers.setdefault((db, key), set()).add(client)
        client.watched.add((db, key))

    def unwatch_all(self, client: ClientState) -> None:
        for dk in client.watched:
            ws = self.watchers.get(dk)
            if ws is not None:
                ws.discard(client)
                if not ws:
                    del self.watchers[dk]
        client.watched.clear()
        client.dirty_cas = False

    def touch_watched(self, db: int, key: bytes) -> None:
        if self.watchers:
            ws = self.watchers.get((db, key))
            if ws:
                for c in ws:
                    c.dirty_cas = True

    def touch_all_watched(self, db: int | None = None) -> None:
        """FLUSHDB/FLUSHALL/SWAPDB: every watched key of ``db`` (None = all) is touched."""
        for (wdb, _), ws in self.watchers.items():
            if db is None or wdb == db:
                for c in ws:
                    c.dirty_cas = True

    # -- records --------------------------------------------------------------------------
    def records(self) -> Iterator[KeyRecord]:
        for db in self.dbs:
            yield from db.records()

    def load_record(self, rec: KeyRecord) -> None:
        if not _BY_RECORD:
            _index_record_types()
        if not 0 <= rec.db < len(self.dbs):
            # src/rdb.c: "FATAL: Data file was created with a Valkey server configured to handle
            # more than N databases. Exiting"
            raise DatabaseCountError(rec.db, len(self.dbs))
        self.dbs[rec.db].load_record(rec)

    def load_strings(self, run: StringRecords) -> None:
        """A ``StringRecords`` run from a reader (``string_runs=True``)."""
        if not 0 <= run.db < len(self.dbs):
            raise DatabaseCountError(run.db, len(self.dbs))
        self.dbs[run.db].load_strings(run.keys, run.values, run.expires)


class DatabaseCountError(Exception):
    def __init__(self, db: int, databases: int) -> None:
        super().__init__(
            f"Data file was created with a Valkey server configured to handle more than "
            f"{databases} databases (key in db {db}). Exiting"
        )
