"""The minimal AOF applier: AOF commands in, the final logical contents (key records) out.

A stop-gap for ``valkey-aof export`` until the engine's command table replays AOF files. It runs
every command Valkey 9.1.2 propagates to an AOF (spec 1.5, 4.4, 4.6, 8.5) with loading
semantics: nothing expires while applying and past TTLs are stored as they are (spec 1.1).
Commands live in one table (:data:`tools.applier_base.COMMANDS`): generic ones here, strings in
``applier_strings``, lists/sets/hashes in ``applier_collections``, sorted sets in
``applier_zsets``, streams in ``applier_streams``. Atomic slot migration imports (spec 3.11, 8.8)
are tracked here: keys of an import's slots are dropped on ``FINISH STATE FAILED`` and, for an
import never finished, at :meth:`Applier.finish` (Valkey fails it with "Process restarted").
"""

from __future__ import annotations

import copy

from persistence.crc import key_slot
from persistence.errors import PersistenceError
from persistence.rdb.dump import load_payload
from persistence.records import (
    HashValue,
    KeyRecord,
    ListValue,
    SetValue,
    SlotImport,
    StreamConsumer,
    StreamGroup,
    StreamID,
    StreamPending,
    StreamValue,
    StringValue,
    Value,
    ZSetValue,
)
from tools import (  # noqa: F401 (imported for their command registrations)
    applier_collections,
    applier_streams,
    applier_strings,
    applier_zsets,
)
from tools.applier_base import (
    COMMANDS,
    LLONG_MAX,
    NO_KEY,
    SID,
    SYNTAX,
    ApplyError,
    Consumer,
    Group,
    HashObj,
    Keyspace,
    ListObj,
    Nack,
    Obj,
    SetObj,
    StreamObj,
    ZSetObj,
    check_arity,
    command,
    expire_condition,
    expire_flags,
    parse_int,
    upper,
)

__all__ = ["Applier", "ApplyError"]


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Real Valkey commands this stop-gap does not run: PFADD/PFMERGE/SETBIT/BITOP/BITFIELD/SORT STORE/
# GEO STORE can be propagated as they are; the others never reach an AOF verbatim.
UNSUPPORTED = _names(
    "RESTORE-ASKING PFADD PFMERGE PFCOUNT PFDEBUG SETBIT BITOP BITFIELD SORT "
    "GEOADD GEORADIUS GEORADIUSBYMEMBER GEOSEARCHSTORE SPOP SRANDMEMBER XAUTOCLAIM XREADGROUP "
    "BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP LMPOP BZPOPMIN BZPOPMAX BZMPOP ZMPOP EVAL EVALSHA "
    "EVAL_RO EVALSHA_RO FCALL FCALL_RO SCRIPT MIGRATE OBJECT DEBUG LCS"
)
# Read-only commands: they may sit in a hand-made AOF and change nothing.
READ_ONLY = _names(
    "PING ECHO GET MGET STRLEN GETRANGE SUBSTR EXISTS TYPE TTL PTTL EXPIRETIME PEXPIRETIME "
    "KEYS SCAN DBSIZE RANDOMKEY LLEN LRANGE LINDEX LPOS SCARD SMEMBERS SISMEMBER SMISMEMBER "
    "SINTER SUNION SDIFF SINTERCARD SSCAN ZCARD ZSCORE ZMSCORE ZRANGE ZRANGEBYSCORE ZRANGEBYLEX "
    "ZREVRANGE ZREVRANGEBYSCORE ZREVRANGEBYLEX ZRANK ZREVRANK ZCOUNT ZLEXCOUNT ZSCAN ZUNION "
    "ZINTER ZDIFF ZINTERCARD ZRANDMEMBER HGET HMGET HGETALL HKEYS HVALS HLEN HEXISTS HSTRLEN "
    "HSCAN HRANDFIELD HTTL HPTTL HEXPIRETIME HPEXPIRETIME XLEN XRANGE XREVRANGE XREAD XPENDING "
    "XINFO TOUCH BITCOUNT BITPOS GETBIT INFO TIME LASTSAVE DISCARD WATCH UNWATCH"
)


