"""String commands (src/t_string.c). GET and SET are written out in full as the pattern for
the other handlers: parse with Valkey's rules, look up through the db (lazy expiry), count
changes in ``ctx.dirty``, rewrite the propagated form when it must be deterministic.

Bitmap commands are in ``bits.py``; GETRANGE, SETRANGE and LCS in ``strings_ranges.py``."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from engine.commands.strings_ranges import check_len
from engine.commands.table import command, run_handler
from engine.commands.util import LLONG_MAX, LLONG_MIN, OK, int_arg
from engine.context import Ctx
from engine.errors import (
    DECR_OVERFLOW,
    INCR_OVERFLOW,
    INCRFLOAT_NAN,
    NOT_FLOAT,
    NOT_INTEGER,
    SYNTAX,
    WRONGTYPE,
    CommandError,
    invalid_expire,
    wrong_arity,
)
from engine.types.strings import LongDoubleInf, ld_round, mark_encoding, string2ld
from persistence.format import ld2string_human
from persistence.resp.reply import OK as OK_WIRE
from persistence.resp.reply import bulk, bulks, null
from persistence.resp.tokens import string2ll

_UNITS = {b"EX": 1, b"PX": 2, b"EXAT": 3, b"PXAT": 4}


@command("get", 2, "readonly fast", 1, 1, 1, acl="@read @string @fast")
def get(ctx: Ctx, argv: list[bytes]) -> Any:
    value = ctx.db.lookup(ctx, argv[1])
    if value is not None and type(value) is not bytes:
        raise CommandError(WRONGTYPE)
    return value


@run_handler("get")
def get_run(ctx: Ctx, argv: list[bytes], more: list[Any]) -> list[bytes]:
    """GET key, then more of them; stops at a key to expire, a value of another type (the
    error is get's), or when the replies pass 64 KB (the output limit is checked between)."""
    db = ctx.db
    expires = db.expires
    keys = [argv[1], *more]
    values: list[Any] = list(map(db.data.get, keys))
    # the common cases: every key a string without a TTL or missing, small replies
    if (
        _STRING_OR_MISSING.issuperset(map(type, values))
        and (not expires or expires.keys().isdisjoint(keys))
        and sum(map(len, filter(None, values))) <= 65536
    ):
        return bulks(values, ctx.client.resp)
    now = ctx.now_ms
    missing = null(ctx.client.resp)
    out: list[bytes] = []
    size = 0
    for key, value in zip(keys, values):
        if value is None:
            out.append(missing)
            continue
        if type(value) is not bytes or (expires and now > expires.get(key, now)):
            break
        out.append(bulk(value))
        size += len(value)
        if size > 65536:
            break
    return out


_STRING_OR_MISSING = frozenset((bytes, type(None)))


def _parse_expire(name: bytes, unit: int, when: bytes, now_ms: int) -> int:
    """getExpireMillisecondsOrReply (src/t_string.c): absolute ms of EX/PX/EXAT/PXAT."""
    t = int_arg(when)
    if t <= 0 or (unit in (1, 3) and t > LLONG_MAX // 1000):
        raise invalid_expire(name)
    if unit in (1, 3):
        t *= 1000
    if unit in (1, 2):
        t += now_ms
        if t > LLONG_MAX:  # C overflow wraps negative
            raise invalid_expire(name)
    return t


def _delete_expired_overwrite(ctx: Ctx, key: bytes) -> None:
    """deleteExpiredKeyFromOverwriteAndPropagate (src/db.c): a write with a time already in
    the past deletes the key and propagates DEL/UNLINK (lazyfree-lazy-expire)."""
    ctx.db.delete(key)
    ctx.dirty += 1
    ctx.rewrite([b"UNLINK" if ctx.db.keyspace.lazyfree_lazy_expire else b"DEL", key])
    ctx.modified(key)
    ctx.notify("g", b"del", key)


@command("set", -3, "write denyoom", 1, 1, 1, acl="@write @string @slow")
def set_(ctx: Ctx, argv: list[bytes]) -> Any:
    key, value = argv[1], argv[2]
    if len(argv) == 3:  # the common case
        db = ctx.db
        if key in db.expires:
            db.lookup(ctx, key)  # lookupKeyWrite: an expired key is expired first
        db.set(key, value)
        ctx.dirty += 1
        ctx.modified(key)
        ctx.notify("$", b"set", key)
        return OK
    nx = xx = get_old = keepttl = False
    ifeq: bytes | None = None
    unit = 0
    when: bytes | None = None
    i = 3
    n = len(argv)
    # src/t_string.c parseExtendedStringArgumentsOrReply: a unit may repeat (last one wins)
    while i < n:
        opt = argv[i].upper()
        has_next = i + 1 < n
        if opt == b"NX" and not xx and ifeq is None:
            nx = True
        elif opt == b"XX" and not nx and ifeq is None:
            xx = True
        elif opt == b"IFEQ" and has_next and not nx and not xx and ifeq is None:
            ifeq = argv[i + 1]
            i += 1
        elif opt == b"GET":
            get_old = True
        elif opt == b"KEEPTTL" and when is None:
            keepttl = True
        elif (u := _UNITS.get(opt)) and has_next and not keepttl and unit in (0, u):
            unit = u
            when = argv[i + 1]
            i += 1
        else:
            raise CommandError(SYNTAX)
        i += 1
    expire_at: int | None = None
    if when is not None:
        expire_at = _parse_expire(b"set", unit, when, ctx.now_ms)
    db = ctx.db
    old = db.lookup(ctx, key)
    if get_old and old is not None and type(old) is not bytes:
        raise CommandError(WRONGTYPE)
    if ifeq is not None:
        if old is not None and type(old) is not bytes:
            raise CommandError(WRONGTYPE)
        if old != ifeq:
            return old if get_old else None
    if (nx and old is not None) or (xx and old is None):
        return old if get_old else None
    if expire_at is not None and expire_at <= ctx.now_ms:
        # src/t_string.c setGenericCommand: checkAlreadyExpired
        if old is not None:
            _delete_expired_overwrite(ctx, key)
        else:
            ctx.prevent()
        return old if get_old else OK
    db.set(key, value, keep_ttl=keepttl)
    ctx.dirty += 1
    ctx.modified(key)
    ctx.notify("$", b"set", key)
    if expire_at is not None:
        db.set_expire(key, expire_at)
        ctx.notify("g", b"expire", key)
        # src/t_string.c: relative or second-based times propagate as SET key value PXAT ms
        # (PXAT is propagated as typed, GET included: the GET strip is only without expire)
        if unit != 4:
            ctx.rewrite([b"SET", key, value, b"PXAT", b"%d" % expire_at])
    elif get_old:
        ctx.rewrite([a for j, a in enumerate(argv) if j < 3 or a.upper() != b"GET"])
    return old if get_old else OK


@run_handler("set")
def set_run(ctx: Ctx, argv: list[bytes], more: list[Any]) -> list[bytes]:
    """SET key value, then more of them: what set_ does for each (a TTL goes; an expired key
    is where the run stops, as its lazy expiry propagates a DEL first)."""
    if len(argv) != 3:
        return []
    db = ctx.db
    expires = db.expires
    volatile = db.volatile_keys
    if db.slot_keys is not None:
        return []
    items = [(argv[1], argv[2]), *more]
    if expires or volatile:
        now = ctx.now_ms
        for i, (key, _) in enumerate(items):
            exp = expires.get(key)
            if exp is not None:
                if now > exp:
                    del items[i:]
                    break
                del expires[key]
            volatile.discard(key)  # (Keyspace.set's _forget)
    db.data.update(items)
    n = len(items)
    ctx.dirty += n
    return [OK_WIRE] * n


def _set_plain(ctx: Ctx, key: bytes, value: bytes) -> None:
    ctx.db.set(key, value)
    ctx.dirty += 1
    ctx.modified(key)
    ctx.notify("$", b"set", key)


@command("setnx", 3, "write denyoom fast", 1, 1, 1, acl="@write @string @fast")
def setnx(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[1]
    if ctx.db.lookup(ctx, key) is not None:
        return 0
    _set_plain(ctx, key, argv[2])
    return 1


def _setex(ctx: Ctx, argv: list[bytes], unit: int, name: bytes) -> Any:
    key, value = argv[1], argv[3]
    ms = _parse_expire(name, unit, argv[2], ctx.now_ms)
    ctx.db.lookup(ctx, key)  # lazy expiry of the old value, as lookupKeyWrite
    _set_plain(ctx, key, value)
    ctx.db.set_expire(key, ms)
    ctx.notify("g", b"expire", key)
    ctx.rewrite([b"SET", key, value, b"PXAT", b"%d" % ms])
    return OK


@command("setex", 4, "write denyoom", 1, 1, 1, acl="@write @string @slow")
def setex(ctx: Ctx, argv: list[bytes]) -> Any:
    return _setex(ctx, argv, 1, b"setex")


@command("psetex", 4, "write denyoom", 1, 1, 1, acl="@write @string @slow")
def psetex(ctx: Ctx, argv: list[bytes]) -> Any:
    return _setex(ctx, argv, 2, b"psetex")


@command("getset", 3, "write denyoom fast", 1, 1, 1, acl="@write @string @fast")
def getset(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[1]
    old = ctx.db.lookup(ctx, key)
    if old is not None and type(old) is not bytes:
        raise CommandError(WRONGTYPE)
    _set_plain(ctx, key, argv[2])
    ctx.rewrite([b"SET", key, argv[2]])  # src/t_string.c getsetCommand: propagated as SET
    return old


@command("getdel", 2, "write fast", 1, 1, 1, acl="@write @string @fast")
def getdel(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[1]
    old = ctx.db.lookup(ctx, key)
    if old is None:
        return None
    if type(old) is not bytes:
        raise CommandError(WRONGTYPE)
    ctx.db.delete(key)
    ctx.rewrite([b"DEL", key])  # src/t_string.c getdelCommand
    ctx.modified(key)
    ctx.notify("g", b"del", key)
    ctx.dirty += 1
    return old


@command("getex", -2, "write fast", 1, 1, 1, acl="@write @string @fast")
def getex(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[1]
    unit = 0
    persist = False
    when: bytes | None = None
    i, n = 2, len(argv)
    while i < n:  # src/t_string.c parseExtendedStringArgumentsOrReply (COMMAND_GET)
        opt = argv[i].upper()
        if opt == b"PERSIST" and unit == 0:
            persist = True
        elif (u := _UNITS.get(opt)) and i + 1 < n and not persist and unit in (0, u):
            unit = u
            when = argv[i + 1]
            i += 1
        else:
            raise CommandError(SYNTAX)
        i += 1
    ms = _parse_expire(b"getex", unit, when, ctx.now_ms) if when is not None else 0
    value = ctx.db.lookup(ctx, key)
    if value is None:
        return None
    if type(value) is not bytes:
        raise CommandError(WRONGTYPE)
    if when is not None:
        if unit in (3, 4) and ms <= ctx.now_ms:
            _delete_expired_overwrite(ctx, key)
        else:
            ctx.db.set_expire(key, ms)
            ctx.rewrite([b"PEXPIREAT", key, b"%d" % ms])
            ctx.modified(key)
            ctx.notify("g", b"expire", key)
            ctx.dirty += 1
    elif persist and ctx.db.persist(key):
        ctx.modified(key)
        ctx.rewrite([b"PERSIST", key])
        ctx.notify("g", b"persist", key)
        ctx.dirty += 1
    return value


@command("delifeq", 3, "write fast", 1, 1, 1, acl="@write @string @fast")
def delifeq(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[1]
    value = ctx.db.lookup(ctx, key)
    if value is None:
        return 0
    if type(value) is not bytes:
        raise CommandError(WRONGTYPE)
    if value != argv[2]:
        return 0
    ctx.db.delete(key)
    ctx.rewrite([b"DEL", key])  # src/t_string.c delifeqCommand
    ctx.modified(key)
    ctx.notify("g", b"del", key)
    ctx.dirty += 1
    return 1


@command("mget", -2, "readonly fast", 1, -1, 1, acl="@read @string @fast")
def mget(ctx: Ctx, argv: list[bytes]) -> Any:
    lookup = ctx.db.lookup
    out: list[Any] = []
    for key in argv[1:]:
        v = lookup(ctx, key)
        out.append(v if type(v) is bytes else None)
    return out


def _mset(ctx: Ctx, argv: list[bytes], nx: bool) -> Any:
    n = len(argv)
    if n % 2 == 0:
        raise wrong_arity(argv[0].lower())
    db = ctx.db
    if nx:
        for j in range(1, n, 2):
            if db.lookup(ctx, argv[j]) is not None:
                return 0
    else:
        data = db.data
        expires = db.expires
        for j in range(1, n, 2):  # lookupKeyWrite's lazy expiry, only when it can apply
            if argv[j] in expires and argv[j] in data:
                db.lookup(ctx, argv[j])
    set_ = db.set
    for j in range(1, n, 2):
        set_(argv[j], argv[j + 1])
    if ctx.engine.keyspace.watchers:
        for j in range(1, n, 2):
            ctx.modified(argv[j])
    if ctx.engine.notify_flags:
        for j in range(1, n, 2):
            ctx.notify("$", b"set", argv[j])
    ctx.dirty += (n - 1) // 2
    return 1 if nx else OK


@command("mset", -3, "write denyoom", 1, -1, 2, acl="@write @string @slow")
def mset(ctx: Ctx, argv: list[bytes]) -> Any:
    return _mset(ctx, argv, False)


@command("msetnx", -3, "write denyoom", 1, -1, 2, acl="@write @string @slow")
def msetnx(ctx: Ctx, argv: list[bytes]) -> Any:
    return _mset(ctx, argv, True)


@command("append", 3, "write denyoom fast", 1, 1, 1, acl="@write @string @fast")
def append(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[1]
    db = ctx.db
    old = db.lookup(ctx, key)
    if old is None:
        new = argv[2]
        db.add(key, new)
    else:
        if type(old) is not bytes:
            raise CommandError(WRONGTYPE)
        check_len(ctx, len(old) + len(argv[2]))
        new = old + argv[2]
        db.data[key] = new  # same key, same TTL
        mark_encoding(new, "raw")  # src/t_string.c appendCommand: dbUnshareStringValue
    ctx.modified(key)
    ctx.notify("$", b"append", key)
    ctx.dirty += 1
    return len(new)


@command("strlen", 2, "readonly fast", 1, 1, 1, acl="@read @string @fast")
def strlen(ctx: Ctx, argv: list[bytes]) -> Any:
    value = ctx.db.lookup(ctx, argv[1])
    if value is None:
        return 0
    if type(value) is not bytes:
        raise CommandError(WRONGTYPE)
    return len(value)


def _incr(ctx: Ctx, key: bytes, incr: int) -> int:
    """incrDecrCommand (src/t_string.c)."""
    db = ctx.db
    old = db.lookup(ctx, key)
    if old is None:
        value = 0
    else:
        if type(old) is not bytes:
            raise CommandError(WRONGTYPE)
        v = string2ll(old)
        if v is None:
            raise CommandError(NOT_INTEGER)
        value = v
    value += incr
    if value > LLONG_MAX or value < LLONG_MIN:
        raise CommandError(INCR_OVERFLOW)
    if old is None:
        db.add(key, b"%d" % value)
    else:
        db.data[key] = b"%d" % value  # dbReplaceValue keeps the TTL
    ctx.modified(key)
    ctx.notify("$", b"incrby", key)
    ctx.dirty += 1
    return value


@command("incr", 2, "write denyoom fast", 1, 1, 1, acl="@write @string @fast")
def incr(ctx: Ctx, argv: list[bytes]) -> Any:
    return _incr(ctx, argv[1], 1)


@command("decr", 2, "write denyoom fast", 1, 1, 1, acl="@write @string @fast")
def decr(ctx: Ctx, argv: list[bytes]) -> Any:
    return _incr(ctx, argv[1], -1)


@command("incrby", 3, "write denyoom fast", 1, 1, 1, acl="@write @string @fast")
def incrby(ctx: Ctx, argv: list[bytes]) -> Any:
    return _incr(ctx, argv[1], int_arg(argv[2]))


@command("decrby", 3, "write denyoom fast", 1, 1, 1, acl="@write @string @fast")
def decrby(ctx: Ctx, argv: list[bytes]) -> Any:
    by = int_arg(argv[2])
    if by == LLONG_MIN:
        raise CommandError(DECR_OVERFLOW)
    return _incr(ctx, argv[1], -by)


def incr_long_double(current: bytes | None, incr: bytes) -> bytes:
    """The new text of INCRBYFLOAT / HINCRBYFLOAT: long double arithmetic, human format
    (src/t_string.c incrbyfloatCommand). Raises the command's errors."""
    value = Fraction(0) if current is None else string2ld(current)
    by = string2ld(incr)
    if value is None or by is None:
        raise CommandError(NOT_FLOAT)
    if isinstance(value, float) or isinstance(by, float):
        raise CommandError(INCRFLOAT_NAN)  # inf + x is inf or nan
    try:
        total = ld_round(value + by)
    except LongDoubleInf:
        raise CommandError(INCRFLOAT_NAN) from None
    return ld2string_human(total.numerator, total.denominator)


@command("incrbyfloat", 3, "write denyoom fast", 1, 1, 1, acl="@write @string @fast")
def incrbyfloat(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[1]
    db = ctx.db
    old = db.lookup(ctx, key)
    if old is not None and type(old) is not bytes:
        raise CommandError(WRONGTYPE)
    new = incr_long_double(old, argv[2])
    mark_encoding(new, "embstr" if len(new) <= 44 else "raw")  # createStringObjectFromLongDouble
    if old is None:
        db.add(key, new)
    else:
        db.data[key] = new
    ctx.modified(key)
    ctx.notify("$", b"incrbyfloat", key)
    ctx.dirty += 1
    # src/t_string.c: always propagated as SET key value KEEPTTL
    ctx.rewrite([b"SET", key, new, b"KEEPTTL"])
    return new


# bitmap commands register themselves on import
from engine.commands import bits as _bit_cmds  # noqa: E402, F401
