"""Bitmap commands on strings (src/bitops.c): SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD
BITFIELD_RO. Bits are numbered from the most significant bit of the first byte."""

from __future__ import annotations

from typing import Any

from engine.commands.table import command
from engine.commands.util import int_arg
from engine.context import Ctx
from engine.errors import (
    BIT_OFFSET,
    BIT_VALUE,
    BITFIELD_OVERFLOW_TYPE,
    BITFIELD_RO_WRITE,
    BITFIELD_TYPE,
    BITOP_NOT_ONE_KEY,
    BITPOS_BIT,
    SYNTAX,
    WRONGTYPE,
    CommandError,
)
from engine.types.strings import mark_encoding
from persistence.resp.tokens import string2ll

_U64 = (1 << 64) - 1


def _bit_offset(ctx: Ctx, arg: bytes, hash_bits: int = 0) -> int:
    """getBitOffsetFromArgument (src/bitops.c): ``#n`` means n * bits for BITFIELD."""
    usehash = len(arg) > 1 and arg[0] == 0x23 and hash_bits > 0
    v = string2ll(arg[1:] if usehash else arg)
    if v is None:
        raise CommandError(BIT_OFFSET)
    if usehash:
        v *= hash_bits
    if v < 0 or (v >> 3) >= ctx.engine.config["proto-max-bulk-len"]:
        raise CommandError(BIT_OFFSET)
    return v


def _string_for_bits(ctx: Ctx, key: bytes, maxbit: int) -> tuple[bytes, bool]:
    """lookupStringForBitCommand: the string grown with zeros to hold ``maxbit``; dirty when
    created or grown."""
    need = (maxbit >> 3) + 1
    old = ctx.db.lookup(ctx, key)
    if old is None:
        return bytes(need), True
    if type(old) is not bytes:
        raise CommandError(WRONGTYPE)
    if len(old) < need:
        return old + bytes(need - len(old)), True
    return old, False


def _store(ctx: Ctx, key: bytes, value: bytes) -> None:
    mark_encoding(value, "raw")  # src/bitops.c: bitmaps are raw sds strings
    db = ctx.db
    if key in db.data:
        db.data[key] = value  # same key: the TTL stays
    else:
        db.add(key, value)


