"""List commands (src/t_list.c): pushes, pops, ranges, LINSERT/LSET/LREM/LTRIM/LPOS, LMOVE and
LMPOP. The blocking variants live in ``lists_blocking.py`` and share the helpers here.

Every change reports: ``ctx.dirty``, the ``l`` keyspace event (``g del`` when a list empties
and its key goes), ``ctx.modified`` for WATCH, and ``ctx.ready`` when a list key is created
(src/db.c dbAdd signals blocked clients only on creation). Encodings are kept by
:class:`engine.types.lists.List`, which gets the current ``list-max-listpack-size``.
"""

from __future__ import annotations

from itertools import islice
from operator import itemgetter
from typing import Any

from engine.commands.table import Handler, RunHandler, command, keys_from_numkeys, run_handler
from engine.commands.util import LLONG_MAX, OK, int_arg
from engine.context import Ctx
from engine.errors import (
    LPOS_COUNT_NEGATIVE,
    LPOS_MAXLEN_NEGATIVE,
    LPOS_RANK_ZERO,
    NO_SUCH_KEY,
    NOT_INTEGER,
    NOT_POSITIVE,
    NUMKEYS_POSITIVE,
    OUT_OF_RANGE,
    SYNTAX,
    WRONGTYPE,
    CommandError,
    out_of_range_between,
    wrong_arity,
)
from engine.types.lists import List
from persistence.resp.frames import Array
from persistence.resp.reply import integer, integers
from persistence.resp.tokens import string2ll

NULL_ARRAY = Array(None)
EMPTY: list[bytes] = []
_LPOP = b"LPOP"  # src/server.c shared.lpop / shared.rpop (what [B]LMPOP / BLPOP propagate as)
_RPOP = b"RPOP"
_COUNT_POSITIVE_MSG = "ERR count should be greater than 0"
_FILL = "list-max-listpack-size"


def fill_of(ctx: Ctx) -> int:
    v: int = ctx.engine.config.values[_FILL]
    return v


def range_long(b: bytes, lo: int, hi: int, msg: str | None = None) -> int:
    """src/object.c getRangeLongFromObjectOrReply: a custom message replaces both errors."""
    v = string2ll(b)
    if v is None:
        raise CommandError(msg or NOT_INTEGER)
    if v < lo or v > hi:
        raise CommandError(msg or out_of_range_between(lo, hi))
    return v


def get_list(ctx: Ctx, key: bytes) -> List | None:
    value = ctx.db.lookup(ctx, key)
    if value is not None and type(value) is not List:
        raise CommandError(WRONGTYPE)
    return value


def elements_removed(ctx: Ctx, key: bytes, lst: List, head: bool, count: int) -> None:
    """src/t_list.c listElementsRemoved."""
    ctx.notify("l", b"lpop" if head else b"rpop", key)
    if not lst.items:
        ctx.db.delete(key)
        ctx.notify("g", b"del", key)
    else:
        lst.shrink_check(fill_of(ctx))
    ctx.modified(key)
    ctx.dirty += count


def new_list(ctx: Ctx, key: bytes) -> List:
    """createListListpackObject + dbAdd (which signals blocked clients)."""
    lst = List()
    ctx.db.add(key, lst)
    ctx.ready(key)
    return lst


