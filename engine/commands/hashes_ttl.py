"""Hash field TTL commands (Valkey 9, src/t_hash.c; spec valkey9.md 1.2-1.6): HSETEX HGETEX
HGETDEL HEXPIRE HPEXPIRE HEXPIREAT HPEXPIREAT HPERSIST HTTL HPTTL HEXPIRETIME HPEXPIRETIME. The
active field expiry job is in hashes_expire.py.

Propagation follows the real server: relative times become ``PXAT``/``HPEXPIREAT`` absolute ms,
fields deleted by a past time become ``HDEL``, HGETEX becomes HPEXPIREAT/HPERSIST/HDEL.
"""

from __future__ import annotations

from typing import Any

from engine.commands.hashes import (
    already_expired,
    delete_field,
    delete_if_empty,
    hash_set,
    lookup,
    now_of,
    overwrote_expired,
    untrack_if_persistent,
)
from engine.commands.table import command
from engine.commands.util import LLONG_MAX, int_arg
from engine.context import Ctx
from engine.errors import (
    GT_LT,
    NUMFIELDS,
    NX_XX_GT_LT,
    SYNTAX,
    CommandError,
    invalid_expire,
    unsupported_option,
)
from engine.types.hashes import Hash

EXPIRE_BULK_LIMIT = 1024  # src/db.c: fields per propagated HDEL
_TIME_UNITS = {b"EX": (1000, True), b"PX": (1, True), b"EXAT": (1000, False), b"PXAT": (1, False)}
_STRIPPED = frozenset((b"NX", b"XX", b"FNX", b"FXX"))


def _fields_at(argv: list[bytes], start: int) -> int:
    """Index of the first ``FIELDS`` token from ``start``, before the last argument; -1 if none."""
    for i in range(start, len(argv) - 1):
        if argv[i].lower() == b"fields":
            return i
    return -1


def _when(ctx: Ctx, name: bytes, arg: bytes, unit: int, relative: bool) -> int:
    """src/expire.c convertExpireArgumentToUnixTime."""
    v = int_arg(arg)
    if v < 0:
        raise invalid_expire(name)
    if unit == 1000:
        if v > LLONG_MAX // 1000:
            raise invalid_expire(name)
        v *= 1000
    base = ctx.now_ms if relative else 0
    if v > LLONG_MAX - base:
        raise invalid_expire(name)
    return v + base


def _fields_untrack(ctx: Ctx, key: bytes, h: Hash) -> None:
    untrack_if_persistent(ctx.db, key, h)


def _propagate_hdel(ctx: Ctx, key: bytes, fields: list[bytes]) -> None:
    """src/db.c propagateFieldsDeletion: HDEL in batches of EXPIRE_BULK_LIMIT."""
    for i in range(0, len(fields), EXPIRE_BULK_LIMIT):
        ctx.also([b"HDEL", key, *fields[i : i + EXPIRE_BULK_LIMIT]])


