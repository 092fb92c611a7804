"""String ranges and LCS (src/t_string.c getrangeCommand, setrangeCommand, lcsCommand):
GETRANGE, SUBSTR, SETRANGE, LCS, and checkStringLength, which APPEND shares (strings.py).

How this works: as the handlers of ``strings.py``: the string is looked up through the db (lazy
expiry), changes are counted in ``ctx.dirty``; SETRANGE keeps Valkey's raw encoding."""

from __future__ import annotations

from typing import Any

from engine.commands.table import command
from engine.commands.util import int_arg
from engine.context import Ctx
from engine.errors import (
    LCS_LEN_AND_IDX,
    LCS_NOT_STRINGS,
    OFFSET_RANGE,
    STRING_TOO_LONG,
    SYNTAX,
    WRONGTYPE,
    CommandError,
)
from engine.types.strings import mark_encoding


def check_len(ctx: Ctx, total: int) -> None:
    """checkStringLength (src/t_string.c)."""
    if total > ctx.engine.config["proto-max-bulk-len"]:
        raise CommandError(STRING_TOO_LONG)


@command("getrange", 4, "readonly", 1, 1, 1, acl="@read @string @slow")
def getrange(ctx: Ctx, argv: list[bytes]) -> Any:
    start = int_arg(argv[2])
    end = int_arg(argv[3])
    value = ctx.db.lookup(ctx, argv[1])
    if value is None:
        return b""
    if type(value) is not bytes:
        raise CommandError(WRONGTYPE)
    n = len(value)
    # src/t_string.c getrangeCommand
    if start < 0 and end < 0 and start > end:
        return b""
    if start < 0:
        start = max(n + start, 0)
    if end < 0:
        end = max(n + end, 0)
    if end >= n:
        end = n - 1
    if start > end or n == 0:
        return b""
    return value[start : end + 1]


@command("substr", 4, "readonly", 1, 1, 1, acl="@read @string @slow")
def substr(ctx: Ctx, argv: list[bytes]) -> Any:
    return getrange(ctx, argv)


@command("setrange", 4, "write denyoom", 1, 1, 1, acl="@write @string @slow")
def setrange(ctx: Ctx, argv: list[bytes]) -> Any:
    key, part = argv[1], argv[3]
    offset = int_arg(argv[2])
    if offset < 0:
        raise CommandError(OFFSET_RANGE)
    db = ctx.db
    old = db.lookup(ctx, key)
    if old is None:
        if not part:
            return 0
        check_len(ctx, offset + len(part))
        new = bytes(offset) + part
        db.add(key, new)
        mark_encoding(new, "raw")
    else:
        if type(old) is not bytes:
            raise CommandError(WRONGTYPE)
        if not part:
            return len(old)
        check_len(ctx, offset + len(part))
        if offset > len(old):
            new = old + bytes(offset - len(old)) + part
        else:
            new = old[:offset] + part + old[offset + len(part) :]
        db.data[key] = new
    mark_encoding(new, "raw")  # src/t_string.c setrangeCommand: raw sds
    ctx.modified(key)
    ctx.notify("$", b"setrange", key)
    ctx.dirty += 1
    return len(new)


@command("lcs", -3, "readonly", 1, 2, 1, acl="@read @string @slow")
def lcs(ctx: Ctx, argv: list[bytes]) -> Any:
    a = ctx.db.lookup(ctx, argv[1])
    b = ctx.db.lookup(ctx, argv[2])
    if (a is not None and type(a) is not bytes) or (b is not None and type(b) is not bytes):
        raise CommandError(LCS_NOT_STRINGS)
    a = a or b""
    b = b or b""
    getlen = getidx = withmatchlen = False
    minmatchlen = 0
    j, n = 3, len(argv)
    while j < n:
        opt = argv[j].upper()
        if opt == b"IDX":
            getidx = True
        elif opt == b"LEN":
            getlen = True
        elif opt == b"WITHMATCHLEN":
            withmatchlen = True
        elif opt == b"MINMATCHLEN" and j + 1 < n:
            minmatchlen = max(int_arg(argv[j + 1]), 0)
            j += 1
        else:
            raise CommandError(SYNTAX)
        j += 1
    if getlen and getidx:
        raise CommandError(LCS_LEN_AND_IDX)
    return _lcs_reply(a, b, getlen, getidx, withmatchlen, minmatchlen)


def _lcs_reply(
    a: bytes, b: bytes, getlen: bool, getidx: bool, withmatchlen: bool, minmatchlen: int
) -> Any:
    """src/t_string.c lcsCommand: the DP table, then walk back emitting ranges."""
    alen, blen = len(a), len(b)
    w = blen + 1
    table = [0] * ((alen + 1) * w)
    for i in range(1, alen + 1):
        ai = a[i - 1]
        row, prev = i * w, (i - 1) * w
        for jj in range(1, blen + 1):
            if ai == b[jj - 1]:
                table[row + jj] = table[prev + jj - 1] + 1
            else:
                x, y = table[prev + jj], table[row + jj - 1]
                table[row + jj] = x if x > y else y
    total = table[alen * w + blen]
    if getlen and not getidx:
        return total
    result = bytearray(total)
    idx = total
    matches: list[Any] = []
    astart = alen  # alen = no range yet
    aend = bstart = bend = 0
    i, j = alen, blen
    while i > 0 and j > 0:
        emit = False
        if a[i - 1] == b[j - 1]:
            result[idx - 1] = a[i - 1]
            if astart == alen:
                astart = aend = i - 1
                bstart = bend = j - 1
            elif astart == i and bstart == j:
                astart -= 1
                bstart -= 1
            else:
                emit = True
            if astart == 0 or bstart == 0:
                emit = True
            idx -= 1
            i -= 1
            j -= 1
        else:
            if table[(i - 1) * w + j] > table[i * w + j - 1]:
                i -= 1
            else:
                j -= 1
            if astart != alen:
                emit = True
        if emit:
            mlen = aend - astart + 1
            if getidx and (minmatchlen == 0 or mlen >= minmatchlen):
                m: list[Any] = [[astart, aend], [bstart, bend]]
                if withmatchlen:
                    m.append(mlen)
                matches.append(m)
            astart = alen
    if getidx:
        return {b"matches": matches, b"len": total}
    return bytes(result)
