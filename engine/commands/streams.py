"""Stream commands (src/t_stream.c): XADD XTRIM XDEL XLEN XRANGE XREVRANGE XSETID here;
XREAD/XREADGROUP in streams_read.py, consumer groups in streams_groups.py, XINFO in
streams_info.py.

Propagation follows Valkey: XADD with ``*`` / ``ms-*`` propagates the generated ID, and an
approximate trim (``~``) propagates as ``= <resulting length | first ID>`` so replay is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.commands.streams_args import (
    decr_id,
    entry_reply,
    incr_id,
    lookup_stream,
    node_limits,
    parse_id,
    parse_interval,
    parse_xadd_id,
)
from engine.commands.table import command
from engine.commands.util import OK, int_arg
from engine.context import Ctx
from engine.errors import (
    NO_SUCH_KEY,
    STREAM_END_ID,
    STREAM_EXHAUSTED,
    STREAM_START_ID,
    SYNTAX,
    XADD_ID_SMALL,
    XADD_ID_ZERO,
    XSETID_ENTRIES_ADDED_NEG,
    XSETID_ENTRIES_ADDED_SMALL,
    XSETID_LT_ARG_MAXDEL,
    XSETID_LT_MAXDEL,
    XSETID_LT_TOP,
    XTRIM_BOTH,
    XTRIM_LIMIT_NEG,
    XTRIM_LIMIT_NO_APPROX,
    XTRIM_LIMIT_NO_STRATEGY,
    XTRIM_MAXLEN_NEG,
    XTRIM_NO_STRATEGY,
    CommandError,
    wrong_arity,
)
from engine.types.streams import MAX_ID, MIN_ID, U64, Id, Stream, id_bytes
from persistence.resp.frames import Array

NULL_ARRAY = Array(None)


@dataclass(slots=True)
class TrimArgs:
    """streamAddTrimArgs."""

    idx: int = 0  # XADD: position of the ID
    sid: Id = MIN_ID
    id_given: bool = False
    seq_given: bool = True
    no_mkstream: bool = False
    maxlen: int | None = None
    minid: Id | None = None
    arg_idx: int = 0  # position of the MAXLEN/MINID value, for the rewrite
    approx: bool = False
    limit: int = 0

    @property
    def trims(self) -> bool:
        return self.maxlen is not None or self.minid is not None


def parse_add_trim(ctx: Ctx, argv: list[bytes], xadd: bool) -> TrimArgs:
    """streamParseAddOrTrimArgsOrReply."""
    a = TrimArgs()
    n = len(argv)
    i = 2
    limit_given = False
    while i < n:
        more = n - 1 - i
        opt = argv[i]
        lopt = opt.lower()
        if xadd and opt == b"*":
            break
        if lopt in (b"maxlen", b"minid") and more:
            if a.trims:
                raise CommandError(XTRIM_BOTH)
            a.approx = False
            nxt = argv[i + 1]
            if more >= 2 and nxt == b"~":
                a.approx = True
                i += 1
            elif more >= 2 and nxt == b"=":
                i += 1
            if lopt == b"maxlen":
                v = int_arg(argv[i + 1])
                if v < 0:
                    raise CommandError(XTRIM_MAXLEN_NEG)
                a.maxlen = v
            else:
                a.minid = parse_id(argv[i + 1], 0, strict=True)
            i += 1
            a.arg_idx = i
        elif lopt == b"limit" and more:
            a.limit = int_arg(argv[i + 1])
            if a.limit < 0:
                raise CommandError(XTRIM_LIMIT_NEG)
            limit_given = True
            i += 1
        elif xadd and lopt == b"nomkstream":
            a.no_mkstream = True
        elif xadd:
            a.sid, a.seq_given = parse_xadd_id(opt)
            a.id_given = True
            break
        else:
            raise CommandError(SYNTAX)
        i += 1
    a.idx = i
    if a.limit and not a.trims:
        raise CommandError(XTRIM_LIMIT_NO_STRATEGY)
    if not xadd and not a.trims:
        raise CommandError(XTRIM_NO_STRATEGY)
    if ctx.loading:
        # src/t_stream.c: a master or the AOF is obeyed without the work limit
        a.limit = 0
    elif limit_given:
        if not a.approx:
            raise CommandError(XTRIM_LIMIT_NO_APPROX)
    elif a.approx:
        lim = 100 * int(ctx.engine.config["stream-node-max-entries"])
        a.limit = 10000 if lim <= 0 else min(lim, 1_000_000)
    else:
        a.limit = 0
    return a


def _trim(s: Stream, a: TrimArgs) -> int:
    return s.trim(a.maxlen, a.minid, a.approx, a.limit)


def _rewrite_trim(out: list[bytes], s: Stream, a: TrimArgs) -> None:
    """streamRewriteApproxSpecifier + streamRewriteTrimArgument."""
    out[a.arg_idx - 1] = b"="
    if a.maxlen is not None:
        out[a.arg_idx] = b"%d" % len(s)
    else:
        # streamGetEdgeID(first, tombstones included): the first node's master entry
        out[a.arg_idx] = id_bytes(s.nodes[0].master if s.nodes else MAX_ID)


@command("xadd", -5, "write denyoom fast", 1, 1, 1, acl="@write @stream @fast")
def xadd(ctx: Ctx, argv: list[bytes]) -> Any:
    a = parse_add_trim(ctx, argv, True)
    field_pos = a.idx + 1
    nfv = len(argv) - field_pos
    if nfv < 2 or nfv % 2:
        raise wrong_arity(b"xadd")
    if a.id_given and a.seq_given and a.sid == MIN_ID:
        raise CommandError(XADD_ID_ZERO)
    key = argv[1]
    s = lookup_stream(ctx, key)
    created = s is None
    if s is None:
        if a.no_mkstream:
            return None
        s = Stream()
    last = s.last_id
    if last == (U64, U64):
        raise CommandError(STREAM_EXHAUSTED)
    if a.id_given:
        if a.seq_given:
            sid = a.sid
        elif last[0] == a.sid[0]:
            if last[1] == U64:
                raise CommandError(XADD_ID_SMALL)
            sid = (last[0], last[1] + 1)
        else:
            sid = a.sid
    else:
        # streamNextID: the command time, never going backwards
        now = ctx.now_ms
        sid = (now, 0) if now > last[0] else incr_id(last) or MIN_ID
    if sid <= last:
        raise CommandError(XADD_ID_SMALL)
    if created:
        ctx.db.add(key, s)
    max_bytes, max_entries = node_limits(ctx)
    s.append(sid, argv[field_pos:], max_bytes, max_entries)
    reply = id_bytes(sid)
    ctx.modified(key)
    ctx.notify("t", b"xadd", key)
    ctx.dirty += 1
    out: list[bytes] | None = None
    if a.trims:
        if _trim(s, a):
            ctx.notify("t", b"xtrim", key)
        if a.approx:
            out = list(argv)
            _rewrite_trim(out, s, a)
    if not a.id_given or not a.seq_given:
        if out is None:
            out = list(argv)
        out[a.idx] = reply
    if out is not None:
        ctx.rewrite(out)
    ctx.ready(key)
    return reply


@command("xtrim", -4, "write", 1, 1, 1, acl="@write @stream @slow")
def xtrim(ctx: Ctx, argv: list[bytes]) -> Any:
    a = parse_add_trim(ctx, argv, False)
    key = argv[1]
    s = lookup_stream(ctx, key)
    if s is None:
        return 0
    deleted = _trim(s, a)
    if deleted:
        ctx.notify("t", b"xtrim", key)
        if a.approx:
            out = list(argv)
            _rewrite_trim(out, s, a)
            ctx.rewrite(out)
        ctx.modified(key)
        ctx.dirty += deleted
    return deleted


@command("xdel", -3, "write fast", 1, 1, 1, acl="@write @stream @fast")
def xdel(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[1]
    s = lookup_stream(ctx, key)
    if s is None:
        return 0
    ids = [parse_id(a, 0, strict=True) for a in argv[2:]]
    deleted = 0
    first_entry = False
    for sid in ids:
        if s.delete(sid):
            if sid == s.first_id:
                first_entry = True
            if sid > s.max_deleted_id:
                s.max_deleted_id = sid
            deleted += 1
    if deleted:
        if not s.ids:
            s.first_id = MIN_ID
        elif first_entry:
            s.first_id = s.ids[0]
        ctx.modified(key)
        ctx.notify("t", b"xdel", key)
        ctx.dirty += deleted
    return deleted


@command("xlen", 2, "readonly fast", 1, 1, 1, acl="@read @stream @fast")
def xlen(ctx: Ctx, argv: list[bytes]) -> Any:
    s = lookup_stream(ctx, argv[1])
    return 0 if s is None else len(s.ids)


def _xrange(ctx: Ctx, argv: list[bytes], rev: bool) -> Any:
    """xrangeGenericCommand."""
    start_arg, end_arg = (argv[3], argv[2]) if rev else (argv[2], argv[3])
    start, startex = parse_interval(start_arg, 0)
    if startex:
        nxt = incr_id(start)
        if nxt is None:
            raise CommandError(STREAM_START_ID)
        start = nxt
    end, endex = parse_interval(end_arg, U64)
    if endex:
        prv = decr_id(end)
        if prv is None:
            raise CommandError(STREAM_END_ID)
        end = prv
    count = -1
    j = 4
    n = len(argv)
    while j < n:
        if argv[j].lower() == b"count" and j + 1 < n:
            count = max(int_arg(argv[j + 1]), 0)
            j += 2
        else:
            raise CommandError(SYNTAX)
    s = lookup_stream(ctx, argv[1])
    if s is None:
        return []
    if count == 0:
        return NULL_ARRAY
    return [entry_reply(s, i) for i in s.range(start, end, max(count, 0), rev)]


@command("xrange", -4, "readonly", 1, 1, 1, acl="@read @stream @slow")
def xrange(ctx: Ctx, argv: list[bytes]) -> Any:
    return _xrange(ctx, argv, False)


@command("xrevrange", -4, "readonly", 1, 1, 1, acl="@read @stream @slow")
def xrevrange(ctx: Ctx, argv: list[bytes]) -> Any:
    return _xrange(ctx, argv, True)


@command("xsetid", -3, "write denyoom fast", 1, 1, 1, acl="@write @stream @fast")
def xsetid(ctx: Ctx, argv: list[bytes]) -> Any:
    sid = parse_id(argv[2], 0, strict=True)
    entries_added = -1
    max_xdel = MIN_ID
    i = 3
    n = len(argv)
    while i < n:
        more = n - 1 - i
        opt = argv[i].lower()
        if opt == b"entriesadded" and more:
            entries_added = int_arg(argv[i + 1])
            if entries_added < 0:
                raise CommandError(XSETID_ENTRIES_ADDED_NEG)
            i += 2
        elif opt == b"maxdeletedid" and more:
            max_xdel = parse_id(argv[i + 1], 0, strict=True)
            if sid < max_xdel:
                raise CommandError(XSETID_LT_ARG_MAXDEL)
            i += 2
        else:
            raise CommandError(SYNTAX)
    key = argv[1]
    s = lookup_stream(ctx, key)
    if s is None:
        raise CommandError(NO_SUCH_KEY)
    if sid < s.max_deleted_id:
        raise CommandError(XSETID_LT_MAXDEL)
    if s.ids:
        if sid < s.ids[-1]:
            raise CommandError(XSETID_LT_TOP)
        if entries_added != -1 and len(s.ids) > entries_added:
            raise CommandError(XSETID_ENTRIES_ADDED_SMALL)
    s.last_id = sid
    if entries_added != -1:
        s.entries_added = entries_added
    if max_xdel != MIN_ID:
        s.max_deleted_id = max_xdel
    ctx.dirty += 1
    ctx.notify("t", b"xsetid", key)
    ctx.modified(key)
    return OK


from engine.commands import streams_groups, streams_info, streams_read  # noqa: E402,F401
