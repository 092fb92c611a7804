"""Valkey's two ways of printing a double, checked against a real valkey-server 9.1.2.

- Replies (ZSCORE, ZRANGE WITHSCORES, RESP2 bulk doubles): ``%.17g`` (src/networking.c
  addReplyDouble), e.g. 0.1+0.2 -> ``0.30000000000000004``, 1/3 -> ``0.33333333333333331``,
  1e17 -> ``1e+17``, 1e16 -> ``10000000000000000``.
- AOF rewrite (ZADD scores, src/aof.c rioWriteBulkDouble): ``fpconv_dtoa`` (src/fpconv_dtoa.c), the
  shortest round-trip digits laid out by its own rules: 1e15 -> ``1e+15``, 1.5e-7 -> ``1.5e-7``,
  0.00001 -> ``0.00001``, 123456789012345678 -> ``123456789012345680``.
"""

from __future__ import annotations

import math


def format_double(x: float) -> bytes:
    """A double as Valkey replies with it (``%.17g``; ``inf``/``-inf``/``nan``)."""
    if math.isinf(x):
        return b"inf" if x > 0 else b"-inf"
    if math.isnan(x):
        return b"nan"
    return b"%.17g" % x


def format_double_aof(x: float) -> bytes:
    """A double as AOF rewrite writes it (src/fpconv_dtoa.c fpconv_dtoa + emit_digits)."""
    if math.isinf(x):
        return b"inf" if x > 0 else b"-inf"
    if math.isnan(x):
        return b"nan"
    if x == 0:
        return b"-0" if math.copysign(1.0, x) < 0 else b"0"
    neg = x < 0
    # repr() gives the shortest round-trip digits (fpconv uses Grisu2, the same digits in
    # all but rare cases); split them into a digit string and a power-of-ten exponent K.
    mant, _, exp_s = repr(abs(x)).partition("e")
    k = int(exp_s) if exp_s else 0
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    k -= len(frac)
    stripped = digits.rstrip("0")
    k += len(digits) - len(stripped)
    digits = stripped
    n = len(digits)
    e = abs(k + n - 1)
    sign = "-" if neg else ""
    if k >= 0 and e < n + 7:  # plain integer
        return (sign + digits + "0" * k).encode()
    if k < 0 and (k > -7 or e < 4):  # decimal without exponent
        offset = n - abs(k)
        if offset <= 0:
            return (sign + "0." + "0" * (-offset) + digits).encode()
        return (sign + digits[:offset] + "." + digits[offset:]).encode()
    n = min(n, 18 - int(neg))
    out = digits[0] + ("." + digits[1:n] if n > 1 else "")
    exp_sign = "-" if k + n - 1 < 0 else "+"
    return f"{sign}{out}e{exp_sign}{e}".encode()
