"""Sans-IO RESP2/RESP3 codec: request parser (server side), reply parser (client side),
typed frames and the reply encoder. No sockets here: bytes in, commands/frames/bytes out."""

from __future__ import annotations

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
from persistence.resp.parser import (
    PROTO_INLINE_MAX_SIZE,
    PROTO_MAX_BULK_LEN,
    ProtocolError,
    RequestParser,
    split_args,
    string2ll,
)
from persistence.resp.reply import encode, format_double
from persistence.resp.reply_parser import NEED_MORE, ReplyParser

__all__ = [
    "NEED_MORE",
    "PROTO_INLINE_MAX_SIZE",
    "PROTO_MAX_BULK_LEN",
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
    "ProtocolError",
    "Push",
    "ReplyParser",
    "RequestParser",
    "Set",
    "SimpleString",
    "Verbatim",
    "encode",
    "format_double",
    "split_args",
    "string2ll",
]
