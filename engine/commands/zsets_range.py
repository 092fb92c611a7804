"""Sorted-set ranges (src/t_zset.c): ZRANGE and its legacy forms, ZRANGESTORE, ZCOUNT,
ZLEXCOUNT, ZREMRANGEBY*; plus the helpers the other zset modules share (lookup, limits,
score and range parsing, WITHSCORES replies).

Ranges are index intervals ``[lo, hi)`` of the sorted list. Score ranges bisect; lex ranges
bisect when every score is equal (the documented use) and otherwise walk the list as Valkey
walks a listpack. LIMIT with a negative offset returns nothing on a listpack but counts from
the other end of the range on a skiplist (observed on valkey-server 9.1.2; zslNthInRange).
"""

from __future__ import annotations

import math
import re
from typing import Any

from engine.commands.table import command
from engine.commands.util import int_arg
from engine.context import Ctx
from engine.errors import (
    MIN_MAX_NOT_FLOAT,
    MIN_MAX_NOT_STRING,
    NOT_FLOAT,
    SYNTAX,
    WRONGTYPE,
    ZRANGE_LIMIT_RANK,
    ZRANGE_WITHSCORES_BYLEX,
    CommandError,
)
from engine.types.zsets import TOP, Limits, ZSetObject
from persistence.resp.tokens import string2ll

_NUM_RE = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_INFS = {b"inf": math.inf, b"+inf": math.inf, b"-inf": -math.inf, b"infinity": math.inf,
         b"+infinity": math.inf, b"-infinity": -math.inf}  # fmt: skip
_NONZERO = re.compile(rb"[1-9]")


def zset_limits(ctx: Ctx) -> Limits:
    v = ctx.engine.config.values
    return (v["zset-max-listpack-entries"], v["zset-max-listpack-value"])


def lookup_zset(ctx: Ctx, key: bytes) -> ZSetObject | None:
    z = ctx.db.lookup(ctx, key)
    if z is not None and type(z) is not ZSetObject:
        raise CommandError(WRONGTYPE)
    return z


def _parse_number(b: bytes) -> float | None:
    if _NUM_RE.match(b):
        return float(b)
    return _INFS.get(b.lower())


def score_arg(b: bytes, err: str = NOT_FLOAT) -> float:
    """string2d (src/util.c, fast_float in 9.x): decimal or inf/infinity; no spaces, no hex,
    no NaN; overflow and underflow to zero are errors (observed on 9.1.2)."""
    i = string2ll(b)  # the common case: an integer, whose double is exact or correctly rounded
    if i is not None:
        return float(i)
    v = _parse_number(b)
    if v is None:
        raise CommandError(err)
    if _NUM_RE.match(b):
        if math.isinf(v):
            raise CommandError(err)
        if v == 0.0 and _NONZERO.search(b.split(b"e")[0].split(b"E")[0]):
            raise CommandError(err)
    return v


def scores_with(items: list[tuple[float, bytes]], resp: int) -> list[Any]:
    """WITHSCORES: a flat array in RESP2, [member, double] pairs in RESP3."""
    if resp == 2:
        out: list[Any] = []
        for sc, m in items:
            out.append(m)
            out.append(sc)
        return out
    return [[m, sc] for sc, m in items]


# -- range specs ---------------------------------------------------------------------------
ScoreRange = tuple[float, bool, float, bool]  # min, min exclusive, max, max exclusive
LexItem = tuple[int, bytes, bool]  # kind (-1 "-", 0 value, 1 "+"), value, exclusive


def _range_item(b: bytes) -> tuple[float, bool]:
    ex = b[:1] == b"("
    text = b[1:] if ex else b
    if not text:
        return 0.0, ex  # zslParseRange: strtod of "" stops at once, and that passes
    v = _parse_number(text)
    if v is None:
        raise CommandError(MIN_MAX_NOT_FLOAT)
    return v, ex


def parse_score_range(lo: bytes, hi: bytes) -> ScoreRange:
    """zslParseRange: ``(`` for exclusive; overflow is +-inf here (no range check)."""
    a, aex = _range_item(lo)
    b, bex = _range_item(hi)
    return a, aex, b, bex


