"""Blocking list commands: BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP (src/t_list.c).

When a list has data they act at once like their non-blocking forms and propagate those
(``LPOP key`` / ``RPOP key``, ``LMOVE``, ``RPOPLPUSH``, ``LPOP|RPOP key n``: src/t_list.c
rewriteClientCommandVector). Otherwise they return a :class:`~engine.blocking.Block`; the server
runs the same argv again when a key is signalled ready, which takes the same path. Inside MULTI
(``ctx.may_block`` False) they answer as on timeout, even with timeout 0 (deny_blocking).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from engine.blocking import Block
from engine.commands.lists import (
    NULL_ARRAY,
    elements_removed,
    get_list,
    lmove_generic,
    parse_mpop,
    pop_range_with_key,
    where_arg,
)
from engine.commands.table import command, keys_from_numkeys
from engine.commands.util import LLONG_MAX
from engine.context import Ctx
from engine.errors import (
    TIMEOUT_NEGATIVE,
    TIMEOUT_NOT_FLOAT,
    TIMEOUT_OUT_OF_RANGE,
    CommandError,
)

# what strtold accepts (src/util.c string2ld): decimal or hex floats, inf/infinity, no spaces
_DEC_RE = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_HEX_RE = re.compile(
    rb"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?\Z"
)
_INF_RE = re.compile(rb"([+-]?)(?:inf|infinity)\Z", re.IGNORECASE)
_MAX_LONG_DOUBLE_CHARS = 5 * 1024


def timeout_arg(ctx: Ctx, b: bytes) -> int:
    """src/timeout.c getTimeoutFromObjectOrReply (UNIT_SECONDS): ms, 0 = block forever."""
    if not b or len(b) >= _MAX_LONG_DOUBLE_CHARS:
        raise CommandError(TIMEOUT_NOT_FLOAT)
    inf = _INF_RE.match(b)
    if inf is not None:
        raise CommandError(TIMEOUT_NEGATIVE if inf.group(1) == b"-" else TIMEOUT_OUT_OF_RANGE)
    if _DEC_RE.match(b):
        secs = Decimal(b.decode())
        if secs != 0 and abs(secs) < Decimal("1e-4950"):  # strtold underflow: ERANGE
            raise CommandError(TIMEOUT_NOT_FLOAT)
        if abs(secs) > Decimal("1e4932"):  # strtold overflow: ERANGE
            raise CommandError(TIMEOUT_NOT_FLOAT)
        ms = secs * 1000
    elif _HEX_RE.match(b):
        txt = b.decode()
        if "p" not in txt.lower():
            txt += "p0"
        try:
            ms = Decimal(float.fromhex(txt)) * 1000
        except OverflowError:
            raise CommandError(TIMEOUT_NOT_FLOAT) from None
    else:
        raise CommandError(TIMEOUT_NOT_FLOAT)
    if ms > LLONG_MAX:
        raise CommandError(TIMEOUT_OUT_OF_RANGE)
    tval = math.ceil(ms)
    if tval < 0:
        raise CommandError(TIMEOUT_NEGATIVE)
    if tval > 0 and tval > LLONG_MAX - ctx.now_ms:
        raise CommandError(TIMEOUT_OUT_OF_RANGE)
    return tval


def _blocking_pop(ctx: Ctx, keys: list[bytes], head: bool, timeout_ms: int, count: int) -> Any:
    """src/t_list.c blockingPopGenericCommand (count -1: BLPOP/BRPOP's single element)."""
    if count != -1:
        out = pop_range_with_key(ctx, keys, head, count)
        if out is not None:
            return out
    else:
        for key in keys:
            lst = get_list(ctx, key)
            if lst is None or not lst.items:
                continue
            value = lst.pop(head)
            elements_removed(ctx, key, lst, head, 1)
            ctx.rewrite([b"LPOP" if head else b"RPOP", key])
            return [key, value]
    if not ctx.may_block:
        return NULL_ARRAY
    return Block(ctx.db.id, list(keys), timeout_ms, NULL_ARRAY)


@command("blpop", -3, "write blocking", 1, -2, 1, acl="@write @list @slow @blocking")
def blpop(ctx: Ctx, argv: list[bytes]) -> Any:
    timeout = timeout_arg(ctx, argv[-1])
    return _blocking_pop(ctx, argv[1:-1], True, timeout, -1)


@command("brpop", -3, "write blocking", 1, -2, 1, acl="@write @list @slow @blocking")
def brpop(ctx: Ctx, argv: list[bytes]) -> Any:
    timeout = timeout_arg(ctx, argv[-1])
    return _blocking_pop(ctx, argv[1:-1], False, timeout, -1)


@command(
    "blmpop",
    -5,
    "write blocking movablekeys",
    acl="@write @list @slow @blocking",
    keys=keys_from_numkeys(2, 3),
)
def blmpop(ctx: Ctx, argv: list[bytes]) -> Any:
    keys, head, count = parse_mpop(argv, 2)
    timeout = timeout_arg(ctx, argv[1])
    return _blocking_pop(ctx, keys, head, timeout, count)


def _blmove(ctx: Ctx, argv: list[bytes], from_head: bool, to_head: bool, timeout: int) -> Any:
    """src/t_list.c blmoveGenericCommand."""
    src = get_list(ctx, argv[1])
    if src is None:
        if not ctx.may_block:
            return None
        return Block(ctx.db.id, [argv[1]], timeout, None)
    value = lmove_generic(ctx, argv[1], argv[2], from_head, to_head)
    if argv[0].lower() == b"blmove":
        ctx.rewrite([b"LMOVE", argv[1], argv[2], argv[3], argv[4]])
    else:
        ctx.rewrite([b"RPOPLPUSH", argv[1], argv[2]])
    return value


@command("blmove", 6, "write denyoom blocking", 1, 2, 1, acl="@write @list @slow @blocking")
def blmove(ctx: Ctx, argv: list[bytes]) -> Any:
    from_head = where_arg(argv[3])
    to_head = where_arg(argv[4])
    timeout = timeout_arg(ctx, argv[5])
    return _blmove(ctx, argv, from_head, to_head, timeout)


@command("brpoplpush", 4, "write denyoom blocking", 1, 2, 1, acl="@write @list @slow @blocking")
def brpoplpush(ctx: Ctx, argv: list[bytes]) -> Any:
    timeout = timeout_arg(ctx, argv[3])
    return _blmove(ctx, argv, False, True, timeout)
