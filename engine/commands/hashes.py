"""Hash commands (src/t_hash.c): HSET HSETNX HMSET HGET HMGET HGETALL HDEL HLEN HEXISTS HKEYS
HVALS HINCRBY HINCRBYFLOAT HSTRLEN HRANDFIELD HSCAN. The field-TTL commands (HSETEX, HGETEX,
HGETDEL, HEXPIRE..., HPERSIST, HTTL...) and the active field expiry job are in hashes_ttl.py.

Expired fields are hidden from every read (``now > expiry``) but not deleted on access and
nothing is propagated for them (spec 1.1); while loading they are visible (``now`` = -1).
"""

from __future__ import annotations

import heapq
import random
import re
from typing import Any

from engine.commands.hashes_float import format_ld, parse_ld, round_ld
from engine.commands.table import command, run_handler
from engine.commands.util import LLONG_MAX, LLONG_MIN, OK, int_arg
from engine.context import Ctx
from engine.errors import (
    HASH_INVALID_CURSOR,
    HASH_LONG_RANGE,
    HASH_NAN_OR_INF,
    HASH_NOT_FLOAT,
    HASH_NOT_INTEGER,
    HASH_VALUE_OUT_OF_RANGE,
    INCR_OVERFLOW,
    INCRFLOAT_NAN,
    NOT_FLOAT,
    NOT_INTEGER,
    SYNTAX,
    WRONGTYPE,
    CommandError,
    wrong_arity,
)
from engine.keyspace import Database
from engine.types.hashes import NO_EXPIRY_CHECK, Hash
from persistence.rdb.glob import glob_match
from persistence.resp.tokens import string2ll

_rand = random.Random()
_EMPTY_SCAN = [b"0", []]
_MAX_ENTRIES = "hash-max-listpack-entries"
_MAX_VALUE = "hash-max-listpack-value"


# -- shared helpers (also used by hashes_ttl) -----------------------------------------------
def now_of(ctx: Ctx) -> int:
    """The time expired fields are judged by: none expire while loading (spec 1.1)."""
    return NO_EXPIRY_CHECK if ctx.engine.loading else ctx.now_ms


def already_expired(ctx: Ctx, when: int) -> bool:
    """src/expire.c checkAlreadyExpired: ``when <= now``, never while loading."""
    return when <= ctx.now_ms and not ctx.engine.loading


def lookup(ctx: Ctx, key: bytes) -> Hash | None:
    h = ctx.db.lookup(ctx, key)
    if h is not None and type(h) is not Hash:
        raise CommandError(WRONGTYPE)
    return h


def lookup_or_create(ctx: Ctx, key: bytes) -> Hash:
    """src/t_hash.c hashTypeLookupWriteOrCreate."""
    db = ctx.db
    h = db.lookup(ctx, key)
    if h is None:
        h = Hash()
        db.add(key, h)
        return h
    if type(h) is not Hash:
        raise CommandError(WRONGTYPE)
    return h


def try_conversion(ctx: Ctx, h: Hash, argv: list[bytes], start: int) -> None:
    """src/t_hash.c hashTypeTryConversion over argv[start:] (field/value pairs)."""
    cfg = ctx.engine.config.values
    if (len(argv) - start) // 2 > cfg[_MAX_ENTRIES]:
        h.listpack = False
        return
    maxv = cfg[_MAX_VALUE]
    for i in range(start, len(argv)):
        if len(argv[i]) > maxv:
            h.listpack = False
            return


def hash_set(
    ctx: Ctx, key: bytes, h: Hash, field: bytes, value: bytes, expiry: int | None, keep: bool
) -> tuple[bool, bool]:
    """src/t_hash.c hashTypeSet: (updated, an expired field was overwritten).

    ``expiry`` None = no TTL; ``keep`` keeps the TTL of a live field (HASH_SET_KEEP_EXPIRY)."""
    cfg = ctx.engine.config.values
    data = h.data
    if h.listpack:
        maxv = cfg[_MAX_VALUE]
        if expiry is not None or len(field) > maxv or len(value) > maxv:
            h.listpack = False
        else:
            update = field in data
            data[field] = value
            if len(data) > cfg[_MAX_ENTRIES]:
                h.listpack = False
            return update, False
    exps = h.expires
    if field not in data:
        data[field] = value
        if expiry is not None:
            exps[field] = expiry
            ctx.db.track_fields(key, expiry)
        return False, False
    cur = exps.get(field)
    # an overwritten field that already expired is treated as new (checkAlreadyExpired)
    expired = cur is not None and already_expired(ctx, cur)
    if keep and not expired:
        expiry = cur
    data[field] = value
    if expiry is None:
        if cur is not None:
            del exps[field]
    else:
        exps[field] = expiry
        if expiry != cur:
            ctx.db.track_fields(key, expiry)
    return not expired, expired


