"""LZF (liblzf) codec, as Valkey uses it for RDB strings (src/lzf_c.c, src/lzf_d.c).

Format: a control byte ``c``. ``c < 32``: ``c + 1`` literal bytes follow. Otherwise a back
reference: length ``c >> 5`` (7 means "add the next byte"), plus 2; distance
``((c & 0x1f) << 8) + next byte + 1`` back from the output end. Pure Python: RDB strings are
compressed only past 20 bytes (src/rdb.c rdbSaveRawString), so keys and small values never get
here; matches are extended with slice comparisons rather than byte by byte.
"""

from __future__ import annotations

MAX_LIT = 1 << 5  # 32 literals per run
MAX_OFF = 1 << 13  # 8192 back
MAX_REF = (1 << 8) + (1 << 3)  # 264: 7 + 255 + 2


class LzfError(ValueError):
    """Compressed data that points outside its buffer or does not give the expected length."""


def decompress(data: bytes | memoryview, expected_len: int) -> bytes:
    src = bytes(data)
    out = bytearray()
    ip = 0
    n = len(src)
    while ip < n:
        ctrl = src[ip]
        ip += 1
        if ctrl < 32:
            run = ctrl + 1
            if ip + run > n:
                raise LzfError("LZF literal run past the end of the input")
            out += src[ip : ip + run]
            ip += run
        else:
            length = ctrl >> 5
            if length == 7:
                if ip >= n:
                    raise LzfError("LZF reference past the end of the input")
                length += src[ip]
                ip += 1
            if ip >= n:
                raise LzfError("LZF reference past the end of the input")
            ref = len(out) - ((ctrl & 0x1F) << 8) - src[ip] - 1
            ip += 1
            if ref < 0:
                raise LzfError("LZF back reference before the start of the output")
            length += 2
            if ref + length <= len(out):
                out += out[ref : ref + length]
            else:  # overlapping copy: the last ``d`` bytes repeat (period d = distance)
                d = len(out) - ref
                out += (out[ref:] * (length // d + 1))[:length]
        if len(out) > expected_len:
            raise LzfError("LZF output longer than its declared length")
    if len(out) != expected_len:
        raise LzfError(f"LZF output is {len(out)} bytes, expected {expected_len}")
    return bytes(out)


def compress(data: bytes) -> bytes | None:
    """Compress ``data``; None when the result would not be smaller (like lzf_compress == 0).

    Greedy: at each position, the most recent earlier occurrence of its 3 bytes within 8 KB,
    extended as far as it matches (by slices, doubling then halving: C-speed comparisons).
    """
    n = len(data)
    if n < 4:
        return None
    out = bytearray()
    table: dict[bytes, int] = {}
    tget = table.get
    lit_start = 0
    ip = 0
    limit = n - 2
    while ip < limit:
        key = data[ip : ip + 3]
        ref = tget(key)
        table[key] = ip
        if ref is None or ip - ref > MAX_OFF:  # offset ip - ref - 1 must be < MAX_OFF
            ip += 1
            continue
        # extend the match: the longest prefix of data[ip:] repeated at ref, up to MAX_REF
        maxlen = n - ip
        if maxlen > MAX_REF:
            maxlen = MAX_REF
        length = 3
        step = 8
        grow = True
        while step:
            e = length + step
            if e <= maxlen and data[ref + length : ref + e] == data[ip + length : ip + e]:
                length = e
                if grow:
                    step <<= 1
            else:
                grow = False
                step >>= 1
        if lit_start < ip:
            _flush_literals(out, data, lit_start, ip)
        off = ip - ref - 1
        code = length - 2
        if code < 7:
            out.append((code << 5) | (off >> 8))
        else:
            out.append((7 << 5) | (off >> 8))
            out.append(code - 7)
        out.append(off & 0xFF)
        ip += length
        lit_start = ip
    _flush_literals(out, data, lit_start, n)
    if len(out) >= n:
        return None
    return bytes(out)


def _flush_literals(out: bytearray, data: bytes, start: int, end: int) -> None:
    while start < end:
        run = min(MAX_LIT, end - start)
        out.append(run - 1)
        out += data[start : start + run]
        start += run