# -- pushes ----------------------------------------------------------------------------------
def _push_command(head: bool, xx: bool) -> Handler:
    """LPUSH, RPUSH, LPUSHX and RPUSHX: one body (src/t_list.c pushGenericCommand), made per
    command so that the handler is the body itself (no call in between on this hot path)."""
    event = b"lpush" if head else b"rpush"

    def push(ctx: Ctx, argv: list[bytes]) -> Any:
        key = argv[1]
        db = ctx.db
        # the common case without a call: a list whose key has no TTL (lookup's lazy expiry
        # is the general path's)
        lst = db.data.get(key)
        if type(lst) is not List or key in db.expires:
            lst = db.lookup(ctx, key)
            if lst is None:
                if xx:
                    return 0
                lst = new_list(ctx, key)
            elif type(lst) is not List:
                raise CommandError(WRONGTYPE)
        # list-max-listpack-size matters to a listpack only: a quicklist keeps its own fill
        fill = ctx.engine.config.values[_FILL] if lst.nodes is None else lst.fill
        if len(argv) == 3:
            lst.push_one(argv[2], head, fill)
            ctx.dirty += 1
        else:
            values = argv[2:]
            lst.push(values, head, fill)
            ctx.dirty += len(values)
        ctx.modified(key)
        ctx.notify("l", event, key)
        return len(lst.items)

    return push


def _push_run(head: bool, xx: bool) -> RunHandler:
    """A run of one of the pushes (Engine.execute_run): each as push does it, up to a key with
    a TTL, of another type, or missing for LPUSHX/RPUSHX (a reply 0 that changes nothing)."""

    def run(ctx: Ctx, argv: list[bytes], more: list[Any]) -> list[bytes]:
        db = ctx.db
        data = db.data
        expires = db.expires
        default_fill = ctx.engine.config.values[_FILL]
        out: list[bytes] = []
        dirty = 0
        ready = False
        items = [argv[1:], *more]
        n = len(items)
        i = 0
        while i < n and not ready:  # (blocked clients may want a new list before the next one)
            item = items[i]
            key = item[0]
            lst = data.get(key)
            if type(lst) is not List or key in expires:
                if lst is not None or xx:
                    break
                lst = new_list(ctx, key)
                ready = True
            if lst.nodes is not None and len(item) == 2:
                # single pushes to one quicklist in a row (a run's items all have one argument
                # count): one List.push, which pushes them one by one as each command would (a
                # quicklist keeps its own fill)
                rest = items[i:]
                keys = list(map(_FIRST, rest))
                if keys.count(key) == len(keys):
                    j = n
                else:
                    j = i + 1
                    while j < n and items[j][0] == key:
                        j += 1
                k0 = len(lst.items)
                lst.push(list(map(_SECOND, items[i:j])), head, lst.fill)
                out += integers(range(k0 + 1, k0 + 1 + j - i))
                dirty += j - i
                i = j
                continue
            fill = default_fill if lst.nodes is None else lst.fill
            if len(item) == 2:
                lst.push_one(item[1], head, fill)
                dirty += 1
            else:
                values = list(item[1:])
                lst.push(values, head, fill)
                dirty += len(values)
            out.append(integer(len(lst.items)))
            i += 1
        ctx.dirty += dirty
        return out

    return run


_FIRST, _SECOND = itemgetter(0), itemgetter(1)

for _name, _head, _xx in (
    ("lpush", True, False), ("rpush", False, False), ("lpushx", True, True), ("rpushx", False, True)
):  # fmt: skip
    command(_name, -3, "write denyoom fast", 1, 1, 1, acl="@write @list @fast")(
        _push_command(head=_head, xx=_xx)
    )
    run_handler(_name)(_push_run(_head, _xx))


# -- pops ------------------------------------------------------------------------------------
def _pop(ctx: Ctx, argv: list[bytes], head: bool) -> Any:
    """src/t_list.c popGenericCommand."""
    argc = len(argv)
    key = argv[1]
    if argc == 2:
        lst = get_list(ctx, key)
        if lst is None:
            return None
        v = lst.pop(head)
        elements_removed(ctx, key, lst, head, 1)
        return v
    if argc > 3:
        raise wrong_arity(b"lpop" if head else b"rpop")
    count = range_long(argv[2], 0, LLONG_MAX, NOT_POSITIVE)
    lst = get_list(ctx, key)
    if lst is None:
        return NULL_ARRAY
    if not count:
        return []
    out = lst.pop_many(count, head)
    elements_removed(ctx, key, lst, head, len(out))
    return out


