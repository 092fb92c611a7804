"""Consumer groups (src/t_stream.c): XGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM.

XCLAIM and XAUTOCLAIM propagate nothing of themselves: every claimed (or dropped, when its entry
is gone) PEL entry is propagated as the idempotent XCLAIM ... FORCE JUSTID LASTID form
(streamPropagateXCLAIM), a moved group ID as XGROUP SETID ... ENTRIESREAD.
"""

from __future__ import annotations

from typing import Any

from engine.commands.streams_args import (
    decr_id,
    entry_reply,
    help_reply,
    incr_id,
    lookup_stream,
    parse_id,
    parse_interval,
    try_parse_id,
)
from engine.commands.streams_read import create_consumer, setid_argv, xclaim_argv
from engine.commands.table import command, container
from engine.commands.util import LLONG_MAX, OK, int_arg
from engine.context import Ctx
from engine.errors import (
    BUSYGROUP,
    STREAM_END_ID,
    STREAM_START_ID,
    SYNTAX,
    XAUTOCLAIM_COUNT,
    XGROUP_ENTRIESREAD,
    XGROUP_NO_KEY,
    CommandError,
    nogroup_for_key,
    nogroup_key,
    stream_option_error,
    subcommand_syntax,
    xclaim_unrecognized,
)
from engine.types.streams import (
    INVALID_ENTRIES_READ,
    MIN_ID,
    U64,
    Group,
    Id,
    Nack,
    Stream,
    id_bytes,
)
from persistence.resp.frames import Array

container("xgroup", acl="@slow")

_XGROUP_HELP = [
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
]


@command("xgroup|help", 2, "loading stale", acl="@stream @slow")
def xgroup_help(ctx: Ctx, argv: list[bytes]) -> Any:
    return help_reply(argv[0], _XGROUP_HELP)


def _xgroup(ctx: Ctx, argv: list[bytes]) -> Any:
    """xgroupCommand: options, then key, then group, then the subcommand."""
    sub = argv[1].lower()
    n = len(argv)
    mkstream = False
    entries_read = INVALID_ENTRIES_READ
    i = 5
    while i < n:
        opt = argv[i].lower()
        if sub == b"create" and opt == b"mkstream":
            mkstream = True
            i += 1
        elif sub in (b"create", b"setid") and opt == b"entriesread" and i + 1 < n:
            entries_read = int_arg(argv[i + 1])
            if entries_read < 0 and entries_read != INVALID_ENTRIES_READ:
                raise CommandError(XGROUP_ENTRIESREAD)
            i += 2
        else:
            raise subcommand_syntax(argv[1], argv[0])
    key, gname = argv[2], argv[3]
    s = lookup_stream(ctx, key)
    g: Group | None = None
    if not mkstream:
        if s is None:
            raise CommandError(XGROUP_NO_KEY)
        g = s.groups.get(gname)
        if g is None and sub in (b"setid", b"createconsumer", b"delconsumer"):
            raise nogroup_for_key(gname, key)
    if sub == b"create":
        if n > 8:
            raise subcommand_syntax(argv[1], argv[0])
        if argv[4] == b"$":
            sid = s.last_id if s is not None else MIN_ID
        else:
            sid = parse_id(argv[4], 0, strict=True)
        if s is None:
            s = Stream()
            ctx.db.add(key, s)
            ctx.modified(key)
        if gname in s.groups:
            raise CommandError(BUSYGROUP)
        s.groups[gname] = Group(sid, entries_read)
        ctx.dirty += 1
        ctx.notify("t", b"xgroup-create", key)
        return OK
    assert s is not None
    if sub == b"setid":
        if n not in (5, 7):
            raise subcommand_syntax(argv[1], argv[0])
        assert g is not None
        sid = s.last_id if argv[4] == b"$" else parse_id(argv[4], 0)
        g.last_id = sid
        g.entries_read = entries_read
        ctx.dirty += 1
        ctx.notify("t", b"xgroup-setid", key)
        return OK
    if sub == b"destroy":
        if g is None:
            return 0
        del s.groups[gname]
        ctx.dirty += 1
        ctx.notify("t", b"xgroup-destroy", key)
        ctx.ready(key)  # unblock XREADGROUP clients with -NOGROUP
        return 1
    assert g is not None
    if sub == b"createconsumer":
        if argv[4] in g.consumers:
            return 0
        create_consumer(ctx, g, argv[4], key)
        return 1
    # delconsumer
    c = g.consumers.pop(argv[4], None)
    if c is None:
        return 0
    for sid in c.pel:
        del g.pel[sid]
    ctx.dirty += 1
    ctx.notify("t", b"xgroup-delconsumer", key)
    return len(c.pel)


for _name, _arity, _flags in (
    ("create", -5, "write denyoom"),
    ("setid", -5, "write"),
    ("destroy", 4, "write"),
    ("createconsumer", 5, "write denyoom"),
    ("delconsumer", 5, "write"),
):
    command(f"xgroup|{_name}", _arity, _flags, 2, 2, 1, acl="@write @stream @slow")(_xgroup)


