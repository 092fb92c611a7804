"""Sorted-set commands of the minimal AOF applier (src/t_zset.c)."""

from __future__ import annotations

import math
from collections.abc import Callable

from tools.applier_base import (
    SYNTAX,
    WRONGTYPE,
    ApplyError,
    Keyspace,
    SetObj,
    ZSetObj,
    command,
    parse_float,
    parse_int,
    upper,
)

NAN_SCORE = "ERR resulting score is not a number (NaN)"
MINMAX_FLOAT = "ERR min or max is not a float"
MINMAX_LEX = "ERR min or max not valid string range item"


def _zset(ks: Keyspace, key: bytes) -> ZSetObj | None:
    v = ks.get(key, ZSetObj)
    assert v is None or isinstance(v, ZSetObj)
    return v


def _ordered(z: ZSetObj) -> list[tuple[bytes, float]]:
    return sorted(z.items(), key=lambda kv: (kv[1], kv[0]))


@command("ZADD", -4)
def _zadd(ks: Keyspace, argv: list[bytes]) -> None:
    """ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member ... (zaddGenericCommand)."""
    flags: set[str] = set()
    i = 2
    while i < len(argv) and upper(argv[i]) in ("NX", "XX", "GT", "LT", "CH", "INCR"):
        flags.add(upper(argv[i]))
        i += 1
    rest = argv[i:]
    if not rest or len(rest) % 2:
        raise ApplyError(SYNTAX)
    if {"NX", "XX"} <= flags:
        raise ApplyError("ERR XX and NX options at the same time are not compatible")
    if len(flags & {"GT", "LT", "NX"}) > 1:
        raise ApplyError("ERR GT, LT, and/or NX options at the same time are not compatible")
    if "INCR" in flags and len(rest) > 2:
        raise ApplyError("ERR INCR option supports a single increment-element pair")
    scores = [parse_float(s) for s in rest[::2]]
    z = _zset(ks, argv[1])
    if z is None:
        if "XX" in flags:
            return
        z = ZSetObj()
        ks.put(argv[1], z)
    for score, member in zip(scores, rest[1::2]):
        cur = z.get(member)
        if cur is None:
            if "XX" not in flags:
                z[member] = score
            continue
        if "NX" in flags:
            continue
        new = cur + score if "INCR" in flags else score
        if math.isnan(new):
            ks.drop_if_empty(argv[1], z)
            raise ApplyError(NAN_SCORE)
        if ("GT" in flags and new <= cur) or ("LT" in flags and new >= cur):
            continue
        z[member] = new
    ks.drop_if_empty(argv[1], z)


@command("ZINCRBY", 4)
def _zincrby(ks: Keyspace, argv: list[bytes]) -> None:
    by = parse_float(argv[2])
    z = _zset(ks, argv[1])
    new = (z.get(argv[3], 0.0) if z else 0.0) + by
    if math.isnan(new):
        raise ApplyError(NAN_SCORE)
    if z is None:
        z = ZSetObj()
        ks.put(argv[1], z)
    z[argv[3]] = new


@command("ZREM", -3)
def _zrem(ks: Keyspace, argv: list[bytes]) -> None:
    z = _zset(ks, argv[1])
    if z is None:
        return
    for m in argv[2:]:
        z.pop(m, None)
    ks.drop_if_empty(argv[1], z)


def _zpop(ks: Keyspace, argv: list[bytes], top: bool) -> None:
    if len(argv) > 3:
        raise ApplyError(SYNTAX)
    count = 1
    if len(argv) == 3:
        count = parse_int(argv[2], "ERR value is out of range, must be positive")
        if count < 0:
            raise ApplyError("ERR value is out of range, must be positive")
    z = _zset(ks, argv[1])
    if z is None:
        return
    order = _ordered(z)
    for m, _ in (order[::-1] if top else order)[:count]:
        del z[m]
    ks.drop_if_empty(argv[1], z)


@command("ZPOPMIN", -2)
def _zpopmin(ks: Keyspace, argv: list[bytes]) -> None:
    _zpop(ks, argv, False)


@command("ZPOPMAX", -2)
def _zpopmax(ks: Keyspace, argv: list[bytes]) -> None:
    _zpop(ks, argv, True)


