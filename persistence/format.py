"""Valkey's ways of printing a double, in one place (checked against a real valkey-server 9.1.2).

- :func:`d2string` (src/util.c): replies (ZSCORE, ZRANGE WITHSCORES, RESP2 bulk and RESP3 double),
  and sorted-set scores inside listpacks: exact integers within +-LLONG_MAX/2 print as integers
  (1e15 -> ``1000000000000000``), everything else through ``fpconv_dtoa``.
- :func:`fpconv_dtoa` (deps/fpconv/fpconv_dtoa.c, Grisu2): AOF rewrite scores (src/aof.c
  rioWriteBulkDouble) use it directly: 1e15 -> ``1e+15``, 1.5e-7 -> ``1.5e-7``,
  0.00001 -> ``0.00001``. Grisu2 is ported exactly, quirks included (it is not always the
  shortest representation, e.g. ``1.234567890123e+5``).
"""

from __future__ import annotations

import math
import struct

_M64 = (1 << 64) - 1
_FRACMASK = 0x000FFFFFFFFFFFFF
_EXPMASK = 0x7FF0000000000000
_HIDDENBIT = 0x0010000000000000
_EXPBIAS = 1023 + 52
_NPOWERS = 87
_STEPPOWERS = 8
_FIRSTPOWER = -348
_EXPMAX = -32
_EXPMIN = -60
_TENS = [10**i for i in range(19, -1, -1)]


def _cached_power(k: int) -> tuple[int, int]:
    """10**k as a normalised 64-bit (frac, exp), rounded to nearest (fpconv_powers.h)."""
    if k >= 0:
        num, den = 10**k, 1
    else:
        num, den = 1, 10**-k
    # find e with 2**63 <= num / (den * 2**e) < 2**64
    e = num.bit_length() - den.bit_length() - 64
    while True:
        if e >= 0:
            n2, d2 = num, den << e
        else:
            n2, d2 = num << -e, den
        q, r = divmod(n2, d2)
        if q >= 1 << 64:
            e += 1
        elif q < 1 << 63:
            e -= 1
        else:
            break
    if 2 * r >= d2:
        q += 1
    if q >= 1 << 64:  # rounding carried out of 64 bits
        q >>= 1
        e += 1
    return q, e


_POWERS = [_cached_power(_FIRSTPOWER + i * _STEPPOWERS) for i in range(_NPOWERS)]


def _multiply(af: int, ae: int, bf: int, be: int) -> tuple[int, int]:
    lomask = 0xFFFFFFFF
    ah_bl = (af >> 32) * (bf & lomask)
    al_bh = (af & lomask) * (bf >> 32)
    al_bl = (af & lomask) * (bf & lomask)
    ah_bh = (af >> 32) * (bf >> 32)
    tmp = (ah_bl & lomask) + (al_bh & lomask) + (al_bl >> 32)
    tmp += 1 << 31  # round up
    return (ah_bh + (ah_bl >> 32) + (al_bh >> 32) + (tmp >> 32)) & _M64, ae + be + 64


def _grisu2(bits: int) -> tuple[list[int], int]:
    """Digits (as ints) and decimal exponent K of a finite non-zero |double| (Grisu2)."""
    frac = bits & _FRACMASK
    exp = (bits & _EXPMASK) >> 52
    if exp:
        frac += _HIDDENBIT
        exp -= _EXPBIAS
    else:
        exp = -_EXPBIAS + 1
    # get_normalized_boundaries
    uf, ue = (frac << 1) + 1, exp - 1
    while not uf & (_HIDDENBIT << 1):
        uf <<= 1
        ue -= 1
    uf = (uf << 10) & _M64
    ue -= 10
    l_shift = 2 if frac == _HIDDENBIT else 1
    lf, le = (frac << l_shift) - 1, exp - l_shift
    lf = (lf << (le - ue)) & _M64
    # normalize(w)
    wf, we = frac, exp
    while not wf & _HIDDENBIT:
        wf <<= 1
        we -= 1
    wf = (wf << 11) & _M64
    we -= 11
    # find_cachedpow10(upper.exp)
    approx = int(-(ue + _NPOWERS) * 0.30102999566398114)
    idx = int((approx - _FIRSTPOWER) / _STEPPOWERS)
    while True:
        current = ue + _POWERS[idx][1] + 64
        if current < _EXPMIN:
            idx += 1
        elif current > _EXPMAX:
            idx -= 1
        else:
            break
    k = _FIRSTPOWER + idx * _STEPPOWERS
    cf, ce = _POWERS[idx]
    wf, we = _multiply(wf, we, cf, ce)
    uf, ue = _multiply(uf, ue, cf, ce)
    lf, _ = _multiply(lf, ue, cf, ce)
    lf = (lf + 1) & _M64
    uf = (uf - 1) & _M64
    big_k = -k
    # generate_digits
    wfrac = (uf - wf) & _M64
    delta = (uf - lf) & _M64
    shift = -ue
    one = 1 << shift
    part1 = uf >> shift
    part2 = uf & (one - 1)
    digits: list[int] = []
    kappa = 10
    for div in _TENS[10:]:
        digit = part1 // div
        if digit or digits:
            digits.append(digit)
        part1 -= digit * div
        kappa -= 1
        tmp = ((part1 << shift) + part2) & _M64
        if tmp <= delta:
            big_k += kappa
            _round_digit(digits, delta, tmp, (div << shift) & _M64, wfrac)
            return digits, big_k
    unit = 18
    while True:
        part2 = (part2 * 10) & _M64
        delta = (delta * 10) & _M64
        kappa -= 1
        digit = part2 >> shift
        if digit or digits:
            digits.append(digit)
        part2 &= one - 1
        if part2 < delta:
            big_k += kappa
            _round_digit(digits, delta, part2, one, (wfrac * _TENS[unit]) & _M64)
            return digits, big_k
        unit -= 1


