"""ZUNION / ZINTER / ZDIFF, their STORE forms and ZINTERCARD (src/t_zset.c
zunionInterDiffGenericCommand). Sources may be sorted sets or plain sets (score 1)."""

from __future__ import annotations

import math
from typing import Any

from sortedcontainers import SortedList  # type: ignore[import-untyped]

from engine.commands.sets import positive_long
from engine.commands.table import command, keys_from_numkeys
from engine.commands.util import int_arg
from engine.commands.zsets_range import score_arg, scores_with, zset_limits
from engine.context import Ctx
from engine.errors import (
    LIMIT_NEGATIVE,
    SYNTAX,
    WEIGHT_NOT_FLOAT,
    WRONGTYPE,
    CommandError,
    at_least_one_key,
)
from engine.types.sets import SetObject
from engine.types.zsets import ZSetObject

_UNION, _INTER, _DIFF = 0, 1, 2
_SUM, _MIN, _MAX = 0, 1, 2
Source = ZSetObject | SetObject | None


def _length(src: Source) -> int:
    return 0 if src is None else len(src)


def _items(src: Source) -> list[tuple[bytes, float]]:
    """(member, score) pairs; sorted sets from the highest (zuiInitIterator walks backwards)."""
    if src is None:
        return []
    if type(src) is SetObject:
        return [(m, 1.0) for m in src.iter()]
    assert type(src) is ZSetObject
    return [(m, sc) for sc, m in reversed(src.sl)]


def _find(src: Source, m: bytes) -> float | None:
    if src is None:
        return None
    if type(src) is SetObject:
        return 1.0 if m in src.members else None
    assert type(src) is ZSetObject
    return src.scores.get(m)


def _aggregate(target: float, val: float, how: int) -> float:
    if how == _SUM:
        r = target + val
        return 0.0 if math.isnan(r) else r  # src/t_zset.c: inf + -inf is 0
    if how == _MIN:
        return val if val < target else target
    return val if val > target else target


def _generic(
    ctx: Ctx, argv: list[bytes], dst: bytes | None, at: int, op: int, card: bool, name: str
) -> Any:
    setnum = int_arg(argv[at])
    if setnum < 1:
        raise at_least_one_key(name)
    if setnum > len(argv) - (at + 1):
        raise CommandError(SYNTAX)
    srcs: list[Source] = []
    for k in argv[at + 1 : at + 1 + setnum]:
        v = ctx.db.lookup(ctx, k)
        if v is not None and type(v) is not ZSetObject and type(v) is not SetObject:
            raise CommandError(WRONGTYPE)
        srcs.append(v)
    weights = [1.0] * setnum
    how = _SUM
    withscores = False
    limit = 0
    j = at + 1 + setnum
    n = len(argv)
    while j < n:
        remaining = n - j
        opt = argv[j].lower()
        if op != _DIFF and not card and remaining >= setnum + 1 and opt == b"weights":
            j += 1
            for i in range(setnum):
                weights[i] = score_arg(argv[j], WEIGHT_NOT_FLOAT)
                j += 1
        elif op != _DIFF and not card and remaining >= 2 and opt == b"aggregate":
            agg = argv[j + 1].lower()
            if agg == b"sum":
                how = _SUM
            elif agg == b"min":
                how = _MIN
            elif agg == b"max":
                how = _MAX
            else:
                raise CommandError(SYNTAX)
            j += 2
        elif dst is None and not card and opt == b"withscores":
            withscores = True
            j += 1
        elif card and remaining >= 2 and opt == b"limit":
            limit = positive_long(argv[j + 1], LIMIT_NEGATIVE)
            j += 2
        else:
            raise CommandError(SYNTAX)
    order = list(range(setnum))
    if op != _DIFF:
        order.sort(key=lambda i: _length(srcs[i]))  # smallest first (qsort by cardinality)
    result: dict[bytes, float] = {}
    if op == _INTER:
        first = order[0]
        src0 = srcs[first]
        if _length(src0):
            count = 0
            for m, sc in _items(src0):
                score = weights[first] * sc
                if math.isnan(score):
                    score = 0.0
                for i in order[1:]:
                    if srcs[i] is src0:
                        score = _aggregate(score, sc * weights[i], how)
                        continue
                    v = _find(srcs[i], m)
                    if v is None:
                        break
                    score = _aggregate(score, v * weights[i], how)
                else:
                    if card:
                        count += 1
                        if limit and count >= limit:
                            break
                    else:
                        result[m] = score
            if card:
                return count
        elif card:
            return 0
    elif op == _UNION:
        for i in order:
            w = weights[i]
            for m, sc in _items(srcs[i]):
                score = w * sc
                if math.isnan(score):
                    score = 0.0
                old = result.get(m)
                result[m] = score if old is None else _aggregate(old, score, how)
    else:
        src0 = srcs[0]
        if _length(src0) and not any(s is src0 for s in srcs[1:]):
            for m, sc in _items(src0):
                for s in srcs[1:]:
                    if _find(s, m) is not None:
                        break
                else:
                    result[m] = sc
    if dst is not None:
        return _store(ctx, dst, result, op)
    ordered = sorted((sc, m) for m, sc in result.items())
    if withscores:
        return scores_with(ordered, ctx.client.resp)
    return [m for _, m in ordered]