def _group_of(ctx: Ctx, key: bytes, gname: bytes) -> tuple[Stream, Group]:
    s = lookup_stream(ctx, key)
    g = s.groups.get(gname) if s is not None else None
    if s is None or g is None:
        raise nogroup_key(key, gname)
    return s, g


@command("xack", -4, "write fast", 1, 1, 1, acl="@write @stream @fast")
def xack(ctx: Ctx, argv: list[bytes]) -> Any:
    s = lookup_stream(ctx, argv[1])
    g = s.groups.get(argv[2]) if s is not None else None
    if g is None:
        return 0
    ids = [parse_id(a, 0, strict=True) for a in argv[3:]]
    acked = 0
    for sid in ids:
        nack = g.pel.pop(sid, None)
        if nack is not None:
            if nack.consumer is not None:
                nack.consumer.pel.pop(sid, None)
            acked += 1
            ctx.dirty += 1
    return acked


def _bounds(start_arg: bytes, end_arg: bytes) -> tuple[Id, Id]:
    start, ex = parse_interval(start_arg, 0)
    if ex:
        nxt = incr_id(start)
        if nxt is None:
            raise CommandError(STREAM_START_ID)
        start = nxt
    end, ex = parse_interval(end_arg, U64)
    if ex:
        prv = decr_id(end)
        if prv is None:
            raise CommandError(STREAM_END_ID)
        end = prv
    return start, end


@command("xpending", -3, "readonly", 1, 1, 1, acl="@read @stream @slow")
def xpending(ctx: Ctx, argv: list[bytes]) -> Any:
    n = len(argv)
    if n != 3 and (n < 6 or n > 9):
        raise CommandError(SYNTAX)
    minidle = 0
    count = 0
    start = end = MIN_ID
    consumer_name: bytes | None = None
    if n >= 6:
        si = 3
        if argv[3].lower() == b"idle":
            minidle = int_arg(argv[4])
            if n < 8:
                raise CommandError(SYNTAX)
            si += 2
        count = max(int_arg(argv[si + 2]), 0)
        start, end = _bounds(argv[si], argv[si + 1])
        if si + 3 < n:
            consumer_name = argv[si + 3]
    _, g = _group_of(ctx, argv[1], argv[2])
    if n == 3:
        if not g.pel:
            return [0, None, None, Array(None)]
        owners = [[c.name, b"%d" % len(c.pel)] for c in g.sorted_consumers() if c.pel]
        return [len(g.pel), id_bytes(g.pel.peekitem(0)[0]), id_bytes(g.pel.peekitem(-1)[0]),
                owners]  # fmt: skip
    pel = g.pel
    if consumer_name is not None:
        c = g.consumers.get(consumer_name)
        if c is None:
            return []
        pel = c.pel
    now = ctx.now_ms
    out: list[Any] = []
    if count and start <= end:
        for sid in pel.irange(start, end):
            nack: Nack = pel[sid]
            if minidle and now - nack.delivery_time < minidle:
                continue
            assert nack.consumer is not None
            out.append([id_bytes(sid), nack.consumer.name, max(now - nack.delivery_time, 0),
                        nack.delivery_count])  # fmt: skip
            count -= 1
            if not count:
                break
    return out


def _claim_int(arg: bytes, what: str, cmd: str) -> int:
    return int_arg(arg, stream_option_error(what, cmd))


