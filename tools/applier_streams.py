"""Stream commands of the minimal AOF applier, after src/t_stream.c.

The propagated forms (spec 4.6, 8.5): ``XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] n [LIMIT n]]
<id> f v ...``, ``XDEL``, ``XTRIM``, ``XSETID ... ENTRIESADDED n MAXDELETEDID id``,
``XGROUP CREATE|SETID ... ENTRIESREAD n``, ``XGROUP CREATECONSUMER|DELCONSUMER|DESTROY``,
``XCLAIM key group consumer 0 id TIME ms RETRYCOUNT n FORCE JUSTID [LASTID id]`` (XREADGROUP and
rewrites) and ``XACK``. Metadata follows Valkey: trimming never moves max_deleted_id, XDEL does;
first_id is the first live entry (0-0 when empty). Approximate trimming (``~``) is applied
exactly: Valkey propagates it rewritten as ``=`` (streamRewriteApproxSpecifier), so only a
hand-made AOF can carry it, and there Valkey would trim whole listpack nodes only.
"""

from __future__ import annotations

import re

from tools.applier_base import (
    SID,
    SYNTAX,
    ApplyError,
    Consumer,
    Group,
    Keyspace,
    Nack,
    StreamObj,
    check_arity,
    command,
    parse_int,
    upper,
)

U64 = 2**64 - 1
INVALID_ID = "ERR Invalid stream ID specified as stream command argument"
_DIGITS = re.compile(rb"[0-9]+")


def _u64(b: bytes) -> int | None:
    if not _DIGITS.fullmatch(b) or int(b) > U64:
        return None
    return int(b)


def parse_id(
    b: bytes, *, strict: bool = True, missing_seq: int = 0, seq_star: bool = False
) -> tuple[SID, bool]:
    """streamGenericParseIDOrReply: '<ms>[-<seq>]', '-'/'+' unless strict, '<ms>-*' if
    ``seq_star`` (then the second result, seq_given, is False)."""
    if len(b) > 127 or (strict and b in (b"-", b"+")):
        raise ApplyError(INVALID_ID)
    if b == b"-":
        return (0, 0), True
    if b == b"+":
        return (U64, U64), True
    ms_part, dash, seq_part = b.partition(b"-")
    ms = _u64(ms_part)
    if ms is None:
        raise ApplyError(INVALID_ID)
    if not dash:
        return (ms, missing_seq), True
    if seq_star and seq_part == b"*":
        return (ms, 0), False
    seq = _u64(seq_part)
    if seq is None:
        raise ApplyError(INVALID_ID)
    return (ms, seq), True


def _stream(ks: Keyspace, key: bytes) -> StreamObj | None:
    v = ks.get(key, StreamObj)
    assert v is None or isinstance(v, StreamObj)
    return v


def _incr(i: SID) -> SID:
    if i[1] < U64:
        return (i[0], i[1] + 1)
    return (i[0] + 1, 0) if i[0] < U64 else (0, 0)


def _refresh_first(s: StreamObj) -> None:
    s.first_id = next(iter(s.entries), (0, 0))


# ---- XADD / XTRIM --------------------------------------------------------------------------


class _Trim:
    def __init__(self) -> None:
        self.strategy: str | None = None
        self.maxlen = 0
        self.minid: SID = (0, 0)
        self.limit = 0


