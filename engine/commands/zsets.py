"""Sorted-set commands (src/t_zset.c): ZADD/ZINCRBY, ZREM, ZCARD, ZSCORE, ZMSCORE, ZRANK,
ZREVRANK, the pops (ZPOPMIN/ZPOPMAX/ZMPOP and the blocking BZPOPMIN/BZPOPMAX/BZMPOP),
ZRANDMEMBER and ZSCAN. Ranges are in zsets_range.py, the set algebra in zsets_store.py.

Propagation: ZADD/ZINCRBY/ZREM/ZPOPMIN/ZPOPMAX as typed; ZMPOP, BZMPOP as
``ZPOPMIN|ZPOPMAX key count``, BZPOPMIN/BZPOPMAX as ``ZPOPMIN|ZPOPMAX key``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from engine.blocking import Block
from engine.commands import zsets_range, zsets_store  # noqa: F401 - registers their commands
from engine.commands.sets import (
    RNG,
    hash_scan,
    numkeys_arg,
    parse_cursor,
    parse_scan_options,
    positive_long,
    range_long,
    scan_reply,
)
from engine.commands.table import command, keys_from_numkeys
from engine.commands.zsets_range import lookup_zset, score_arg, scores_with, zset_limits
from engine.context import Ctx
from engine.errors import (
    COUNT_POSITIVE,
    SYNTAX,
    TIMEOUT_NEGATIVE,
    TIMEOUT_NOT_FLOAT,
    TIMEOUT_OUT_OF_RANGE,
    VALUE_OUT_OF_RANGE,
    WRONGTYPE,
    ZADD_GT_LT_NX,
    ZADD_INCR_PAIR,
    ZADD_NAN,
    ZADD_XX_NX,
    CommandError,
    wrong_arity,
)
from engine.types.zsets import ZSetObject, create
from persistence.format import d2string
from persistence.rdb.glob import glob_match
from persistence.resp.frames import Array
from persistence.resp.tokens import string2ll

LONG_MAX = (1 << 63) - 1
NULL_ARRAY = Array(None)

_NX, _XX, _GT, _LT, _INCR = 1, 2, 4, 8, 16
_OPTS = {b"nx": _NX, b"xx": _XX, b"gt": _GT, b"lt": _LT, b"incr": _INCR}


# -- ZADD / ZINCRBY --------------------------------------------------------------------------
def _zadd_generic(ctx: Ctx, argv: list[bytes], flags: int) -> Any:
    """zaddGenericCommand: all the options, then all scores parsed before any change."""
    key = argv[1]
    ch = False
    i = 2
    n = len(argv)
    while i < n:
        opt = argv[i].lower()
        f = _OPTS.get(opt)
        if f is not None:
            flags |= f
        elif opt == b"ch":
            ch = True
        else:
            break
        i += 1
    elements = n - i
    if elements % 2 or not elements:
        raise CommandError(SYNTAX)
    elements //= 2
    nx, xx, gt, lt, incr = (flags & _NX, flags & _XX, flags & _GT, flags & _LT, flags & _INCR)
    if nx and xx:
        raise CommandError(ZADD_XX_NX)
    if (gt and nx) or (lt and nx) or (gt and lt):
        raise CommandError(ZADD_GT_LT_NX)
    if incr and elements > 1:
        raise CommandError(ZADD_INCR_PAIR)
    if elements == 1:  # the common case, without the comprehensions
        scores = [score_arg(argv[i])]
        maxlen = len(argv[i + 1])
    else:
        scores = [score_arg(argv[j]) for j in range(i, n, 2)]
        maxlen = max(len(argv[j]) for j in range(i + 1, n, 2))
    db = ctx.db
    z = db.lookup(ctx, key)
    lim = zset_limits(ctx)
    if z is None:
        if xx:
            return None if incr else 0
        z = create(elements, maxlen, lim)
        db.add(key, z)
        ctx.ready(key)
    elif type(z) is not ZSetObject:
        raise CommandError(WRONGTYPE)
    else:
        z.maybe_convert(elements, maxlen, lim)
    added = updated = processed = 0
    score = 0.0
    zscores = z.scores
    for k in range(elements):
        score = scores[k]
        m = argv[i + 1 + 2 * k]
        cur = zscores.get(m)
        if cur is not None:
            if nx:
                continue
            if incr:
                score += cur
                if math.isnan(score):
                    raise CommandError(ZADD_NAN)
            if (lt and score >= cur) or (gt and score <= cur):
                continue
            processed += 1
            if score != cur:
                z.update(m, cur, score)
                updated += 1
        elif not xx:
            z.insert(m, score, lim)
            added += 1
            processed += 1
    changed = added + updated
    if changed:
        ctx.dirty += changed
        ctx.modified(key)
        ctx.notify("z", b"zincr" if incr else b"zadd", key)
    if incr:
        return score if processed else None
    return changed if ch else added


@command("zadd", -4, "write denyoom fast", 1, 1, 1, acl="@write @sortedset @fast")
def zadd(ctx: Ctx, argv: list[bytes]) -> Any:
    return _zadd_generic(ctx, argv, 0)


@command("zincrby", 4, "write denyoom fast", 1, 1, 1, acl="@write @sortedset @fast")
def zincrby(ctx: Ctx, argv: list[bytes]) -> Any:
    return _zadd_generic(ctx, argv, _INCR)


# -- simple reads and ZREM -------------------------------------------------------------------
@command("zrem", -3, "write fast", 1, 1, 1, acl="@write @sortedset @fast")
def zrem(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[1]
    z = lookup_zset(ctx, key)
    if z is None:
        return 0
    deleted = 0
    removed = False
    for m in argv[2:]:
        if z.remove(m):
            deleted += 1
        if not z.scores:
            ctx.db.delete(key)
            removed = True
            break
    if deleted:
        ctx.notify("z", b"zrem", key)
        if removed:
            ctx.notify("g", b"del", key)
        ctx.modified(key)
        ctx.dirty += deleted
    return deleted


@command("zcard", 2, "readonly fast", 1, 1, 1, acl="@read @sortedset @fast")
def zcard(ctx: Ctx, argv: list[bytes]) -> Any:
    z = lookup_zset(ctx, argv[1])
    return 0 if z is None else len(z.scores)


@command("zscore", 3, "readonly fast", 1, 1, 1, acl="@read @sortedset @fast")
def zscore(ctx: Ctx, argv: list[bytes]) -> Any:
    z = lookup_zset(ctx, argv[1])
    return None if z is None else z.scores.get(argv[2])


@command("zmscore", -3, "readonly fast", 1, 1, 1, acl="@read @sortedset @fast")
def zmscore(ctx: Ctx, argv: list[bytes]) -> Any:
    z = lookup_zset(ctx, argv[1])
    if z is None:
        return [None] * (len(argv) - 2)
    get = z.scores.get
    return [get(m) for m in argv[2:]]


def _zrank(ctx: Ctx, argv: list[bytes], reverse: bool) -> Any:
    if len(argv) > 4:
        raise wrong_arity(b"zrevrank" if reverse else b"zrank")
    withscore = False
    if len(argv) == 4:
        if argv[3].lower() != b"withscore":
            raise CommandError(SYNTAX)
        withscore = True
    z = lookup_zset(ctx, argv[1])
    if z is None:
        return NULL_ARRAY if withscore else None
    sc = z.scores.get(argv[2])
    if sc is None:
        return NULL_ARRAY if withscore else None
    rank = z.sl.index((sc, argv[2]))
    if reverse:
        rank = len(z.scores) - 1 - rank
    return [rank, sc] if withscore else rank


@command("zrank", -3, "readonly fast", 1, 1, 1, acl="@read @sortedset @fast")
def zrank(ctx: Ctx, argv: list[bytes]) -> Any:
    return _zrank(ctx, argv, False)


@command("zrevrank", -3, "readonly fast", 1, 1, 1, acl="@read @sortedset @fast")
def zrevrank(ctx: Ctx, argv: list[bytes]) -> Any:
    return _zrank(ctx, argv, True)


# -- pops ------------------------------------------------------------------------------------
def _pop(ctx: Ctx, key: bytes, z: ZSetObject, maxi: bool, count: int) -> list[tuple[float, bytes]]:
    """genericZpopCommand's removal: up to ``count`` from one end, notifications, deletion."""
    n = min(count, len(z.scores))
    out = [z.pop_at(-1 if maxi else 0) for _ in range(n)]
    ctx.dirty += n
    ctx.notify("z", b"zpopmax" if maxi else b"zpopmin", key)
    if not z.scores:
        ctx.db.delete(key)
        ctx.notify("g", b"del", key)
    ctx.modified(key)
    return out


