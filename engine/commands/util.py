"""Argument parsing shared by the command modules, with Valkey's rules and error texts."""

from __future__ import annotations

import math
import re

from engine.errors import NOT_FLOAT, NOT_INTEGER, CommandError, invalid_expire
from persistence.format import d2string
from persistence.resp.frames import SimpleString
from persistence.resp.tokens import string2ll

OK = SimpleString(b"OK")
PONG = SimpleString(b"PONG")
LLONG_MAX = (1 << 63) - 1
LLONG_MIN = -(1 << 63)

# what strtod accepts as a decimal float (src/util.c string2d refuses leading spaces and nan)
_FLOAT_RE = re.compile(rb"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)\Z")
_INF = {b"inf": math.inf, b"+inf": math.inf, b"-inf": -math.inf, b"infinity": math.inf,
        b"+infinity": math.inf, b"-infinity": -math.inf}  # fmt: skip


def int_arg(b: bytes, err: str = NOT_INTEGER) -> int:
    """string2ll (src/util.c): strict 64-bit decimal."""
    v = string2ll(b)
    if v is None:
        raise CommandError(err)
    return v


def nonneg_int_arg(b: bytes, err: str = NOT_INTEGER) -> int:
    v = int_arg(b, err)
    if v < 0:
        raise CommandError(err)
    return v


def float_arg(b: bytes, err: str = NOT_FLOAT) -> float:
    """string2d / strtod as Valkey uses it: decimal or inf, no spaces, no NaN."""
    inf = _INF.get(b.lower())
    if inf is not None:
        return inf
    if not _FLOAT_RE.match(b):
        raise CommandError(err)
    v = float(b)
    if math.isnan(v):
        raise CommandError(err)
    return v


def fmt_double(x: float) -> bytes:
    return d2string(x)


def expire_arg(cmd: bytes, b: bytes, *, unit_ms: int, base_ms: int) -> int:
    """convertExpireArgumentToUnixTime (src/expire.c): absolute ms, or invalid-expire error.

    ``unit_ms`` 1000 for seconds, 1 for ms; ``base_ms`` now for relative times, 0 for absolute.
    """
    v = int_arg(b)
    ms = v * unit_ms
    if ms > LLONG_MAX or ms < LLONG_MIN:
        raise invalid_expire(cmd)
    ms += base_ms
    if ms > LLONG_MAX or ms < LLONG_MIN:
        raise invalid_expire(cmd)
    return ms


def upper(b: bytes) -> bytes:
    return b.upper()