@command("lpop", -2, "write fast", 1, 1, 1, acl="@write @list @fast")
def lpop(ctx: Ctx, argv: list[bytes]) -> Any:
    return _pop(ctx, argv, True)


@command("rpop", -2, "write fast", 1, 1, 1, acl="@write @list @fast")
def rpop(ctx: Ctx, argv: list[bytes]) -> Any:
    return _pop(ctx, argv, False)


def pop_range_with_key(ctx: Ctx, keys: list[bytes], head: bool, count: int) -> Any:
    """src/t_list.c mpopGenericCommand / the BLMPOP serving path: [key, [elements]] from the
    first non-empty list, propagated as ``LPOP|RPOP key n``; None when every list is empty."""
    for key in keys:
        lst = get_list(ctx, key)
        if lst is None or not lst.items:
            continue
        out = lst.pop_many(count, head)
        elements_removed(ctx, key, lst, head, len(out))
        ctx.rewrite([_LPOP if head else _RPOP, key, b"%d" % len(out)])
        return [key, out]
    return None


def parse_mpop(argv: list[bytes], numkeys_at: int) -> tuple[list[bytes], bool, int]:
    """src/t_list.c lmpopGenericCommand argument parsing: (keys, head, count)."""
    numkeys = range_long(argv[numkeys_at], 1, LLONG_MAX, NUMKEYS_POSITIVE)
    where_at = numkeys_at + numkeys + 1
    if where_at >= len(argv):
        raise CommandError(SYNTAX)
    head = where_arg(argv[where_at])
    count = -1
    j = where_at + 1
    n = len(argv)
    while j < n:
        if count == -1 and argv[j].upper() == b"COUNT" and j + 1 < n:
            count = range_long(argv[j + 1], 1, LLONG_MAX, _COUNT_POSITIVE_MSG)
            j += 2
        else:
            raise CommandError(SYNTAX)
    return argv[numkeys_at + 1 : where_at], head, (1 if count == -1 else count)


@command("lmpop", -4, "write movablekeys", acl="@write @list @slow", keys=keys_from_numkeys(1, 2))
def lmpop(ctx: Ctx, argv: list[bytes]) -> Any:
    keys, head, count = parse_mpop(argv, 1)
    out = pop_range_with_key(ctx, keys, head, count)
    return NULL_ARRAY if out is None else out


# -- reads -----------------------------------------------------------------------------------
@command("llen", 2, "readonly fast", 1, 1, 1, acl="@read @list @fast")
def llen(ctx: Ctx, argv: list[bytes]) -> Any:
    lst = get_list(ctx, argv[1])
    return 0 if lst is None else len(lst.items)


@command("lindex", 3, "readonly", 1, 1, 1, acl="@read @list @slow")
def lindex(ctx: Ctx, argv: list[bytes]) -> Any:
    lst = get_list(ctx, argv[1])
    if lst is None:
        return None
    index = int_arg(argv[2])
    items = lst.items
    if -len(items) <= index < len(items):
        return items[index]
    return None


def _range_bounds(start: int, end: int, llen: int) -> tuple[int, int]:
    """src/t_list.c addListRangeReply index rules: [start, end) or an empty range."""
    if start < 0:
        start += llen
    if end < 0:
        end += llen
    if start < 0:
        start = 0
    if start > end or start >= llen:
        return 0, 0
    if end >= llen:
        end = llen - 1
    return start, end + 1


@command("lrange", 4, "readonly", 1, 1, 1, acl="@read @list @slow")
def lrange(ctx: Ctx, argv: list[bytes]) -> Any:
    start = int_arg(argv[2])
    end = int_arg(argv[3])
    lst = get_list(ctx, argv[1])
    if lst is None:
        return EMPTY
    items = lst.items
    n = len(items)
    a, b = _range_bounds(start, end, n)
    if a >= b:
        return EMPTY
    if a > n - b:  # nearer the tail: walk from there
        out = list(islice(reversed(items), n - b, n - a))
        out.reverse()
        return out
    return list(islice(items, a, b))