def _parse_add_or_trim(argv: list[bytes], xadd: bool) -> tuple[int, _Trim, bool, SID | None, bool]:
    """streamParseAddOrTrimArgsOrReply: (id position, trim, nomkstream, id, seq_given)."""
    t = _Trim()
    nomk = False
    use_id: SID | None = None
    seq_given = True
    i = 2
    while i < len(argv):
        more = len(argv) - 1 - i
        opt = upper(argv[i])
        if xadd and argv[i] == b"*":
            break
        if opt in ("MAXLEN", "MINID") and more:
            if t.strategy is not None:
                raise ApplyError(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
                )
            if more >= 2 and argv[i + 1] in (b"~", b"="):
                i += 1  # '~' is applied exactly (see the module docstring)
            if opt == "MAXLEN":
                t.maxlen = parse_int(argv[i + 1])
                if t.maxlen < 0:
                    raise ApplyError("ERR The MAXLEN argument must be >= 0.")
            else:
                t.minid = parse_id(argv[i + 1])[0]
            t.strategy = opt
            i += 1
        elif opt == "LIMIT" and more:
            t.limit = parse_int(argv[i + 1])
            if t.limit < 0:
                raise ApplyError("ERR The LIMIT argument must be >= 0.")
            i += 1
        elif xadd and opt == "NOMKSTREAM":
            nomk = True
        elif xadd:
            use_id, seq_given = parse_id(argv[i], seq_star=True)
            break
        else:
            raise ApplyError(SYNTAX)
        i += 1
    if t.limit and t.strategy is None:
        raise ApplyError(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"
        )
    if not xadd and t.strategy is None:
        raise ApplyError("ERR syntax error, XTRIM must be called with a trimming strategy")
    t.limit = 0  # from the AOF (mustObeyClient) LIMIT is ignored
    return i, t, nomk, use_id, seq_given


def _trim(s: StreamObj, t: _Trim) -> int:
    """streamTrim, exact: oldest entries go; max_deleted_id is not touched."""
    doomed: list[SID] = []
    if t.strategy == "MAXLEN":
        doomed = list(s.entries)[: max(0, len(s.entries) - t.maxlen)]
    elif t.strategy == "MINID":
        doomed = [i for i in s.entries if i < t.minid]
    for i in doomed:
        del s.entries[i]
    if not s.entries:
        s.first_id = (0, 0)
    elif doomed:
        _refresh_first(s)
    return len(doomed)


@command("XADD", -5)
def _xadd(ks: Keyspace, argv: list[bytes]) -> None:
    idpos, trim, nomk, use_id, seq_given = _parse_add_or_trim(argv, True)
    fields = argv[idpos + 1 :]
    if len(fields) < 2 or len(fields) % 2:
        raise ApplyError("ERR wrong number of arguments for 'xadd' command")
    if use_id == (0, 0) and seq_given:
        raise ApplyError("ERR The ID specified in XADD must be greater than 0-0")
    s = _stream(ks, argv[1])
    if s is None and nomk:
        return
    last = s.last_id if s else (0, 0)
    if last == (U64, U64):
        raise ApplyError(
            "ERR The stream has exhausted the last possible ID, unable to add more items"
        )
    if use_id is None:  # streamNextID
        now = ks.now()
        new = (now, 0) if now > last[0] else _incr(last)
    elif seq_given:
        new = use_id
    elif last[0] == use_id[0]:
        if last[1] == U64:
            raise ApplyError(_TOP_ITEM)
        new = (last[0], last[1] + 1)
    else:
        new = use_id
    if new <= last:
        raise ApplyError(_TOP_ITEM)
    if s is None:
        s = StreamObj()
        ks.put(argv[1], s)
    ks.stamp(new[0])
    s.entries[new] = list(zip(fields[::2], fields[1::2]))
    s.entries_added += 1
    s.last_id = new
    if len(s.entries) == 1:
        s.first_id = new
    _trim(s, trim)


_TOP_ITEM = "ERR The ID specified in XADD is equal or smaller than the target stream top item"


@command("XTRIM", -4)
def _xtrim(ks: Keyspace, argv: list[bytes]) -> None:
    _, trim, _, _, _ = _parse_add_or_trim(argv, False)
    s = _stream(ks, argv[1])
    if s is not None:
        _trim(s, trim)


@command("XDEL", -3)
def _xdel(ks: Keyspace, argv: list[bytes]) -> None:
    s = _stream(ks, argv[1])
    if s is None:
        return
    ids = [parse_id(b)[0] for b in argv[2:]]
    deleted = first = False
    for i in ids:
        if i in s.entries:
            del s.entries[i]
            first = first or i == s.first_id
            s.max_deleted_id = max(s.max_deleted_id, i)
            deleted = True
    if deleted and (not s.entries or first):
        _refresh_first(s)


