"""Generic key commands (src/db.c, src/object.c, src/cluster.c): DEL UNLINK EXISTS TYPE TOUCH
RENAME RENAMENX MOVE COPY SWAPDB KEYS SCAN RANDOMKEY DBSIZE FLUSHDB FLUSHALL OBJECT.
Key TTL commands are in ``expire.py``; DUMP and RESTORE in ``dump.py``.

How SCAN works here: Valkey's reverse-binary cursor walks its hash table; our keys live in a
dict, so a scan takes a snapshot of the db's key list when it starts (cursor 0) and the cursor
is ``snapshot id << 32 | position``. Keys deleted since are skipped, keys added may be missed;
every key present for the whole scan is returned exactly once. A bounded number of snapshots is
kept per keyspace; a cursor whose snapshot was dropped restarts the scan (duplicates, no loss).
"""

from __future__ import annotations

import heapq
import random
import weakref
from collections import OrderedDict
from itertools import islice
from typing import Any

from engine.commands.table import command, container
from engine.commands.util import OK, int_arg
from engine.context import Ctx
from engine.errors import (
    DB_INDEX,
    INVALID_CURSOR,
    INVALID_FIRST_DB,
    INVALID_SECOND_DB,
    NO_SUCH_KEY,
    NOT_INTEGER,
    OBJECT_FREQ_NO_LFU,
    OBJECT_IDLE_LFU,
    SAME_OBJECT,
    SWAPDB_CLUSTER,
    SYNTAX,
    CommandError,
    unknown_type_name,
)
from engine.keyspace import Database, Keyspace
from engine.types.base import type_info, type_name
from engine.types.strings import key_encoding
from persistence.crc import key_slot
from persistence.rdb.glob import glob_match
from persistence.resp.frames import SimpleString

_NONE = SimpleString(b"none")
_TYPE_REPLIES = {n: SimpleString(n.encode()) for n in
                 ("string", "list", "set", "zset", "hash", "stream")}  # fmt: skip
_TYPE_NAMES = frozenset(n.encode() for n in _TYPE_REPLIES)


# -- deleting ------------------------------------------------------------------------------
def _del(ctx: Ctx, argv: list[bytes]) -> Any:
    """delGenericCommand (src/db.c): an expired key is expired (UNLINK), not counted."""
    db = ctx.db
    n = 0
    for key in argv[1:]:
        if db.lookup(ctx, key) is not None and db.delete(key):
            ctx.modified(key)
            ctx.notify("g", b"del", key)
            n += 1
    ctx.dirty += n
    return n


@command("del", -2, "write", 1, -1, 1, acl="@keyspace @write @slow")
def del_(ctx: Ctx, argv: list[bytes]) -> Any:
    return _del(ctx, argv)


@command("unlink", -2, "write fast", 1, -1, 1, acl="@keyspace @write @fast")
def unlink(ctx: Ctx, argv: list[bytes]) -> Any:
    return _del(ctx, argv)


@command("exists", -2, "readonly fast", 1, -1, 1, acl="@keyspace @read @fast")
def exists(ctx: Ctx, argv: list[bytes]) -> Any:
    lookup = ctx.db.lookup
    return sum(1 for key in argv[1:] if lookup(ctx, key) is not None)


@command("touch", -2, "readonly fast", 1, -1, 1, acl="@keyspace @read @fast")
def touch(ctx: Ctx, argv: list[bytes]) -> Any:
    return exists(ctx, argv)


@command("type", 2, "readonly fast", 1, 1, 1, acl="@keyspace @read @fast")
def type_(ctx: Ctx, argv: list[bytes]) -> Any:
    value = ctx.db.lookup(ctx, argv[1])
    if value is None:
        return _NONE
    return _TYPE_REPLIES[type_name(value)]


# -- moving values between keys ---------------------------------------------------------------
def _carry_field_ttls(src: Database, key: bytes, dst: Database, newkey: bytes) -> None:
    """A hash with field TTLs keeps them under its new name/db (the db tracks such hashes)."""
    if key in src.volatile_keys:
        dst.volatile_keys.add(newkey)
        for ms, k in src.field_heap:
            if k == key:
                heapq.heappush(dst.field_heap, (ms, newkey))


def _db_arg(ctx: Ctx, arg: bytes, err: str = NOT_INTEGER) -> Database:
    n = int_arg(arg, err)
    dbs = ctx.engine.keyspace.dbs
    if n < 0 or n >= len(dbs) or n > 2147483647:
        raise CommandError(DB_INDEX)
    return dbs[n]