@command("lpos", -3, "readonly", 1, 1, 1, acl="@read @list @slow")
def lpos(ctx: Ctx, argv: list[bytes]) -> Any:
    ele = argv[2]
    rank, count, maxlen = 1, -1, 0
    j = 3
    n = len(argv)
    while j < n:
        opt = argv[j].upper()
        more = j + 1 < n
        if opt == b"RANK" and more:
            rank = range_long(argv[j + 1], -LLONG_MAX, LLONG_MAX)
            if rank == 0:
                raise CommandError(LPOS_RANK_ZERO)
        elif opt == b"COUNT" and more:
            count = range_long(argv[j + 1], 0, LLONG_MAX, LPOS_COUNT_NEGATIVE)
        elif opt == b"MAXLEN" and more:
            maxlen = range_long(argv[j + 1], 0, LLONG_MAX, LPOS_MAXLEN_NEGATIVE)
        else:
            raise CommandError(SYNTAX)
        j += 2
    lst = get_list(ctx, argv[1])
    if lst is None:
        return EMPTY if count != -1 else None
    items = lst.items
    llen = len(items)
    forward = rank > 0
    if not forward:
        rank = -rank
    seq = items if forward else reversed(items)
    if maxlen:
        seq = islice(seq, maxlen)
    matches = 0
    found: list[int] = []
    for i, v in enumerate(seq):
        if v == ele:
            matches += 1
            if matches >= rank:
                found.append(i if forward else llen - i - 1)
                if count == -1 or (count and matches - rank + 1 >= count):
                    break
    if count != -1:
        return found
    return found[0] if found else None


# -- in-place changes ------------------------------------------------------------------------
@command("lset", 4, "write denyoom", 1, 1, 1, acl="@write @list @slow")
def lset(ctx: Ctx, argv: list[bytes]) -> Any:
    key = argv[1]
    lst = get_list(ctx, key)
    if lst is None:
        raise CommandError(NO_SUCH_KEY)
    index = int_arg(argv[2])
    value = argv[3]
    fill = fill_of(ctx)
    # src/t_list.c lsetCommand: the growing check runs before the index is known to be valid
    lst.grow_check(fill, len(value), 1)
    n = len(lst.items)
    if not -n <= index < n:
        raise CommandError(OUT_OF_RANGE)
    lst.replace(index % n, value)
    lst.shrink_check(fill)
    ctx.modified(key)
    ctx.notify("l", b"lset", key)
    ctx.dirty += 1
    return OK


@command("linsert", 5, "write denyoom", 1, 1, 1, acl="@write @list @slow")
def linsert(ctx: Ctx, argv: list[bytes]) -> Any:
    where = argv[2].lower()
    if where == b"after":
        after = True
    elif where == b"before":
        after = False
    else:
        raise CommandError(SYNTAX)
    key = argv[1]
    lst = get_list(ctx, key)
    if lst is None:
        return 0
    # src/t_list.c linsertCommand: converts before knowing whether the pivot exists
    lst.grow_check(fill_of(ctx), len(argv[4]), 1)
    try:
        i = lst.items.index(argv[3])
    except ValueError:
        return -1
    lst.insert(i, argv[4], after)
    ctx.modified(key)
    ctx.notify("l", b"linsert", key)
    ctx.dirty += 1
    return len(lst.items)


