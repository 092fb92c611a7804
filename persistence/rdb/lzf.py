"""LZF (liblzf) codec, as Valkey uses it for RDB strings (src/lzf_c.c, src/lzf_d.c).

Format: a control byte ``c``. ``c < 32``: ``c + 1`` literal bytes follow. Otherwise a back
reference: length ``c >> 5`` (7 means "add the next byte"), plus 2; distance
``((c & 0x1f) << 8) + next byte + 1`` back from the output end. Pure Python: RDB strings are
compressed only past 20 bytes and are small, so this is not on a hot path.
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
            else:  # overlapping copy, byte by byte
                for i in range(length):
                    out.append(out[ref + i])
        if len(out) > expected_len:
            raise LzfError("LZF output longer than its declared length")
    if len(out) != expected_len:
        raise LzfError(f"LZF output is {len(out)} bytes, expected {expected_len}")
    return bytes(out)


def compress(data: bytes) -> bytes | None:
    """Compress ``data``; None when the result would not be smaller (like lzf_compress == 0)."""
    n = len(data)
    if n < 4:
        return None
    out = bytearray()
    table: dict[bytes, int] = {}
    lit_start = 0
    ip = 0
    limit = n - 2
    while ip < limit:
        key = data[ip : ip + 3]
        ref = table.get(key)
        table[key] = ip
        if ref is not None and ip - ref - 1 < MAX_OFF:
            # extend the match
            maxlen = min(MAX_REF, n - ip)
            length = 3
            while length < maxlen and data[ref + length] == data[ip + length]:
                length += 1
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
        else:
            ip += 1
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
