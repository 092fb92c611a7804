"""LZF (liblzf) codec, as Valkey uses it for RDB strings (src/lzf_c.c, src/lzf_d.c).

Format: a control byte ``c``. ``c < 32``: ``c + 1`` literal bytes follow. Otherwise a back
reference: length ``c >> 5`` (7 means "add the next byte"), plus 2; distance
``((c & 0x1f) << 8) + next byte + 1`` back from the output end. RDB strings are compressed only
past 20 bytes (src/rdb.c rdbSaveRawString), so keys and small values never get here.

Compression need not match liblzf byte for byte (any valid LZF stream loads): short strings take
a greedy pure-Python loop, longer ones have the C LZ4 block compressor (the ``lz4`` dependency)
find the matches and only re-encode them as LZF, which is several times faster than a per-byte
Python loop. Decompression is pure Python, with overlapping copies done a period at a time.
"""

from __future__ import annotations

import lz4.block as lz4_block

MAX_LIT = 1 << 5  # 32 literals per run
MAX_OFF = 1 << 13  # 8192 back
MAX_REF = (1 << 8) + (1 << 3)  # 264: 7 + 255 + 2
LZ4_FROM = 64  # from this length on, LZ4 finds the matches (see compress)


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

    Strings of :data:`LZ4_FROM` bytes or more take the LZ4 route (:func:`_compress_lz4`), shorter
    ones the greedy loop (:func:`_compress_greedy`).
    """
    if len(data) >= LZ4_FROM:
        return _compress_lz4(data)
    return _compress_greedy(data)


def _compress_lz4(data: bytes) -> bytes | None:
    """LZF from an LZ4 block: the C compressor finds the matches, this loop only re-encodes them
    (one step per LZ4 sequence, not per byte). LZ4 sequences are ``token, [literal length
    bytes], literals, offset (2 bytes LE), [match length bytes]``, the last one literals only.
    Matches farther than LZF's 8 KB stay literals; longer than 264 bytes are split."""
    n = len(data)
    blk = lz4_block.compress(data, store_size=False)
    blen = len(blk)
    out = bytearray()
    bp = 0
    pos = 0  # position in data
    lit_start = 0
    while bp < blen:
        token = blk[bp]
        bp += 1
        ll = token >> 4
        if ll == 15:
            while True:
                b = blk[bp]
                bp += 1
                ll += b
                if b != 255:
                    break
        bp += ll
        pos += ll
        if bp >= blen:  # the last sequence: literals only
            break
        dist = blk[bp] | (blk[bp + 1] << 8)
        bp += 2
        ml = (token & 15) + 4
        if ml == 19:
            while True:
                b = blk[bp]
                bp += 1
                ml += b
                if b != 255:
                    break
        if dist > MAX_OFF:  # too far back for LZF: these bytes stay literals
            pos += ml
            continue
        if lit_start < pos:
            _flush_literals(out, data, lit_start, pos)
        off = dist - 1
        while ml:
            chunk = ml if ml <= MAX_REF else MAX_REF
            if 0 < ml - chunk < 3:  # never leave a tail shorter than LZF's 3-byte minimum
                chunk = ml - 3
            code = chunk - 2
            if code < 7:
                out.append((code << 5) | (off >> 8))
            else:
                out.append((7 << 5) | (off >> 8))
                out.append(code - 7)
            out.append(off & 0xFF)
            ml -= chunk
            pos += chunk
        lit_start = pos
        if len(out) >= n:
            return None
    _flush_literals(out, data, lit_start, n)
    if len(out) >= n:
        return None
    return bytes(out)


def _compress_greedy(data: bytes) -> bytes | None:
    """Greedy: at each position, the most recent earlier occurrence of its 3 bytes within 8 KB,
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
