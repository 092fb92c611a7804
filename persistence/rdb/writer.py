"""The RDB writer: header, AUX, functions, dbs, keys, EOF + CRC64; and the value serializer.

``encode_value`` serializes one value as Valkey 9.1 would: choose the RDB type, then encode the
payload (shared with DUMP payloads).

The encoding choice follows Valkey's defaults (src/config.c) so that a real server loads each
object in the encoding it would have chosen itself (``OBJECT ENCODING``):

* string -> type 0.
* list -> type 18 (QUICKLIST_2): one packed listpack node when the whole list fits in 8 KB
  (list-max-listpack-size -2, a listpack-encoded list), else quicklist nodes filled as
  ``quicklistPushTail`` fills them, elements over 8 KB in PLAIN nodes (src/quicklist.c
  ``isLargeElement``).
* set -> 11 intset (all canonical int64, <= 512), 20 listpack (<= 128, members <= 64 bytes), else 2.
* zset -> 17 listpack (<= 128, members <= 64 bytes; ascending), else 5 ZSET_2 (descending).
* hash -> 22 HASH_2 when a field has a TTL (RDB 80 only), 16 listpack (<= 512, <= 64 bytes), else 4.
* stream -> 21 STREAM_LISTPACKS_3.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from persistence.atomic import atomic_file
from persistence.crc import crc64, key_slot
from persistence.errors import FormatError
from persistence.rdb import constants as C
from persistence.rdb.encode import (
    INT_FIRST,
    LEN6,
    LP_HDR_SIZE,
    canonical_int,
    encode_binary_double,
    encode_intset,
    encode_length,
    encode_listpack,
    encode_millis,
    encode_stream_id,
    encode_stream_nodes,
    encode_string,
    lp_entry,
    lp_from_entries,
    zset_score_item,
)
from persistence.rdb.runs import string_record
from persistence.records import (
    HashValue,
    KeyRecord,
    ListValue,
    SetValue,
    StreamConsumer,
    StreamGroup,
    StreamID,
    StreamValue,
    StringValue,
    Value,
    ZSetValue,
)

# Valkey 9.1 defaults (src/config.c; CONFIG GET on a real 9.1.2: hash entries default is 512)
HASH_MAX_LISTPACK_ENTRIES = 512
HASH_MAX_LISTPACK_VALUE = 64
SET_MAX_INTSET_ENTRIES = 512
SET_MAX_LISTPACK_ENTRIES = 128
SET_MAX_LISTPACK_VALUE = 64
ZSET_MAX_LISTPACK_ENTRIES = 128
ZSET_MAX_LISTPACK_VALUE = 64
LIST_NODE_MAX_BYTES = 8192  # list-max-listpack-size -2 -> optimization_level[1] (src/quicklist.c)
SIZE_ESTIMATE_OVERHEAD = 8  # src/quicklist.c _quicklistNodeAllowInsert


class UnsupportedForVersion(FormatError):
    """A key that the requested RDB version cannot hold (e.g. hash field TTLs in REDIS0011)."""


def _dups(items: Sequence[bytes]) -> bool:
    return len(set(items)) != len(items)


def object_encoding(value: Value) -> str:
    """The OBJECT ENCODING a real Valkey 9.1 reports after loading what we write for ``value``.

    Exact for collections (checked against a real 9.1.2). For strings only ``int`` is exact: 9.1
    embeds values well past 44 bytes on load (embstr vs raw depends on key and allocation sizes).
    """
    if isinstance(value, StringValue):
        v = canonical_int(value.value)
        return "int" if v is not None else ("embstr" if len(value.value) <= 44 else "raw")
    if isinstance(value, ListValue):
        nodes = list_nodes(value.items)
        return "listpack" if len(nodes) == 1 and nodes[0][0] == 2 else "quicklist"
    if isinstance(value, SetValue):
        t = _set_type(value.members)
        return {C.TYPE_SET_INTSET: "intset", C.TYPE_SET_LISTPACK: "listpack"}.get(t, "hashtable")
    if isinstance(value, ZSetValue):
        return "listpack" if _zset_is_listpack(value.items) else "skiplist"
    if isinstance(value, HashValue):
        return "listpack" if _hash_type(value, 80) == C.TYPE_HASH_LISTPACK else "hashtable"
    return "stream"


def rdb_type(value: Value, version: int = C.RDB_VERSION) -> int:
    """The RDB type byte Valkey writes for ``value`` (rdbSaveObjectType, src/rdb.c)."""
    if isinstance(value, StringValue):
        return C.TYPE_STRING
    if isinstance(value, ListValue):
        return C.TYPE_LIST_QUICKLIST_2
    if isinstance(value, SetValue):
        return _set_type(value.members)
    if isinstance(value, ZSetValue):
        return C.TYPE_ZSET_LISTPACK if _zset_is_listpack(value.items) else C.TYPE_ZSET_2
    if isinstance(value, HashValue):
        return _hash_type(value, version)
    return C.TYPE_STREAM_LISTPACKS_3


def _set_type(members: Sequence[bytes]) -> int:
    n = len(members)
    if n <= SET_MAX_INTSET_ENTRIES and all(canonical_int(m) is not None for m in members):
        return C.TYPE_SET_INTSET
    if n <= SET_MAX_LISTPACK_ENTRIES and all(len(m) <= SET_MAX_LISTPACK_VALUE for m in members):
        return C.TYPE_SET_LISTPACK
    return C.TYPE_SET


def _zset_is_listpack(items: Sequence[tuple[bytes, float]]) -> bool:
    return len(items) <= ZSET_MAX_LISTPACK_ENTRIES and all(
        len(m) <= ZSET_MAX_LISTPACK_VALUE for m, _ in items
    )


def _volatile(value: HashValue) -> dict[bytes, int]:
    if not value.expires:
        return {}
    fields = {f for f, _ in value.items}
    return {f: ms for f, ms in value.expires.items() if f in fields}


def _hash_type(value: HashValue, version: int) -> int:
    if _volatile(value):
        return C.TYPE_HASH_2
    if len(value.items) <= HASH_MAX_LISTPACK_ENTRIES and all(
        len(f) <= HASH_MAX_LISTPACK_VALUE and len(v) <= HASH_MAX_LISTPACK_VALUE
        for f, v in value.items
    ):
        return C.TYPE_HASH_LISTPACK
    return C.TYPE_HASH


def is_empty(value: Value) -> bool:
    """Empty collections are never stored (Valkey deletes them; its loader skips them)."""
    if isinstance(value, ListValue):
        return not value.items
    if isinstance(value, SetValue):
        return not value.members
    if isinstance(value, ZSetValue | HashValue):
        return not value.items
    return False


def has_volatile_items(value: Value) -> bool:
    return isinstance(value, HashValue) and bool(_volatile(value))


def list_nodes(items: Sequence[bytes]) -> list[tuple[int, bytes]]:
    """Quicklist nodes (container, blob) for a list, as Valkey would hold it.

    A list that fits one listpack of at most 8 KB is listpack-encoded and saved as one packed
    node (rdbSaveObject, src/rdb.c). Otherwise: quicklistPushTail starts a new node when
    ``node bytes + element + 8 > 8192``; an element over 8192 bytes becomes a PLAIN node.
    """
    entries = [lp_entry(i) if len(i) <= LIST_NODE_MAX_BYTES else b"" for i in items]
    if all(entries) and LP_HDR_SIZE + sum(map(len, entries)) + 1 <= LIST_NODE_MAX_BYTES:
        return [(C.QUICKLIST_NODE_CONTAINER_PACKED, lp_from_entries(entries))]
    nodes: list[tuple[int, bytes]] = []
    cur: list[bytes] = []
    cur_size = LP_HDR_SIZE + 1
    for item, entry in zip(items, entries):
        if not entry:  # large element: its own plain node
            if cur:
                nodes.append((C.QUICKLIST_NODE_CONTAINER_PACKED, lp_from_entries(cur)))
                cur, cur_size = [], LP_HDR_SIZE + 1
            nodes.append((C.QUICKLIST_NODE_CONTAINER_PLAIN, item))
            continue
        if cur and cur_size + len(item) + SIZE_ESTIMATE_OVERHEAD > LIST_NODE_MAX_BYTES:
            nodes.append((C.QUICKLIST_NODE_CONTAINER_PACKED, lp_from_entries(cur)))
            cur, cur_size = [], LP_HDR_SIZE + 1
        cur.append(entry)
        cur_size += len(entry)
    if cur:
        nodes.append((C.QUICKLIST_NODE_CONTAINER_PACKED, lp_from_entries(cur)))
    return nodes


def encode_value(
    value: Value,
    *,
    version: int = C.RDB_VERSION,
    compress: bool = True,
    key: bytes = b"",
    file: str | None = None,
    offset: int | None = None,
) -> tuple[int, bytes]:
    """(type byte, payload) for ``value``; the payload is what follows the key in an RDB."""
    t = rdb_type(value, version)

    def fail(msg: str) -> FormatError:
        return FormatError(f"key {key!r}: {msg}", file=file, offset=offset)

    def s(b: bytes) -> bytes:
        return encode_string(b, compress=compress)

    if isinstance(value, StringValue):
        return t, s(value.value)
    if isinstance(value, ListValue):
        nodes = list_nodes(value.items)
        out = [encode_length(len(nodes))]
        for container, blob in nodes:
            out += [encode_length(container), s(blob)]
        return t, b"".join(out)
    if isinstance(value, SetValue):
        if _dups(value.members):
            raise fail("duplicate set members")
        if t == C.TYPE_SET_INTSET:
            return t, s(encode_intset(int(m) for m in value.members))
        if t == C.TYPE_SET_LISTPACK:
            return t, s(encode_listpack(value.members))
        return t, encode_length(len(value.members)) + b"".join(s(m) for m in value.members)
    if isinstance(value, ZSetValue):
        if any(sc != sc for _, sc in value.items):
            raise fail("sorted set with a NaN score")
        if _dups([m for m, _ in value.items]):
            raise fail("duplicate sorted set members")
        ordered = sorted(value.items, key=lambda ms: (ms[1], ms[0]))
        if t == C.TYPE_ZSET_LISTPACK:
            flat: list[bytes | int] = []
            for m, sc in ordered:
                flat += [m, zset_score_item(sc)]
            return t, s(encode_listpack(flat))
        # ZSET_2: from the skiplist tail (highest score) to the head (src/rdb.c rdbSaveObject)
        parts = [encode_length(len(ordered))]
        for m, sc in reversed(ordered):
            parts += [s(m), encode_binary_double(sc)]
        return t, b"".join(parts)
    if isinstance(value, HashValue):
        if _dups([f for f, _ in value.items]):
            raise fail("duplicate hash fields")
        if t == C.TYPE_HASH_2:
            if version < C.RDB_VERSION:
                # src/rdb.c (9.1): "Can't store key ... in RDB version %d"
                raise UnsupportedForVersion(
                    f"can't store key {key!r} in RDB version {version}: "
                    "hash field TTLs need RDB 80 (HASH_2)",
                    file=file,
                    offset=offset,
                )
            vol = _volatile(value)
            parts = [encode_length(len(value.items))]
            for f, v in value.items:
                parts += [s(f), s(v), encode_millis(vol.get(f, C.EXPIRY_NONE))]
            return t, b"".join(parts)
        if t == C.TYPE_HASH_LISTPACK:
            flat2: list[bytes | int] = []
            for f, v in value.items:
                flat2 += [f, v]
            return t, s(encode_listpack(flat2))
        parts = [encode_length(len(value.items))]
        for f, v in value.items:
            parts += [s(f), s(v)]
        return t, b"".join(parts)
    return t, _encode_stream(value, s)


def _encode_stream(value: StreamValue, s: Callable[[bytes], bytes]) -> bytes:
    """STREAM_LISTPACKS_3 (src/rdb.c rdbSaveObject): nodes, metadata, groups, PELs, consumers."""
    nodes = encode_stream_nodes(value.entries)
    out = [encode_length(len(nodes))]
    for master, lp in nodes:
        out += [s(encode_stream_id(master)), s(lp)]
    out.append(encode_length(len(value.entries)))
    for sid in (value.last_id, value.first_id, value.max_deleted_id):
        out += [encode_length(sid.ms), encode_length(sid.seq)]
    out.append(encode_length(value.entries_added))
    groups = sorted(value.groups, key=lambda g: g.name)  # rax order
    out.append(encode_length(len(groups)))
    for g in groups:
        out += [s(g.name), encode_length(g.last_id.ms), encode_length(g.last_id.seq)]
        out.append(encode_length(g.entries_read))  # -1 wraps to 2^64-1, as rdbSaveLen(uint64)
        pel = sorted(g.pel, key=lambda p: p.id)
        out.append(encode_length(len(pel)))
        for p in pel:
            out += [encode_stream_id(p.id), encode_millis(p.delivery_time_ms)]
            out.append(encode_length(p.delivery_count))
        consumers = _group_consumers(g)
        out.append(encode_length(len(consumers)))
        for c, ids in consumers:
            active = c.active_time_ms if c.active_time_ms != -1 else c.seen_time_ms
            out += [s(c.name), encode_millis(c.seen_time_ms), encode_millis(active)]
            out.append(encode_length(len(ids)))
            out += [encode_stream_id(i) for i in ids]
    return b"".join(out)


def _group_consumers(g: StreamGroup) -> list[tuple[StreamConsumer, list[StreamID]]]:
    """Consumers in name order, each with the IDs the global PEL says it owns.

    The loader resolves every consumer PEL ID in the group PEL and refuses one NACK shared by two
    consumers (src/rdb.c), so the global PEL's owner is the single source of truth.
    """
    owned: dict[bytes, set[StreamID]] = {}
    for p in g.pel:
        owned.setdefault(p.consumer, set()).add(p.id)
    by_name: dict[bytes, StreamConsumer] = {c.name: c for c in g.consumers}
    for name in owned:
        if name not in by_name:  # a PEL owner missing from the consumer list
            seen = max(p.delivery_time_ms for p in g.pel if p.consumer == name)
            by_name[name] = StreamConsumer(name, seen, seen)
    result = []
    for name in sorted(by_name):
        result.append((by_name[name], sorted(owned.get(name, ()))))
    return result


# ---- the file writer -----------------------------------------------------------------------

DEFAULT_VALKEY_VER = b"9.1.2"
SUPPORTED_VERSIONS = (C.RDB_VERSION, 11)  # VALKEY080, and REDIS0011 for Valkey 7.2/8.x, Redis 7.2
_FLUSH_AT = 1 << 20  # one write (and one CRC64 update) per MB
_pack_ms = struct.Struct("<q").pack
_STRING_HEAD = [bytes((C.TYPE_STRING, n)) for n in range(21)]  # type 0 + a 6-bit key length


@dataclass
class RdbWriteOptions:
    version: int = C.RDB_VERSION  # 80 -> "VALKEY080"; 11 -> "REDIS0011"
    compression: bool = True  # rdbcompression
    checksum: bool = True  # rdbchecksum (False writes 8 zero bytes)
    aof_base: bool = False  # AUX aof-base 1/0
    aux: dict[bytes, bytes] | None = None  # overrides/extends the default AUX fields
    cluster_slot_info: bool = False  # AUX slot-info before each slot's keys (spec 8.4)
    ctime: int | None = None  # AUX ctime; None = now


def magic_for(version: int) -> bytes:
    """rdbSaveRio (src/rdb.c): "VALKEY%03d" from RDB 80 on, "REDIS%04d" below."""
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"unsupported RDB version {version} (write 80 or 11)")
    return b"VALKEY%03d" % version if version >= 80 else b"REDIS%04d" % version


class RdbWriter:
    """Streams an RDB file: header + AUX on construction, then functions, dbs, keys, ``finish()``.

    For a db, call ``begin_db(db, keys=, expires=)`` then ``write_record`` per key (true
    streaming), or ``write_db(db, records)`` which counts the records itself when not told.
    """

    def __init__(
        self, f: BinaryIO, options: RdbWriteOptions | None = None, *, file: str = "<rdb>"
    ) -> None:
        self._f = f
        self.options = options or RdbWriteOptions()
        self.file = file
        self._buf = bytearray()
        self._crc = 0
        self._flushed = 0  # bytes written to ``f`` so far
        self._db: int | None = None
        self._slot: int | None = None
        self._finished = False
        opt = self.options
        self._raw(magic_for(opt.version))
        aux: dict[bytes, bytes] = {
            b"valkey-ver": DEFAULT_VALKEY_VER,
            b"redis-bits": b"64",
            b"ctime": str(int(time.time()) if opt.ctime is None else opt.ctime).encode(),
            b"used-mem": b"0",
            b"aof-base": b"1" if opt.aof_base else b"0",
        }
        aux.update(opt.aux or {})
        for k, v in aux.items():
            self.write_aux(k, v)

    @property
    def offset(self) -> int:
        """Bytes produced so far (flushed or not)."""
        return self._flushed + len(self._buf)

    # -- low level
    def _raw(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) >= _FLUSH_AT:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            if self.options.checksum:
                self._crc = crc64(self._buf, self._crc)
            self._f.write(self._buf)
            self._flushed += len(self._buf)
            self._buf = bytearray()

    def _str(self, b: bytes) -> bytes:
        return encode_string(b, compress=self.options.compression)

    # -- records
    def write_aux(self, key: bytes, value: bytes) -> None:
        self._raw(bytes((C.OPCODE_AUX,)) + self._str(key) + self._str(value))

    def write_function(self, code: bytes) -> None:
        """RDB_OPCODE_FUNCTION2 + library source (rdbSaveFunctions, src/rdb.c); before any db."""
        self._raw(bytes((C.OPCODE_FUNCTION2,)) + self._str(code))

    def write_slot_import(self, job_name: bytes, ranges: Sequence[tuple[int, int]]) -> None:
        """RDB_OPCODE_SLOT_IMPORT (Valkey 9.0+): job name, range count, (start, end) pairs."""
        if self.options.version < C.RDB_VERSION:
            raise UnsupportedForVersion(
                f"can't store a slot import in RDB version {self.options.version}",
                file=self.file,
                offset=self.offset,
            )
        out = [bytes((C.OPCODE_SLOT_IMPORT,)), self._str(job_name), encode_length(len(ranges))]
        for a, b in ranges:
            out += [encode_length(a), encode_length(b)]
        self._raw(b"".join(out))

    def begin_db(self, db: int, *, keys: int, expires: int) -> None:
        """SELECTDB + RESIZEDB (counts are sizing hints for the loader)."""
        self._raw(bytes((C.OPCODE_SELECTDB,)) + encode_length(db))
        self._raw(bytes((C.OPCODE_RESIZEDB,)) + encode_length(keys) + encode_length(expires))
        self._db = db
        self._slot = None

    def write_slot_info(self, slot: int, keys: int, expires: int, volatile: int) -> None:
        """AUX slot-info "<slot>,<keys>,<expires>,<volatile>" (rdbSaveDb, src/rdb.c)."""
        self.write_aux(b"slot-info", b"%d,%d,%d,%d" % (slot, keys, expires, volatile))
        self._slot = slot

    def write_record(self, record: KeyRecord) -> bool:
        """EXPIRETIME_MS + type + key + value; False when skipped (an empty collection)."""
        if self._db is None or record.db != self._db:
            raise ValueError(f"record for db {record.db} outside begin_db({self._db})")
        if type(record.value) is StringValue:  # the commonest record, without encode_value
            self._raw(
                string_record(
                    record.key, record.value.value, record.expire_at_ms, self.options.compression
                )
            )
            return True
        if is_empty(record.value):
            return False
        t, payload = encode_value(
            record.value,
            version=self.options.version,
            compress=self.options.compression,
            key=record.key,
            file=self.file,
            offset=self.offset,
        )
        out = b""
        if record.expire_at_ms is not None:
            out = bytes((C.OPCODE_EXPIRETIME_MS,)) + encode_millis(record.expire_at_ms)
        self._raw(out + bytes((t,)) + self._str(record.key) + payload)
        return True

    def write_items(
        self,
        db: int,
        items: Iterable[tuple[bytes, object]],
        expires: Mapping[bytes, int],
        to_value: Callable[[object], Value],
    ) -> None:
        """Keys straight from a keyspace, after ``begin_db(db, ...)``: a ``bytes`` value is a
        string and is written without building a record; any other value goes through
        ``to_value`` and :meth:`write_record`. ``expires`` maps keys to absolute ms."""
        if self._db is None or db != self._db:
            raise ValueError(f"items for db {db} outside begin_db({self._db})")
        comp = self.options.compression
        enc = encode_string
        get = expires.get
        has_ttl = bool(expires)
        buf = self._buf
        for key, v in items:
            if type(v) is bytes:
                if has_ttl:
                    ms = get(key)
                    if ms is not None:
                        buf += b"\xfc"  # RDB_OPCODE_EXPIRETIME_MS
                        buf += _pack_ms(ms)
                # raw strings of up to 20 bytes that cannot be integers, inline: 6-bit length
                n = len(key)
                if n <= 20 and (n > 11 or key[:1] not in INT_FIRST):
                    buf += _STRING_HEAD[n]  # RDB_TYPE_STRING + key length
                    buf += key
                else:
                    buf += b"\x00"
                    buf += enc(key, compress=comp)
                n = len(v)
                if n <= 20 and (n > 11 or v[:1] not in INT_FIRST):
                    buf += LEN6[n]
                    buf += v
                else:
                    buf += enc(v, compress=comp)
                if len(buf) >= _FLUSH_AT:
                    self._flush()
                    buf = self._buf
            else:
                self.write_record(KeyRecord(db, key, to_value(v), get(key)))
                buf = self._buf

    def write_db(
        self,
        db: int,
        records: Iterable[KeyRecord],
        *,
        keys: int | None = None,
        expires: int | None = None,
    ) -> None:
        """One db. Without ``keys``/``expires`` the records are buffered to count them.

        With ``cluster_slot_info`` each run of keys of one slot is buffered and preceded by its
        slot-info AUX field; give records grouped by slot (as Valkey iterates them).
        """
        if keys is None or expires is None:
            records = [r for r in records if not is_empty(r.value)]
            keys = len(records)
            expires = sum(1 for r in records if r.expire_at_ms is not None)
        self.begin_db(db, keys=keys, expires=expires)
        if not self.options.cluster_slot_info:
            for r in records:
                self.write_record(r)
            return
        run: list[KeyRecord] = []
        run_slot = -1
        for r in records:
            if is_empty(r.value):
                continue
            slot = key_slot(r.key)
            if run and slot != run_slot:
                self._write_slot_run(run_slot, run)
                run = []
            run_slot = slot
            run.append(r)
        if run:
            self._write_slot_run(run_slot, run)

    def _write_slot_run(self, slot: int, run: list[KeyRecord]) -> None:
        exp = sum(1 for r in run if r.expire_at_ms is not None)
        vol = sum(1 for r in run if has_volatile_items(r.value))
        self.write_slot_info(slot, len(run), exp, vol)
        for r in run:
            self.write_record(r)

    def finish(self) -> None:
        """EOF opcode + CRC64 little-endian (0 when checksums are off), then flush."""
        if self._finished:
            return
        self._raw(bytes((C.OPCODE_EOF,)))
        self._flush()
        crc = self._crc if self.options.checksum else 0
        self._f.write(struct.pack("<Q", crc))
        self._flushed += 8
        self._f.flush()
        self._finished = True


def write_rdb(
    path: str | os.PathLike[str],
    records: Iterable[KeyRecord],
    options: RdbWriteOptions | None = None,
    *,
    functions: Iterable[bytes] = (),
) -> None:
    """Write a whole RDB: temp file in the same directory, fsync, rename, fsync the directory.

    Records may come in any db order; they are grouped per db (ascending, as rdbSaveRio) and,
    with ``cluster_slot_info``, sorted by slot inside each db.
    """
    opts = options or RdbWriteOptions()
    by_db: dict[int, list[KeyRecord]] = {}
    for r in records:
        by_db.setdefault(r.db, []).append(r)
    target = os.fspath(path)
    with atomic_file(target) as f:
        w = RdbWriter(f, opts, file=target)
        for code in functions:
            w.write_function(code)
        for db in sorted(by_db):
            recs = by_db[db]
            if opts.cluster_slot_info:
                recs.sort(key=lambda r: key_slot(r.key))
            if any(not is_empty(r.value) for r in recs):
                w.write_db(db, recs)
        w.finish()