def untrack_if_persistent(db: Database, key: bytes, h: Hash) -> None:
    if not h.expires:
        db.volatile_keys.discard(key)


def delete_field(h: Hash, field: bytes) -> bool:
    if h.data.pop(field, None) is None:
        return False
    if h.expires:
        h.expires.pop(field, None)
    return True


def delete_if_empty(ctx: Ctx, key: bytes, h: Hash) -> bool:
    if h.data:
        return False
    ctx.db.delete(key)
    ctx.notify("g", b"del", key)
    return True


def overwrote_expired(ctx: Ctx, key: bytes, n: int) -> None:
    """Overwriting expired fields counts them as expired (src/t_hash.c hsetCommand)."""
    ctx.engine.keyspace.stats_expired_fields += n
    ctx.notify("h", b"hexpired", key)


# -- HSET family ----------------------------------------------------------------------------
@command("hset", -4, "write denyoom fast", 1, 1, 1, acl="@write @hash @fast")
def hset(ctx: Ctx, argv: list[bytes]) -> Any:
    """src/t_hash.c hsetCommand (HMSET shares it): the number of fields created."""
    n = len(argv)
    if n % 2:
        raise wrong_arity(b"hset")
    key = argv[1]
    db = ctx.db
    # the common case without a call: a hash whose key has no TTL (lookup's lazy expiry, the
    # creation of the key and WRONGTYPE are lookup_or_create's)
    h = db.data.get(key)
    if type(h) is not Hash or key in db.expires:
        h = lookup_or_create(ctx, key)
    data = h.data
    created = 0
    expired = 0
    if n == 4 and not h.listpack and not h.expires:  # HSET key field value, a hashtable
        field = argv[2]
        if field not in data:
            created = 1
        data[field] = argv[3]
    elif not h.expires:  # no field TTL to clear or honour (a listpack never has one)
        if h.listpack:
            try_conversion(ctx, h, argv, 2)
        for i in range(2, n, 2):
            field = argv[i]
            if field not in data:
                created += 1
            data[field] = argv[i + 1]
        if h.listpack and len(data) > ctx.engine.config.values[_MAX_ENTRIES]:
            h.listpack = False  # src/t_hash.c hashTypeSet's entry count check
    else:
        for i in range(2, n, 2):
            updated, exp = hash_set(ctx, key, h, argv[i], argv[i + 1], None, False)
            created += not updated
            expired += exp
        untrack_if_persistent(db, key, h)
    ctx.modified(key)
    if expired:
        overwrote_expired(ctx, key, expired)
    ctx.notify("h", b"hset", key)
    ctx.dirty += (n - 2) // 2
    return created


@run_handler("hset")
def hset_run(ctx: Ctx, argv: list[bytes], more: list[Any]) -> list[bytes]:
    """HSET key field value, then more of them: hset's hashtable and listpack cases and a new
    hash, up to a key of another type or with a TTL (key or field)."""
    if len(argv) != 4:
        return []
    db = ctx.db
    data = db.data
    expires = db.expires
    cfg = ctx.engine.config.values
    max_entries = cfg[_MAX_ENTRIES]
    max_value = cfg[_MAX_VALUE]
    out: list[bytes] = []
    append = out.append
    items = [argv[1:], *more]
    n = len(items)
    while len(out) < n:
        key = items[len(out)][0]
        h = data.get(key)
        if h is None:
            h = Hash()  # (lookup_or_create)
            db.add(key, h)
        elif type(h) is not Hash or key in expires or h.expires:
            break
        fields = h.data
        # the fields of this key in a row (redis-benchmark's HSET sends one key): no lookup,
        # type or TTL check each (none changes in between)
        for k, field, value in items[len(out) :]:
            if k != key:
                break
            size = len(fields)
            fields[field] = value
            append(b":1\r\n" if len(fields) > size else b":0\r\n")
            # try_conversion's and hashTypeSet's limits (src/t_hash.c)
            if h.listpack and (
                len(fields) > max_entries or len(field) > max_value or len(value) > max_value
            ):
                h.listpack = False
    ctx.dirty += len(out)
    return out