def _rename(ctx: Ctx, argv: list[bytes], nx: bool) -> Any:
    """renameGenericCommand (src/db.c)."""
    src, dst = argv[1], argv[2]
    db = ctx.db
    value = db.lookup(ctx, src)
    if value is None:
        raise CommandError(NO_SUCH_KEY)
    if src == dst:
        return 0 if nx else OK
    expire = db.get_expire(src)
    if db.lookup(ctx, dst) is not None:
        if nx:
            return 0
        db.delete(dst)
    _carry_field_ttls(db, src, db, dst)
    db.add(dst, value)
    if expire is not None:
        db.set_expire(dst, expire)
    db.delete(src)
    ctx.modified(src)
    ctx.modified(dst)
    ctx.notify("g", b"rename_from", src)
    ctx.notify("g", b"rename_to", dst)
    ctx.dirty += 1
    return 1 if nx else OK


@command("rename", 3, "write", 1, 2, 1, acl="@keyspace @write @slow")
def rename(ctx: Ctx, argv: list[bytes]) -> Any:
    return _rename(ctx, argv, False)


@command("renamenx", 3, "write fast", 1, 2, 1, acl="@keyspace @write @fast")
def renamenx(ctx: Ctx, argv: list[bytes]) -> Any:
    return _rename(ctx, argv, True)


@command("move", 3, "write fast", 1, 1, 1, acl="@keyspace @write @fast")
def move(ctx: Ctx, argv: list[bytes]) -> Any:
    """moveCommand (src/db.c); Valkey 9 allows it in cluster mode (spec 2.3, checked on 9.1.2)."""
    key = argv[1]
    src = ctx.db
    dst = _db_arg(ctx, argv[2])
    if src is dst:
        raise CommandError(SAME_OBJECT)
    value = src.lookup(ctx, key)
    if value is None:
        return 0
    expire = src.get_expire(key)
    if dst.lookup(ctx, key) is not None:
        return 0
    _carry_field_ttls(src, key, dst, key)
    dst.add(key, value)
    if expire is not None:
        dst.set_expire(key, expire)
    src.delete(key)
    ctx.modified(key, src.id)
    ctx.modified(key, dst.id)
    ctx.notify("g", b"move_from", key, src.id)
    ctx.notify("g", b"move_to", key, dst.id)
    ctx.dirty += 1
    return 1


@command("copy", -3, "write denyoom", 1, 2, 1, acl="@keyspace @write @slow")
def copy(ctx: Ctx, argv: list[bytes]) -> Any:
    """copyCommand (src/db.c)."""
    src = dst = ctx.db
    replace = False
    j, n = 3, len(argv)
    while j < n:
        opt = argv[j].upper()
        if opt == b"REPLACE":
            replace = True
        elif opt == b"DB" and j + 1 < n:
            dst = _db_arg(ctx, argv[j + 1])
            j += 1
        else:
            raise CommandError(SYNTAX)
        j += 1
    key, newkey = argv[1], argv[2]
    if src is dst and key == newkey:
        raise CommandError(SAME_OBJECT)
    value = src.lookup(ctx, key)
    if value is None:
        return 0
    expire = src.get_expire(key)
    delete = False
    if dst.lookup(ctx, newkey) is not None:
        if not replace:
            return 0
        delete = True
    new = type_info(value).copy(value)
    if delete:
        dst.delete(newkey)
    _carry_field_ttls(src, key, dst, newkey)
    dst.add(newkey, new)
    if expire is not None:
        dst.set_expire(newkey, expire)
    ctx.modified(newkey, dst.id)
    ctx.notify("g", b"copy_to", newkey, dst.id)
    ctx.dirty += 1
    return 1


# -- whole databases ------------------------------------------------------------------------
def _touch_existing_watched(ctx: Ctx, db: Database, other: Database | None) -> None:
    """touchAllWatchedKeysInDb (src/multi.c): watched keys of ``db`` that exist in it (or in
    ``other``, the db swapped in) are touched."""
    ks = ctx.engine.keyspace
    for (wdb, key), clients in ks.watchers.items():
        if wdb == db.id and (key in db.data or (other is not None and key in other.data)):
            for c in clients:
                c.dirty_cas = True


_DB_SLOTS = ("data", "expires", "heap", "volatile_keys", "field_heap")


@command("swapdb", 3, "write fast", acl="@keyspace @write @fast @dangerous")
def swapdb(ctx: Ctx, argv: list[bytes]) -> Any:
    if ctx.engine.config["cluster-enabled"]:
        raise CommandError(SWAPDB_CLUSTER)
    a = _db_arg(ctx, argv[1], INVALID_FIRST_DB)
    b = _db_arg(ctx, argv[2], INVALID_SECOND_DB)
    if a is not b:
        _touch_existing_watched(ctx, a, b)
        _touch_existing_watched(ctx, b, a)
        for name in _DB_SLOTS:
            va, vb = getattr(a, name), getattr(b, name)
            setattr(a, name, vb)
            setattr(b, name, va)
        _forget_scans(ctx.engine.keyspace)
        for db in (a, b):  # blocked clients may now be served (scanDatabaseForReadyKeys)
            for key, value in db.data.items():
                if type(value) is not bytes:
                    ctx.ready(key, db.id)
    ctx.dirty += 1  # src/db.c swapdbCommand: propagated even for the same db
    return OK


