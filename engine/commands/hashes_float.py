"""x87 80-bit ``long double`` arithmetic for HINCRBYFLOAT, done exactly with fractions.

Valkey parses with ``strtold`` (src/util.c string2ld), adds in ``long double`` and prints with
``%.17Lf`` minus trailing zeros (src/util.c ld2string LD_STR_HUMAN). Python has no long double,
so values are kept as exact :class:`~fractions.Fraction` objects rounded to a 64-bit significand
(round half to even) with the x87 exponent range, which reproduces the server's digits.
"""

from __future__ import annotations

import re
from fractions import Fraction

_MANT = 64  # significand bits
_EMIN = -16382  # smallest normal exponent
_EMAX = 16383  # largest exponent
_MAX_CHARS = 5 * 1024  # src/util.h MAX_LONG_DOUBLE_CHARS
_INFS = frozenset((b"inf", b"infinity"))

_DEC = re.compile(rb"([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\Z")
_HEX = re.compile(rb"([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?\Z")


_CHUNK = 4000  # under Python's int <-> str digit limit
_CHUNK_POW = 10**_CHUNK


def _itoa(n: int) -> str:
    if n < _CHUNK_POW:
        return str(n)
    hi, lo = divmod(n, _CHUNK_POW)
    return _itoa(hi) + str(lo).rjust(_CHUNK, "0")


def _atoi(s: bytes, base: int = 10) -> int:
    if len(s) <= _CHUNK:
        return int(s, base)
    scale: int = base**_CHUNK
    return _atoi(s[:-_CHUNK], base) * scale + int(s[-_CHUNK:], base)


def round_ld(x: Fraction) -> Fraction | None:
    """Round to the nearest long double; None on overflow."""
    if x == 0:
        return x
    neg = x < 0
    a = -x if neg else x
    num, den = a.numerator, a.denominator
    e = num.bit_length() - den.bit_length()
    # make 2^e <= a < 2^(e+1)
    if (num << max(0, -e)) < (den << max(0, e)):
        e -= 1
    e = max(e, _EMIN)
    q = e - (_MANT - 1)  # quantum exponent
    if q >= 0:
        scaled_num, scaled_den = num, den << q
    else:
        scaled_num, scaled_den = num << -q, den
    n, rem = divmod(scaled_num, scaled_den)
    twice = 2 * rem
    if twice > scaled_den or (twice == scaled_den and n & 1):
        n += 1
    r = Fraction(n << q) if q >= 0 else Fraction(n, 1 << -q)
    if r >= Fraction(1 << (_EMAX + 1)):
        return None
    return -r if neg else r


def parse_ld(s: bytes) -> Fraction | float | None:
    """src/util.c string2ld: the value, ``float('inf')``-like for infinities, None if invalid."""
    if not s or len(s) >= _MAX_CHARS:
        return None
    low = s.lower()
    sign = 1
    body = low
    if body[:1] in (b"+", b"-"):
        sign = -1 if body[:1] == b"-" else 1
        body = body[1:]
    if body in _INFS:
        return float("inf") * sign
    m = _DEC.match(s)
    if m is not None:
        ip, fp, ex = m.group(2), m.group(3) or b"", m.group(4)
        if not ip and not fp:
            return None
        digits = (ip + fp).lstrip(b"0")
        if not digits:
            return Fraction(0)
        exp10 = -len(fp)
        if ex is not None:
            if len(ex.lstrip(b"+-").lstrip(b"0")) > 9:
                return None  # far outside the range either way (ERANGE)
            exp10 += int(ex)
        magnitude = len(digits) + exp10  # value < 10^magnitude
        if magnitude > 4940:
            return None  # overflow: HUGE_VAL with ERANGE
        if magnitude < -4960:
            return None  # underflow to zero with ERANGE
        v = Fraction(_atoi(digits)) * (Fraction(10) ** exp10)
        r = round_ld(v if m.group(1) != b"-" else -v)
        if r is None or r == 0:
            return None
        return r
    m = _HEX.match(s)
    if m is not None:
        ip, fp, ex = m.group(2), m.group(3) or b"", m.group(4)
        if not ip and not fp:
            return None
        mant = _atoi((ip + fp) or b"0", 16)
        if mant == 0:
            return Fraction(0)
        exp2 = -4 * len(fp)
        if ex is not None:
            if len(ex.lstrip(b"+-").lstrip(b"0")) > 9:
                return None
            exp2 += int(ex)
        if mant.bit_length() + exp2 > _EMAX + 2 or mant.bit_length() + exp2 < -16500:
            return None
        v = Fraction(mant) * (Fraction(2) ** exp2)
        r = round_ld(v if m.group(1) != b"-" else -v)
        if r is None or r == 0:
            return None
        return r
    return None


def format_ld(v: Fraction) -> bytes:
    """``%.17Lf`` without trailing zeros (src/util.c ld2string LD_STR_HUMAN)."""
    scaled = v * 10**17
    n = scaled.numerator // scaled.denominator
    rem = scaled - n
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n & 1):
        n += 1
    neg = n < 0 or (n == 0 and v < 0)
    digits = _itoa(abs(n)).rjust(18, "0")
    text = digits[:-17] + "." + digits[-17:]
    text = text.rstrip("0").rstrip(".")
    if neg:
        text = "-" + text
    if text == "-0":
        text = "0"
    return text.encode()
