"""Set commands (src/t_set.c), and the SSCAN/ZSCAN cursor machinery (src/db.c).

Replies follow Valkey: SMEMBERS/SINTER/SUNION/SDIFF/SPOP-with-count are RESP3 sets,
SRANDMEMBER-with-count and SMISMEMBER are arrays. SPOP propagates as ``SREM`` (one member, or
batches of 1024) or as ``UNLINK`` when it empties the set (lazyfree-lazy-server-del yes, the
Valkey 9 default). Random picks come from :mod:`random`; they cannot match the real server's.
"""

from __future__ import annotations

import heapq
import random
import re
from collections.abc import Iterable
from typing import Any

from engine.commands.table import command, keys_from_numkeys
from engine.commands.util import int_arg
from engine.context import Ctx
from engine.errors import (
    INVALID_CURSOR,
    LIMIT_NEGATIVE,
    LONG_RANGE_SYMMETRIC,
    NOSCORES_ONLY_ZSCAN,
    NOT_POSITIVE,
    NOVALUES_ONLY_HSCAN,
    NUMKEYS_GT_ARGS,
    NUMKEYS_POSITIVE,
    SYNTAX,
    WRONGTYPE,
    CommandError,
)
from engine.types.sets import HASHTABLE, INTSET, LISTPACK, Limits, SetObject, create, is_int
from persistence.rdb.glob import glob_match
from persistence.resp.frames import Array, Bulk, Set
from persistence.resp.tokens import string2ll

RNG = random.Random()
LONG_MAX = (1 << 63) - 1
_SPOP_MOVE_STRATEGY_MUL = 5  # src/t_set.c
_SPOP_BATCH = 1024  # src/t_set.c spopWithCountCommand: SREM batches
EMPTY_SET = Set([])


def set_limits(ctx: Ctx) -> Limits:
    v = ctx.engine.config.values
    return (v["set-max-intset-entries"], v["set-max-listpack-entries"], v["set-max-listpack-value"])


def set_reply(members: Iterable[bytes]) -> Set:
    return Set([Bulk(m) for m in members])


def _lookup_set(ctx: Ctx, key: bytes) -> SetObject | None:
    s = ctx.db.lookup(ctx, key)
    if s is not None and type(s) is not SetObject:
        raise CommandError(WRONGTYPE)
    return s


def range_long(b: bytes) -> int:
    """getRangeLongFromObjectOrReply(-LONG_MAX, LONG_MAX) (SRANDMEMBER, ZRANDMEMBER)."""
    v = int_arg(b)
    if v < -LONG_MAX:
        raise CommandError(LONG_RANGE_SYMMETRIC)
    return v


def positive_long(b: bytes, err: str = NOT_POSITIVE) -> int:
    """getPositiveLongFromObjectOrReply: one message for both bad and negative (observed)."""
    v = string2ll(b)
    if v is None or v < 0:
        raise CommandError(err)
    return v


def numkeys_arg(b: bytes) -> int:
    """getRangeLongFromObjectOrReply(1, LONG_MAX, "numkeys should be greater than 0")."""
    v = string2ll(b)
    if v is None or v < 1:
        raise CommandError(NUMKEYS_POSITIVE)
    return v