def _lex_item(b: bytes) -> LexItem:
    c = b[:1]
    if c == b"+" and len(b) == 1:
        return 1, b"", True
    if c == b"-" and len(b) == 1:
        return -1, b"", True
    if c == b"(":
        return 0, b[1:], True
    if c == b"[":
        return 0, b[1:], False
    raise CommandError(MIN_MAX_NOT_STRING)


def parse_lex_range(lo: bytes, hi: bytes) -> tuple[LexItem, LexItem]:
    return _lex_item(lo), _lex_item(hi)


def _gte_min(m: bytes, spec: LexItem) -> bool:
    kind, v, ex = spec
    if kind:
        return kind < 0
    return m > v if ex else m >= v


def _lte_max(m: bytes, spec: LexItem) -> bool:
    kind, v, ex = spec
    if kind:
        return kind > 0
    return m < v if ex else m <= v


def score_bounds(z: ZSetObject, r: ScoreRange) -> tuple[int, int]:
    sl = z.sl
    lo = sl.bisect_right((r[0], TOP)) if r[1] else sl.bisect_left((r[0], b""))
    hi = sl.bisect_left((r[2], b"")) if r[3] else sl.bisect_right((r[2], TOP))
    return lo, max(lo, hi)


def lex_bounds(z: ZSetObject, mn: LexItem, mx: LexItem, reverse: bool = False) -> tuple[int, int]:
    sl = z.sl
    n = len(sl)
    if n == 0:
        return 0, 0
    s0 = sl[0][0]
    if s0 == sl[-1][0]:
        if mn[0]:
            lo = 0 if mn[0] < 0 else n
        else:
            lo = sl.bisect_right((s0, mn[1])) if mn[2] else sl.bisect_left((s0, mn[1]))
        if mx[0]:
            hi = n if mx[0] > 0 else 0
        else:
            hi = sl.bisect_left((s0, mx[1])) if mx[2] else sl.bisect_right((s0, mx[1]))
        return lo, max(lo, hi)
    # mixed scores: walk like zzlFirstInLexRange / zzlLastInLexRange
    if not reverse:
        i = 0
        while i < n and not _gte_min(sl[i][1], mn):
            i += 1
        j = i
        while j < n and _lte_max(sl[j][1], mx):
            j += 1
        return i, j
    j = n - 1
    while j >= 0 and not _lte_max(sl[j][1], mx):
        j -= 1
    i = j
    while i >= 0 and _gte_min(sl[i][1], mn):
        i -= 1
    return i + 1, j + 1


def limited(
    z: ZSetObject, lo: int, hi: int, offset: int, limit: int, reverse: bool
) -> list[tuple[float, bytes]]:
    """The in-range items ``[lo, hi)`` after LIMIT offset count, in reply order."""
    if offset < 0:
        if z.listpack:
            return []  # the listpack walk never ends its negative offset: nothing
        start = hi + offset if not reverse else lo - offset - 1
    else:
        start = lo + offset if not reverse else hi - 1 - offset
    if start < lo or start >= hi:
        return []
    sl = z.sl
    if not reverse:
        stop = hi if limit < 0 else min(hi, start + limit)
        return list(sl.islice(start, stop))
    first = lo if limit < 0 else max(lo, start - limit + 1)
    if first > start:
        return []
    return list(sl.islice(first, start + 1, reverse=True))


def rank_bounds(n: int, start: int, end: int) -> tuple[int, int] | None:
    """Sanitized ``[start, end]`` (inclusive) or None when empty (genericZrangebyrankCommand)."""
    if start < 0:
        start += n
    if end < 0:
        end += n
    if start < 0:
        start = 0
    if start > end or start >= n:
        return None
    if end >= n:
        end = n - 1
    return start, end


# -- ZRANGE family ---------------------------------------------------------------------------
_RANK, _SCORE, _LEX = 1, 2, 3


