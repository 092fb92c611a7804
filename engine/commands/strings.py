"""String commands (src/t_string.c). GET and SET are written out in full as the pattern for
the other handlers: parse with Valkey's rules, look up through the db (lazy expiry), count
changes in ``ctx.dirty``, rewrite the propagated form when it must be deterministic."""

from __future__ import annotations

from typing import Any

from engine.commands.table import command
from engine.commands.util import OK, int_arg
from engine.context import Ctx
from engine.errors import SYNTAX, WRONGTYPE, CommandError, invalid_expire


@command("get", 2, "readonly fast", 1, 1, 1, acl="@read @string @fast")
def get(ctx: Ctx, argv: list[bytes]) -> Any:
    value = ctx.db.lookup(ctx, argv[1])
    if value is not None and type(value) is not bytes:
        raise CommandError(WRONGTYPE)
    return value


_SET_FLAGS = frozenset((b"NX", b"XX", b"GET", b"KEEPTTL", b"EX", b"PX", b"EXAT", b"PXAT", b"IFEQ"))


@command("set", -3, "write denyoom", 1, 1, 1, acl="@write @string @slow")
def set_(ctx: Ctx, argv: list[bytes]) -> Any:
    key, value = argv[1], argv[2]
    if len(argv) == 3:  # the common case
        ctx.db.set(key, value)
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
    # src/t_string.c parseExtendedStringArgumentsOrReply
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
        elif opt in (b"EX", b"PX", b"EXAT", b"PXAT") and has_next and not keepttl and when is None:
            unit = {b"EX": 1, b"PX": 2, b"EXAT": 3, b"PXAT": 4}[opt]
            when = argv[i + 1]
            i += 1
        else:
            raise CommandError(SYNTAX)
        i += 1
    expire_at: int | None = None
    if when is not None:
        t = int_arg(when)
        if t <= 0:
            raise CommandError(invalid_expire(b"set").message)
        if unit == 1:
            ms = t * 1000 + ctx.now_ms
        elif unit == 2:
            ms = t + ctx.now_ms
        elif unit == 3:
            ms = t * 1000
        else:
            ms = t
        if ms > (1 << 63) - 1 or t * (1000 if unit in (1, 3) else 1) > (1 << 63) - 1:
            raise CommandError(invalid_expire(b"set").message)
        expire_at = ms
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
    db.set(key, value, keep_ttl=keepttl)
    ctx.dirty += 1
    ctx.modified(key)
    ctx.notify("$", b"set", key)
    if expire_at is not None:
        db.set_expire(key, expire_at)
        ctx.notify("g", b"expire", key)
        # src/t_string.c: relative or second-based times propagate as SET key value PXAT ms
        ctx.rewrite([b"SET", key, value, b"PXAT", b"%d" % expire_at])
    elif get_old:
        ctx.rewrite([a for a in argv if a.upper() != b"GET"])
    return old if get_old else OK
