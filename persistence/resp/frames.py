"""Typed RESP2/RESP3 frames, shared by the reply parser and the reply encoder.

A frame says exactly which RESP type it is: ``SimpleString(b"OK")`` (``+OK``) and
``Bulk(b"OK")`` (``$2 OK``) are different replies. Null bulk and null array stay distinct
(``Bulk(None)`` -> ``$-1``, ``Array(None)`` -> ``*-1``) because RESP2 distinguishes them; the
RESP3 null is ``Null()`` (``_``). Payloads are bytes throughout.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class SimpleString:
    """``+<value>\\r\\n``."""

    value: bytes


@dataclass(slots=True, frozen=True)
class Error:
    """``-<message>\\r\\n`` (or RESP3 blob error ``!``). The message includes the code:
    ``b"ERR unknown command"``, ``b"WRONGTYPE Operation against ..."``."""

    message: bytes


@dataclass(slots=True, frozen=True)
class Integer:
    """``:<value>\\r\\n`` (a signed 64-bit integer in Valkey)."""

    value: int


@dataclass(slots=True, frozen=True)
class Bulk:
    """``$<len>\\r\\n<value>\\r\\n``; ``None`` is the RESP2 null bulk ``$-1``."""

    value: bytes | None


@dataclass(slots=True, frozen=True)
class Null:
    """RESP3 null ``_\\r\\n`` (RESP2: ``$-1``)."""


@dataclass(slots=True, frozen=True)
class Array:
    """``*<n>`` followed by n frames; ``None`` is the RESP2 null array ``*-1``."""

    items: list[Frame] | None


@dataclass(slots=True, frozen=True)
class Map:
    """RESP3 ``%<n>`` with n key/value pairs (RESP2: flat array of 2n)."""

    pairs: list[tuple[Frame, Frame]]


@dataclass(slots=True, frozen=True)
class Set:
    """RESP3 ``~<n>`` (RESP2: array)."""

    items: list[Frame]


@dataclass(slots=True, frozen=True)
class Double:
    """RESP3 ``,<d>`` (RESP2: bulk string of the same text)."""

    value: float


@dataclass(slots=True, frozen=True)
class Boolean:
    """RESP3 ``#t`` / ``#f`` (RESP2: ``:1`` / ``:0``)."""

    value: bool


@dataclass(slots=True, frozen=True)
class BigNumber:
    """RESP3 ``(<digits>`` (RESP2: bulk string of the digits)."""

    value: int


@dataclass(slots=True, frozen=True)
class Verbatim:
    """RESP3 ``=<len>\\r\\n<fmt>:<data>`` with a 3-byte format such as ``b"txt"``
    (RESP2: bulk string of ``data``)."""

    format: bytes
    data: bytes


@dataclass(slots=True, frozen=True)
class Push:
    """RESP3 out-of-band ``><n>`` (RESP2: array, as Valkey sends pub/sub messages)."""

    items: list[Frame]


@dataclass(slots=True, frozen=True)
class Attribute:
    """RESP3 ``|<n>`` attribute map that precedes a reply (dropped in RESP2).

    The reply parser returns a top-level attribute as its own frame, followed by the reply it
    annotates; inside an aggregate it is kept as an extra item that is not counted.
    """

    pairs: list[tuple[Frame, Frame]]


Frame = (
    SimpleString
    | Error
    | Integer
    | Bulk
    | Null
    | Array
    | Map
    | Set
    | Double
    | Boolean
    | BigNumber
    | Verbatim
    | Push
    | Attribute
)

__all__ = [
    "Array",
    "Attribute",
    "BigNumber",
    "Boolean",
    "Bulk",
    "Double",
    "Error",
    "Frame",
    "Integer",
    "Map",
    "Null",
    "Push",
    "Set",
    "SimpleString",
    "Verbatim",
]
