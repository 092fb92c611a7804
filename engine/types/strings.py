"""Strings are plain ``bytes`` in the keyspace (integers too: INCR parses and re-encodes).

Also here: Valkey's ``long double`` arithmetic for INCRBYFLOAT (and HINCRBYFLOAT). x86-64 Valkey
computes in the x87 80-bit format (64-bit significand, exponents down to 2**-16445), so values
are parsed as exact rationals (``strtold``), rounded to that format, added and rounded again; the
result is printed by :func:`persistence.format.ld2string_human`.
"""

from __future__ import annotations

import re
from fractions import Fraction

from engine.types.base import TypeInfo, register
from persistence.records import StringValue, Value
from persistence.resp.tokens import string2ll

EMBSTR_LIMIT = 44  # src/object.c OBJ_ENCODING_EMBSTR_SIZE_LIMIT


# Strings made in place (APPEND to an existing key, SETRANGE, SETBIT, BITOP: "raw") or by
# INCRBYFLOAT ("embstr" even when they look like integers) skip tryObjectEncoding in Valkey.
# Values are plain bytes, so such encodings are remembered by object identity, only where they
# differ from what the value alone says; the table is bounded (cleared when large).
_ENC_OVERRIDE: dict[int, tuple[bytes, str]] = {}
_ENC_OVERRIDE_MAX = 100_000


def plain_encoding(value: bytes) -> str:
    """The encoding tryObjectEncoding gives ``value`` (src/object.c)."""
    # string2ll needs a leading "-" or digit: most values are refused without the call
    if len(value) <= 20 and value[:1] in b"-0123456789" and string2ll(value) is not None:
        return "int"
    return "embstr" if len(value) <= EMBSTR_LIMIT else "raw"


def mark_encoding(value: bytes, enc: str) -> None:
    """Remember that ``value`` (this object) is stored with encoding ``enc``."""
    # (0/1-byte bytes are shared objects in CPython: they cannot be told apart)
    if len(value) > 1 and (enc != plain_encoding(value) or (enc == "raw" and len(value) < 128)):
        if len(_ENC_OVERRIDE) >= _ENC_OVERRIDE_MAX:
            _ENC_OVERRIDE.clear()
        _ENC_OVERRIDE[id(value)] = (value, enc)


def _sds_hdr(n: int) -> int:
    """sdsReqType header size (src/sds.c): hdr5 / hdr8 / hdr16 / hdr32."""
    return 1 if n < 32 else 3 if n < 256 else 5 if n < 65536 else 9


def key_encoding(key: bytes, value: bytes) -> str:
    """OBJECT ENCODING of a string stored under ``key`` on Valkey 9: the value is embedded
    with its key when the whole object fits in 128 bytes (src/object.c, observed on 9.1.2: a
    1-byte key holds up to 112 bytes embedded, a 32-byte key 79)."""
    enc = encoding(value)
    if enc == "int" or (enc == "raw" and _overridden(value)):
        return enc
    return "embstr" if 14 + _sds_hdr(len(key)) + len(key) + len(value) <= 128 else "raw"


def _overridden(value: bytes) -> bool:
    o = _ENC_OVERRIDE.get(id(value))
    return o is not None and o[0] is value


def encoding(value: bytes) -> str:
    """OBJECT ENCODING of a string (src/object.c tryObjectEncoding)."""
    if _ENC_OVERRIDE:
        o = _ENC_OVERRIDE.get(id(value))
        if o is not None and o[0] is value:
            return o[1]
    return plain_encoding(value)


def _to_record(value: bytes) -> Value:
    return StringValue(value)


def _from_record(value: Value) -> bytes:
    assert isinstance(value, StringValue)
    return value.value


register(TypeInfo("string", bytes, _to_record, _from_record, encoding, lambda v: v))


