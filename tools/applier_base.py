"""Shared pieces of the minimal AOF applier: errors, the in-memory value types, the keyspace and
the command table.

Each ``tools/applier_*.py`` module registers its commands in :data:`COMMANDS` with the
:func:`command` decorator: the wire name, Valkey's arity (negative = at least) and a handler
``(ks, argv) -> None``. Handlers validate everything before they mutate, so a raised
:class:`ApplyError` leaves the keyspace as it was (as Valkey does for its error replies).
Loading semantics (spec 1.1, 4.7): nothing is expired while applying and a past TTL is stored.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

ErrorKind: TypeAlias = Literal["unknown", "arity", "unsupported", "runtime"]


class ApplyError(Exception):
    """A command the applier refuses, with Valkey's error text when it has one.

    ``kind``: ``unknown`` / ``arity`` make a real valkey-server abort the AOF load
    (``src/aof.c`` loadSingleAppendOnlyFile); ``runtime`` errors (WRONGTYPE, syntax, ...) are
    replies that Valkey discards while loading, so a caller may log them and go on; the command
    changed nothing. ``unsupported`` is a real Valkey command this minimal applier cannot run.
    """

    def __init__(self, message: str, kind: ErrorKind = "runtime") -> None:
        super().__init__(message)
        self.message = message
        self.kind: ErrorKind = kind


WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
SYNTAX = "ERR syntax error"
NOT_INT = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
NO_KEY = "ERR no such key"

SID: TypeAlias = tuple[int, int]  # stream ID (ms, seq), ordered like Valkey's streamCompareID


# ---- value types ---------------------------------------------------------------------------


class ListObj(list[bytes]):
    pass


class SetObj(dict[bytes, None]):
    """Members in insertion order (values unused)."""


class ZSetObj(dict[bytes, float]):
    pass


@dataclass
class HashObj:
    fields: dict[bytes, bytes] = field(default_factory=dict)
    expires: dict[bytes, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.fields)


@dataclass
class Nack:
    consumer: bytes
    delivery_time: int
    delivery_count: int


@dataclass
class Consumer:
    seen_time: int
    active_time: int
    pel: dict[SID, None] = field(default_factory=dict)


@dataclass
class Group:
    last_id: SID
    entries_read: int
    pel: dict[SID, Nack] = field(default_factory=dict)
    consumers: dict[bytes, Consumer] = field(default_factory=dict)


@dataclass
class StreamObj:
    """Entries keyed by ID in increasing order (appends are always at the top)."""

    entries: dict[SID, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    last_id: SID = (0, 0)
    first_id: SID = (0, 0)
    max_deleted_id: SID = (0, 0)
    entries_added: int = 0
    groups: dict[bytes, Group] = field(default_factory=dict)


Obj: TypeAlias = bytes | ListObj | SetObj | ZSetObj | HashObj | StreamObj


# ---- keyspace ------------------------------------------------------------------------------


class Keyspace:
    """Numbered databases of key -> value, plus key TTLs (absolute ms) and the current db."""

    def __init__(self, now_ms: int | None, databases: int) -> None:
        self.data: dict[int, dict[bytes, Obj]] = {}
        self.ttl: dict[int, dict[bytes, int]] = {}
        self.db = 0
        self.databases = databases
        self._now_ms = now_ms
        self.recent_ms = 0

    def now(self) -> int:
        """The command time: the fixed clock if given, else the wall clock (as Valkey uses)."""
        return self._now_ms if self._now_ms is not None else int(time.time() * 1000)

    def stamp(self, ms: int) -> None:
        """Note an absolute time the AOF carries (XCLAIM TIME, an XADD ID's ms part)."""
        self.recent_ms = max(self.recent_ms, ms)

    def info_time(self) -> int:
        """The time for informational fields (consumer seen/active times), which Valkey sets to
        its load time: the fixed clock if given, else the latest time the AOF carried, so that
        replaying the same files twice gives the same records."""
        return self._now_ms if self._now_ms is not None else self.recent_ms

    def kv(self, db: int | None = None) -> dict[bytes, Obj]:
        d = self.db if db is None else db
        if d not in self.data:
            self.data[d] = {}
            self.ttl[d] = {}
        return self.data[d]

    def ttls(self, db: int | None = None) -> dict[bytes, int]:
        self.kv(db)
        return self.ttl[self.db if db is None else db]

    def get(self, key: bytes, cls: type, db: int | None = None) -> Obj | None:
        """The value at ``key`` if any; WRONGTYPE when it is not an instance of ``cls``."""
        obj = self.kv(db).get(key)
        if obj is not None and not isinstance(obj, cls):
            raise ApplyError(WRONGTYPE)
        return obj

    def put(self, key: bytes, obj: Obj, *, keep_ttl: bool = False, db: int | None = None) -> None:
        """Valkey's setKey: replace the value; the TTL goes unless ``keep_ttl``."""
        self.kv(db)[key] = obj
        if not keep_ttl:
            self.ttls(db).pop(key, None)

    def delete(self, key: bytes, db: int | None = None) -> bool:
        self.ttls(db).pop(key, None)
        return self.kv(db).pop(key, None) is not None

    def drop_if_empty(self, key: bytes, obj: Obj, db: int | None = None) -> None:
        """Containers never stay empty (Valkey deletes the key when the last item goes)."""
        if not isinstance(obj, bytes | StreamObj) and len(obj) == 0:
            self.delete(key, db)


def expire_flags(opts: list[bytes]) -> set[str]:
    """parseExtendedExpireArgumentsOrReply (src/expire.c)."""
    flags: set[str] = set()
    for o in opts:
        u = upper(o)
        if u not in ("NX", "XX", "GT", "LT"):
            raise ApplyError(f"ERR Unsupported option {o.decode('latin-1')}")
        flags.add(u)
    if "NX" in flags and flags & {"XX", "GT", "LT"}:
        raise ApplyError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if {"GT", "LT"} <= flags:
        raise ApplyError("ERR GT and LT options at the same time are not compatible")
    return flags


def expire_condition(flags: set[str], cur: int, when: int) -> bool:
    """NX/XX/GT/LT against the current expiry ``cur`` (-1 = none, an infinite TTL)."""
    if "NX" in flags and cur != -1:
        return False
    if "XX" in flags and cur == -1:
        return False
    if "GT" in flags and (cur == -1 or when <= cur):
        return False
    return not ("LT" in flags and cur != -1 and when >= cur)


# ---- command table -------------------------------------------------------------------------

Handler: TypeAlias = Callable[[Keyspace, list[bytes]], None]


@dataclass(frozen=True)
class Command:
    name: str
    arity: int
    handler: Handler


COMMANDS: dict[str, Command] = {}


def command(name: str, arity: int) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = Command(name, arity, fn)
        return fn

    return register


def check_arity(name: str, arity: int, argc: int) -> None:
    if (arity > 0 and argc != arity) or argc < -arity:
        raise ApplyError(f"ERR wrong number of arguments for '{name.lower()}' command", "arity")


# ---- argument parsing (Valkey's util.c string2ll / string2ld rules) ------------------------

_INT_RE = re.compile(rb"0|-?[1-9][0-9]*")
_FLOAT_RE = re.compile(rb"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)")
_INF_RE = re.compile(rb"[+-]?(inf|infinity)", re.IGNORECASE)
LLONG_MIN, LLONG_MAX = -(2**63), 2**63 - 1


def parse_int(b: bytes, msg: str = NOT_INT) -> int:
    """string2ll: optional '-', no '+', no leading zeros or spaces, fits in a signed 64 bit."""
    if not _INT_RE.fullmatch(b):
        raise ApplyError(msg)
    v = int(b)
    if not LLONG_MIN <= v <= LLONG_MAX:
        raise ApplyError(msg)
    return v


def parse_float(b: bytes, msg: str = NOT_FLOAT) -> float:
    """strtod as Valkey's getDoubleFromObject uses it: no spaces, NaN refused, inf accepted."""
    if _INF_RE.fullmatch(b):
        return -math.inf if b.startswith(b"-") else math.inf
    if not _FLOAT_RE.fullmatch(b):
        raise ApplyError(msg)
    return float(b)


def format_double(v: float) -> bytes:
    """Human form of a double as Valkey prints INCRBYFLOAT results (no exponent, no trailing 0)."""
    if math.isinf(v):
        return b"inf" if v > 0 else b"-inf"
    r = repr(v)
    if "e" in r or "E" in r:
        r = f"{v:.17f}".rstrip("0").rstrip(".")
    elif r.endswith(".0"):
        r = r[:-2]
    return r.encode()


def upper(b: bytes) -> str:
    return b.decode("latin-1").upper()