# -- HSETEX ---------------------------------------------------------------------------------
@command("hsetex", -6, "write denyoom fast", 1, 1, 1, acl="@write @hash @fast")
def hsetex(ctx: Ctx, argv: list[bytes]) -> Any:
    n = len(argv)
    key = argv[1]
    # the FIELDS scan starts at argv[0]: a key named "fields" is taken as the token (spec 1.2)
    fi = _fields_at(argv, 0)
    nx = xx = fnx = fxx = keepttl = False
    unit_name: bytes | None = None
    when_idx = -1
    numfields = 0
    first = n - 1
    if fi >= 0:
        j = 2
        # src/server.c parseExtendedCommandArgumentsOrReply (COMMAND_HSET)
        while j < fi:
            opt = argv[j].upper()
            if opt == b"NX" and not xx:
                nx = True
            elif opt == b"XX" and not nx:
                xx = True
            elif opt == b"FNX" and not fxx:
                fnx = True
            elif opt == b"FXX" and not fnx:
                fxx = True
            elif opt == b"KEEPTTL" and unit_name is None:
                keepttl = True
            elif (
                opt in _TIME_UNITS
                and j + 1 < fi
                and not keepttl
                and (unit_name is None or unit_name == opt)
            ):
                unit_name = opt
                when_idx = j + 1
                j += 1
            else:
                raise CommandError(SYNTAX)
            j += 1
        numfields = int_arg(argv[fi + 1])
        first = fi + 2
    if numfields <= 0 or numfields > LLONG_MAX // 2 or numfields * 2 != n - first:
        raise CommandError(NUMFIELDS)
    h = lookup(ctx, key)
    if (nx and h is not None) or (xx and h is None):
        return 0
    when: int | None = None
    delete_mode = False
    if unit_name is not None:
        unit, relative = _TIME_UNITS[unit_name]
        when = _when(ctx, b"hsetex", argv[when_idx], unit, relative)
        delete_mode = already_expired(ctx, when)
    now = now_of(ctx)
    if fnx or fxx:
        if h is not None:
            for i in range(first, n, 2):
                exists = h.get(argv[i], now) is not None
                if (fnx and exists) or (fxx and not exists):
                    return 0
        elif fxx:
            return 0
    if h is None:
        h = Hash()
        ctx.db.add(key, h)
    need_rewrite = nx or xx or fnx or fxx or (unit_name is not None and unit_name != b"PXAT")
    had_volatile = bool(h.expires)
    changes = 0
    deleted: list[bytes] = []
    kept_expired: list[bytes] = []
    overwritten = 0
    stats = ctx.engine.keyspace
    for i in range(first, n, 2):
        f = argv[i]
        if delete_mode:
            # an expired field not yet reclaimed is deleted and in the HDEL too (observed:
            # valkey-server 9.1.2 with DEBUG SET-ACTIVE-EXPIRE 0, test_hash_ttl_clock_real.py)
            if delete_field(h, f):
                deleted.append(f)
                changes += 1
            stats.stats_expired_fields += 1  # "treated exactly as active expiration"
        else:
            _, expired = hash_set(ctx, key, h, f, argv[i + 1], when, keepttl)
            changes += 1
            if expired:
                if keepttl:
                    kept_expired.append(f)
                overwritten += 1
    if changes:
        if had_volatile:
            _fields_untrack(ctx, key, h)
        if overwritten:
            overwrote_expired(ctx, key, overwritten)
            # a replica cannot know the field had expired: delete it there first
            _propagate_hdel(ctx, key, kept_expired)
        if delete_mode:
            ctx.rewrite([b"HDEL", key, *deleted])
        elif need_rewrite:
            ctx.rewrite(_hsetex_rewrite(argv, first, when_idx, unit_name, when))
        ctx.modified(key)
        ctx.dirty += changes
    ctx.notify("h", b"hset", key)
    if unit_name is not None:
        ctx.notify("h", b"hexpire", key)
    if delete_mode:
        ctx.notify("h", b"hexpired", key)
    delete_if_empty(ctx, key, h)
    return 1


def _hsetex_rewrite(
    argv: list[bytes], first: int, when_idx: int, unit_name: bytes | None, when: int | None
) -> list[bytes]:
    """src/t_hash.c hsetexCommand: drop NX/XX/FNX/FXX (compared case-insensitively with every
    argument before the fields, the key included: observed), time option -> PXAT ms."""
    out: list[bytes] = []
    i = 0
    while i < first:
        a = argv[i]
        if a.upper() not in _STRIPPED:
            if unit_name is not None and unit_name != b"PXAT" and i + 1 == when_idx:
                out.append(b"PXAT")
                out.append(b"%d" % (when or 0))
                i += 1
            else:
                out.append(a)
        i += 1
    out.extend(argv[first:])
    return out


# -- HGETEX ---------------------------------------------------------------------------------
@command("hgetex", -5, "write fast", 1, 1, 1, acl="@write @hash @fast")
def hgetex(ctx: Ctx, argv: list[bytes]) -> Any:
    n = len(argv)
    key = argv[1]
    fi = _fields_at(argv, 0)
    persist = False
    unit_name: bytes | None = None
    when_idx = -1
    numfields = -1
    first = n - 1
    if fi >= 0:
        j = 2
        # src/server.c parseExtendedCommandArgumentsOrReply (COMMAND_HGET)
        while j < fi:
            opt = argv[j].upper()
            if opt == b"PERSIST" and unit_name is None:
                persist = True
            elif (
                opt in _TIME_UNITS
                and j + 1 < fi
                and not persist
                and (unit_name is None or unit_name == opt)
            ):
                unit_name = opt
                when_idx = j + 1
                j += 1
            else:
                raise CommandError(SYNTAX)
            j += 1
        numfields = int_arg(argv[fi + 1])
        first = fi + 2
    if numfields == 0 or numfields != n - first:
        raise CommandError(NUMFIELDS)
    h = lookup(ctx, key)
    set_expiry = delete_mode = False
    when = 0
    if unit_name is not None and not persist:
        unit, relative = _TIME_UNITS[unit_name]
        when = _when(ctx, b"hgetex", argv[when_idx], unit, relative)
        if already_expired(ctx, when):
            delete_mode = True
        else:
            set_expiry = True
    now = now_of(ctx)
    reply: list[bytes | None] = []
    changed: list[bytes] = []
    had_volatile = h is not None and bool(h.expires)
    stats = ctx.engine.keyspace
    for f in argv[first:]:
        v = None if h is None else h.get(f, now)
        reply.append(v)
        if h is None or v is None:
            continue
        if delete_mode:
            delete_field(h, f)
            stats.stats_expired_fields += 1
            changed.append(f)
        elif set_expiry:
            if h.listpack:
                h.listpack = False
            h.expires[f] = when
            ctx.db.track_fields(key, when)
            changed.append(f)
        elif persist and f in h.expires:
            del h.expires[f]
            changed.append(f)
    if changed and h is not None:
        nf = b"%d" % len(changed)
        if delete_mode:
            ctx.rewrite([b"HDEL", key, *changed])
            ctx.notify("h", b"hexpired", key)
        elif set_expiry:
            ctx.rewrite([b"HPEXPIREAT", key, b"%d" % when, b"FIELDS", nf, *changed])
            ctx.notify("h", b"hexpire", key)
        else:
            ctx.rewrite([b"HPERSIST", key, b"FIELDS", nf, *changed])
            ctx.notify("h", b"hpersist", key)
        ctx.dirty += len(changed)
        ctx.modified(key)
        if had_volatile:
            _fields_untrack(ctx, key, h)
        delete_if_empty(ctx, key, h)
    return reply