# ---- ranges --------------------------------------------------------------------------------

Pred = Callable[[bytes, float], bool]


def _score_bound(b: bytes) -> tuple[float, bool]:
    """zslParseRange: '(' makes the bound exclusive."""
    excl = b.startswith(b"(")
    return parse_float(b[1:] if excl else b, MINMAX_FLOAT), excl


def _score_range(lo: bytes, hi: bytes) -> Pred:
    (a, ax), (b, bx) = _score_bound(lo), _score_bound(hi)
    return lambda m, s: (s > a if ax else s >= a) and (s < b if bx else s <= b)


def _lex_bound(b: bytes) -> tuple[bytes | None, bool, int]:
    """zslParseLexRangeItem: '-'/'+' infinite, '[' inclusive, '(' exclusive."""
    if b == b"-":
        return None, False, -1
    if b == b"+":
        return None, False, 1
    if b[:1] in (b"[", b"("):
        return b[1:], b[:1] == b"(", 0
    raise ApplyError(MINMAX_LEX)


def _lex_range(lo: bytes, hi: bytes) -> Pred:
    (a, ax, ainf), (b, bx, binf) = _lex_bound(lo), _lex_bound(hi)

    def pred(m: bytes, s: float) -> bool:
        if ainf == 1 or binf == -1:
            return False
        ok_lo = ainf == -1 or (a is not None and (m > a if ax else m >= a))
        ok_hi = binf == 1 or (b is not None and (m < b if bx else m <= b))
        return ok_lo and ok_hi

    return pred


def _rank_slice(n: int, start: int, end: int) -> slice:
    start = max(0, start + n if start < 0 else start)
    end = end + n if end < 0 else end
    if start > end or start >= n:
        return slice(0, 0)
    return slice(start, min(end, n - 1) + 1)


def _zremrange(ks: Keyspace, argv: list[bytes], kind: str) -> None:
    if kind == "rank":
        start, end = parse_int(argv[2]), parse_int(argv[3])
    else:
        pred = _score_range(argv[2], argv[3]) if kind == "score" else _lex_range(argv[2], argv[3])
    z = _zset(ks, argv[1])
    if z is None:
        return
    order = _ordered(z)
    doomed = order[_rank_slice(len(order), start, end)] if kind == "rank" else order
    for m, s in doomed:
        if kind == "rank" or pred(m, s):
            del z[m]
    ks.drop_if_empty(argv[1], z)


@command("ZREMRANGEBYRANK", 4)
def _zremrangebyrank(ks: Keyspace, argv: list[bytes]) -> None:
    _zremrange(ks, argv, "rank")


@command("ZREMRANGEBYSCORE", 4)
def _zremrangebyscore(ks: Keyspace, argv: list[bytes]) -> None:
    _zremrange(ks, argv, "score")


@command("ZREMRANGEBYLEX", 4)
def _zremrangebylex(ks: Keyspace, argv: list[bytes]) -> None:
    _zremrange(ks, argv, "lex")


# ---- *STORE --------------------------------------------------------------------------------


def _store(ks: Keyspace, dst: bytes, items: dict[bytes, float]) -> None:
    """The result replaces dst (its TTL cleared), or deletes dst when empty."""
    if items:
        ks.put(dst, ZSetObj(items))
    else:
        ks.delete(dst)


def _as_zset(ks: Keyspace, key: bytes) -> dict[bytes, float] | None:
    """Inputs of ZUNIONSTORE/ZINTERSTORE/ZDIFFSTORE may be sets (score 1)."""
    v = ks.kv().get(key)
    if v is None:
        return None
    if isinstance(v, ZSetObj):
        return dict(v)
    if isinstance(v, SetObj):
        return dict.fromkeys(v, 1.0)
    raise ApplyError(WRONGTYPE)