class Applier:
    """Applies AOF commands (and RDB-preamble records) to an in-memory keyspace."""

    def __init__(self, *, now_ms: int | None = None, databases: int = 16) -> None:
        """``now_ms`` is the clock for relative times (EXPIRE, SET EX, XADD *, XCLAIM IDLE);
        None = the wall clock, as valkey-server uses while loading."""
        self.ks = Keyspace(now_ms, databases)
        self.imports: dict[bytes, list[tuple[int, int]]] = {}
        self.functions: dict[bytes, bytes] = {}

    # ---- input -----------------------------------------------------------------------------

    def load_record(self, record: KeyRecord) -> None:
        """Add one key of an RDB base as-is (even with a past TTL)."""
        self.ks.put(record.key, _from_value(record.value), db=record.db)
        if record.expire_at_ms is not None:
            self.ks.ttls(record.db)[record.key] = record.expire_at_ms

    def load_slot_import(self, event: SlotImport) -> None:
        """An unfinished import recorded in an RDB base (opcode 243): fails at :meth:`finish`."""
        self.imports[event.job_name] = list(event.ranges)

    def apply(self, argv: list[bytes]) -> None:
        """Run one command; raises :class:`ApplyError` (and changes nothing) when it fails."""
        if not argv:
            raise ApplyError("ERR empty command", "unknown")
        name = upper(argv[0])
        if name == "CLUSTER":
            self._cluster(argv)
            return
        if name == "FUNCTION":
            self._function(argv)
            return
        cmd = COMMANDS.get(name)
        if cmd is None:
            if name in READ_ONLY:
                return  # valid in an AOF and without effect on the contents
            if name in UNSUPPORTED:
                raise ApplyError(
                    f"ERR '{name.lower()}' is not supported by the minimal AOF applier",
                    "unsupported",
                )
            raise ApplyError(_unknown_command(argv), "unknown")
        check_arity(name, cmd.arity, len(argv))
        cmd.handler(self.ks, argv)

    def finish(self) -> None:
        """End of load: imports without FINISH are failed ("Process restarted") and dropped."""
        for job in list(self.imports):
            self._drop_import(job)

    # ---- output ----------------------------------------------------------------------------

    def records(self, *, now_ms: int | None = None) -> list[KeyRecord]:
        """The contents sorted by (db, key); with ``now_ms``, keys and hash fields whose expiry
        is <= now_ms are left out (a hash left empty disappears)."""
        out: list[KeyRecord] = []
        for db in sorted(self.ks.data):
            ttls = self.ks.ttl[db]
            for key in sorted(self.ks.data[db]):
                exp = ttls.get(key)
                if now_ms is not None and exp is not None and exp <= now_ms:
                    continue
                value = _to_value(self.ks.data[db][key], now_ms)
                if value is not None:
                    out.append(KeyRecord(db, key, value, exp))
        return out

    # ---- CLUSTER SYNCSLOTS and FUNCTION ----------------------------------------------------

    def _cluster(self, argv: list[bytes]) -> None:
        check_arity("CLUSTER", -2, len(argv))
        sub = upper(argv[1])
        if sub != "SYNCSLOTS":
            raise ApplyError(
                f"ERR CLUSTER {sub} is not supported by the AOF applier", "unsupported"
            )
        check_arity("CLUSTER|SYNCSLOTS", -3, len(argv))
        op = upper(argv[2])
        opts = argv[3:]
        if op == "ESTABLISH":
            # CLUSTER SYNCSLOTS ESTABLISH SOURCE <id> NAME <job> SLOTSRANGE a b ... (spec 3.11)
            name, ranges, i = None, [], 0
            while i < len(opts):
                word = upper(opts[i])
                if word == "SLOTSRANGE":
                    rest = opts[i + 1 :]
                    if not rest or len(rest) % 2:
                        raise ApplyError(SYNTAX)
                    pairs = [parse_int(x) for x in rest]
                    ranges = list(zip(pairs[::2], pairs[1::2]))
                    break
                if i + 1 >= len(opts):
                    raise ApplyError(SYNTAX)
                if word == "NAME":
                    name = opts[i + 1]
                i += 2
            if name is None or not ranges:
                raise ApplyError(SYNTAX)
            self.imports[name] = ranges
        elif op == "FINISH":
            # CLUSTER SYNCSLOTS FINISH STATE SUCCESS|FAILED NAME <job> MESSAGE <text>
            fields = {upper(opts[i]): opts[i + 1] for i in range(0, len(opts) - 1, 2)}
            name, state = fields.get("NAME"), fields.get("STATE", b"").upper()
            if name is None or state not in (b"SUCCESS", b"FAILED"):
                raise ApplyError(SYNTAX)
            if name in self.imports:
                if state == b"FAILED":
                    self._drop_import(name)
                else:
                    del self.imports[name]
        else:
            raise ApplyError(f"ERR CLUSTER SYNCSLOTS {op} is not supported", "unsupported")

    def _drop_import(self, job: bytes) -> None:
        """A failed import deletes what it holds: every key of its slots, in every db."""
        ranges = self.imports.pop(job)
        for db in list(self.ks.data):
            for key in [k for k in self.ks.data[db] if _in_ranges(key_slot(k), ranges)]:
                self.ks.delete(key, db)

    def _function(self, argv: list[bytes]) -> None:
        check_arity("FUNCTION", -2, len(argv))
        sub = upper(argv[1])
        if sub == "LOAD":
            check_arity("FUNCTION|LOAD", -3, len(argv))
            code = argv[-1]
            replace = [upper(a) for a in argv[2:-1]]
            if any(a != "REPLACE" for a in replace):
                raise ApplyError(f"ERR Unknown option given: {argv[2].decode('latin-1')}")
            first = code.split(b"\n", 1)[0]
            name = next((w[5:] for w in first.split() if w.startswith(b"name=")), None)
            if not first.startswith(b"#!") or not name:
                raise ApplyError("ERR Library name was not given")
            if name in self.functions and not replace:
                raise ApplyError(f"ERR Library '{name.decode('latin-1')}' already exists")
            self.functions[name] = code
        elif sub == "DELETE":
            check_arity("FUNCTION|DELETE", 3, len(argv))
            if self.functions.pop(argv[2], None) is None:
                raise ApplyError("ERR Library not found")
        elif sub == "FLUSH":
            self.functions.clear()
        else:
            raise ApplyError(f"ERR FUNCTION {sub} is not supported", "unsupported")