@command("XSETID", -3)
def _xsetid(ks: Keyspace, argv: list[bytes]) -> None:
    new = parse_id(argv[2])[0]
    entries_added = -1
    max_del: SID = (0, 0)
    i = 3
    while i < len(argv):
        opt, more = upper(argv[i]), i + 1 < len(argv)
        if opt == "ENTRIESADDED" and more:
            entries_added = parse_int(argv[i + 1])
            if entries_added < 0:
                raise ApplyError("ERR entries_added must be positive")
        elif opt == "MAXDELETEDID" and more:
            max_del = parse_id(argv[i + 1])[0]
            if new < max_del:
                raise ApplyError(
                    "ERR The ID specified in XSETID is smaller than the provided "
                    "max_deleted_entry_id"
                )
        else:
            raise ApplyError(SYNTAX)
        i += 2
    s = _stream(ks, argv[1])
    if s is None:
        raise ApplyError("ERR no such key")
    if new < s.max_deleted_id:
        raise ApplyError(
            "ERR The ID specified in XSETID is smaller than current max_deleted_entry_id"
        )
    if s.entries:
        if new < next(reversed(s.entries)):
            raise ApplyError(
                "ERR The ID specified in XSETID is smaller than the target stream top item"
            )
        if entries_added != -1 and len(s.entries) > entries_added:
            raise ApplyError(
                "ERR The entries_added specified in XSETID is smaller than the target stream length"
            )
    s.last_id = new
    if entries_added != -1:
        s.entries_added = entries_added
    if max_del != (0, 0):
        s.max_deleted_id = max_del


# ---- consumer groups -----------------------------------------------------------------------

_XGROUP_ARITY = {"CREATE": -5, "SETID": -5, "DESTROY": 4, "CREATECONSUMER": 5, "DELCONSUMER": 5}


@command("XGROUP", -2)
def _xgroup(ks: Keyspace, argv: list[bytes]) -> None:
    """xgroupCommand: CREATE [MKSTREAM] [ENTRIESREAD n], SETID [ENTRIESREAD n], DESTROY,
    CREATECONSUMER, DELCONSUMER."""
    sub = upper(argv[1])
    if sub not in _XGROUP_ARITY:
        raise ApplyError(
            f"ERR unknown subcommand '{argv[1].decode('latin-1')}'. Try XGROUP HELP.", "unknown"
        )
    check_arity(f"XGROUP|{sub}", _XGROUP_ARITY[sub], len(argv))
    bad_sub = ApplyError(
        f"ERR unknown subcommand or wrong number of arguments for '{argv[1].decode('latin-1')}'. "
        "Try XGROUP HELP."
    )
    mkstream, entries_read, i = False, -1, 5
    while i < len(argv):
        opt = upper(argv[i])
        if sub == "CREATE" and opt == "MKSTREAM":
            mkstream = True
            i += 1
        elif sub in ("CREATE", "SETID") and opt == "ENTRIESREAD" and i + 1 < len(argv):
            entries_read = parse_int(argv[i + 1])
            if entries_read < -1:
                raise ApplyError("ERR value for ENTRIESREAD must be positive or -1")
            i += 2
        else:
            raise bad_sub
    s = _stream(ks, argv[2])
    name = argv[3]
    if s is None and not mkstream:
        raise ApplyError(
            "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may "
            "want to use the MKSTREAM option to create an empty stream automatically."
        )
    group = s.groups.get(name) if s else None
    if group is None and sub in ("SETID", "CREATECONSUMER", "DELCONSUMER"):
        raise ApplyError(
            f"NOGROUP No such consumer group '{name.decode('latin-1')}' for key name "
            f"'{argv[2].decode('latin-1')}'"
        )
    if sub == "CREATE":
        if len(argv) > 8:
            raise bad_sub
        new = (s.last_id if s else (0, 0)) if argv[4] == b"$" else parse_id(argv[4])[0]
        if s is None:
            s = StreamObj()
            ks.put(argv[2], s)
        if name in s.groups:
            raise ApplyError("BUSYGROUP Consumer Group name already exists")
        s.groups[name] = Group(new, entries_read)
    elif sub == "SETID":
        if len(argv) not in (5, 7):
            raise bad_sub
        assert s is not None and group is not None
        group.last_id = s.last_id if argv[4] == b"$" else parse_id(argv[4], strict=False)[0]
        group.entries_read = entries_read
    elif sub == "DESTROY":
        if s is not None:
            s.groups.pop(name, None)
    elif sub == "CREATECONSUMER":
        assert group is not None
        group.consumers.setdefault(argv[4], Consumer(ks.info_time(), -1))
    else:
        assert group is not None
        gone = group.consumers.pop(argv[4], None)
        for sid in gone.pel if gone else ():
            group.pel.pop(sid, None)


