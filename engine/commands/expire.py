"""Key TTL commands (src/expire.c, src/db.c): EXPIRE PEXPIRE EXPIREAT PEXPIREAT (NX XX GT LT)
TTL PTTL EXPIRETIME PEXPIRETIME PERSIST.

Propagation (spec 4.4): EXPIRE/PEXPIRE/EXPIREAT become ``PEXPIREAT key ms``; PEXPIREAT goes as
typed; a time already in the past deletes the key and propagates ``UNLINK`` (``DEL`` with
lazyfree-lazy-expire no)."""

from __future__ import annotations

from typing import Any

from engine.commands.table import command
from engine.commands.util import LLONG_MAX, LLONG_MIN, int_arg
from engine.context import Ctx
from engine.errors import GT_LT, NX_XX_GT_LT, CommandError, invalid_expire, unsupported_option


def _flags(argv: list[bytes]) -> tuple[bool, bool, bool, bool]:
    """parseExtendedExpireArgumentsOrReply (src/expire.c)."""
    nx = xx = gt = lt = False
    for opt in argv[3:]:
        o = opt.upper()
        if o == b"NX":
            nx = True
        elif o == b"XX":
            xx = True
        elif o == b"GT":
            gt = True
        elif o == b"LT":
            lt = True
        else:
            raise unsupported_option(opt)
    if nx and (xx or gt or lt):
        raise CommandError(NX_XX_GT_LT)
    if gt and lt:
        raise CommandError(GT_LT)
    return nx, xx, gt, lt


def _expire(ctx: Ctx, argv: list[bytes], name: bytes, unit_ms: int, relative: bool) -> Any:
    """expireGenericCommand (src/expire.c)."""
    key = argv[1]
    nx, xx, gt, lt = _flags(argv)
    when = int_arg(argv[2])
    if unit_ms == 1000:
        if when > LLONG_MAX // 1000 or when < -(LLONG_MAX // 1000):
            raise invalid_expire(name)
        when *= 1000
    base = ctx.now_ms if relative else 0
    if when > LLONG_MAX - base:
        raise invalid_expire(name)
    when += base
    if when < LLONG_MIN:
        raise invalid_expire(name)
    db = ctx.db
    if db.lookup(ctx, key) is None:
        return 0
    if nx or xx or gt or lt:
        cur = db.get_expire(key)
        if nx and cur is not None:
            return 0
        if xx and cur is None:
            return 0
        if gt and (cur is None or when <= cur):
            return 0
        if lt and cur is not None and when >= cur:
            return 0
    if when <= ctx.now_ms and not ctx.engine.loading:  # checkAlreadyExpired
        db.delete(key)
        ctx.dirty += 1
        ctx.rewrite([b"UNLINK" if db.keyspace.lazyfree_lazy_expire else b"DEL", key])
        ctx.modified(key)
        ctx.notify("g", b"del", key)
        return 1
    db.set_expire(key, when)
    if name != b"pexpireat":
        # observed on 9.1.2: the NX/XX/GT/LT flags are kept
        ctx.rewrite([b"PEXPIREAT", key, b"%d" % when, *argv[3:]])
    ctx.modified(key)
    ctx.notify("g", b"expire", key)
    ctx.dirty += 1
    return 1


@command("expire", -3, "write fast", 1, 1, 1, acl="@keyspace @write @fast")
def expire(ctx: Ctx, argv: list[bytes]) -> Any:
    return _expire(ctx, argv, b"expire", 1000, True)


@command("pexpire", -3, "write fast", 1, 1, 1, acl="@keyspace @write @fast")
def pexpire(ctx: Ctx, argv: list[bytes]) -> Any:
    return _expire(ctx, argv, b"pexpire", 1, True)


@command("expireat", -3, "write fast", 1, 1, 1, acl="@keyspace @write @fast")
def expireat(ctx: Ctx, argv: list[bytes]) -> Any:
    return _expire(ctx, argv, b"expireat", 1000, False)


@command("pexpireat", -3, "write fast", 1, 1, 1, acl="@keyspace @write @fast")
def pexpireat(ctx: Ctx, argv: list[bytes]) -> Any:
    return _expire(ctx, argv, b"pexpireat", 1, False)


def _ttl(ctx: Ctx, key: bytes, ms: bool, absolute: bool) -> int:
    """ttlGenericCommand (src/expire.c)."""
    db = ctx.db
    if db.lookup(ctx, key) is None:
        return -2
    exp = db.get_expire(key)
    if exp is None:
        return -1
    if absolute:
        return exp if ms else exp // 1000
    left = max(exp - ctx.now_ms, 0)
    return left if ms else (left + 500) // 1000


@command("ttl", 2, "readonly fast", 1, 1, 1, acl="@keyspace @read @fast")
def ttl(ctx: Ctx, argv: list[bytes]) -> Any:
    return _ttl(ctx, argv[1], False, False)


@command("pttl", 2, "readonly fast", 1, 1, 1, acl="@keyspace @read @fast")
def pttl(ctx: Ctx, argv: list[bytes]) -> Any:
    return _ttl(ctx, argv[1], True, False)


@command("expiretime", 2, "readonly fast", 1, 1, 1, acl="@keyspace @read @fast")
def expiretime(ctx: Ctx, argv: list[bytes]) -> Any:
    return _ttl(ctx, argv[1], False, True)


@command("pexpiretime", 2, "readonly fast", 1, 1, 1, acl="@keyspace @read @fast")
def pexpiretime(ctx: Ctx, argv: list[bytes]) -> Any:
    return _ttl(ctx, argv[1], True, True)


@command("persist", 2, "write fast", 1, 1, 1, acl="@keyspace @write @fast")
def persist(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[1]
    db = ctx.db
    if db.lookup(ctx, key) is None or not db.persist(key):
        return 0
    ctx.modified(key)
    ctx.notify("g", b"persist", key)
    ctx.dirty += 1
    return 1
