"""Sans-IO RESP2/RESP3 codec: request parser (server side), reply parser (client side),
typed frames and the reply encoder. No sockets here: bytes in, commands/frames/bytes out."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from persistence.resp.parser import PROTO_INLINE_MAX_SIZE, PROTO_MAX_BULK_LEN, RequestParser
    from persistence.resp.reply import encode, format_double
    from persistence.resp.reply_parser import NEED_MORE, ReplyParser
    from persistence.resp.tokens import ProtocolError, split_args, string2ll

# the submodule of each name: loaded on first use (PEP 562), so importing one submodule (the
# manifest parser needs only ``split_args``) does not import the whole codec
_HOME = {
    **dict.fromkeys(
        ("Array", "Attribute", "BigNumber", "Boolean", "Bulk", "Double", "Error", "Frame",
         "Integer", "Map", "Null", "Push", "Set", "SimpleString", "Verbatim"),
        "frames",
    ),
    **dict.fromkeys(("PROTO_INLINE_MAX_SIZE", "PROTO_MAX_BULK_LEN", "RequestParser"), "parser"),
    **dict.fromkeys(("ProtocolError", "split_args", "string2ll"), "tokens"),
    **dict.fromkeys(("encode", "format_double"), "reply"),
    **dict.fromkeys(("NEED_MORE", "ReplyParser"), "reply_parser"),
}  # fmt: skip


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'persistence.resp' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"persistence.resp.{home}"), name)
    globals()[name] = value
    return value


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