# -- HGETDEL --------------------------------------------------------------------------------
def _positional_numfields(argv: list[bytes], mismatch: str) -> int:
    """HGETDEL/HPERSIST/HTTL...: ``key FIELDS numfields field...`` read positionally.
    9.1.2 checks argv[2] is FIELDS (observed; the spec's 9.0 notes say it did not)."""
    if argv[2].lower() != b"fields":
        raise CommandError(SYNTAX)
    numfields = int_arg(argv[3])
    if numfields == 0 or numfields != len(argv) - 4:
        raise CommandError(mismatch)
    return numfields


@command("hgetdel", -5, "write fast", 1, 1, 1, acl="@write @hash @fast")
def hgetdel(ctx: Ctx, argv: list[bytes]) -> Any:
    _positional_numfields(argv, NUMFIELDS)
    key = argv[1]
    h = lookup(ctx, key)
    reply: list[bytes | None] = []
    if h is None:
        return [None] * (len(argv) - 4)
    now = now_of(ctx)
    deleted = 0
    removed = False
    had_volatile = bool(h.expires)
    for f in argv[4:]:
        if removed:
            reply.append(None)
            continue
        v = h.get(f, now)
        reply.append(v)
        if v is not None:
            delete_field(h, f)
            deleted += 1
            if not h.data:
                ctx.db.delete(key)
                removed = True
    if deleted:
        if not removed and had_volatile:
            _fields_untrack(ctx, key, h)
        ctx.modified(key)
        ctx.notify("h", b"hdel", key)
        if removed:
            ctx.notify("g", b"del", key)
        ctx.dirty += deleted  # propagated verbatim (observed)
    return reply


# -- HEXPIRE family -------------------------------------------------------------------------
_NX, _XX, _GT, _LT = 1, 2, 4, 8


def _hexpire(ctx: Ctx, argv: list[bytes], name: bytes, unit: int, relative: bool) -> Any:
    key = argv[1]
    fi = _fields_at(argv, 3)
    flags = 0
    numfields = 0
    first = len(argv) - 1
    if fi >= 0:
        # src/expire.c parseExtendedExpireArgumentsOrReply
        for opt in argv[3:fi]:
            o = opt.upper()
            if o == b"NX":
                flags |= _NX
            elif o == b"XX":
                flags |= _XX
            elif o == b"GT":
                flags |= _GT
            elif o == b"LT":
                flags |= _LT
            else:
                raise unsupported_option(opt)
        if flags & _NX and flags & (_XX | _GT | _LT):
            raise CommandError(NX_XX_GT_LT)
        if flags & _GT and flags & _LT:
            raise CommandError(GT_LT)
        numfields = int_arg(argv[fi + 1])
        first = fi + 2
    if numfields == 0 or numfields != len(argv) - first:
        raise CommandError(NUMFIELDS)
    when = _when(ctx, name, argv[2], unit, relative)
    h = lookup(ctx, key)
    fields = argv[first:]
    if h is None:
        return [-2] * len(fields)
    now = now_of(ctx)
    past = already_expired(ctx, when)
    had_volatile = bool(h.expires)
    reply: list[int] = []
    deleted: list[bytes] = []
    updated = 0
    for f in fields:
        r = _set_expire(ctx, key, h, f, when, flags, past, now)
        if r == 1:
            updated += 1
        elif r == 2:
            deleted.append(f)
            ctx.engine.keyspace.stats_expired_fields += 1
        reply.append(r)
    if deleted or updated:
        if had_volatile:
            _fields_untrack(ctx, key, h)
        if deleted:
            ctx.rewrite([b"HDEL", key, *deleted])
            ctx.notify("h", b"hexpired", key)
        else:
            out = list(argv)
            if name != b"hpexpireat":
                out[0] = b"HPEXPIREAT"
                out[2] = b"%d" % when
            ctx.rewrite(out)
            ctx.notify("h", b"hexpire", key)
        ctx.dirty += len(deleted) + updated
        ctx.modified(key)
        delete_if_empty(ctx, key, h)
    return reply