def _flat(items: list[tuple[float, bytes]]) -> list[Any]:
    out: list[Any] = []
    for sc, m in items:
        out.append(m)
        out.append(sc)
    return out


def _zpop_minmax(ctx: Ctx, argv: list[bytes], maxi: bool) -> Any:
    if len(argv) > 3:
        raise CommandError(SYNTAX)
    count = -1
    if len(argv) == 3:
        count = positive_long(argv[2])
    z = lookup_zset(ctx, argv[1])
    if z is None or count == 0:
        return []
    items = _pop(ctx, argv[1], z, maxi, 1 if count == -1 else count)
    if ctx.client.resp > 2 and count != -1:
        return [[m, sc] for sc, m in items]
    return _flat(items)


@command("zpopmin", -2, "write fast", 1, 1, 1, acl="@write @sortedset @fast")
def zpopmin(ctx: Ctx, argv: list[bytes]) -> Any:
    return _zpop_minmax(ctx, argv, False)


@command("zpopmax", -2, "write fast", 1, 1, 1, acl="@write @sortedset @fast")
def zpopmax(ctx: Ctx, argv: list[bytes]) -> Any:
    return _zpop_minmax(ctx, argv, True)


def _parse_mpop(argv: list[bytes], at: int) -> tuple[list[bytes], bool, int]:
    """zmpopGenericCommand's arguments from the numkeys index ``at``: keys, max?, count."""
    numkeys = numkeys_arg(argv[at])
    where_idx = at + numkeys + 1
    if where_idx >= len(argv):
        raise CommandError(SYNTAX)
    where = argv[where_idx].upper()
    if where not in (b"MIN", b"MAX"):
        raise CommandError(SYNTAX)
    count = -1
    j = where_idx + 1
    while j < len(argv):
        if count == -1 and argv[j].upper() == b"COUNT" and j + 1 < len(argv):
            v = string2ll(argv[j + 1])  # getRangeLongFromObjectOrReply(1, LONG_MAX, msg)
            if v is None or v < 1:
                raise CommandError(COUNT_POSITIVE)
            count = v
            j += 2
        else:
            raise CommandError(SYNTAX)
    return argv[at + 1 : where_idx], where == b"MAX", 1 if count == -1 else count