# -- basic commands ------------------------------------------------------------------------
@command("sadd", -3, "write denyoom fast", 1, 1, 1, acl="@write @set @fast")
def sadd(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[1]
    db = ctx.db
    s = db.lookup(ctx, key)
    lim = set_limits(ctx)
    if s is None:
        s = create(argv[2], len(argv) - 2, lim)
        db.add(key, s)
    elif type(s) is not SetObject:
        raise CommandError(WRONGTYPE)
    else:
        s.maybe_convert(len(argv) - 2, lim)
    added = 0
    add = s.add
    for i in range(2, len(argv)):
        if add(argv[i], lim):
            added += 1
    if added:
        ctx.modified(key)
        ctx.notify("s", b"sadd", key)
        ctx.dirty += added
    return added


@command("srem", -3, "write fast", 1, 1, 1, acl="@write @set @fast")
def srem(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[1]
    s = _lookup_set(ctx, key)
    if s is None:
        return 0
    deleted = 0
    removed = False
    for i in range(2, len(argv)):
        if s.remove(argv[i]):
            deleted += 1
            if not s.members:
                ctx.db.delete(key)
                removed = True
                break
    if deleted:
        ctx.modified(key)
        ctx.notify("s", b"srem", key)
        if removed:
            ctx.notify("g", b"del", key)
        ctx.dirty += deleted
    return deleted


@command("smembers", 2, "readonly", 1, 1, 1, acl="@read @set @slow")
def smembers(ctx: Ctx, argv: list[bytes]) -> Any:
    s = _lookup_set(ctx, argv[1])
    if s is None:
        return EMPTY_SET
    return set_reply(s.iter())


@command("sismember", 3, "readonly fast", 1, 1, 1, acl="@read @set @fast")
def sismember(ctx: Ctx, argv: list[bytes]) -> Any:
    s = _lookup_set(ctx, argv[1])
    return 1 if s is not None and argv[2] in s.members else 0


@command("smismember", -3, "readonly fast", 1, 1, 1, acl="@read @set @fast")
def smismember(ctx: Ctx, argv: list[bytes]) -> Any:
    s = _lookup_set(ctx, argv[1])
    if s is None:
        return [0] * (len(argv) - 2)
    members = s.members
    return [1 if m in members else 0 for m in argv[2:]]


@command("scard", 2, "readonly fast", 1, 1, 1, acl="@read @set @fast")
def scard(ctx: Ctx, argv: list[bytes]) -> Any:
    s = _lookup_set(ctx, argv[1])
    return 0 if s is None else len(s.members)


@command("spop", -2, "write fast", 1, 1, 1, acl="@write @set @fast")
def spop(ctx: Ctx, argv: list[bytes]) -> Any:
    if len(argv) == 3:
        return _spop_count(ctx, argv)
    if len(argv) > 3:
        raise CommandError(SYNTAX)
    key = argv[1]
    s = _lookup_set(ctx, key)
    if s is None:
        return None
    m = s.pick(RNG)
    s.remove(m)
    ctx.notify("s", b"spop", key)
    ctx.rewrite([b"SREM", key, m])  # src/t_set.c: replicated as SREM
    if not s.members:
        ctx.db.delete(key)
        ctx.notify("g", b"del", key)
    ctx.modified(key)
    ctx.dirty += 1
    return m


def _spop_count(ctx: Ctx, argv: list[bytes]) -> Any:
    count = positive_long(argv[2])
    key = argv[1]
    s = _lookup_set(ctx, key)
    if s is None or count == 0:
        return EMPTY_SET
    size = len(s.members)
    ctx.notify("s", b"spop", key)
    if count >= size:
        ctx.dirty += size
        out = list(s.iter())
        ctx.db.delete(key)
        ctx.notify("g", b"del", key)
        ctx.rewrite([b"UNLINK", key])  # lazyfree-lazy-server-del yes (Valkey 9 default)
        ctx.modified(key)
        return set_reply(out)
    ctx.dirty += count
    remaining = size - count
    if remaining * _SPOP_MOVE_STRATEGY_MUL > count:
        popped = RNG.sample(s.indexed(), count)
        for m in popped:
            s.remove(m)
    else:
        # src/t_set.c CASE 3: the remaining members move to a new set, whose encoding is
        # rebuilt (an intset stays one; a listpack or hashtable source starts a listpack)
        keep = RNG.sample(s.indexed(), remaining)
        kept = set(keep)
        popped = [m for m in s.iter() if m not in kept]
        lim = set_limits(ctx)
        new = SetObject(INTSET if s.enc == INTSET else LISTPACK)
        for m in keep:
            new.add(m, lim)
        s.replace(new)
    for i in range(0, len(popped), _SPOP_BATCH):
        ctx.also([b"SREM", key, *popped[i : i + _SPOP_BATCH]])
    ctx.prevent()
    ctx.modified(key)
    return set_reply(popped)


@command("srandmember", -2, "readonly", 1, 1, 1, acl="@read @set @slow")
def srandmember(ctx: Ctx, argv: list[bytes]) -> Any:
    if len(argv) > 3:
        raise CommandError(SYNTAX)
    if len(argv) == 2:
        s = _lookup_set(ctx, argv[1])
        return None if s is None else s.pick(RNG)
    n = range_long(argv[2])
    s = _lookup_set(ctx, argv[1])
    if s is None or n == 0:
        return []
    if n < 0:
        return RNG.choices(s.indexed(), k=-n)
    if n >= len(s.members):
        return list(s.iter())
    return RNG.sample(s.indexed(), n)


@command("smove", 4, "write fast", 1, 2, 1, acl="@write @set @fast")
def smove(ctx: Ctx, argv: list[bytes]) -> Any:
    src_key, dst_key, m = argv[1], argv[2], argv[3]
    db = ctx.db
    src = db.lookup(ctx, src_key)
    dst = db.lookup(ctx, dst_key)
    if src is None:
        return 0
    if type(src) is not SetObject or (dst is not None and type(dst) is not SetObject):
        raise CommandError(WRONGTYPE)
    if src is dst:
        return 1 if m in src.members else 0
    if not src.remove(m):
        return 0
    ctx.notify("s", b"srem", src_key)
    if not src.members:
        db.delete(src_key)
        ctx.notify("g", b"del", src_key)
    lim = set_limits(ctx)
    if dst is None:
        dst = create(m, 1, lim)
        db.add(dst_key, dst)
    ctx.modified(src_key)
    ctx.dirty += 1
    if dst.add(m, lim):
        ctx.dirty += 1
        ctx.modified(dst_key)
        ctx.notify("s", b"sadd", dst_key)
    return 1


# -- set algebra ---------------------------------------------------------------------------
def _lookup_sets(ctx: Ctx, keys: list[bytes]) -> list[SetObject | None]:
    out: list[SetObject | None] = []
    for k in keys:
        out.append(_lookup_set(ctx, k))
    return out


def _inter(sets: list[SetObject], limit: int = 0) -> list[bytes]:
    """Members of the smallest set (in its order) found in all the others."""
    ordered = sorted(sets, key=len)
    first = ordered[0]
    others = [s.members for s in ordered[1:] if s is not first]
    out: list[bytes] = []
    for m in first.iter():
        for o in others:
            if m not in o:
                break
        else:
            out.append(m)
            if limit and len(out) >= limit:
                break
    return out


def _start(sets: Iterable[SetObject | None], store: bool) -> SetObject:
    """The result set of SUNION/SDIFF: an intset, into which members are added in source
    order. For a reply (no STORE) it starts as a listpack unless every source is an intset:
    the reply lists members in first-seen order then (observed on valkey-server 9.1.2)."""
    if store or all(s.enc == INTSET for s in sets if s is not None):
        return SetObject(INTSET)
    return SetObject(LISTPACK)


def _union_order(sets: list[SetObject | None], lim: Limits, store: bool) -> SetObject:
    """sunionDiffGenericCommand's union: members added in source order."""
    dst = _start(sets, store)
    for s in sets:
        if s is None:
            continue
        for m in s.iter():
            dst.add(m, lim)
    return dst


def _diff(sets: list[SetObject | None], lim: Limits, store: bool) -> SetObject:
    """sunionDiffGenericCommand's diff, with its choice of algorithm (it affects encoding)."""
    dst = _start(sets, store)
    first = sets[0]
    if first is None or any(s is first for s in sets[1:]):
        return dst
    one = sum(len(first) for s in sets if s is not None) // 2
    two = sum(len(s) for s in sets if s is not None)
    if one <= two:
        others = sorted((s for s in sets[1:] if s is not None), key=len, reverse=True)
        for m in first.iter():
            for o in others:
                if m in o.members:
                    break
            else:
                dst.add(m, lim)
    else:
        for m in first.iter():
            dst.add(m, lim)
        for s in sets[1:]:
            if s is None:
                continue
            for m in s.iter():
                dst.remove(m)
            if not dst.members:
                break
    return dst


def _store(ctx: Ctx, dst_key: bytes, result: SetObject, event: bytes) -> int:
    db = ctx.db
    if result.members:
        db.set(dst_key, result)
        ctx.modified(dst_key)
        ctx.notify("s", event, dst_key)
        ctx.dirty += 1
        return len(result.members)
    if db.delete(dst_key):  # dbDelete: no expiry check
        ctx.dirty += 1
        ctx.modified(dst_key)
        ctx.notify("g", b"del", dst_key)
    return 0


def _inter_result(sets: list[SetObject], lim: Limits) -> SetObject:
    """sinterGenericCommand's destination set: encoding from the smallest source, then the
    members added in order, then an intset if they are all integers."""
    first = min(sets, key=len)
    dst = SetObject(INTSET if first.enc == INTSET else LISTPACK)
    only_ints = True
    for m in _inter(sets):
        if only_ints and not is_int(m):
            only_ints = False
        dst.add(m, lim)
    if only_ints:
        dst.maybe_to_intset(lim)
    return dst


@command("sinter", -2, "readonly", 1, -1, 1, acl="@read @set @slow")
def sinter(ctx: Ctx, argv: list[bytes]) -> Any:
    sets = _lookup_sets(ctx, argv[1:])
    if any(s is None for s in sets):
        return EMPTY_SET
    return set_reply(_inter(sets))  # type: ignore[arg-type]


@command("sintercard", -3, "readonly movablekeys", 0, 0, 0, acl="@read @set @slow",
         keys=keys_from_numkeys(1, 2))  # fmt: skip
def sintercard(ctx: Ctx, argv: list[bytes]) -> Any:
    numkeys = numkeys_arg(argv[1])
    if numkeys > len(argv) - 2:
        raise CommandError(NUMKEYS_GT_ARGS)
    limit = 0
    i = 2 + numkeys
    while i < len(argv):
        if argv[i].upper() == b"LIMIT" and i + 1 < len(argv):
            limit = positive_long(argv[i + 1], LIMIT_NEGATIVE)
            i += 2
        else:
            raise CommandError(SYNTAX)
    sets = _lookup_sets(ctx, argv[2 : 2 + numkeys])
    if any(s is None for s in sets):
        return 0
    return len(_inter(sets, limit))  # type: ignore[arg-type]


@command("sinterstore", -3, "write denyoom", 1, -1, 1, acl="@write @set @slow")
def sinterstore(ctx: Ctx, argv: list[bytes]) -> Any:
    sets = _lookup_sets(ctx, argv[2:])
    if any(s is None for s in sets):
        result = SetObject(INTSET)
    else:
        result = _inter_result(sets, set_limits(ctx))  # type: ignore[arg-type]
    return _store(ctx, argv[1], result, b"sinterstore")


@command("sunion", -2, "readonly", 1, -1, 1, acl="@read @set @slow")
def sunion(ctx: Ctx, argv: list[bytes]) -> Any:
    sets = _lookup_sets(ctx, argv[1:])
    return set_reply(_union_order(sets, set_limits(ctx), False).iter())


@command("sunionstore", -3, "write denyoom", 1, -1, 1, acl="@write @set @slow")
def sunionstore(ctx: Ctx, argv: list[bytes]) -> Any:
    sets = _lookup_sets(ctx, argv[2:])
    return _store(ctx, argv[1], _union_order(sets, set_limits(ctx), True), b"sunionstore")


@command("sdiff", -2, "readonly", 1, -1, 1, acl="@read @set @slow")
def sdiff(ctx: Ctx, argv: list[bytes]) -> Any:
    sets = _lookup_sets(ctx, argv[1:])
    return set_reply(_diff(sets, set_limits(ctx), False).iter())


@command("sdiffstore", -3, "write denyoom", 1, -1, 1, acl="@write @set @slow")
def sdiffstore(ctx: Ctx, argv: list[bytes]) -> Any:
    sets = _lookup_sets(ctx, argv[2:])
    return _store(ctx, argv[1], _diff(sets, set_limits(ctx), True), b"sdiffstore")


# -- SSCAN / ZSCAN ---------------------------------------------------------------------------
_ULL_RE = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(\d+)\Z")
_MASK64 = (1 << 64) - 1


def parse_cursor(b: bytes) -> int:
    """parseScanCursorOrReply / string2ull (src/util.c): string2ll, else strtoull."""
    v = string2ll(b)
    if v is not None:
        if v < 0:
            raise CommandError(INVALID_CURSOR)
        return v
    m = _ULL_RE.match(b)
    if m is None:
        raise CommandError(INVALID_CURSOR)
    n = int(m.group(2))
    if n > _MASK64:
        raise CommandError(INVALID_CURSOR)
    return (-n) & _MASK64 if m.group(1) == b"-" else n


def parse_scan_options(argv: list[bytes], zset: bool) -> tuple[int, bytes | None, bool]:
    """scanGenericCommand's options after the cursor: (count, pattern, only_keys)."""
    count = 10
    pattern: bytes | None = None
    only_keys = False
    i = 3
    n = len(argv)
    while i < n:
        opt = argv[i].lower()
        left = n - i
        if opt == b"count" and left >= 2:
            count = int_arg(argv[i + 1])
            if count < 1:
                raise CommandError(SYNTAX)
            i += 2
        elif opt == b"match" and left >= 2:
            pattern = argv[i + 1]
            if pattern == b"*":
                pattern = None
            i += 2
        elif opt == b"novalues":
            raise CommandError(NOVALUES_ONLY_HSCAN)
        elif opt == b"noscores":
            if not zset:
                raise CommandError(NOSCORES_ONLY_ZSCAN)
            only_keys = True
            i += 1
        else:
            raise CommandError(SYNTAX)
    return count, pattern, only_keys


def _scan_hash(m: bytes) -> int:
    return (hash(m) & _MASK64) | 1


def hash_scan(members: Iterable[bytes], cursor: int, count: int) -> tuple[int, list[bytes]]:
    """One step over a hashtable-encoded collection.

    Members are visited in the order of a 64-bit hash; the cursor is the hash to resume from,
    so every member present for the whole iteration is returned at least once (the SCAN
    guarantee), whatever is added or removed in between. Valkey's own order cannot be matched.
    """
    want = count + 1
    cand = heapq.nsmallest(want, ((h, m) for m in members if (h := _scan_hash(m)) >= cursor))
    while len(cand) == want and cand[-1][0] == cand[-2][0]:  # never split equal hashes
        want *= 2
        cand = heapq.nsmallest(want, ((h, m) for m in members if (h := _scan_hash(m)) >= cursor))
    if len(cand) <= count:
        return 0, [m for _, m in cand]
    take = cand[:count]
    return cand[count][0], [m for _, m in take]


def scan_reply(cursor: int, items: list[bytes]) -> Any:
    return Array([Bulk(b"%d" % cursor), Array([Bulk(x) for x in items])])


@command("sscan", -3, "readonly", 1, 1, 1, acl="@read @set @slow")
def sscan(ctx: Ctx, argv: list[bytes]) -> Any:
    cursor = parse_cursor(argv[2])
    s = _lookup_set(ctx, argv[1])
    if s is None:
        return scan_reply(0, [])
    count, pattern, _ = parse_scan_options(argv, False)
    if s.enc == HASHTABLE:
        cursor, items = hash_scan(s.members, cursor, count)
    else:
        cursor, items = 0, list(s.iter())
    if pattern is not None:
        items = [m for m in items if glob_match(pattern, m)]
    return scan_reply(cursor, items)
