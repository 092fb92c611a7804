"""Shared parsing and reply helpers of the stream commands (src/t_stream.c)."""

from __future__ import annotations

from typing import Any

from engine.context import Ctx
from engine.errors import STREAM_ID_INVALID, CommandError
from engine.types.streams import MAX_ID, MIN_ID, U64, Id, Stream, id_bytes
from persistence.resp.frames import SimpleString
from persistence.resp.tokens import string2ll

_SPACES = b" \t\n\v\f\r"


def strtoull(s: bytes) -> int | None:
    """src/util.c string2ull: string2ll (negatives refused), else strtoull's rules."""
    v = string2ll(s) if len(s) <= 20 else None
    if v is not None:
        return v if v >= 0 else None
    t = s.lstrip(_SPACES)
    neg = False
    if t[:1] in (b"+", b"-"):
        neg = t[:1] == b"-"
        t = t[1:]
    if not t or not t.isdigit() or not s:
        return None
    n = int(t)
    if n > U64:
        return None  # ERANGE
    return (-n) & U64 if neg else n


def parse_id(arg: bytes, missing_seq: int = 0, strict: bool = False) -> Id:
    """streamGenericParseIDOrReply: ``ms-seq``, ``ms`` (seq = ``missing_seq``), ``-``/``+``
    unless ``strict``."""
    sid = _parse(arg, missing_seq, strict, False)
    if sid is None:
        raise CommandError(STREAM_ID_INVALID)
    return sid[0]


def try_parse_id(arg: bytes) -> Id | None:
    """Strict parse without an error (XCLAIM's ID list ends at the first non-ID)."""
    sid = _parse(arg, 0, True, False)
    return None if sid is None else sid[0]


def parse_xadd_id(arg: bytes) -> tuple[Id, bool]:
    """XADD's ID: strict, ``ms-*`` allowed; returns (id, seq_given)."""
    sid = _parse(arg, 0, True, True)
    if sid is None:
        raise CommandError(STREAM_ID_INVALID)
    return sid


def _parse(arg: bytes, missing_seq: int, strict: bool, star: bool) -> tuple[Id, bool] | None:
    if len(arg) > 127:
        return None
    if arg == b"-" or arg == b"+":
        if strict:
            return None
        return (MIN_ID if arg == b"-" else MAX_ID), True
    ms_part, dash, seq_part = arg.partition(b"-")
    ms = strtoull(ms_part)
    if ms is None:
        return None
    if not dash:
        return (ms, missing_seq), True
    if star and seq_part == b"*":
        return (ms, 0), False
    seq = strtoull(seq_part)
    if seq is None:
        return None
    return (ms, seq), True


def parse_interval(arg: bytes, missing_seq: int) -> tuple[Id, bool]:
    """streamParseIntervalIDOrReply: a ``(`` prefix makes the bound exclusive (and strict)."""
    if len(arg) > 1 and arg[0] == 0x28:  # "("
        return parse_id(arg[1:], missing_seq, strict=True), True
    return parse_id(arg, missing_seq), False


def incr_id(sid: Id) -> Id | None:
    """streamIncrID; None when ``sid`` is the last possible ID."""
    ms, seq = sid
    if seq == U64:
        if ms == U64:
            return None
        return (ms + 1, 0)
    return (ms, seq + 1)


def decr_id(sid: Id) -> Id | None:
    """streamDecrID; None when ``sid`` is 0-0."""
    ms, seq = sid
    if seq == 0:
        if ms == 0:
            return None
        return (ms - 1, U64)
    return (ms, seq - 1)


def lookup_stream(ctx: Ctx, key: bytes) -> Stream | None:
    s: Stream | None = ctx.db.lookup_as(ctx, key, Stream)
    return s


def entry_reply(s: Stream, sid: Id) -> list[Any]:
    """An entry as ``[id, [field, value, ...]]``."""
    return [id_bytes(sid), list(s.entries[sid])]


def help_reply(cmd: bytes, lines: list[str]) -> list[Any]:
    """addReplyHelp (src/networking.c): status lines, HELP appended."""
    head = f"{cmd.decode().upper()} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    out = [head, *lines, "HELP", "    Print this help."]
    return [SimpleString(x.encode()) for x in out]


def node_limits(ctx: Ctx) -> tuple[int, int]:
    cfg = ctx.engine.config
    return int(cfg["stream-node-max-bytes"]), int(cfg["stream-node-max-entries"])
