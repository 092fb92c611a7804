"""XINFO STREAM [FULL [COUNT n]] / GROUPS / CONSUMERS / HELP (src/t_stream.c xinfoCommand)."""

from __future__ import annotations

from typing import Any

from engine.commands.streams_args import entry_reply, help_reply, lookup_stream
from engine.commands.table import command, container
from engine.commands.util import int_arg
from engine.context import Ctx
from engine.errors import NO_SUCH_KEY, CommandError, nogroup_for_key, subcommand_syntax
from engine.types.streams import INVALID_ENTRIES_READ, MAX_ID, MIN_ID, Stream, id_bytes

container("xinfo", acl="@slow")

_XINFO_HELP = [
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
]


@command("xinfo|help", 2, "loading stale", acl="@stream @slow")
def xinfo_help(ctx: Ctx, argv: list[bytes]) -> Any:
    return help_reply(argv[0], _XINFO_HELP)


def _stream(ctx: Ctx, key: bytes) -> Stream:
    s = lookup_stream(ctx, key)
    if s is None:
        raise CommandError(NO_SUCH_KEY)
    return s


def _entries_read(v: int) -> int | None:
    return None if v == INVALID_ENTRIES_READ else v


@command("xinfo|stream", -3, "readonly", 2, 2, 1, acl="@read @stream @slow")
def xinfo_stream(ctx: Ctx, argv: list[bytes]) -> Any:
    s = _stream(ctx, argv[2])
    opts = argv[3:]
    full = bool(opts)
    count = 10
    if opts:
        if len(opts) not in (1, 3) or opts[0].lower() != b"full":
            raise subcommand_syntax(argv[1], argv[0])
        if len(opts) == 3:
            if opts[1].lower() != b"count":
                raise subcommand_syntax(argv[1], argv[0])
            count = int_arg(opts[2])
            if count < 0:
                count = 10
    out: dict[bytes, Any] = {
        b"length": len(s.ids),
        b"radix-tree-keys": len(s.nodes),
        b"radix-tree-nodes": s.rax_nodes(),
        b"last-generated-id": id_bytes(s.last_id),
        b"max-deleted-entry-id": id_bytes(s.max_deleted_id),
        b"entries-added": s.entries_added,
        b"recorded-first-entry-id": id_bytes(s.first_id),
    }
    if not full:
        out[b"groups"] = len(s.groups)
        out[b"first-entry"] = entry_reply(s, s.ids[0]) if s.ids else None
        out[b"last-entry"] = entry_reply(s, s.ids[-1]) if s.ids else None
        return out
    out[b"entries"] = [entry_reply(s, i) for i in s.range(MIN_ID, MAX_ID, count)]
    groups = []
    for name in sorted(s.groups):
        g = s.groups[name]
        pending: list[Any] = []
        for sid, nack in g.pel.items():
            if count and len(pending) >= count:
                break
            assert nack.consumer is not None
            pending.append([id_bytes(sid), nack.consumer.name, nack.delivery_time,
                            nack.delivery_count])  # fmt: skip
        consumers = []
        for c in g.sorted_consumers():
            cpel: list[Any] = []
            for sid, nack in c.pel.items():
                if count and len(cpel) >= count:
                    break
                cpel.append([id_bytes(sid), nack.delivery_time, nack.delivery_count])
            consumers.append({
                b"name": c.name, b"seen-time": c.seen_time, b"active-time": c.active_time,
                b"pel-count": len(c.pel), b"pending": cpel,
            })  # fmt: skip
        groups.append({
            b"name": name, b"last-delivered-id": id_bytes(g.last_id),
            b"entries-read": _entries_read(g.entries_read), b"lag": s.lag(g),
            b"pel-count": len(g.pel), b"pending": pending, b"consumers": consumers,
        })  # fmt: skip
    out[b"groups"] = groups
    return out


@command("xinfo|groups", 3, "readonly", 2, 2, 1, acl="@read @stream @slow")
def xinfo_groups(ctx: Ctx, argv: list[bytes]) -> Any:
    s = _stream(ctx, argv[2])
    out = []
    for name in sorted(s.groups):
        g = s.groups[name]
        out.append({
            b"name": name, b"consumers": len(g.consumers), b"pending": len(g.pel),
            b"last-delivered-id": id_bytes(g.last_id),
            b"entries-read": _entries_read(g.entries_read), b"lag": s.lag(g),
        })  # fmt: skip
    return out


@command("xinfo|consumers", 4, "readonly", 2, 2, 1, acl="@read @stream @slow")
def xinfo_consumers(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[2]
    s = _stream(ctx, key)
    g = s.groups.get(argv[3])
    if g is None:
        raise nogroup_for_key(argv[3], key)
    now = ctx.now_ms
    out = []
    for c in g.sorted_consumers():
        inactive = now - c.active_time if c.active_time != -1 else -1
        out.append({
            b"name": c.name, b"pending": len(c.pel), b"idle": max(now - c.seen_time, 0),
            b"inactive": inactive,
        })  # fmt: skip
    return out