@command("dbsize", 1, "readonly fast", acl="@keyspace @read @fast")
def dbsize(ctx: Ctx, argv: list[bytes]) -> Any:
    return len(ctx.db)


def _flush_flags(argv: list[bytes]) -> None:
    """getFlushCommandFlags (src/db.c): [ASYNC|SYNC]."""
    if len(argv) > 2 or (len(argv) == 2 and argv[1].upper() not in (b"SYNC", b"ASYNC")):
        raise CommandError(SYNTAX)


@command("flushdb", -1, "write", acl="@keyspace @write @slow @dangerous")
def flushdb(ctx: Ctx, argv: list[bytes]) -> Any:
    _flush_flags(argv)
    _touch_existing_watched(ctx, ctx.db, None)
    ctx.db.clear()
    _forget_scans(ctx.engine.keyspace)
    ctx.dirty += 1  # always propagated (src/db.c flushdbCommand: forceCommandPropagation)
    return OK


@command("flushall", -1, "write", acl="@keyspace @write @slow @dangerous")
def flushall(ctx: Ctx, argv: list[bytes]) -> Any:
    _flush_flags(argv)
    for db in ctx.engine.keyspace.dbs:
        if db.data:
            _touch_existing_watched(ctx, db, None)
            db.clear()
        elif db.heap or db.field_heap:
            db.clear()
    _forget_scans(ctx.engine.keyspace)
    ctx.dirty += 1
    return OK


# -- listing keys ---------------------------------------------------------------------------
@command("keys", 2, "readonly", acl="@keyspace @read @slow @dangerous")
def keys(ctx: Ctx, argv: list[bytes]) -> Any:
    """keysCommand (src/db.c): expired keys are skipped, not deleted."""
    pattern = argv[1]
    db = ctx.db
    expires = db.expires
    now = ctx.now_ms
    loading = ctx.engine.loading
    every = pattern == b"*"
    out: list[bytes] = []
    hidden = ctx.engine.keyspace.hidden_slots  # keys being imported are not listed (spec 3.10)
    for key in db.data:
        if expires and not loading:
            exp = expires.get(key)
            if exp is not None and now > exp:
                continue
        if hidden and key_slot(key) in hidden:
            continue
        if every or glob_match(pattern, key):
            out.append(key)
    return out


@command("randomkey", 1, "readonly", acl="@keyspace @read @slow")
def randomkey(ctx: Ctx, argv: list[bytes]) -> Any:
    """dbRandomKey (src/db.c): an expired pick is expired and another one tried. O(n) here:
    a dict has no random access."""
    db = ctx.db
    tries = 0
    if ctx.engine.keyspace.hidden_slots:  # keys being imported are never picked (spec 3.10)
        return _randomkey_visible(ctx, db)
    while db.data:
        n = len(db.data)
        key = next(islice(db.data, random.randrange(n), None))
        if key in db.expires:
            tries += 1
            if tries > 100 and len(db.expires) == n:
                return key  # all keys volatile: give up looking (src/db.c dbRandomKey)
            if db.lookup(ctx, key) is None:
                continue
        return key
    return None


def _randomkey_visible(ctx: Ctx, db: Database) -> bytes | None:
    keys_ = [k for k in db.data if db.visible(k)]
    random.shuffle(keys_)
    for key in keys_:
        if key not in db.expires or db.lookup(ctx, key) is not None:
            return key
    return None


class _Scans:
    """SCAN snapshots of one keyspace: id -> (db id, keys)."""

    __slots__ = ("next_id", "snaps")

    def __init__(self) -> None:
        self.next_id = 1
        self.snaps: OrderedDict[int, tuple[int, list[bytes]]] = OrderedDict()


_SCANS: weakref.WeakKeyDictionary[Keyspace, _Scans] = weakref.WeakKeyDictionary()
_MAX_SNAPSHOTS = 64
_POS_BITS = 32


def _forget_scans(ks: Keyspace) -> None:
    """FLUSHDB/FLUSHALL/SWAPDB: snapshots stay valid (deleted keys are skipped); nothing to do
    but drop memory early."""
    scans = _SCANS.get(ks)
    if scans is not None:
        scans.snaps.clear()


def _parse_cursor(arg: bytes) -> int:
    """parseScanCursorOrReply (src/db.c): an unsigned 64-bit decimal."""
    if not arg.isdigit() or len(arg) > 20 or int(arg) >= 1 << 64:
        raise CommandError(INVALID_CURSOR)
    return int(arg)