@command("hmset", -4, "write denyoom fast", 1, 1, 1, acl="@write @hash @fast")
def hmset(ctx: Ctx, argv: list[bytes]) -> Any:
    if len(argv) % 2:
        raise wrong_arity(b"hmset")
    hset(ctx, argv)
    return OK


@command("hsetnx", 4, "write denyoom fast", 1, 1, 1, acl="@write @hash @fast")
def hsetnx(ctx: Ctx, argv: list[bytes]) -> Any:
    key, field = argv[1], argv[2]
    h = lookup_or_create(ctx, key)
    if h.get(field, now_of(ctx)) is not None:
        return 0
    try_conversion(ctx, h, argv, 2)
    had_volatile = bool(h.expires)
    _, expired = hash_set(ctx, key, h, field, argv[3], None, False)
    untrack_if_persistent(ctx.db, key, h)
    ctx.modified(key)
    if expired:
        overwrote_expired(ctx, key, 1)
    ctx.notify("h", b"hset", key)
    ctx.dirty += 1
    if had_volatile:
        # the replica may still see the field: propagate as HSET (src/t_hash.c hsetnxCommand)
        ctx.rewrite([b"HSET", key, field, argv[3]])
    return 1


# -- reads ----------------------------------------------------------------------------------
@command("hget", 3, "readonly fast", 1, 1, 1, acl="@read @hash @fast")
def hget(ctx: Ctx, argv: list[bytes]) -> Any:
    h = ctx.db.lookup(ctx, argv[1])
    if h is None:
        return None
    if type(h) is not Hash:
        raise CommandError(WRONGTYPE)
    v = h.data.get(argv[2])
    if v is not None and h.expires:
        return h.get(argv[2], now_of(ctx))
    return v


@command("hmget", -3, "readonly fast", 1, 1, 1, acl="@read @hash @fast")
def hmget(ctx: Ctx, argv: list[bytes]) -> Any:
    h = lookup(ctx, argv[1])
    if h is None:
        return [None] * (len(argv) - 2)
    now = now_of(ctx)
    return [h.get(f, now) for f in argv[2:]]


@command("hexists", 3, "readonly fast", 1, 1, 1, acl="@read @hash @fast")
def hexists(ctx: Ctx, argv: list[bytes]) -> Any:
    h = lookup(ctx, argv[1])
    return int(h is not None and h.get(argv[2], now_of(ctx)) is not None)


@command("hstrlen", 3, "readonly fast", 1, 1, 1, acl="@read @hash @fast")
def hstrlen(ctx: Ctx, argv: list[bytes]) -> Any:
    h = lookup(ctx, argv[1])
    if h is None:
        return 0
    v = h.get(argv[2], now_of(ctx))
    return 0 if v is None else len(v)


@command("hlen", 2, "readonly fast", 1, 1, 1, acl="@read @hash @fast")
def hlen(ctx: Ctx, argv: list[bytes]) -> Any:
    # the raw count, logically expired fields included (src/t_hash.c hlenCommand, spec 1.1)
    h = lookup(ctx, argv[1])
    return 0 if h is None else len(h.data)


@command("hgetall", 2, "readonly", 1, 1, 1, acl="@read @hash @slow")
def hgetall(ctx: Ctx, argv: list[bytes]) -> Any:
    h = lookup(ctx, argv[1])
    if h is None:
        return {}
    if not h.expires:
        return dict(h.data)
    return dict(h.items(now_of(ctx)))


@command("hkeys", 2, "readonly", 1, 1, 1, acl="@read @hash @slow")
def hkeys(ctx: Ctx, argv: list[bytes]) -> Any:
    h = lookup(ctx, argv[1])
    if h is None:
        return []
    return [f for f, _ in h.items(now_of(ctx))]


@command("hvals", 2, "readonly", 1, 1, 1, acl="@read @hash @slow")
def hvals(ctx: Ctx, argv: list[bytes]) -> Any:
    h = lookup(ctx, argv[1])
    if h is None:
        return []
    return [v for _, v in h.items(now_of(ctx))]