@command("lrem", 4, "write", 1, 1, 1, acl="@write @list @slow")
def lrem(ctx: Ctx, argv: list[bytes]) -> Any:
    toremove = range_long(argv[2], -LLONG_MAX, LLONG_MAX)
    key = argv[1]
    lst = get_list(ctx, key)
    if lst is None:
        return 0
    ele = argv[3]
    items = lst.items
    n = len(items)
    if toremove < 0:
        limit = -toremove
        pos = [n - 1 - i for i, v in enumerate(reversed(items)) if v == ele]
        if len(pos) > limit:
            del pos[limit:]
        pos.reverse()
    else:
        pos = [i for i, v in enumerate(items) if v == ele]
        if toremove and len(pos) > toremove:
            del pos[toremove:]
    if not pos:
        return 0
    lst.delete_positions(pos)
    if len(pos) == n:
        items.clear()
    else:
        gone = set(pos)
        kept = [v for i, v in enumerate(items) if i not in gone]
        items.clear()
        items.extend(kept)
    ctx.dirty += len(pos)
    ctx.notify("l", b"lrem", key)
    if not items:
        ctx.db.delete(key)
        ctx.notify("g", b"del", key)
    else:
        lst.shrink_check(fill_of(ctx))
    ctx.modified(key)
    return len(pos)


@command("ltrim", 4, "write", 1, 1, 1, acl="@write @list @slow")
def ltrim(ctx: Ctx, argv: list[bytes]) -> Any:
    start = int_arg(argv[2])
    end = int_arg(argv[3])
    key = argv[1]
    lst = get_list(ctx, key)
    if lst is None:
        return OK
    items = lst.items
    n = len(items)
    a, b = _range_bounds(start, end, n)
    if a >= b:
        ltrim_, rtrim = n, 0
    else:
        ltrim_, rtrim = a, n - b
    if rtrim:
        lst.delete_span(n - rtrim, n)
    if ltrim_:
        lst.delete_span(0, ltrim_)
    if ltrim_ == n:
        items.clear()
    else:
        for _ in range(rtrim):
            items.pop()
        for _ in range(ltrim_):
            items.popleft()
    ctx.notify("l", b"ltrim", key)
    if not items:
        ctx.db.delete(key)
        ctx.notify("g", b"del", key)
    else:
        lst.shrink_check(fill_of(ctx))
    total = ltrim_ + rtrim
    if total:
        ctx.modified(key)
    ctx.dirty += total
    return OK


# -- moves -----------------------------------------------------------------------------------
def where_arg(b: bytes) -> bool:
    """src/t_list.c getListPositionFromObjectOrReply: True for LEFT (head)."""
    w = b.lower()
    if w == b"left":
        return True
    if w == b"right":
        return False
    raise CommandError(SYNTAX)


def lmove_generic(ctx: Ctx, src_key: bytes, dst_key: bytes, from_head: bool, to_head: bool) -> Any:
    """src/t_list.c lmoveGenericCommand (the caller rewrites the blocking forms)."""
    src = get_list(ctx, src_key)
    if src is None or not src.items:
        return None
    dst = get_list(ctx, dst_key)
    was_quicklist = src.nodes is not None
    value = src.pop(from_head)
    # lmoveHandlePush: a value popped from a quicklist that holds an integer is an
    # int-encoded object, which listTypeTryConversionAppend does not count (src/t_list.c)
    add = 0 if was_quicklist and string2ll(value) is not None else len(value)
    if dst is None:
        dst = new_list(ctx, dst_key)
    dst.push([value], to_head, fill_of(ctx), add)
    ctx.modified(dst_key)
    ctx.notify("l", b"lpush" if to_head else b"rpush", dst_key)
    elements_removed(ctx, src_key, src, from_head, 1)
    return value


@command("lmove", 5, "write denyoom", 1, 2, 1, acl="@write @list @slow")
def lmove(ctx: Ctx, argv: list[bytes]) -> Any:
    from_head = where_arg(argv[3])
    to_head = where_arg(argv[4])
    return lmove_generic(ctx, argv[1], argv[2], from_head, to_head)


@command("rpoplpush", 3, "write denyoom", 1, 2, 1, acl="@write @list @slow")
def rpoplpush(ctx: Ctx, argv: list[bytes]) -> Any:
    return lmove_generic(ctx, argv[1], argv[2], False, True)


from engine.commands import lists_blocking as _blocking  # noqa: E402, F401 - registers B* commands