def _set_expire(
    ctx: Ctx, key: bytes, h: Hash, f: bytes, when: int, flags: int, past: bool, now: int
) -> int:
    """src/t_hash.c hashTypeSetExpire: -2 missing, 0 condition failed, 1 set, 2 deleted."""
    if h.get(f, now) is None:
        return -2
    if h.listpack:
        # a listpack field has an "infinite" TTL: XX and GT always fail
        if flags & (_XX | _GT):
            return 0
        if past:
            delete_field(h, f)
            return 2
        h.listpack = False
    cur = h.expires.get(f, -1)
    if flags:
        if flags & _NX and cur != -1:
            return 0
        if flags & _XX and cur == -1:
            return 0
        if flags & _GT and (when <= cur or cur == -1):
            return 0
        if flags & _LT and cur != -1 and when >= cur:
            return 0
    if past:
        delete_field(h, f)
        return 2
    h.expires[f] = when
    if when != cur:
        ctx.db.track_fields(key, when)
    return 1


@command("hexpire", -6, "write fast", 1, 1, 1, acl="@write @hash @fast")
def hexpire(ctx: Ctx, argv: list[bytes]) -> Any:
    return _hexpire(ctx, argv, b"hexpire", 1000, True)


@command("hpexpire", -6, "write fast", 1, 1, 1, acl="@write @hash @fast")
def hpexpire(ctx: Ctx, argv: list[bytes]) -> Any:
    return _hexpire(ctx, argv, b"hpexpire", 1, True)


@command("hexpireat", -6, "write fast", 1, 1, 1, acl="@write @hash @fast")
def hexpireat(ctx: Ctx, argv: list[bytes]) -> Any:
    return _hexpire(ctx, argv, b"hexpireat", 1000, False)


@command("hpexpireat", -6, "write fast", 1, 1, 1, acl="@write @hash @fast")
def hpexpireat(ctx: Ctx, argv: list[bytes]) -> Any:
    return _hexpire(ctx, argv, b"hpexpireat", 1, False)


# -- HPERSIST -------------------------------------------------------------------------------
@command("hpersist", -5, "write fast", 1, 1, 1, acl="@write @hash @fast")
def hpersist(ctx: Ctx, argv: list[bytes]) -> Any:
    _positional_numfields(argv, NUMFIELDS)
    key = argv[1]
    h = lookup(ctx, key)
    fields = argv[4:]
    if h is None:
        return [-2] * len(fields)
    now = now_of(ctx)
    reply: list[int] = []
    changes = 0
    for f in fields:
        if h.get(f, now) is None:
            reply.append(-2)
        elif f in h.expires:
            del h.expires[f]
            changes += 1
            reply.append(1)
        else:
            reply.append(-1)
    if changes:
        _fields_untrack(ctx, key, h)
        ctx.dirty += changes
        ctx.notify("h", b"hpersist", key)
        ctx.modified(key)
    return reply


# -- HTTL family ----------------------------------------------------------------------------
def _httl(ctx: Ctx, argv: list[bytes], relative: bool, ms: bool) -> Any:
    _positional_numfields(argv, SYNTAX)
    h = lookup(ctx, argv[1])
    fields = argv[4:]
    if h is None:
        return [-2] * len(fields)
    now = now_of(ctx)
    base = ctx.now_ms if relative else 0
    reply: list[int] = []
    for f in fields:
        if h.get(f, now) is None:
            reply.append(-2)
            continue
        e = h.expires.get(f)
        if e is None:
            reply.append(-1)
            continue
        r = max(0, e - base)
        reply.append(r if ms else (r + 500) // 1000)
    return reply


@command("httl", -5, "readonly fast", 1, 1, 1, acl="@read @hash @fast")
def httl(ctx: Ctx, argv: list[bytes]) -> Any:
    return _httl(ctx, argv, True, False)


@command("hpttl", -5, "readonly fast", 1, 1, 1, acl="@read @hash @fast")
def hpttl(ctx: Ctx, argv: list[bytes]) -> Any:
    return _httl(ctx, argv, True, True)


@command("hexpiretime", -5, "readonly fast", 1, 1, 1, acl="@read @hash @fast")
def hexpiretime(ctx: Ctx, argv: list[bytes]) -> Any:
    return _httl(ctx, argv, False, False)


@command("hpexpiretime", -5, "readonly fast", 1, 1, 1, acl="@read @hash @fast")
def hpexpiretime(ctx: Ctx, argv: list[bytes]) -> Any:
    return _httl(ctx, argv, False, True)