def _mpop_reply(key: bytes, items: list[tuple[float, bytes]]) -> list[Any]:
    return [key, [[m, sc] for sc, m in items]]


@command("zmpop", -4, "write movablekeys", 0, 0, 0, acl="@write @sortedset @slow",
         keys=keys_from_numkeys(1, 2))  # fmt: skip
def zmpop(ctx: Ctx, argv: list[bytes]) -> Any:
    keys, maxi, count = _parse_mpop(argv, 1)
    for key in keys:
        z = ctx.db.lookup(ctx, key)
        if z is None:
            continue
        if type(z) is not ZSetObject:
            raise CommandError(WRONGTYPE)
        items = _pop(ctx, key, z, maxi, count)
        # src/t_zset.c: always replicated as ZPOP[MIN|MAX] key count
        ctx.rewrite([b"ZPOPMAX" if maxi else b"ZPOPMIN", key, b"%d" % len(items)])
        return _mpop_reply(key, items)
    return NULL_ARRAY


_FLOAT_RE = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_HEX_RE = re.compile(
    rb"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?\Z"
)
_INF_RE = re.compile(rb"[+-]?(?:inf|infinity)\Z", re.IGNORECASE)


def timeout_arg(b: bytes, now_ms: int) -> int:
    """getTimeoutFromObjectOrReply (src/timeout.c), seconds: relative ms (0 = forever).

    string2ld accepts what strtold does (hex and inf included), without spaces or NaN."""
    if _FLOAT_RE.match(b):
        v = float(b)
    elif _HEX_RE.match(b):
        v = float.fromhex(b.decode())
    elif _INF_RE.match(b):
        v = -math.inf if b[:1] == b"-" else math.inf
    else:
        raise CommandError(TIMEOUT_NOT_FLOAT)
    ms = v * 1000.0
    if ms > LONG_MAX:
        raise CommandError(TIMEOUT_OUT_OF_RANGE)
    if math.isinf(ms):  # -inf
        raise CommandError(TIMEOUT_NEGATIVE)
    t = math.ceil(ms)
    if t < 0:
        raise CommandError(TIMEOUT_NEGATIVE)
    if t > 0 and t > LONG_MAX - now_ms:
        raise CommandError(TIMEOUT_OUT_OF_RANGE)
    return t


