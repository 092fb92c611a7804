"""Strings are plain ``bytes`` in the keyspace (integers too: INCR parses and re-encodes)."""

from __future__ import annotations

from engine.types.base import TypeInfo, register
from persistence.records import StringValue, Value
from persistence.resp.parser import string2ll

EMBSTR_LIMIT = 44  # src/object.c OBJ_ENCODING_EMBSTR_SIZE_LIMIT


def encoding(value: bytes) -> str:
    """OBJECT ENCODING of a string (src/object.c tryObjectEncoding)."""
    if len(value) <= 20 and string2ll(value) is not None:
        return "int"
    return "embstr" if len(value) <= EMBSTR_LIMIT else "raw"


def _to_record(value: bytes) -> Value:
    return StringValue(value)


def _from_record(value: Value) -> bytes:
    assert isinstance(value, StringValue)
    return value.value


register(TypeInfo("string", bytes, _to_record, _from_record, encoding, lambda v: v))