# -- HDEL -----------------------------------------------------------------------------------
@command("hdel", -3, "write fast", 1, 1, 1, acl="@write @hash @fast")
def hdel(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[1]
    h = lookup(ctx, key)
    if h is None:
        return 0
    now = now_of(ctx)
    deleted = 0
    removed = False
    for f in argv[2:]:
        # a logically expired field is not found (hashtablePop honours the validate callback)
        if h.expires and h.is_expired(f, now):
            continue
        if delete_field(h, f):
            deleted += 1
            if not h.data:
                ctx.db.delete(key)
                removed = True
                break
    if deleted:
        if not removed:
            untrack_if_persistent(ctx.db, key, h)
        ctx.modified(key)
        ctx.notify("h", b"hdel", key)
        if removed:
            ctx.notify("g", b"del", key)
        ctx.dirty += deleted
    return deleted


# -- HINCRBY / HINCRBYFLOAT -----------------------------------------------------------------
@command("hincrby", 4, "write denyoom fast", 1, 1, 1, acl="@write @hash @fast")
def hincrby(ctx: Ctx, argv: list[bytes]) -> Any:
    key, field = argv[1], argv[2]
    incr = int_arg(argv[3])
    h = lookup_or_create(ctx, key)
    now = now_of(ctx)
    old = h.get(field, now)
    expiry = h.expires.get(field) if old is not None else None
    if old is None:
        value = 0
    else:
        value = int_arg(old, HASH_NOT_INTEGER)
    if (incr < 0 and value < 0 and incr < LLONG_MIN - value) or (
        incr > 0 and value > 0 and incr > LLONG_MAX - value
    ):
        raise CommandError(INCR_OVERFLOW)
    value += incr
    new = b"%d" % value
    _store_incr(ctx, key, h, field, new, expiry, b"hincrby", always_rewrite=False)
    return value


@command("hincrbyfloat", 4, "write denyoom fast", 1, 1, 1, acl="@write @hash @fast")
def hincrbyfloat(ctx: Ctx, argv: list[bytes]) -> Any:
    key, field = argv[1], argv[2]
    incr = parse_ld(argv[3])
    if incr is None:
        raise CommandError(NOT_FLOAT)
    if isinstance(incr, float):  # inf (string2ld refuses nan)
        raise CommandError(HASH_NAN_OR_INF)
    h = lookup_or_create(ctx, key)
    now = now_of(ctx)
    old = h.get(field, now)
    expiry = h.expires.get(field) if old is not None else None
    if old is None:
        total = round_ld(incr)
    else:
        cur = parse_ld(old)
        if cur is None:
            raise CommandError(HASH_NOT_FLOAT)
        if isinstance(cur, float):
            raise CommandError(INCRFLOAT_NAN)
        total = round_ld(cur + incr)
    if total is None:
        raise CommandError(INCRFLOAT_NAN)
    new = format_ld(total)
    _store_incr(ctx, key, h, field, new, expiry, b"hincrbyfloat", always_rewrite=True)
    return new


def _store_incr(
    ctx: Ctx,
    key: bytes,
    h: Hash,
    field: bytes,
    new: bytes,
    expiry: int | None,
    event: bytes,
    *,
    always_rewrite: bool,
) -> None:
    had_volatile = bool(h.expires)
    _, expired = hash_set(ctx, key, h, field, new, expiry, False)
    untrack_if_persistent(ctx.db, key, h)
    ctx.modified(key)
    if expired:
        overwrote_expired(ctx, key, 1)
    ctx.notify("h", event, key)
    ctx.dirty += 1
    # src/t_hash.c: replicate the final value; HSETEX keeps the field's TTL on the replica
    if had_volatile or always_rewrite:
        if expiry is None:
            ctx.rewrite([b"HSET", key, field, new])
        else:
            ctx.rewrite([b"HSETEX", key, b"PXAT", b"%d" % expiry, b"FIELDS", b"1", field, new])


# -- HRANDFIELD -----------------------------------------------------------------------------
@command("hrandfield", -2, "readonly", 1, 1, 1, acl="@read @hash @slow")
def hrandfield(ctx: Ctx, argv: list[bytes]) -> Any:
    n = len(argv)
    if n >= 3:
        count = int_arg(argv[2])
        if count < -LLONG_MAX:
            raise CommandError(HASH_LONG_RANGE)
        if n > 4 or (n == 4 and argv[3].lower() != b"withvalues"):
            raise CommandError(SYNTAX)
        withvalues = n == 4
        if withvalues and (count < -(LLONG_MAX // 2) or count > LLONG_MAX // 2):
            raise CommandError(HASH_VALUE_OUT_OF_RANGE)
        return _hrandfield_count(ctx, argv[1], count, withvalues)
    h = lookup(ctx, argv[1])
    if h is None:
        return None
    if h.listpack or not h.expires:
        return _rand.choice(list(h.data))
    live = [f for f, _ in h.items(now_of(ctx))]
    # src/t_hash.c hashTypeRandomElement: null when no live field is found (9.0.2, #3022)
    return _rand.choice(live) if live else None


def _hrandfield_count(ctx: Ctx, key: bytes, count: int, withvalues: bool) -> Any:
    h = lookup(ctx, key)
    if h is None or count == 0:
        return []
    size = len(h.data)
    live = list(h.items(now_of(ctx))) if h.expires else list(h.data.items())
    picked: list[tuple[bytes, bytes]]
    if count < 0 or count == 1:
        # with repetitions (src/t_hash.c hrandfieldWithCountCommand CASE 1)
        picked = [_rand.choice(live) for _ in range(-count if count < 0 else 1)] if live else []
    elif count >= size:
        picked = live
    else:
        idx = sorted(_rand.sample(range(len(live)), min(count, len(live))))
        picked = [live[i] for i in idx]
    if not withvalues:
        return [f for f, _ in picked]
    if ctx.client.resp > 2:
        return [[f, v] for f, v in picked]
    return [x for fv in picked for x in fv]


# -- HSCAN ----------------------------------------------------------------------------------
_ULL_MAX = (1 << 64) - 1
_STRTOULL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(\d+)")


def _scan_cursor(b: bytes) -> int:
    """src/util.c string2ull (parseScanCursorOrReply): string2ll, else strtoull."""
    v = string2ll(b)
    if v is not None:
        if v < 0:
            raise CommandError(HASH_INVALID_CURSOR)
        return v
    m = _STRTOULL.fullmatch(b)
    if m is None:
        raise CommandError(HASH_INVALID_CURSOR)
    v = int(m.group(2))
    if v > _ULL_MAX:
        raise CommandError(HASH_INVALID_CURSOR)
    return (-v) & _ULL_MAX if m.group(1) == b"-" else v


def _field_slot(f: bytes) -> int:
    return (hash(f) & LLONG_MAX) + 1


@command("hscan", -3, "readonly", 1, 1, 1, acl="@read @hash @slow")
def hscan(ctx: Ctx, argv: list[bytes]) -> Any:
    cursor = _scan_cursor(argv[2])
    h = lookup(ctx, argv[1])
    if h is None:
        return _EMPTY_SCAN
    count = 10
    pattern: bytes | None = None
    novalues = False
    i, n = 3, len(argv)
    # src/db.c scanGenericCommand
    while i < n:
        opt = argv[i].lower()
        more = n - i >= 2
        if opt == b"count" and more:
            count = int_arg(argv[i + 1], NOT_INTEGER)
            if count < 1:
                raise CommandError(SYNTAX)
            i += 2
        elif opt == b"match" and more:
            pattern = None if argv[i + 1] == b"*" else argv[i + 1]
            i += 2
        elif opt == b"novalues":
            novalues = True
            i += 1
        else:
            raise CommandError(SYNTAX)
    now = now_of(ctx)
    next_cursor = 0
    if h.listpack or len(h.data) <= count:
        # a listpack is returned whole, whatever the cursor (src/db.c scanGenericCommand)
        chosen = list(h.items(now))
    else:
        # hashtable: cursor = position in a stable per-process order of the fields
        cands = [(s, f) for f in h.data if (s := _field_slot(f)) >= cursor]
        best = heapq.nsmallest(count + 1, cands)
        if len(best) > count:
            next_cursor = best[count][0]
            best = best[:count]
        chosen = []
        for _, f in best:
            v = h.get(f, now)
            if v is not None:
                chosen.append((f, v))
    out: list[bytes] = []
    for f, v in chosen:
        if pattern is not None and not glob_match(pattern, f):
            continue
        out.append(f)
        if not novalues:
            out.append(v)
    return [b"%d" % next_cursor, out]


from engine.commands import hashes_ttl as _ttl  # noqa: E402, F401 - registers the TTL commands
