"""The reply encoder: frames (or fast helpers) -> RESP2/RESP3 bytes.

How this works: every reply is built either from a typed frame with :func:`encode`, or with
one of the cheap helpers (:func:`ok`, :func:`bulk`, :func:`integer`, ...) on the hot path.
The RESP3 -> RESP2 downgrade lives in one place, :func:`_encode_into`, and follows Valkey's
``addReply*`` functions (src/networking.c): Map -> flat array, Set/Push -> array,
Double -> bulk, Boolean -> ``:1``/``:0``, Null -> ``$-1``, BigNumber/Verbatim -> bulk,
Attribute -> nothing. Doubles are formatted exactly like Valkey's ``d2string``
(src/util.c), which uses ``fpconv_dtoa`` (deps/fpconv, Grisu2) — see :func:`format_double`.

This module does not encode *commands*; the one command encoder is persistence/aof/encoder.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from persistence.format import d2string as format_double
from persistence.resp.frames import (
    Array,
    Attribute,
    BigNumber,
    Boolean,
    Bulk,
    Double,
    Error,
    Frame,
    Integer,
    Map,
    Null,
    Push,
    Set,
    SimpleString,
    Verbatim,
)

CRLF = b"\r\n"
OK = b"+OK\r\n"
PONG = b"+PONG\r\n"
QUEUED = b"+QUEUED\r\n"
NULL_BULK = b"$-1\r\n"
NULL_ARRAY = b"*-1\r\n"
NULL3 = b"_\r\n"
EMPTY_ARRAY = b"*0\r\n"
EMPTY_BULK = b"$0\r\n\r\n"

# Shared small headers, like Valkey's shared.mbulkhdr/bulkhdr/integers (src/server.c).
_SMALL = 10000
_INTS = [b":%d\r\n" % i for i in range(_SMALL)]
_BULK_HDR = [b"$%d\r\n" % i for i in range(_SMALL)]
_ARRAY_HDR = [b"*%d\r\n" % i for i in range(_SMALL)]


# --------------------------------------------------------------------------------------------
# Fast helpers (hot path)
# --------------------------------------------------------------------------------------------


def ok() -> bytes:
    return OK


def simple(s: bytes | str) -> bytes:
    """``+s``; CR/LF are replaced by spaces so the reply stays one line."""
    if isinstance(s, str):
        s = s.encode()
    if b"\r" in s or b"\n" in s:
        s = s.replace(b"\r", b" ").replace(b"\n", b" ")
    return b"+" + s + CRLF


def error(message: bytes | str) -> bytes:
    """``-message`` with the code included (``"ERR ..."``, ``"WRONGTYPE ..."``).

    Like addReplyErrorFormat (src/networking.c), CR/LF inside the message become spaces.
    """
    if isinstance(message, str):
        message = message.encode()
    if b"\r" in message or b"\n" in message:
        message = message.replace(b"\r", b" ").replace(b"\n", b" ")
    return b"-" + message + CRLF


def integer(n: int) -> bytes:
    if 0 <= n < _SMALL:
        return _INTS[n]
    return _INT_FMT % n


def integers(ns: Iterable[int]) -> list[bytes]:
    """:func:`integer` of each, without a call per number (LPUSH runs' list lengths)."""
    return list(map(_INT_FMT.__mod__, ns))


_INT_FMT = b":%d\r\n"  # (integer's and integers')


def bulk(b: bytes) -> bytes:
    n = len(b)
    if n < _SMALL:
        return _BULK_HDR[n] + b + CRLF
    return b"$%d\r\n%b\r\n" % (n, b)


def bulks(values: list[bytes | None], resp: int = 2) -> list[bytes]:
    """:func:`bulk` of each value (:func:`null` for None), one reply each (GET runs). A
    comprehension of concatenations: faster than ``b"".join`` of (header, value, CRLF) tuples
    mapped in C, with or without Nones among the values."""
    missing = null(resp)
    hdr = _BULK_HDR
    try:
        return [missing if v is None else hdr[len(v)] + v + CRLF for v in values]
    except IndexError:  # a value of _SMALL bytes or more
        return [missing if v is None else bulk(v) for v in values]


def null(resp: int = 2) -> bytes:
    """addReplyNull: ``$-1`` in RESP2, ``_`` in RESP3."""
    return NULL_BULK if resp == 2 else NULL3


def null_array(resp: int = 2) -> bytes:
    """addReplyNullArray: ``*-1`` in RESP2, ``_`` in RESP3."""
    return NULL_ARRAY if resp == 2 else NULL3


def array_header(n: int) -> bytes:
    return _ARRAY_HDR[n] if 0 <= n < _SMALL else b"*%d\r\n" % n


def map_header(n: int, resp: int = 2) -> bytes:
    """addReplyMapLen: ``%n`` in RESP3, ``*2n`` in RESP2."""
    return array_header(2 * n) if resp == 2 else b"%%%d\r\n" % n


def set_header(n: int, resp: int = 2) -> bytes:
    return array_header(n) if resp == 2 else b"~%d\r\n" % n


def push_header(n: int, resp: int = 2) -> bytes:
    return array_header(n) if resp == 2 else b">%d\r\n" % n


def array_of_bulks(items: Sequence[bytes | None], resp: int = 2) -> bytes:
    """An array of bulk strings; ``None`` items become nulls (``$-1`` / ``_``)."""
    nul = NULL_BULK if resp == 2 else NULL3
    parts = [array_header(len(items))]
    append = parts.append
    for b in items:
        if b is None:
            append(nul)
        else:
            n = len(b)
            append(_BULK_HDR[n] if n < _SMALL else b"$%d\r\n" % n)
            append(b)
            append(CRLF)
    return b"".join(parts)


def double(x: float, resp: int = 2) -> bytes:
    """addReplyDouble: ``,d`` in RESP3, a bulk string of the same text in RESP2."""
    text = format_double(x)
    return bulk(text) if resp == 2 else b"," + text + CRLF


def boolean(b: bool, resp: int = 2) -> bytes:
    """addReplyBool: ``#t``/``#f`` in RESP3, ``:1``/``:0`` in RESP2."""
    if resp == 2:
        return _INTS[1] if b else _INTS[0]
    return b"#t\r\n" if b else b"#f\r\n"


def verbatim(data: bytes, fmt: bytes = b"txt", resp: int = 2) -> bytes:
    """addReplyVerbatim: ``=len\\r\\nfmt:data`` in RESP3 (format padded to 3), bulk in RESP2."""
    if resp == 2:
        return bulk(data)
    fmt = (fmt + b"   ")[:3]
    return b"=%d\r\n%b:%b\r\n" % (len(data) + 4, fmt, data)


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------


def encode(frame: Frame, resp: int = 2) -> bytes:
    """Encode one frame for a RESP2 (``resp=2``) or RESP3 (``resp=3``) client."""
    if resp not in (2, 3):
        raise ValueError(f"resp must be 2 or 3, not {resp!r}")
    out = bytearray()
    _encode_into(out, frame, resp)
    return bytes(out)


def _counted(items: Iterable[Frame]) -> int:
    return sum(1 for f in items if not isinstance(f, Attribute))


def _encode_into(out: bytearray, frame: Frame, resp: int) -> None:
    """The one place where frame types are written, and RESP3 downgraded to RESP2."""
    if isinstance(frame, Bulk):
        if frame.value is None:
            out += NULL_BULK if resp == 2 else NULL3
        else:
            out += bulk(frame.value)
    elif isinstance(frame, SimpleString):
        out += simple(frame.value)
    elif isinstance(frame, Integer):
        out += integer(frame.value)
    elif isinstance(frame, Error):
        out += error(frame.message)
    elif isinstance(frame, Array | Set | Push):
        items = frame.items
        if items is None:  # only Array can be null
            out += NULL_ARRAY if resp == 2 else NULL3
            return
        n = _counted(items)
        if isinstance(frame, Array):
            out += array_header(n)
        elif isinstance(frame, Set):
            out += set_header(n, resp)
        else:
            out += push_header(n, resp)
        for item in items:
            _encode_into(out, item, resp)
    elif isinstance(frame, Map):
        out += map_header(len(frame.pairs), resp)
        for key, value in frame.pairs:
            _encode_into(out, key, resp)
            _encode_into(out, value, resp)
    elif isinstance(frame, Null):
        out += NULL_BULK if resp == 2 else NULL3
    elif isinstance(frame, Double):
        out += double(frame.value, resp)
    elif isinstance(frame, Boolean):
        out += boolean(frame.value, resp)
    elif isinstance(frame, BigNumber):
        digits = b"%d" % frame.value
        out += bulk(digits) if resp == 2 else b"(" + digits + CRLF
    elif isinstance(frame, Verbatim):
        out += verbatim(frame.data, frame.format, resp)
    elif isinstance(frame, Attribute):
        if resp == 3:  # RESP2 has no attributes: dropped (Valkey asserts resp >= 3)
            out += b"|%d\r\n" % len(frame.pairs)
            for key, value in frame.pairs:
                _encode_into(out, key, resp)
                _encode_into(out, value, resp)
    else:  # pragma: no cover - exhaustive over Frame
        raise TypeError(f"not a RESP frame: {frame!r}")


# --------------------------------------------------------------------------------------------
# Plain Python values (what engine command handlers return)
# --------------------------------------------------------------------------------------------


def encode_value(value: object, resp: int = 2) -> bytes:
    """Encode a handler's reply: ``bytes`` -> bulk, ``int`` -> integer, ``None`` -> null,
    ``list``/``tuple`` -> array, ``float`` -> double, ``bool`` -> boolean, ``dict`` -> map, and
    any :mod:`frames` object as itself (``SimpleString(b"OK")`` for ``+OK``, ``Error``, ``Set``,
    ``Array(None)`` for a null array, ``Verbatim``...). The common shapes are tried first."""
    if type(value) is bytes:
        return bulk(value)
    if type(value) is int:
        return integer(value)
    if value is None:
        return NULL_BULK if resp == 2 else NULL3
    if type(value) is SimpleString:
        return _SIMPLE.get(value.value) or simple(value.value)
    if type(value) is list:
        flat = _bulks(value, resp)
        if flat is not None:
            return flat
    out = bytearray()
    _value_into(out, value, resp)
    return bytes(out)


# the status replies handlers return most, prebuilt (Valkey's shared.ok, shared.queued ...)
_SIMPLE = {b"OK": OK, b"PONG": PONG, b"QUEUED": QUEUED}
_NUL_ITEM = {2: b"$-1", 3: b"_"}


def _bulks(items: list[Any], resp: int) -> bytes | None:
    """An array of bulk strings and nulls (LRANGE, MGET, HGETALL ...) in one join; None when
    ``items`` holds anything else (the comprehension fails on the first other item)."""
    if not items:
        return EMPTY_ARRAY
    hdr = _BULK_HDR
    nul = _NUL_ITEM[resp]
    try:
        parts = [hdr[len(b)] + b if b is not None else nul for b in items]
        body = CRLF.join(parts)
    except (TypeError, IndexError):  # not bytes (len() or + fails), or a long bulk
        return None
    n = len(items)
    return (_ARRAY_HDR[n] if n < _SMALL else b"*%d\r\n" % n) + body + CRLF


def _value_into(out: bytearray, value: object, resp: int) -> None:
    if type(value) is bytes:
        n = len(value)
        out += _BULK_HDR[n] if n < _SMALL else b"$%d\r\n" % n
        out += value
        out += CRLF
    elif type(value) is int:
        out += integer(value)
    elif value is None:
        out += NULL_BULK if resp == 2 else NULL3
    elif type(value) is list or type(value) is tuple:
        out += array_header(len(value))
        for item in value:
            if type(item) is bytes:
                n = len(item)
                out += _BULK_HDR[n] if n < _SMALL else b"$%d\r\n" % n
                out += item
                out += CRLF
            else:
                _value_into(out, item, resp)
    elif type(value) is bool:
        out += boolean(value, resp)
    elif type(value) is float:
        out += double(value, resp)
    elif type(value) is dict:
        out += map_header(len(value), resp)
        for k, v in value.items():
            _value_into(out, k, resp)
            _value_into(out, v, resp)
    else:
        _encode_into(out, value, resp)  # type: ignore[arg-type]


__all__ = [
    "EMPTY_ARRAY",
    "EMPTY_BULK",
    "NULL3",
    "NULL_ARRAY",
    "NULL_BULK",
    "OK",
    "PONG",
    "QUEUED",
    "array_header",
    "array_of_bulks",
    "boolean",
    "bulk",
    "double",
    "encode",
    "encode_value",
    "error",
    "format_double",
    "integer",
    "map_header",
    "null",
    "null_array",
    "push_header",
    "set_header",
    "simple",
    "verbatim",
]