def zrange_generic(
    ctx: Ctx, argv: list[bytes], at: int, store: bool, rangetype: int, direction: int
) -> Any:
    """zrangeGenericCommand: ``at`` is the index of the source key; ``rangetype`` 0 = auto,
    ``direction`` 0 = auto, 1 forward, -1 reverse."""
    key = argv[at]
    withscores = False
    offset, limit = 0, -1
    n = len(argv)
    j = at + 3
    while j < n:
        opt = argv[j].lower()
        left = n - j - 1
        if not store and opt == b"withscores":
            withscores = True
        elif opt == b"limit" and left >= 2:
            offset = int_arg(argv[j + 1])
            limit = int_arg(argv[j + 2])
            j += 2
        elif direction == 0 and opt == b"rev":
            direction = -1
        elif rangetype == 0 and opt == b"bylex":
            rangetype = _LEX
        elif rangetype == 0 and opt == b"byscore":
            rangetype = _SCORE
        else:
            raise CommandError(SYNTAX)
        j += 1
    reverse = direction == -1
    rangetype = rangetype or _RANK
    if limit != -1 and rangetype == _RANK:
        raise CommandError(ZRANGE_LIMIT_RANK)
    if withscores and rangetype == _LEX:
        raise CommandError(ZRANGE_WITHSCORES_BYLEX)
    a, b = argv[at + 1], argv[at + 2]
    if reverse and rangetype != _RANK:
        a, b = b, a  # given as max, min
    if rangetype == _RANK:
        start, end = int_arg(a), int_arg(b)
    elif rangetype == _SCORE:
        srange = parse_score_range(a, b)
    else:
        lrange = parse_lex_range(a, b)
    z = ctx.db.lookup(ctx, key)
    if z is None:
        if store:
            return store_range(ctx, argv[1], [])
        return []
    if type(z) is not ZSetObject:
        raise CommandError(WRONGTYPE)
    if rangetype == _RANK:
        bounds = rank_bounds(len(z), start, end)
        if bounds is None:
            items: list[tuple[float, bytes]] = []
        elif reverse:
            n = len(z)
            items = list(z.sl.islice(n - 1 - bounds[1], n - bounds[0], reverse=True))
        else:
            items = list(z.sl.islice(bounds[0], bounds[1] + 1))
    elif rangetype == _SCORE:
        if offset > 0 and offset >= len(z):
            items = []
        else:
            lo, hi = score_bounds(z, srange)
            items = limited(z, lo, hi, offset, limit, reverse)
    else:
        lo, hi = lex_bounds(z, lrange[0], lrange[1], reverse)
        items = limited(z, lo, hi, offset, limit, reverse)
    if store:
        return store_range(ctx, argv[1], items)
    if withscores:
        return scores_with(items, ctx.client.resp)
    return [m for _, m in items]


def store_range(ctx: Ctx, dst_key: bytes, items: list[tuple[float, bytes]]) -> int:
    """zrangeResultFinalizeStore: a new listpack (unless too big), or delete the target."""
    db = ctx.db
    if not items:
        if db.delete(dst_key):  # dbDelete: no expiry check
            ctx.modified(dst_key)
            ctx.notify("g", b"del", dst_key)
            ctx.dirty += 1
        return 0
    lim = zset_limits(ctx)
    z = ZSetObject(len(items) <= lim[0])
    for sc, m in items:
        z.insert(m, sc, lim)
    db.set(dst_key, z)
    ctx.modified(dst_key)
    ctx.notify("z", b"zrangestore", dst_key)
    ctx.ready(dst_key)
    ctx.dirty += 1
    return len(items)


@command("zrange", -4, "readonly", 1, 1, 1, acl="@read @sortedset @slow")
def zrange(ctx: Ctx, argv: list[bytes]) -> Any:
    return zrange_generic(ctx, argv, 1, False, 0, 0)


@command("zrangestore", -5, "write denyoom", 1, 2, 1, acl="@write @sortedset @slow")
def zrangestore(ctx: Ctx, argv: list[bytes]) -> Any:
    return zrange_generic(ctx, argv, 2, True, 0, 0)


