"""The registry of in-memory value types.

Each data type module (``engine/types/<type>.py``) defines its value class and registers a
:class:`TypeInfo`: its TYPE name, how to convert to and from the neutral records of
``persistence.records`` (RDB/AOF rewrite/slot migration), and its OBJECT ENCODING. The keyspace
and the generic key commands (TYPE, OBJECT, DUMP, COPY, SCAN TYPE) only go through this registry.
Strings are plain ``bytes``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from persistence.records import Value


@dataclass(frozen=True, slots=True)
class TypeInfo:
    name: str  # TYPE reply: string list set zset hash stream
    cls: type
    to_record: Callable[[Any], Value]
    from_record: Callable[[Value], Any]
    encoding: Callable[[Any], str]
    copy: Callable[[Any], Any]  # deep copy for COPY


BY_CLASS: dict[type, TypeInfo] = {}
BY_NAME: dict[str, TypeInfo] = {}


def register(info: TypeInfo) -> None:
    BY_CLASS[info.cls] = info
    BY_NAME[info.name] = info


def type_info(value: Any) -> TypeInfo:
    return BY_CLASS[type(value)]


def type_name(value: Any) -> str:
    return BY_CLASS[type(value)].name