def _blocking_pop(
    ctx: Ctx, keys: list[bytes], maxi: bool, timeout_ms: int, count: int | None
) -> Any:
    """blockingGenericZpopCommand; ``count`` None for BZPOPMIN/BZPOPMAX."""
    db = ctx.db
    for key in keys:
        z = db.lookup(ctx, key)
        if z is None:
            continue
        if type(z) is not ZSetObject:
            raise CommandError(WRONGTYPE)
        if not z.scores:
            continue
        items = _pop(ctx, key, z, maxi, 1 if count is None else count)
        name = b"ZPOPMAX" if maxi else b"ZPOPMIN"
        if count is None:
            ctx.rewrite([name, key])  # src/t_zset.c: replicated as ZPOP[MIN|MAX]
            sc, m = items[0]
            return [key, m, sc]
        ctx.rewrite([name, key, b"%d" % len(items)])
        return _mpop_reply(key, items)
    if not ctx.may_block:  # MULTI / scripts: as on timeout
        return NULL_ARRAY
    return Block(db.id, keys, timeout_ms, NULL_ARRAY)


@command("bzpopmin", -3, "write blocking fast", 1, -2, 1,
         acl="@write @sortedset @fast @blocking", blocking=True)  # fmt: skip
def bzpopmin(ctx: Ctx, argv: list[bytes]) -> Any:
    t = timeout_arg(argv[-1], ctx.now_ms)
    return _blocking_pop(ctx, argv[1:-1], False, t, None)


@command("bzpopmax", -3, "write blocking fast", 1, -2, 1,
         acl="@write @sortedset @fast @blocking", blocking=True)  # fmt: skip
def bzpopmax(ctx: Ctx, argv: list[bytes]) -> Any:
    t = timeout_arg(argv[-1], ctx.now_ms)
    return _blocking_pop(ctx, argv[1:-1], True, t, None)


@command("bzmpop", -5, "write blocking movablekeys", 0, 0, 0,
         acl="@write @sortedset @slow @blocking", keys=keys_from_numkeys(2, 3),
         blocking=True)  # fmt: skip
def bzmpop(ctx: Ctx, argv: list[bytes]) -> Any:
    t = timeout_arg(argv[1], ctx.now_ms)
    keys, maxi, count = _parse_mpop(argv, 2)
    return _blocking_pop(ctx, keys, maxi, t, count)


# -- ZRANDMEMBER / ZSCAN -----------------------------------------------------------------------
@command("zrandmember", -2, "readonly", 1, 1, 1, acl="@read @sortedset @slow")
def zrandmember(ctx: Ctx, argv: list[bytes]) -> Any:
    if len(argv) == 2:
        z = lookup_zset(ctx, argv[1])
        if z is None:
            return None
        return z.sl[RNG.randrange(len(z.sl))][1]
    n = range_long(argv[2])
    withscores = False
    if len(argv) > 4 or (len(argv) == 4 and argv[3].lower() != b"withscores"):
        raise CommandError(SYNTAX)
    if len(argv) == 4:
        withscores = True
        if n < -(LONG_MAX // 2) or n > LONG_MAX // 2:  # C division truncates
            raise CommandError(VALUE_OUT_OF_RANGE)
    z = lookup_zset(ctx, argv[1])
    if z is None or n == 0:
        return []
    sl = z.sl
    size = len(sl)
    if n < 0:
        items = [sl[RNG.randrange(size)] for _ in range(-n)]
    elif n >= size:
        items = list(reversed(sl))  # zuiInitIterator walks a sorted set from the highest
    else:
        items = [sl[i] for i in RNG.sample(range(size), n)]
    if withscores:
        return scores_with(items, ctx.client.resp)
    return [m for _, m in items]


@command("zscan", -3, "readonly", 1, 1, 1, acl="@read @sortedset @slow")
def zscan(ctx: Ctx, argv: list[bytes]) -> Any:
    cursor = parse_cursor(argv[2])
    z = lookup_zset(ctx, argv[1])
    if z is None:
        return scan_reply(0, [])
    count, pattern, only_keys = parse_scan_options(argv, True)
    if z.listpack:
        cursor, members = 0, [m for _, m in z.sl]
    else:
        cursor, members = hash_scan(z.scores, cursor, count)
    if pattern is not None:
        members = [m for m in members if glob_match(pattern, m)]
    if only_keys:
        return scan_reply(cursor, members)
    scores = z.scores
    out: list[bytes] = []
    for m in members:
        out.append(m)
        out.append(d2string(scores[m]))  # scan replies are bulk strings, never doubles
    return scan_reply(cursor, out)