def _round_digit(digits: list[int], delta: int, rem: int, kappa: int, frac: int) -> None:
    while (
        rem < frac
        and delta - rem >= kappa
        and (rem + kappa < frac or frac - rem > rem + kappa - frac)
    ):
        digits[-1] -= 1
        rem += kappa


def _emit_digits(digits: list[int], big_k: int, neg: bool) -> str:
    text = "".join(map(str, digits))
    ndigits = len(digits)
    exp = abs(big_k + ndigits - 1)
    if big_k >= 0 and exp < ndigits + 7:  # plain integer
        return text + "0" * big_k
    if big_k < 0 and (big_k > -7 or exp < 4):  # decimal without exponent
        offset = ndigits - abs(big_k)
        if offset <= 0:
            return "0." + "0" * -offset + text
        return text[:offset] + "." + text[offset:]
    ndigits = min(ndigits, 18 - neg)  # scientific notation
    out = text[0]
    if ndigits > 1:
        out += "." + text[1:ndigits]
    out += "e-" if big_k + ndigits - 1 < 0 else "e+"
    return out + str(exp)


def _special(x: float) -> bytes | None:
    if x != x:
        return b"nan"
    if math.isinf(x):
        return b"inf" if x > 0 else b"-inf"
    if x == 0:
        return b"-0" if math.copysign(1.0, x) < 0 else b"0"
    return None


def fpconv_dtoa(x: float) -> bytes:
    """fpconv_dtoa (deps/fpconv/fpconv_dtoa.c): Grisu2 digits laid out by emit_digits."""
    special = _special(x)
    if special is not None:
        return special
    bits = struct.unpack("<Q", struct.pack("<d", x))[0]
    neg = bool(bits >> 63)
    digits, big_k = _grisu2(bits & ~(1 << 63))
    text = _emit_digits(digits, big_k, neg)
    return ("-" + text if neg else text).encode()


_LL_HALF = 4611686018427387904.0  # LLONG_MAX / 2


def double_to_int(d: float) -> int | None:
    """double2ll (src/util.h): the exact integer value of ``d`` within +-LLONG_MAX/2, else None."""
    if d != d or d < -_LL_HALF or d > _LL_HALF:
        return None
    i = int(d)
    return i if i == d else None


def d2string(x: float) -> bytes:
    """d2string (src/util.c): what addReplyDouble sends (RESP2 and RESP3) and listpacks store.

    nan/inf/-inf spelled out; ``-0.0`` -> ``-0`` as the C function prints it (the server itself
    stores ZADD's -0 as 0); exact integers within +-LLONG_MAX/2 via ll2string; else fpconv_dtoa.
    """
    special = _special(x)
    if special is not None:
        return special
    i = double_to_int(x)
    if i is not None:
        return b"%d" % i
    return fpconv_dtoa(x)


def ld2string_human(num: int, den: int) -> bytes:
    """ld2string(LD_STR_HUMAN) (src/util.c) of the exact value ``num / den`` (den > 0): what
    INCRBYFLOAT stores and replies. ``%.17Lf`` (fixed point, glibc rounds the exact binary value
    half to even), then trailing zeros and a trailing ``.`` are removed and ``-0`` becomes ``0``.
    Checked on valkey-server 9.1.2: 1e20 -> ``100000000000000000000``, 3e-5 -> ``0.00003``,
    1e-30 -> ``0``."""
    neg = num < 0
    q, r = divmod(abs(num) * 10**17, den)
    if 2 * r > den or (2 * r == den and q & 1):
        q += 1
    ip, fp = divmod(q, 10**17)
    text = _int_text(ip) + b".%017d" % fp
    text = text.rstrip(b"0").rstrip(b".")
    if neg and text != b"0":
        return b"-" + text
    return text


def _int_text(n: int) -> bytes:
    """Decimal text of a non-negative int of any size (long doubles reach 10**4932, beyond
    Python's default int-to-str digit limit)."""
    if n < 10**4000:
        return b"%d" % n
    hi, lo = divmod(n, 10**4000)
    return _int_text(hi) + _int_text(lo).rjust(4000, b"0")