@command("scan", -2, "readonly", acl="@keyspace @read @slow")
def scan(ctx: Ctx, argv: list[bytes]) -> Any:
    cursor = _parse_cursor(argv[1])
    count = 10
    pattern: bytes | None = None
    want: bytes | None = None
    j, n = 2, len(argv)
    while j < n:  # src/db.c scanGenericCommand
        opt = argv[j].upper()
        if opt == b"COUNT" and j + 1 < n:
            count = int_arg(argv[j + 1])
            if count < 1:
                raise CommandError(SYNTAX)
        elif opt == b"MATCH" and j + 1 < n:
            pattern = argv[j + 1]
        elif opt == b"TYPE" and j + 1 < n:
            want = argv[j + 1].lower()
            if want not in _TYPE_NAMES:
                raise unknown_type_name(argv[j + 1])
        else:
            raise CommandError(SYNTAX)
        j += 2
    if pattern == b"*":
        pattern = None
    db = ctx.db
    ks = ctx.engine.keyspace
    scans = _SCANS.get(ks)
    if scans is None:
        scans = _SCANS[ks] = _Scans()
    sid, pos = cursor >> _POS_BITS, cursor & ((1 << _POS_BITS) - 1)
    snap = scans.snaps.get(sid) if sid else None
    if snap is None or snap[0] != db.id:
        if not db.data:
            return [b"0", []]
        sid = scans.next_id
        scans.next_id = scans.next_id + 1 if scans.next_id < (1 << 31) else 1
        snap = (db.id, list(db.data))
        scans.snaps[sid] = snap
        while len(scans.snaps) > _MAX_SNAPSHOTS:
            scans.snaps.popitem(last=False)
        pos = 0
    else:
        scans.snaps.move_to_end(sid)
    keys_ = snap[1]
    end = min(pos + count, len(keys_))
    out: list[bytes] = []
    data = db.data
    hidden = ks.hidden_slots  # keys being imported are not listed (spec 3.10)
    for key in keys_[pos:end]:
        if key not in data or (hidden and key_slot(key) in hidden):
            continue
        if pattern is not None and not glob_match(pattern, key):
            continue
        value = db.lookup(ctx, key) if key in db.expires else data[key]
        if value is None:
            continue  # expired now: deleted and propagated, as Valkey does
        if want is not None and type_name(value).encode() != want:
            continue
        out.append(key)
    if end >= len(keys_):
        del scans.snaps[sid]
        return [b"0", out]
    return [b"%d" % ((sid << _POS_BITS) | end), out]


# -- OBJECT -----------------------------------------------------------------------------------
container("object", -2, acl="@slow")

_OBJECT_HELP = [
    SimpleString(line.encode())
    for line in (
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
        "HELP",
        "    Print this help.",
    )
]


def _lfu(ctx: Ctx) -> bool:
    return "lfu" in str(ctx.engine.config["maxmemory-policy"])


@command("object|help", 2, "loading stale", acl="@keyspace @slow")
def object_help(ctx: Ctx, argv: list[bytes]) -> Any:
    return _OBJECT_HELP


@command("object|encoding", 3, "readonly", 2, 2, 1, acl="@keyspace @read @slow")
def object_encoding(ctx: Ctx, argv: list[bytes]) -> Any:
    value = ctx.db.lookup(ctx, argv[2])
    if value is None:
        return None
    if type(value) is bytes:
        return key_encoding(argv[2], value).encode()
    return type_info(value).encoding(value).encode()


@command("object|refcount", 3, "readonly", 2, 2, 1, acl="@keyspace @read @slow")
def object_refcount(ctx: Ctx, argv: list[bytes]) -> Any:
    value = ctx.db.lookup(ctx, argv[2])
    if value is None:
        return None
    return 1  # observed on 9.1.2: values embed their key, no shared integers


@command("object|idletime", 3, "readonly", 2, 2, 1, acl="@keyspace @read @slow")
def object_idletime(ctx: Ctx, argv: list[bytes]) -> Any:
    value = ctx.db.lookup(ctx, argv[2])
    if value is None:
        return None
    if _lfu(ctx):
        raise CommandError(OBJECT_IDLE_LFU)
    return 0  # access times are not tracked: every key looks just used


@command("object|freq", 3, "readonly", 2, 2, 1, acl="@keyspace @read @slow")
def object_freq(ctx: Ctx, argv: list[bytes]) -> Any:
    value = ctx.db.lookup(ctx, argv[2])
    if value is None:
        return None
    if not _lfu(ctx):
        raise CommandError(OBJECT_FREQ_NO_LFU)
    return 5  # LFU_INIT_VAL: access frequencies are not tracked


# key TTL commands, DUMP and RESTORE register themselves on import
from engine.commands import dump as _dump_cmds  # noqa: E402, F401
from engine.commands import expire as _expire_cmds  # noqa: E402, F401