def _group(ks: Keyspace, argv: list[bytes]) -> tuple[StreamObj, Group] | None:
    s = _stream(ks, argv[1])
    g = s.groups.get(argv[2]) if s else None
    return (s, g) if s is not None and g is not None else None


@command("XACK", -4)
def _xack(ks: Keyspace, argv: list[bytes]) -> None:
    found = _group(ks, argv)
    if found is None:
        return
    ids = [parse_id(b)[0] for b in argv[3:]]
    group = found[1]
    for i in ids:
        nack = group.pel.pop(i, None)
        if nack is not None and nack.consumer in group.consumers:
            group.consumers[nack.consumer].pel.pop(i, None)


@command("XCLAIM", -6)
def _xclaim(ks: Keyspace, argv: list[bytes]) -> None:
    """xclaimCommand, with its options IDLE, TIME, RETRYCOUNT, FORCE, JUSTID, LASTID."""
    found = _group(ks, argv)
    if found is None:
        raise ApplyError(
            f"NOGROUP No such key '{argv[1].decode('latin-1')}' or consumer group "
            f"'{argv[2].decode('latin-1')}'"
        )
    s, group = found
    minidle = max(0, parse_int(argv[4], "ERR Invalid min-idle-time argument for XCLAIM"))
    ids: list[SID] = []
    j = 5
    while j < len(argv):
        try:
            ids.append(parse_id(argv[j])[0])
        except ApplyError:
            break
        j += 1
    now = ks.now()
    retry, delivery, force, justid, last_id = -1, -1, False, False, (0, 0)
    while j < len(argv):
        opt, more = upper(argv[j]), j + 1 < len(argv)
        if opt == "FORCE":
            force = True
        elif opt == "JUSTID":
            justid = True
        elif opt in ("IDLE", "TIME", "RETRYCOUNT") and more:
            v = parse_int(argv[j + 1], f"ERR Invalid {opt} option argument for XCLAIM")
            if opt == "RETRYCOUNT":
                retry = v
            else:
                delivery = now - v if opt == "IDLE" else v
            j += 1
        elif opt == "LASTID" and more:
            last_id = parse_id(argv[j + 1])[0]
            j += 1
        else:
            raise ApplyError(f"ERR Unrecognized XCLAIM option '{argv[j].decode('latin-1')}'")
        j += 1
    if last_id > group.last_id:
        group.last_id = last_id
    if delivery < 0 or delivery > now:
        delivery = now  # a bogus or missing delivery time becomes now (t_stream.c)
    ks.stamp(delivery)
    seen = ks.info_time()
    consumer = group.consumers.setdefault(argv[3], Consumer(seen, -1))
    consumer.seen_time = seen
    for i in ids:
        nack = group.pel.get(i)
        if i not in s.entries:
            if nack is not None:  # the entry is gone: its PEL entry goes too
                del group.pel[i]
                if nack.consumer in group.consumers:
                    group.consumers[nack.consumer].pel.pop(i, None)
            continue
        if nack is None:
            if not force:
                continue
            nack = group.pel[i] = Nack(argv[3], 0, 0)  # FORCE: a new PEL entry
        elif minidle and now - nack.delivery_time < minidle:
            continue
        elif nack.consumer != argv[3] and nack.consumer in group.consumers:
            group.consumers[nack.consumer].pel.pop(i, None)
        nack.delivery_time = delivery
        if retry >= 0:
            nack.delivery_count = retry
        elif not justid:
            nack.delivery_count += 1
        nack.consumer = argv[3]
        consumer.pel[i] = None
        consumer.active_time = seen