@command("zrevrange", -4, "readonly", 1, 1, 1, acl="@read @sortedset @slow")
def zrevrange(ctx: Ctx, argv: list[bytes]) -> Any:
    return zrange_generic(ctx, argv, 1, False, _RANK, -1)


@command("zrangebyscore", -4, "readonly", 1, 1, 1, acl="@read @sortedset @slow")
def zrangebyscore(ctx: Ctx, argv: list[bytes]) -> Any:
    return zrange_generic(ctx, argv, 1, False, _SCORE, 1)


@command("zrevrangebyscore", -4, "readonly", 1, 1, 1, acl="@read @sortedset @slow")
def zrevrangebyscore(ctx: Ctx, argv: list[bytes]) -> Any:
    return zrange_generic(ctx, argv, 1, False, _SCORE, -1)


@command("zrangebylex", -4, "readonly", 1, 1, 1, acl="@read @sortedset @slow")
def zrangebylex(ctx: Ctx, argv: list[bytes]) -> Any:
    return zrange_generic(ctx, argv, 1, False, _LEX, 1)


@command("zrevrangebylex", -4, "readonly", 1, 1, 1, acl="@read @sortedset @slow")
def zrevrangebylex(ctx: Ctx, argv: list[bytes]) -> Any:
    return zrange_generic(ctx, argv, 1, False, _LEX, -1)


@command("zcount", 4, "readonly fast", 1, 1, 1, acl="@read @sortedset @fast")
def zcount(ctx: Ctx, argv: list[bytes]) -> Any:
    r = parse_score_range(argv[2], argv[3])
    z = lookup_zset(ctx, argv[1])
    if z is None:
        return 0
    lo, hi = score_bounds(z, r)
    return hi - lo


@command("zlexcount", 4, "readonly fast", 1, 1, 1, acl="@read @sortedset @fast")
def zlexcount(ctx: Ctx, argv: list[bytes]) -> Any:
    mn, mx = parse_lex_range(argv[2], argv[3])
    z = lookup_zset(ctx, argv[1])
    if z is None:
        return 0
    lo, hi = lex_bounds(z, mn, mx)
    return hi - lo


def _zremrange(ctx: Ctx, argv: list[bytes], kind: int) -> Any:
    key = argv[1]
    if kind == _RANK:
        start, end = int_arg(argv[2]), int_arg(argv[3])
        event = b"zremrangebyrank"
    elif kind == _SCORE:
        srange = parse_score_range(argv[2], argv[3])
        event = b"zremrangebyscore"
    else:
        lrange = parse_lex_range(argv[2], argv[3])
        event = b"zremrangebylex"
    z = lookup_zset(ctx, key)
    if z is None:
        return 0
    if kind == _RANK:
        bounds = rank_bounds(len(z), start, end)
        if bounds is None:
            return 0
        lo, hi = bounds[0], bounds[1] + 1
    elif kind == _SCORE:
        lo, hi = score_bounds(z, srange)
    else:
        lo, hi = lex_bounds(z, lrange[0], lrange[1])
    deleted = z.delete_slice(lo, hi)
    if deleted:
        ctx.modified(key)
        ctx.notify("z", event, key)
        if not len(z):
            ctx.db.delete(key)
            ctx.notify("g", b"del", key)
        ctx.dirty += deleted
    return deleted


@command("zremrangebyrank", 4, "write", 1, 1, 1, acl="@write @sortedset @slow")
def zremrangebyrank(ctx: Ctx, argv: list[bytes]) -> Any:
    return _zremrange(ctx, argv, _RANK)


@command("zremrangebyscore", 4, "write", 1, 1, 1, acl="@write @sortedset @slow")
def zremrangebyscore(ctx: Ctx, argv: list[bytes]) -> Any:
    return _zremrange(ctx, argv, _SCORE)


@command("zremrangebylex", 4, "write", 1, 1, 1, acl="@write @sortedset @slow")
def zremrangebylex(ctx: Ctx, argv: list[bytes]) -> Any:
    return _zremrange(ctx, argv, _LEX)