@command("setbit", 4, "write denyoom", 1, 1, 1, acl="@write @bitmap @slow")
def setbit(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[1]
    offset = _bit_offset(ctx, argv[2])
    on = string2ll(argv[3])
    if on is None or on & ~1:
        raise CommandError(BIT_VALUE)
    value, dirty = _string_for_bits(ctx, key, offset)
    byte = offset >> 3
    mask = 1 << (7 - (offset & 7))
    old = 1 if value[byte] & mask else 0
    if dirty or old != on:
        b = (value[byte] & ~mask) | (mask if on else 0)
        _store(ctx, key, value[:byte] + bytes((b,)) + value[byte + 1 :])
        ctx.modified(key)
        ctx.notify("$", b"setbit", key)
        ctx.dirty += 1
    else:
        mark_encoding(value, "raw")  # lookupStringForBitCommand unshares the value anyway
    return old


@command("getbit", 3, "readonly fast", 1, 1, 1, acl="@read @bitmap @fast")
def getbit(ctx: Ctx, argv: list[bytes]) -> Any:
    offset = _bit_offset(ctx, argv[2])
    value = ctx.db.lookup(ctx, argv[1])
    if value is None:
        return 0
    if type(value) is not bytes:
        raise CommandError(WRONGTYPE)
    byte = offset >> 3
    if byte >= len(value):
        return 0
    return 1 if value[byte] & (1 << (7 - (offset & 7))) else 0


def _unit(arg: bytes) -> bool:
    u = arg.upper()
    if u == b"BIT":
        return True
    if u == b"BYTE":
        return False
    raise CommandError(SYNTAX)


def _lookup_string(ctx: Ctx, key: bytes) -> bytes | None:
    value = ctx.db.lookup(ctx, key)
    if value is not None and type(value) is not bytes:
        raise CommandError(WRONGTYPE)
    return value


def _popcount(b: bytes) -> int:
    return int.from_bytes(b, "big").bit_count() if b else 0


@command("bitcount", -2, "readonly", 1, 1, 1, acl="@read @bitmap @slow")
def bitcount(ctx: Ctx, argv: list[bytes]) -> Any:
    n = len(argv)
    if n == 2:
        value = _lookup_string(ctx, argv[1])
        return _popcount(value) if value else 0
    if n > 5:
        raise CommandError(SYNTAX)
    start = int_arg(argv[2])
    end = int_arg(argv[3]) if n > 3 else -1  # observed on 9.1.2: the end is optional
    isbit = _unit(argv[4]) if n == 5 else False
    value = _lookup_string(ctx, argv[1])
    if value is None:
        return 0
    # src/bitops.c bitcountCommand
    if start < 0 and end < 0 and start > end:
        return 0
    total = len(value) * (8 if isbit else 1)
    if start < 0:
        start = max(total + start, 0)
    if end < 0:
        end = max(total + end, 0)
    if end >= total:
        end = total - 1
    if start > end:
        return 0
    if not isbit:
        return _popcount(value[start : end + 1])
    bits = int.from_bytes(value[start >> 3 : (end >> 3) + 1], "big")
    width = ((end >> 3) - (start >> 3) + 1) * 8
    lo = width - 1 - (end - (start & ~7))  # bits below the range
    bits >>= lo
    bits &= (1 << (end - start + 1)) - 1
    return bits.bit_count()


@command("bitpos", -3, "readonly", 1, 1, 1, acl="@read @bitmap @slow")
def bitpos(ctx: Ctx, argv: list[bytes]) -> Any:
    bit = int_arg(argv[2])
    if bit not in (0, 1):
        raise CommandError(BITPOS_BIT)
    n = len(argv)
    if n > 6:
        raise CommandError(SYNTAX)
    end_given = False
    isbit = False
    if n >= 4:
        start = int_arg(argv[3])
        if n == 6:
            isbit = _unit(argv[5])
        end = 0
        if n >= 5:
            end = int_arg(argv[4])
            end_given = True
        value = _lookup_string(ctx, argv[1])
        if value is None:
            return -1 if bit else 0
        total = len(value)
        if not end_given:
            end = total * 8 + 7 if isbit else total - 1
        if isbit:
            total <<= 3
        if start < 0:
            start = max(total + start, 0)
        if end < 0:
            end = max(total + end, 0)
        if end >= total:
            end = total - 1
    else:
        value = _lookup_string(ctx, argv[1])
        if value is None:
            return -1 if bit else 0
        start, end = 0, len(value) - 1
    if start > end:
        return -1
    if not isbit:
        start, end = start * 8, end * 8 + 7
    # search bits [start, end] (src/bitops.c bitposCommand, in bit space)
    first, last = start >> 3, end >> 3
    chunk = int.from_bytes(value[first : last + 1], "big")
    width = (last - first + 1) * 8
    nbits = end - start + 1
    field = (chunk >> (width - 1 - (end - first * 8))) & ((1 << nbits) - 1)
    if bit == 0:
        field ^= (1 << nbits) - 1
    if field:
        return start + nbits - field.bit_length()
    if bit == 1 or end_given:
        return -1
    return end + 1  # the string is zero padded on the right


_BITOPS = (b"AND", b"OR", b"XOR", b"NOT")


@command("bitop", -4, "write denyoom", 2, -1, 1, acl="@write @bitmap @slow")
def bitop(ctx: Ctx, argv: list[bytes]) -> Any:
    op = argv[1].upper()
    if op not in _BITOPS:
        raise CommandError(SYNTAX)
    if op == b"NOT" and len(argv) != 4:
        raise CommandError(BITOP_NOT_ONE_KEY)
    dest = argv[2]
    values: list[bytes] = []
    for key in argv[3:]:
        v = _lookup_string(ctx, key)
        values.append(v or b"")
    maxlen = max(len(v) for v in values)
    db = ctx.db
    if maxlen:
        ints = [int.from_bytes(v.ljust(maxlen, b"\0"), "big") for v in values]
        acc = ints[0]
        if op == b"NOT":
            acc = ~acc & ((1 << (maxlen * 8)) - 1)
        elif op == b"AND":
            for x in ints[1:]:
                acc &= x
        elif op == b"OR":
            for x in ints[1:]:
                acc |= x
        else:
            for x in ints[1:]:
                acc ^= x
        db.lookup(ctx, dest)
        res = acc.to_bytes(maxlen, "big")
        mark_encoding(res, "raw")
        db.set(dest, res)
        ctx.modified(dest)
        ctx.notify("$", b"set", dest)
        ctx.dirty += 1
    elif db.lookup(ctx, dest) is not None:
        db.delete(dest)
        ctx.modified(dest)
        ctx.notify("g", b"del", dest)
        ctx.dirty += 1
    return maxlen


# -- BITFIELD ------------------------------------------------------------------------------
_WRAP, _SAT, _FAIL = 0, 1, 2
_OVERFLOW = {b"WRAP": _WRAP, b"SAT": _SAT, b"FAIL": _FAIL}


def _bf_type(arg: bytes) -> tuple[bool, int]:
    """getBitfieldTypeFromArgument (src/bitops.c): i1..i64, u1..u63 (lower case only)."""
    if not arg or arg[0] not in (0x69, 0x75):
        raise CommandError(BITFIELD_TYPE)
    signed = arg[0] == 0x69
    bits = string2ll(arg[1:])
    if bits is None or bits < 1 or bits > (64 if signed else 63):
        raise CommandError(BITFIELD_TYPE)
    return signed, bits


def _get_field(value: bytes, offset: int, bits: int) -> int:
    first, last = offset >> 3, (offset + bits - 1) >> 3
    chunk = value[first : last + 1]
    width = (last - first + 1) * 8
    x = int.from_bytes(chunk.ljust(last - first + 1, b"\0"), "big")
    return (x >> (width - (offset - first * 8) - bits)) & ((1 << bits) - 1)


def _set_field(value: bytearray, offset: int, bits: int, v: int) -> None:
    first, last = offset >> 3, (offset + bits - 1) >> 3
    width = (last - first + 1) * 8
    x = int.from_bytes(value[first : last + 1], "big")
    shift = width - (offset - first * 8) - bits
    mask = ((1 << bits) - 1) << shift
    x = (x & ~mask) | ((v << shift) & mask)
    value[first : last + 1] = x.to_bytes(last - first + 1, "big")


def _check_overflow(v: int, signed: bool, bits: int, owtype: int) -> tuple[bool, int]:
    """checkSignedBitfieldOverflow / checkUnsignedBitfieldOverflow on the exact result ``v``:
    (overflowed, the value to store under WRAP/SAT)."""
    if signed:
        hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
    else:
        hi, lo = (1 << bits) - 1, 0
    if lo <= v <= hi:
        return False, v
    if owtype == _SAT:
        return True, hi if v > hi else lo
    w = v & ((1 << bits) - 1)
    if signed and w >> (bits - 1):
        w -= 1 << bits
    return True, w


def _bitfield(ctx: Ctx, argv: list[bytes], ro: bool) -> Any:
    ops: list[tuple[int, bool, int, int, int, int]] = []  # (op, signed, bits, offset, arg, ow)
    owtype = _WRAP
    readonly = True
    highest = 0
    j, n = 2, len(argv)
    while j < n:
        rem = n - j - 1
        sub = argv[j].upper()
        if sub == b"GET" and rem >= 2:
            opcode = 0
        elif sub == b"SET" and rem >= 3:
            opcode = 1
        elif sub == b"INCRBY" and rem >= 3:
            opcode = 2
        elif sub == b"OVERFLOW" and rem >= 1:
            ow = _OVERFLOW.get(argv[j + 1].upper())
            if ow is None:
                raise CommandError(BITFIELD_OVERFLOW_TYPE)
            owtype = ow
            j += 2
            continue
        else:
            raise CommandError(SYNTAX)
        signed, bits = _bf_type(argv[j + 1])
        offset = _bit_offset(ctx, argv[j + 2], bits)
        arg = 0
        if opcode:
            readonly = False
            highest = max(highest, offset + bits - 1)
            arg = int_arg(argv[j + 3])
        ops.append((opcode, signed, bits, offset, arg, owtype))
        j += 4 if opcode else 3
    key = argv[1]
    if readonly:
        value = _lookup_string(ctx, key) or b""
        buf = None
        dirty = False
    else:
        if ro:
            raise CommandError(BITFIELD_RO_WRITE)
        value, dirty = _string_for_bits(ctx, key, highest)
        buf = bytearray(value)
    out: list[Any] = []
    changes = 0
    for opcode, signed, bits, offset, arg, ow in ops:
        if opcode == 0:
            v = _get_field(bytes(buf) if buf is not None else value, offset, bits)
            if signed and v >> (bits - 1):
                v -= 1 << bits
            out.append(v)
            continue
        assert buf is not None
        old = _get_field(bytes(buf), offset, bits)
        if signed and old >> (bits - 1):
            old -= 1 << bits
        if opcode == 2:
            overflow, new = _check_overflow(old + arg, signed, bits, ow)
            ret = new
        else:
            newv = arg if signed else arg & _U64
            overflow, new = _check_overflow(newv, signed, bits, ow)
            ret = old
        if overflow and ow == _FAIL:
            out.append(None)
            continue
        out.append(ret)
        _set_field(buf, offset, bits, new & ((1 << bits) - 1))
        if dirty or old != new:
            changes += 1
    if buf is not None and (dirty or changes):
        _store(ctx, key, bytes(buf))
    if changes:
        ctx.modified(key)
        ctx.notify("$", b"setbit", key)
        ctx.dirty += changes
    return out


@command("bitfield", -2, "write denyoom", 1, 1, 1, acl="@write @bitmap @slow")
def bitfield(ctx: Ctx, argv: list[bytes]) -> Any:
    return _bitfield(ctx, argv, False)


@command("bitfield_ro", -2, "readonly fast", 1, 1, 1, acl="@read @bitmap @fast")
def bitfield_ro(ctx: Ctx, argv: list[bytes]) -> Any:
    return _bitfield(ctx, argv, True)