# -- long double (src/util.c string2ld, x87 extended precision) ----------------------------
MAX_LONG_DOUBLE_CHARS = 5 * 1024  # src/util.h
_LD_MANT = 64
_LD_EMIN = -16382  # smallest normal exponent
_LD_EMAX = 16383
_DEC_RE = re.compile(rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")
_HEX_RE = re.compile(rb"[+-]?0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)([pP][+-]?\d+)?\Z")
_INF_WORDS = (b"inf", b"infinity")


class LongDoubleInf(Exception):
    """The value is (or rounds to) +-infinity."""


def ld_round(x: Fraction) -> Fraction:
    """Round an exact rational to the nearest x87 long double (ties to even); raise
    :class:`LongDoubleInf` on overflow."""
    if x == 0:
        return x
    neg = x < 0
    n, d = abs(x.numerator), x.denominator
    e = n.bit_length() - d.bit_length()  # 2**e <= |x| < 2**(e+1), fixed below
    if (n << max(0, -e)) < (d << max(0, e)):
        e -= 1
    if e > _LD_EMAX:
        raise LongDoubleInf
    shift = _LD_MANT - 1 - max(e, _LD_EMIN)
    if shift >= 0:
        q, r = divmod(n << shift, d)
        if 2 * r > d or (2 * r == d and q & 1):
            q += 1
        out = Fraction(q, 1 << shift)
    else:
        q, r = divmod(n, d << -shift)
        den = d << -shift
        if 2 * r > den or (2 * r == den and q & 1):
            q += 1
        out = Fraction(q << -shift)
    if out >= Fraction(1 << (_LD_EMAX + 1)):
        raise LongDoubleInf
    return -out if neg else out


def _dec_int(b: bytes) -> int:
    """int() of a digit string of any length (beyond Python's int-from-str digit limit)."""
    if len(b) <= 4000:
        return int(b) if b else 0
    return _dec_int(b[:-4000]) * 10**4000 + int(b[-4000:])


def string2ld(s: bytes) -> Fraction | float | None:
    """string2ld (src/util.c): strtold of the whole string, no leading space, no NaN, and no
    overflow or underflow to zero (ERANGE). Returns the exact long double, +-inf (a float) for
    ``inf``/``infinity``, or None when invalid."""
    if not s or len(s) >= MAX_LONG_DOUBLE_CHARS:
        return None
    low = s.lower()
    body = low[1:] if low[:1] in (b"+", b"-") else low
    if body in _INF_WORDS:
        return float("-inf") if low[:1] == b"-" else float("inf")
    m = _DEC_RE.match(s)
    if m is not None:
        mant = m.group(1)
        exp = int(m.group(2)[1:]) if m.group(2) else 0
        ip, _, fp = mant.partition(b".")
        digits = _dec_int(ip + fp)
        exp -= len(fp)
        if digits == 0:
            return Fraction(0)
        # bound the exponent before building huge integers: anything this far out
        # overflows or underflows a long double (ERANGE)
        mag = len((ip + fp).lstrip(b"0")) + exp
        if mag > 4940:
            return None
        if mag < -4960:
            return None
        x = Fraction(digits * 10**exp) if exp >= 0 else Fraction(digits, 10**-exp)
    else:
        m = _HEX_RE.match(s)
        if m is None:
            return None
        mant = m.group(1)
        exp = int(m.group(2)[1:]) if m.group(2) else 0
        ip, _, fp = mant.partition(b".")
        digits = int((ip + fp) or b"0", 16)
        exp -= 4 * len(fp)
        if digits == 0:
            return Fraction(0)
        mag = digits.bit_length() + exp
        if mag > _LD_EMAX + 2 or mag < -16500:
            return None
        x = Fraction(digits << exp) if exp >= 0 else Fraction(digits, 1 << -exp)
    if s[:1] == b"-":
        x = -x
    try:
        r = ld_round(x)
    except LongDoubleInf:
        return None  # ERANGE with HUGE_VAL
    if r == 0:
        return None  # ERANGE underflow to zero
    return r
