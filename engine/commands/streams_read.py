"""XREAD and XREADGROUP (src/t_stream.c xreadCommand, streamReplyWithRange).

XREADGROUP propagates nothing of itself: each delivered entry becomes ``XCLAIM key group
consumer 0 id TIME ms RETRYCOUNT n FORCE JUSTID LASTID last``, a moved group ID ``XGROUP SETID
key group id ENTRIESREAD n`` and a consumer created with NOACK ``XGROUP CREATECONSUMER`` (the
engine wraps several in MULTI/EXEC). With BLOCK and nothing to serve they return a
:class:`~engine.blocking.Block` whose ``resume_argv`` has ``$`` replaced by the stream's last ID.
"""

from __future__ import annotations

from typing import Any

from engine.blocking import Block
from engine.commands.streams_args import (
    decr_id,
    entry_reply,
    incr_id,
    lookup_stream,
    parse_id,
)
from engine.commands.table import command
from engine.commands.util import LLONG_MAX, int_arg
from engine.context import Ctx
from engine.errors import (
    SYNTAX,
    TIMEOUT_NEGATIVE,
    TIMEOUT_NOT_INTEGER,
    TIMEOUT_OUT_OF_RANGE,
    XREAD_GROUP_OPTION,
    XREAD_GT_ID,
    XREAD_NOACK_OPTION,
    XREADGROUP_DOLLAR,
    XREADGROUP_NO_GROUP,
    XREADGROUP_PLUS,
    CommandError,
    nogroup_read,
    xread_unbalanced,
)
from engine.types.streams import (
    INVALID_ENTRIES_READ,
    MAX_ID,
    MIN_ID,
    Consumer,
    Group,
    Id,
    Nack,
    Stream,
    id_bytes,
)
from persistence.resp.frames import Array, Bulk, Frame, Integer, Map
from persistence.stream_lag import range_has_tombstones

NULL_ARRAY = Array(None)


def _streams_keys(start: int) -> Any:
    """Key spec: keyword STREAMS searched from ``start``, then half the remaining args."""

    def keys(argv: list[bytes]) -> list[int]:
        for i in range(start, len(argv)):
            if argv[i].lower() == b"streams":
                n = (len(argv) - i - 1) // 2
                return list(range(i + 1, i + 1 + n))
        return []

    return keys


def create_consumer(ctx: Ctx, g: Group, name: bytes, key: bytes) -> Consumer:
    """streamCreateConsumer with SCC_DEFAULT: dirty and notified."""
    c = Consumer(name, ctx.now_ms)
    g.consumers[name] = c
    ctx.dirty += 1
    ctx.notify("t", b"xgroup-createconsumer", key)
    return c


def xclaim_argv(key: bytes, group: bytes, g: Group, sid_arg: bytes, nack: Nack) -> list[bytes]:
    """streamPropagateXCLAIM."""
    assert nack.consumer is not None
    return [
        b"XCLAIM", key, group, nack.consumer.name, b"0", sid_arg, b"TIME",
        b"%d" % nack.delivery_time, b"RETRYCOUNT", b"%d" % nack.delivery_count, b"FORCE",
        b"JUSTID", b"LASTID", id_bytes(g.last_id),
    ]  # fmt: skip


def setid_argv(key: bytes, group: bytes, g: Group) -> list[bytes]:
    """streamPropagateGroupID."""
    return [b"XGROUP", b"SETID", key, group, id_bytes(g.last_id), b"ENTRIESREAD",
            b"%d" % g.entries_read]  # fmt: skip


def _serve_group(
    ctx: Ctx, s: Stream, key: bytes, gname: bytes, g: Group, c: Consumer,
    start: Id, count: int, noack: bool,
) -> list[Any]:  # fmt: skip
    """streamReplyWithRange with a group: new entries move the group and enter the PELs."""
    out: list[Any] = []
    moved = False
    now = ctx.now_ms
    for sid in s.range(start, MAX_ID, count):
        if sid > g.last_id:
            if (
                g.entries_read != INVALID_ENTRIES_READ
                and g.last_id >= s.first_id
                and not range_has_tombstones(len(s.ids), s.max_deleted_id, g.last_id)
            ):
                g.entries_read += 1
            elif s.entries_added:
                g.entries_read = s.estimate_entries_read(sid)
            g.last_id = sid
            moved = True  # observed on 9.1.2: XGROUP SETID follows even without NOACK
        out.append(entry_reply(s, sid))
        if not noack:
            nack = g.pel.get(sid)
            if nack is None:
                nack = Nack(c, now)
                g.pel[sid] = nack
                c.pel[sid] = nack
            else:
                old = nack.consumer
                if old is not None:
                    old.pel.pop(sid, None)
                nack.consumer = c
                nack.delivery_time = now
                nack.delivery_count = 1
                c.pel[sid] = nack
            c.active_time = now
            ctx.also(xclaim_argv(key, gname, g, id_bytes(sid), nack))
    if moved:
        ctx.also(setid_argv(key, gname, g))
    return out


def _serve_history(ctx: Ctx, s: Stream, c: Consumer, start: Id, count: int) -> list[Any]:
    """streamReplyWithRangeFromConsumerPEL: the consumer's own pending entries."""
    out: list[Any] = []
    now = ctx.now_ms
    for sid in c.pel.irange(minimum=start):
        if count and len(out) >= count:
            break
        if sid in s.entries:
            out.append(entry_reply(s, sid))
            nack = c.pel[sid]
            nack.delivery_time = now
            nack.delivery_count += 1
        else:
            out.append([id_bytes(sid), NULL_ARRAY])
    return out


