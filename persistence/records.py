"""The neutral typed record of one key, shared by every reader, writer and the engine.

A :class:`KeyRecord` is what an RDB reader yields, what the RDB writer and the AOF encoder
consume, and what the engine converts its keyspace to and from. Values are plain Python data:
``bytes`` everywhere, floats for sorted-set scores, absolute Unix milliseconds for expiries.

Besides key records an RDB carries metadata; the reader yields those as the small event classes
below (:class:`AuxField`, :class:`FunctionLibrary`, :class:`SlotInfo`, :class:`SlotImport`,
:class:`DbResize`, :class:`ModuleAux`), so one stream serves loaders, converters and the inspector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

TypeName: TypeAlias = Literal["string", "list", "set", "zset", "hash", "stream"]


@dataclass(frozen=True, order=True, slots=True)
class StreamID:
    ms: int
    seq: int

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"

    @classmethod
    def parse(cls, text: bytes | str) -> StreamID:
        s = text.decode() if isinstance(text, bytes) else text
        ms, _, seq = s.partition("-")
        return cls(int(ms), int(seq or 0))

    def encode(self) -> bytes:
        return f"{self.ms}-{self.seq}".encode()


@dataclass(slots=True)
class StringValue:
    value: bytes
    type_name: TypeName = field(default="string", init=False, repr=False)


@dataclass(slots=True)
class ListValue:
    items: list[bytes]
    type_name: TypeName = field(default="list", init=False, repr=False)


@dataclass(slots=True)
class SetValue:
    members: list[bytes]
    type_name: TypeName = field(default="set", init=False, repr=False)


@dataclass(slots=True)
class ZSetValue:
    """Members with scores, in the order the source gave them (RDB ZSET_2 is high to low)."""

    items: list[tuple[bytes, float]]
    type_name: TypeName = field(default="zset", init=False, repr=False)


@dataclass(slots=True)
class HashValue:
    """Field/value pairs; ``expires`` maps volatile fields to absolute ms (Valkey 9 field TTLs)."""

    items: list[tuple[bytes, bytes]]
    expires: dict[bytes, int] = field(default_factory=dict)
    type_name: TypeName = field(default="hash", init=False, repr=False)


@dataclass(slots=True)
class StreamPending:
    """One entry of a group's PEL."""

    id: StreamID
    consumer: bytes
    delivery_time_ms: int
    delivery_count: int


@dataclass(slots=True)
class StreamConsumer:
    name: bytes
    seen_time_ms: int
    active_time_ms: int  # -1 when the source format has no active time (stream v1/v2)
    pel: list[StreamID] = field(default_factory=list)


@dataclass(slots=True)
class StreamGroup:
    name: bytes
    last_id: StreamID
    entries_read: int  # -1 = unknown (SCG_INVALID_ENTRIES_READ), as Valkey stores it
    pel: list[StreamPending] = field(default_factory=list)
    consumers: list[StreamConsumer] = field(default_factory=list)


@dataclass(slots=True)
class StreamValue:
    entries: list[tuple[StreamID, list[tuple[bytes, bytes]]]]
    length: int
    last_id: StreamID
    first_id: StreamID
    max_deleted_id: StreamID
    entries_added: int
    groups: list[StreamGroup] = field(default_factory=list)
    type_name: TypeName = field(default="stream", init=False, repr=False)


Value: TypeAlias = StringValue | ListValue | SetValue | ZSetValue | HashValue | StreamValue


@dataclass(slots=True)
class KeyRecord:
    """One key: its db, name, value, key TTL (absolute ms or None).

    ``encoding`` is a hint from the source (an RDB type such as ``listpack``), None when unknown.
    ``offset`` is the byte offset of the record in its file, when it came from one.
    """

    db: int
    key: bytes
    value: Value
    expire_at_ms: int | None = None
    encoding: str | None = None
    offset: int | None = None

    @property
    def type_name(self) -> TypeName:
        return self.value.type_name


# ---- RDB metadata events -------------------------------------------------------------------


@dataclass(slots=True)
class AuxField:
    key: bytes
    value: bytes
    offset: int | None = None


@dataclass(slots=True)
class DbResize:
    db: int
    keys: int
    expires: int
    offset: int | None = None


@dataclass(slots=True)
class FunctionLibrary:
    code: bytes
    offset: int | None = None


@dataclass(slots=True)
class SlotInfo:
    """Cluster sizing hint: AUX ``slot-info`` (Valkey) or opcode 244 (foreign)."""

    slot: int
    keys: int
    expires: int
    volatile_items: int | None = None
    offset: int | None = None


@dataclass(slots=True)
class SlotImport:
    """Opcode 243: an unfinished atomic slot import (job name and slot ranges)."""

    job_name: bytes
    ranges: list[tuple[int, int]]
    offset: int | None = None


@dataclass(slots=True)
class ModuleAux:
    """Opcode 247, kept opaque."""

    module_id: int
    when: int
    payload: bytes
    offset: int | None = None


@dataclass(slots=True)
class StringRecords:
    """A run of consecutive plain string keys of one db, in file order (a loading fast path).

    Only readers asked for it (``RdbReader(string_runs=True)``) yield these instead of one
    :class:`KeyRecord` per key. ``expires`` holds ``(index into keys, absolute ms)``; ``offset`` is
    the file offset of the first record.
    """

    db: int
    keys: list[bytes]
    values: list[bytes]
    expires: list[tuple[int, int]]
    offset: int | None = None


RdbEvent: TypeAlias = (
    KeyRecord
    | AuxField
    | DbResize
    | FunctionLibrary
    | SlotInfo
    | SlotImport
    | ModuleAux
    | StringRecords
)