def _zsetop(ks: Keyspace, argv: list[bytes], op: str) -> None:
    """zunionInterDiffGenericCommand with a destination key."""
    numkeys = parse_int(argv[2])
    if numkeys < 1:
        raise ApplyError(
            f"ERR at least 1 input key is needed for '{argv[0].decode('latin-1').lower()}' command"
        )
    if numkeys > len(argv) - 3:
        raise ApplyError(SYNTAX)
    keys = argv[3 : 3 + numkeys]
    weights = [1.0] * numkeys
    agg = "SUM"
    i = 3 + numkeys
    while i < len(argv):
        o = upper(argv[i])
        if op != "diff" and o == "WEIGHTS" and len(argv) - i - 1 >= numkeys:
            weights = [
                parse_float(w, "ERR weight value is not a float")
                for w in argv[i + 1 : i + 1 + numkeys]
            ]
            i += numkeys
        elif op != "diff" and o == "AGGREGATE" and i + 1 < len(argv):
            agg = upper(argv[i + 1])
            if agg not in ("SUM", "MIN", "MAX"):
                raise ApplyError(SYNTAX)
            i += 1
        else:
            raise ApplyError(SYNTAX)
        i += 1
    inputs = [_as_zset(ks, k) for k in keys]
    result: dict[bytes, float] = {}
    if op == "diff":
        first = inputs[0] or {}
        result = {m: s for m, s in first.items() if not any(m in (x or {}) for x in inputs[1:])}
    elif op == "inter" and any(x is None for x in inputs):
        result = {}
    else:
        present = [(x, w) for x, w in zip(inputs, weights) if x is not None]
        members: dict[bytes, None] = {}
        for x, _ in present:
            members.update(dict.fromkeys(x))
        for m in members:
            scores = [_weighted(x[m], w) for x, w in present if m in x]
            if op == "inter" and len(scores) < len(present):
                continue
            result[m] = _aggregate(scores, agg)
    _store(ks, argv[1], result)


def _weighted(score: float, w: float) -> float:
    v = score * w
    return 0.0 if math.isnan(v) else v  # zunionInterDiffGenericCommand: NaN becomes 0


def _aggregate(scores: list[float], agg: str) -> float:
    if agg == "MIN":
        return min(scores)
    if agg == "MAX":
        return max(scores)
    total = scores[0]
    for s in scores[1:]:
        total += s
        if math.isnan(total):  # zunionInterAggregate: inf + -inf is 0
            total = 0.0
    return total


@command("ZUNIONSTORE", -4)
def _zunionstore(ks: Keyspace, argv: list[bytes]) -> None:
    _zsetop(ks, argv, "union")


@command("ZINTERSTORE", -4)
def _zinterstore(ks: Keyspace, argv: list[bytes]) -> None:
    _zsetop(ks, argv, "inter")


@command("ZDIFFSTORE", -4)
def _zdiffstore(ks: Keyspace, argv: list[bytes]) -> None:
    _zsetop(ks, argv, "diff")


@command("ZRANGESTORE", -5)
def _zrangestore(ks: Keyspace, argv: list[bytes]) -> None:
    """ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]."""
    by, rev, limit = "rank", False, None
    i = 5
    while i < len(argv):
        o = upper(argv[i])
        if o in ("BYSCORE", "BYLEX") and by == "rank":
            by = o
        elif o == "REV":
            rev = True
        elif o == "LIMIT" and i + 2 < len(argv):
            limit = (parse_int(argv[i + 1]), parse_int(argv[i + 2]))
            i += 2
        else:
            raise ApplyError(SYNTAX)
        i += 1
    if limit is not None and by == "rank":
        raise ApplyError(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    lo, hi = (argv[4], argv[3]) if rev and by != "rank" else (argv[3], argv[4])
    if by == "rank":
        start, end = parse_int(argv[3]), parse_int(argv[4])
    else:
        pred = _score_range(lo, hi) if by == "BYSCORE" else _lex_range(lo, hi)
    z = _zset(ks, argv[2])
    order = _ordered(z) if z else []
    if rev:
        order.reverse()
    if by == "rank":
        picked = order[_rank_slice(len(order), start, end)]
    else:
        picked = [(m, s) for m, s in order if pred(m, s)]
        if limit is not None:
            off, cnt = limit
            picked = [] if off < 0 else picked[off:] if cnt < 0 else picked[off : off + cnt]
    _store(ks, argv[1], dict(picked))