@command("xclaim", -6, "write fast", 1, 1, 1, acl="@write @stream @fast")
def xclaim(ctx: Ctx, argv: list[bytes]) -> Any:
    key, gname = argv[1], argv[2]
    s, g = _group_of(ctx, key, gname)
    minidle = max(_claim_int(argv[4], "min-idle-time", "XCLAIM"), 0)
    n = len(argv)
    ids: list[Id] = []
    j = 5
    while j < n:
        sid = try_parse_id(argv[j])
        if sid is None:
            break
        ids.append(sid)
        j += 1
    last_id_arg = j - 1
    now = ctx.now_ms
    retrycount = -1
    deliverytime = -1
    force = justid = False
    last_id = MIN_ID
    while j < n:
        more = n - 1 - j
        opt = argv[j].lower()
        if opt == b"force":
            force = True
        elif opt == b"justid":
            justid = True
        elif opt == b"idle" and more:
            j += 1
            deliverytime = now - _claim_int(argv[j], "IDLE option", "XCLAIM")
        elif opt == b"time" and more:
            j += 1
            deliverytime = _claim_int(argv[j], "TIME option", "XCLAIM")
        elif opt == b"retrycount" and more:
            j += 1
            retrycount = _claim_int(argv[j], "RETRYCOUNT option", "XCLAIM")
        elif opt == b"lastid" and more:
            j += 1
            last_id = parse_id(argv[j], 0, strict=True)
        else:
            raise xclaim_unrecognized(argv[j])
        j += 1
    propagate_last_id = False
    if last_id > g.last_id:
        g.last_id = last_id
        propagate_last_id = True
    if deliverytime != -1:
        if deliverytime < 0 or deliverytime > now:
            deliverytime = now
    else:
        deliverytime = now
    c = g.consumers.get(argv[3])
    if c is None:
        c = create_consumer(ctx, g, argv[3], key)
    c.seen_time = now
    out: list[Any] = []
    for k in range(5, last_id_arg + 1):
        sid = ids[k - 5]
        nack = g.pel.get(sid)
        if sid not in s.entries:
            if nack is not None:
                ctx.also(xclaim_argv(key, gname, g, argv[k], nack))
                propagate_last_id = False
                ctx.dirty += 1
                del g.pel[sid]
                if nack.consumer is not None:
                    nack.consumer.pel.pop(sid, None)
            continue
        if force and nack is None:
            nack = Nack(None, now)
            g.pel[sid] = nack
        if nack is None:
            continue
        if nack.consumer is not None and minidle and now - nack.delivery_time < minidle:
            continue
        if nack.consumer is not c and nack.consumer is not None:
            nack.consumer.pel.pop(sid, None)
        nack.delivery_time = deliverytime
        if retrycount >= 0:
            nack.delivery_count = retrycount
        elif not justid:
            nack.delivery_count += 1
        if nack.consumer is not c:
            c.pel[sid] = nack
            nack.consumer = c
        out.append(id_bytes(sid) if justid else entry_reply(s, sid))
        c.active_time = now
        ctx.also(xclaim_argv(key, gname, g, argv[k], nack))
        propagate_last_id = False
        ctx.dirty += 1
    if propagate_last_id:
        ctx.also(setid_argv(key, gname, g))
        ctx.dirty += 1
    ctx.prevent()
    return out


@command("xautoclaim", -6, "write fast", 1, 1, 1, acl="@write @stream @fast")
def xautoclaim(ctx: Ctx, argv: list[bytes]) -> Any:
    key, gname = argv[1], argv[2]
    minidle = max(_claim_int(argv[4], "min-idle-time", "XAUTOCLAIM"), 0)
    start, ex = parse_interval(argv[5], 0)
    if ex:
        nxt = incr_id(start)
        if nxt is None:
            raise CommandError(STREAM_START_ID)
        start = nxt
    count = 100
    justid = False
    j = 6
    n = len(argv)
    while j < n:
        more = n - 1 - j
        opt = argv[j].lower()
        if opt == b"count" and more:
            v = int_arg(argv[j + 1], XAUTOCLAIM_COUNT)
            if v < 1 or v > LLONG_MAX // 16:
                raise CommandError(XAUTOCLAIM_COUNT)
            count = v
            j += 1
        elif opt == b"justid":
            justid = True
        else:
            raise CommandError(SYNTAX)
        j += 1
    s, g = _group_of(ctx, key, gname)
    c = g.consumers.get(argv[3])
    if c is None:
        c = create_consumer(ctx, g, argv[3], key)
    now = ctx.now_ms
    c.seen_time = now
    attempts = count * 10
    claimed: list[Any] = []
    deleted: list[bytes] = []
    pel = g.pel
    candidates = list(pel.irange(minimum=start))
    pos = 0
    last_seen: Id | None = None
    eof = False
    while True:
        if attempts == 0:
            break
        attempts -= 1
        if not count:
            break
        if pos >= len(candidates):
            eof = True
            break
        sid = candidates[pos]
        pos += 1
        last_seen = sid
        nack = pel[sid]
        if sid not in s.entries:
            ctx.also(xclaim_argv(key, gname, g, id_bytes(sid), nack))
            ctx.dirty += 1
            del pel[sid]
            if nack.consumer is not None:
                nack.consumer.pel.pop(sid, None)
            deleted.append(id_bytes(sid))
            count -= 1
            continue
        if minidle and now - nack.delivery_time < minidle:
            continue
        if nack.consumer is not c and nack.consumer is not None:
            nack.consumer.pel.pop(sid, None)
        nack.delivery_time = now
        if not justid:
            nack.delivery_count += 1
        if nack.consumer is not c:
            c.pel[sid] = nack
            nack.consumer = c
        claimed.append(id_bytes(sid) if justid else entry_reply(s, sid))
        count -= 1
        c.active_time = now
        ctx.also(xclaim_argv(key, gname, g, id_bytes(sid), nack))
        ctx.dirty += 1
    cursor = MIN_ID
    if not eof:
        following = pel.irange(minimum=last_seen if last_seen is not None else start,
                               inclusive=(last_seen is None, True))  # fmt: skip
        for sid in following:
            cursor = sid
            break
    ctx.prevent()
    return [id_bytes(cursor), claimed, deleted]