def _in_ranges(slot: int, ranges: list[tuple[int, int]]) -> bool:
    return any(a <= slot <= b for a, b in ranges)


def _unknown_command(argv: list[bytes]) -> str:
    # src/server.c processCommand: args quoted, each cut to 128 characters
    args = "".join(f"'{a[:128].decode('latin-1')}' " for a in argv[1:])
    return (
        f"ERR unknown command '{argv[0][:128].decode('latin-1')}', with args beginning with: {args}"
    )


# ---- conversions between records and the internal values ----------------------------------


def _sid(s: StreamID) -> SID:
    return (s.ms, s.seq)


def _stream_id(s: SID) -> StreamID:
    return StreamID(s[0], s[1])


def _from_value(v: Value) -> Obj:
    if isinstance(v, StringValue):
        return bytes(v.value)
    if isinstance(v, ListValue):
        return ListObj(v.items)
    if isinstance(v, SetValue):
        return SetObj((m, None) for m in v.members)
    if isinstance(v, ZSetValue):
        return ZSetObj(v.items)
    if isinstance(v, HashValue):
        return HashObj(dict(v.items), dict(v.expires))
    s = StreamObj(
        {_sid(i): list(f) for i, f in v.entries},
        _sid(v.last_id),
        _sid(v.first_id),
        _sid(v.max_deleted_id),
        v.entries_added,
    )
    for g in v.groups:
        grp = Group(_sid(g.last_id), g.entries_read)
        for p in g.pel:
            grp.pel[_sid(p.id)] = Nack(p.consumer, p.delivery_time_ms, p.delivery_count)
        for c in g.consumers:
            grp.consumers[c.name] = Consumer(c.seen_time_ms, c.active_time_ms)
        for sid, nack in grp.pel.items():
            grp.consumers.setdefault(nack.consumer, Consumer(0, -1)).pel[sid] = None
        s.groups[g.name] = grp
    return s