def _xread(ctx: Ctx, argv: list[bytes], group_mode: bool) -> Any:
    timeout = -1
    count = 0
    streams_arg = 0
    noack = False
    gname: bytes | None = None
    cname = b""
    n = len(argv)
    i = 1
    while i < n:
        more = n - i - 1
        o = argv[i].lower()
        if o == b"block" and more:
            i += 1
            timeout = int_arg(argv[i], TIMEOUT_NOT_INTEGER)
            if timeout < 0:
                raise CommandError(TIMEOUT_NEGATIVE)
            if timeout > LLONG_MAX - ctx.now_ms:
                raise CommandError(TIMEOUT_OUT_OF_RANGE)
        elif o == b"count" and more:
            i += 1
            count = max(int_arg(argv[i]), 0)
        elif o == b"streams" and more:
            streams_arg = i + 1
            if (n - streams_arg) % 2:
                if group_mode:
                    raise xread_unbalanced("xreadgroup", ">")
                raise xread_unbalanced("xread", "$")
            break
        elif o == b"group" and more >= 2:
            if not group_mode:
                raise CommandError(XREAD_GROUP_OPTION)
            gname, cname = argv[i + 1], argv[i + 2]
            i += 2
        elif o == b"noack":
            if not group_mode:
                raise CommandError(XREAD_NOACK_OPTION)
            noack = True
        else:
            raise CommandError(SYNTAX)
        i += 1
    if streams_arg == 0:
        raise CommandError(SYNTAX)
    if group_mode and gname is None:
        raise CommandError(XREADGROUP_NO_GROUP)
    nstreams = (n - streams_arg) // 2
    keys = argv[streams_arg : streams_arg + nstreams]
    ids: list[Id] = []
    groups: list[Group] = []
    resume: list[bytes] | None = None
    for k, key in enumerate(keys):
        arg = argv[streams_arg + nstreams + k]
        s = lookup_stream(ctx, key)
        if gname is not None:
            grp = s.groups.get(gname) if s is not None else None
            if grp is None:
                raise nogroup_read(key, gname)
            groups.append(grp)
        if arg == b"$":
            if group_mode:
                raise CommandError(XREADGROUP_DOLLAR)
            ids.append(s.last_id if s is not None else MIN_ID)
            if timeout != -1:
                if resume is None:
                    resume = list(argv)
                resume[streams_arg + nstreams + k] = id_bytes(ids[-1])
        elif arg == b"+":
            if group_mode:
                raise CommandError(XREADGROUP_PLUS)
            # observed on 9.1.2: the entry at the stream's last ID, nothing when it is gone
            ids.append(decr_id(s.last_id) or MIN_ID if s is not None else MIN_ID)
        elif arg == b">":
            if not group_mode:
                raise CommandError(XREAD_GT_ID)
            ids.append(MAX_ID)
        else:
            ids.append(parse_id(arg, 0, strict=True))
    served: list[tuple[bytes, list[Any]]] = []
    for k, key in enumerate(keys):
        s = lookup_stream(ctx, key)
        if s is None:
            continue
        gt = ids[k]
        serve = history = False
        g: Group | None = None
        c: Consumer | None = None
        if gname is not None:
            g = groups[k]
            if gt != MAX_ID:
                serve = history = True
            elif s.ids and s.ids[-1] > g.last_id:
                serve = True
                gt = g.last_id
            c = g.consumers.get(cname)
            if c is None:
                c = create_consumer(ctx, g, cname, key)
                if noack:
                    ctx.also([b"XGROUP", b"CREATECONSUMER", key, gname, cname])
            c.seen_time = ctx.now_ms
        elif s.ids and s.ids[-1] > gt:
            serve = True
        if not serve:
            continue
        start = incr_id(gt) or MIN_ID
        if gname is None or g is None or c is None:
            entries = [entry_reply(s, sid) for sid in s.range(start, MAX_ID, count)]
        elif history:
            entries = _serve_history(ctx, s, c, start, count)
        else:
            entries = _serve_group(ctx, s, key, gname, g, c, start, count, noack)
        if gname is not None:
            ctx.dirty += 1
        served.append((key, entries))
    ctx.prevent()
    if served:
        if ctx.client.resp == 2:
            return [[k, e] for k, e in served]
        d = dict(served)
        if len(d) == len(served):
            return d
        return Map([(Bulk(k), _frame(e)) for k, e in served])
    if timeout != -1:
        if not ctx.may_block:
            return NULL_ARRAY
        return Block(ctx.db.id, list(keys), timeout, NULL_ARRAY, resume)
    return NULL_ARRAY


def _frame(v: Any) -> Frame:
    if type(v) is bytes:
        return Bulk(v)
    if type(v) is int:
        return Integer(v)
    if type(v) is list:
        return Array([_frame(x) for x in v])
    f: Frame = v
    return f


@command(
    "xread", -4, "readonly blocking movablekeys", 0, 0, 0,
    acl="@read @stream @slow @blocking", keys=_streams_keys(1), blocking=True,
)  # fmt: skip
def xread(ctx: Ctx, argv: list[bytes]) -> Any:
    return _xread(ctx, argv, False)


@command(
    "xreadgroup", -7, "write blocking movablekeys", 0, 0, 0,
    acl="@write @stream @slow @blocking", keys=_streams_keys(4), blocking=True,
)  # fmt: skip
def xreadgroup(ctx: Ctx, argv: list[bytes]) -> Any:
    return _xread(ctx, argv, True)