_EVENTS = (b"zunionstore", b"zinterstore", b"zdiffstore")


def _store(ctx: Ctx, dst: bytes, result: dict[bytes, float], op: int) -> int:
    db = ctx.db
    if not result:
        if db.delete(dst):  # dbDelete: no expiry check
            ctx.modified(dst)
            ctx.notify("g", b"del", dst)
            ctx.dirty += 1
        return 0
    z = ZSetObject(False)
    z.scores = result
    z.sl = SortedList((sc, m) for m, sc in result.items())
    z.convert_to_listpack_if_needed(zset_limits(ctx))
    db.set(dst, z)
    ctx.modified(dst)
    ctx.notify("z", _EVENTS[op], dst)
    ctx.ready(dst)
    ctx.dirty += 1
    return len(result)


def _store_keys(argv: list[bytes]) -> list[int]:
    return [1, *keys_from_numkeys(2, 3)(argv)]


@command("zunionstore", -4, "write denyoom movablekeys", 1, 1, 1, acl="@write @sortedset @slow",
         keys=_store_keys)  # fmt: skip
def zunionstore(ctx: Ctx, argv: list[bytes]) -> Any:
    return _generic(ctx, argv, argv[1], 2, _UNION, False, "zunionstore")


@command("zinterstore", -4, "write denyoom movablekeys", 1, 1, 1, acl="@write @sortedset @slow",
         keys=_store_keys)  # fmt: skip
def zinterstore(ctx: Ctx, argv: list[bytes]) -> Any:
    return _generic(ctx, argv, argv[1], 2, _INTER, False, "zinterstore")


@command("zdiffstore", -4, "write denyoom movablekeys", 1, 1, 1, acl="@write @sortedset @slow",
         keys=_store_keys)  # fmt: skip
def zdiffstore(ctx: Ctx, argv: list[bytes]) -> Any:
    return _generic(ctx, argv, argv[1], 2, _DIFF, False, "zdiffstore")


@command("zunion", -3, "readonly movablekeys", 0, 0, 0, acl="@read @sortedset @slow",
         keys=keys_from_numkeys(1, 2))  # fmt: skip
def zunion(ctx: Ctx, argv: list[bytes]) -> Any:
    return _generic(ctx, argv, None, 1, _UNION, False, "zunion")


@command("zinter", -3, "readonly movablekeys", 0, 0, 0, acl="@read @sortedset @slow",
         keys=keys_from_numkeys(1, 2))  # fmt: skip
def zinter(ctx: Ctx, argv: list[bytes]) -> Any:
    return _generic(ctx, argv, None, 1, _INTER, False, "zinter")


@command("zintercard", -3, "readonly movablekeys", 0, 0, 0, acl="@read @sortedset @slow",
         keys=keys_from_numkeys(1, 2))  # fmt: skip
def zintercard(ctx: Ctx, argv: list[bytes]) -> Any:
    return _generic(ctx, argv, None, 1, _INTER, True, "zintercard")


@command("zdiff", -3, "readonly movablekeys", 0, 0, 0, acl="@read @sortedset @slow",
         keys=keys_from_numkeys(1, 2))  # fmt: skip
def zdiff(ctx: Ctx, argv: list[bytes]) -> Any:
    return _generic(ctx, argv, None, 1, _DIFF, False, "zdiff")