def _to_value(obj: Obj, now_ms: int | None) -> Value | None:
    if isinstance(obj, bytes):
        return StringValue(obj)
    if isinstance(obj, ListObj):
        return ListValue(list(obj))
    if isinstance(obj, SetObj):
        return SetValue(list(obj))
    if isinstance(obj, ZSetObj):
        return ZSetValue(sorted(obj.items(), key=lambda kv: (kv[1], kv[0])))
    if isinstance(obj, HashObj):
        gone = {f for f, t in obj.expires.items() if now_ms is not None and t <= now_ms}
        items = [(f, v) for f, v in obj.fields.items() if f not in gone]
        if not items:
            return None
        return HashValue(items, {f: t for f, t in obj.expires.items() if f not in gone})
    groups = []
    for name in sorted(obj.groups):
        g = obj.groups[name]
        pel = [
            StreamPending(_stream_id(i), n.consumer, n.delivery_time, n.delivery_count)
            for i, n in sorted(g.pel.items())
        ]
        consumers = [
            StreamConsumer(cn, c.seen_time, c.active_time, [_stream_id(i) for i in sorted(c.pel)])
            for cn, c in sorted(g.consumers.items())
        ]
        groups.append(StreamGroup(name, _stream_id(g.last_id), g.entries_read, pel, consumers))
    return StreamValue(
        [(_stream_id(i), list(f)) for i, f in obj.entries.items()],
        len(obj.entries),
        _stream_id(obj.last_id),
        _stream_id(obj.first_id),
        _stream_id(obj.max_deleted_id),
        obj.entries_added,
        groups,
    )


# ---- generic keyspace commands -------------------------------------------------------------


@command("MULTI", 1)
@command("EXEC", 1)
def _noop(ks: Keyspace, argv: list[bytes]) -> None:
    """The reader only yields complete MULTI/EXEC blocks, so both are no-ops here."""


@command("SELECT", 2)
def _select(ks: Keyspace, argv: list[bytes]) -> None:
    db = parse_int(argv[1])
    if not 0 <= db < ks.databases:
        raise ApplyError("ERR DB index is out of range")
    ks.db = db


@command("DEL", -2)
@command("UNLINK", -2)
def _del(ks: Keyspace, argv: list[bytes]) -> None:
    for key in argv[1:]:
        ks.delete(key)


def _expire(ks: Keyspace, argv: list[bytes], unit_ms: int, relative: bool) -> None:
    """expireGenericCommand (src/expire.c); while loading a past time is stored, not deleted."""
    name = argv[0].decode("latin-1").lower()
    flags = expire_flags(argv[3:])
    when = parse_int(argv[2])
    bad = f"ERR invalid expire time in '{name}' command"
    if unit_ms == 1000 and not -LLONG_MAX // 1000 <= when <= LLONG_MAX // 1000:
        raise ApplyError(bad)
    when *= unit_ms
    if relative:
        when += ks.now()
        if when > LLONG_MAX:
            raise ApplyError(bad)
    if argv[1] not in ks.kv():
        return
    cur = ks.ttls().get(argv[1], -1)
    if not expire_condition(flags, cur, when):
        return
    ks.ttls()[argv[1]] = when


@command("EXPIRE", -3)
def _expire_cmd(ks: Keyspace, argv: list[bytes]) -> None:
    _expire(ks, argv, 1000, True)


@command("PEXPIRE", -3)
def _pexpire(ks: Keyspace, argv: list[bytes]) -> None:
    _expire(ks, argv, 1, True)


@command("EXPIREAT", -3)
def _expireat(ks: Keyspace, argv: list[bytes]) -> None:
    _expire(ks, argv, 1000, False)


@command("PEXPIREAT", -3)
def _pexpireat(ks: Keyspace, argv: list[bytes]) -> None:
    _expire(ks, argv, 1, False)


@command("PERSIST", 2)
def _persist(ks: Keyspace, argv: list[bytes]) -> None:
    ks.ttls().pop(argv[1], None)


def _rename(ks: Keyspace, argv: list[bytes], nx: bool) -> None:
    src, dst = argv[1], argv[2]
    keys = ks.kv()
    if src not in keys:
        raise ApplyError(NO_KEY)
    if src == dst or (nx and dst in keys):
        return
    ttl = ks.ttls().get(src)
    obj = keys[src]
    ks.delete(src)
    ks.put(dst, obj)
    if ttl is not None:
        ks.ttls()[dst] = ttl


@command("RENAME", 3)
def _rename_cmd(ks: Keyspace, argv: list[bytes]) -> None:
    _rename(ks, argv, False)


@command("RENAMENX", 3)
def _renamenx(ks: Keyspace, argv: list[bytes]) -> None:
    _rename(ks, argv, True)


def _db_arg(ks: Keyspace, b: bytes) -> int:
    db = parse_int(b)
    if not 0 <= db < ks.databases:
        raise ApplyError("ERR DB index is out of range")
    return db


@command("MOVE", 3)
def _move(ks: Keyspace, argv: list[bytes]) -> None:
    key, dst = argv[1], _db_arg(ks, argv[2])
    if dst == ks.db:
        raise ApplyError("ERR source and destination objects are the same")
    if key not in ks.kv() or key in ks.kv(dst):
        return
    ttl = ks.ttls().get(key)
    ks.put(key, ks.kv()[key], db=dst)
    if ttl is not None:
        ks.ttls(dst)[key] = ttl
    ks.delete(key)


@command("COPY", -3)
def _copy(ks: Keyspace, argv: list[bytes]) -> None:
    src, dst = argv[1], argv[2]
    dst_db, replace, i = ks.db, False, 3
    while i < len(argv):
        opt = upper(argv[i])
        if opt == "REPLACE":
            replace = True
        elif opt == "DB" and i + 1 < len(argv):
            dst_db = _db_arg(ks, argv[i + 1])
            i += 1
        else:
            raise ApplyError(SYNTAX)
        i += 1
    if src == dst and dst_db == ks.db:
        raise ApplyError("ERR source and destination objects are the same")
    if src not in ks.kv() or (dst in ks.kv(dst_db) and not replace):
        return
    ttl = ks.ttls().get(src)
    ks.put(dst, copy.deepcopy(ks.kv()[src]), db=dst_db)
    if ttl is not None:
        ks.ttls(dst_db)[dst] = ttl


@command("SWAPDB", 3)
def _swapdb(ks: Keyspace, argv: list[bytes]) -> None:
    a = parse_int(argv[1], "ERR invalid first DB index")
    b = parse_int(argv[2], "ERR invalid second DB index")
    if not (0 <= a < ks.databases and 0 <= b < ks.databases):
        raise ApplyError("ERR DB index is out of range")
    ks.kv(a), ks.kv(b)
    ks.data[a], ks.data[b] = ks.data[b], ks.data[a]
    ks.ttl[a], ks.ttl[b] = ks.ttl[b], ks.ttl[a]


def _flush_opts(argv: list[bytes]) -> None:
    if len(argv) > 2 or (len(argv) == 2 and upper(argv[1]) not in ("ASYNC", "SYNC")):
        raise ApplyError(SYNTAX)


@command("FLUSHDB", -1)
def _flushdb(ks: Keyspace, argv: list[bytes]) -> None:
    _flush_opts(argv)
    ks.data[ks.db], ks.ttl[ks.db] = {}, {}


@command("FLUSHALL", -1)
def _flushall(ks: Keyspace, argv: list[bytes]) -> None:
    _flush_opts(argv)
    ks.data.clear()
    ks.ttl.clear()


@command("RESTORE", -4)
def _restore(ks: Keyspace, argv: list[bytes]) -> None:
    """RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f] (src/cluster.c)."""
    replace = absttl = False
    i = 4
    while i < len(argv):
        opt = upper(argv[i])
        if opt == "REPLACE":
            replace = True
        elif opt == "ABSTTL":
            absttl = True
        elif opt in ("IDLETIME", "FREQ") and i + 1 < len(argv):
            if parse_int(argv[i + 1]) < 0:
                raise ApplyError(f"ERR Invalid {opt} value, must be >= 0")
            i += 1
        else:
            raise ApplyError(SYNTAX)
        i += 1
    ttl = parse_int(argv[2])
    if ttl < 0:
        raise ApplyError("ERR Invalid TTL value, must be >= 0")
    if argv[1] in ks.kv() and not replace:
        raise ApplyError("BUSYKEY Target key name already exists.")
    try:
        value = load_payload(argv[3])
    except PersistenceError as e:
        text = str(e)
        if "version" in text or "checksum" in text:
            raise ApplyError("ERR DUMP payload version or checksum are wrong") from e
        raise ApplyError("ERR Bad data format") from e
    ks.put(argv[1], _from_value(value))
    if ttl:
        ks.ttls()[argv[1]] = ttl if absttl else ttl + ks.now()  # a past TTL is kept (loading)
