"""Streams (src/t_stream.c, src/stream.h).

How this works: the live entries are ``ids`` (sorted ``(ms, seq)`` tuples) and ``entries``
(id -> flat ``[field, value, ...]``). Valkey keeps them in a rax of listpack nodes, and that
layout is observable: approximate trimming (``MAXLEN ~`` / ``MINID ~``) only drops whole nodes,
a node keeps its deleted entries (tombstones) until it is dropped, and XINFO STREAM reports
``radix-tree-keys`` / ``radix-tree-nodes``. So the nodes are modelled: :class:`Node` keeps the
master ID and fields, the live and deleted counts, the listpack byte size and the last ID
(tombstones included), updated exactly as streamAppendItem / streamTrim /
streamIteratorRemoveEntry update the real listpacks (sizes from src/listpack.c encodings).

Consumer groups hold a PEL (id -> :class:`Nack`, sorted) and consumers with their own PELs
sharing the same :class:`Nack` objects, like Valkey's streamCG / streamConsumer / streamNACK.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from sortedcontainers import SortedDict  # type: ignore[import-untyped]

from engine.types.base import TypeInfo, register
from persistence.records import (
    StreamConsumer,
    StreamGroup,
    StreamID,
    StreamPending,
    StreamValue,
    Value,
)
from persistence.resp.tokens import string2ll
from persistence.stream_lag import group_lag

Id = tuple[int, int]
U64 = 2**64 - 1
MIN_ID: Id = (0, 0)
MAX_ID: Id = (U64, U64)
INVALID_ENTRIES_READ = -1  # src/stream.h SCG_INVALID_ENTRIES_READ
LISTPACK_MAX_SIZE = 1 << 30  # src/t_stream.c STREAM_LISTPACK_MAX_SIZE
FLAG_SAMEFIELDS = 2  # src/t_stream.c STREAM_ITEM_FLAG_SAMEFIELDS


def id_bytes(sid: Id) -> bytes:
    return b"%d-%d" % sid


# ---- listpack entry sizes (src/listpack.c) -----------------------------------------------


def _int_len(v: int) -> int:
    """Bytes of an integer listpack entry: encoding + 1 byte backlen."""
    if 0 <= v <= 127:
        return 2
    if -4096 <= v <= 4095:
        return 3
    if -32768 <= v <= 32767:
        return 4
    if -8388608 <= v <= 8388607:
        return 5
    if -2147483648 <= v <= 2147483647:
        return 6
    return 10


def _backlen_len(n: int) -> int:
    if n <= 127:
        return 1
    if n < 16383:
        return 2
    if n < 2097151:
        return 3
    if n < 268435455:
        return 4
    return 5


def _str_len(s: bytes) -> int:
    """Bytes of lpAppend(s): integer-looking strings are stored as integers."""
    n = len(s)
    if n <= 20:
        v = string2ll(s)
        if v is not None:
            return _int_len(v)
    enc = n + (1 if n < 64 else 2 if n < 4096 else 5)
    return enc + _backlen_len(enc)


def _s64(v: int) -> int:
    """uint64 arithmetic seen as int64 (the ID deltas lpAppendInteger stores)."""
    v &= U64
    return v - (1 << 64) if v >= 1 << 63 else v


class Node:
    """One rax node: a listpack of entries sharing a master entry."""

    __slots__ = ("base", "deleted", "fields", "last", "live", "master")

    def __init__(self, master: Id, fields: list[bytes]) -> None:
        self.master = master
        self.fields = fields
        self.live = 0
        self.deleted = 0
        self.last = master
        # header (6) + EOF (1) + num-fields + fields + the master entry's 0 terminator
        self.base = 7 + _int_len(len(fields)) + sum(map(_str_len, fields)) + 2

    def nbytes(self) -> int:
        return self.base + _int_len(self.live) + _int_len(self.deleted)

    def copy(self) -> Node:
        n = Node.__new__(Node)
        n.master, n.fields, n.live, n.deleted = self.master, self.fields, self.live, self.deleted
        n.last, n.base = self.last, self.base
        return n


class Nack:
    __slots__ = ("consumer", "delivery_count", "delivery_time")

    def __init__(self, consumer: Consumer | None, now_ms: int) -> None:
        self.consumer = consumer
        self.delivery_time = now_ms
        self.delivery_count = 1


class Consumer:
    __slots__ = ("active_time", "name", "pel", "seen_time")

    def __init__(self, name: bytes, now_ms: int) -> None:
        self.name = name
        self.seen_time = now_ms
        self.active_time = -1
        self.pel: SortedDict[Id, Nack] = SortedDict()


class Group:
    __slots__ = ("consumers", "entries_read", "last_id", "pel")

    def __init__(self, last_id: Id, entries_read: int) -> None:
        self.last_id = last_id
        self.entries_read = entries_read
        self.pel: SortedDict[Id, Nack] = SortedDict()
        self.consumers: dict[bytes, Consumer] = {}

    def sorted_consumers(self) -> list[Consumer]:
        return [self.consumers[k] for k in sorted(self.consumers)]


class Stream:
    __slots__ = (
        "entries",
        "entries_added",
        "first_id",
        "groups",
        "ids",
        "last_id",
        "max_deleted_id",
        "nodes",
    )

    def __init__(self) -> None:
        self.ids: list[Id] = []
        self.entries: dict[Id, list[bytes]] = {}
        self.nodes: list[Node] = []
        self.last_id: Id = MIN_ID
        self.first_id: Id = MIN_ID
        self.max_deleted_id: Id = MIN_ID
        self.entries_added = 0
        self.groups: dict[bytes, Group] = {}

    def __len__(self) -> int:
        return len(self.ids)

    # -- entries --------------------------------------------------------------------------
    def append(self, sid: Id, fv: list[bytes], max_bytes: int, max_entries: int) -> None:
        """streamAppendItem with a checked ID: node choice and listpack sizes as Valkey's."""
        nodes = self.nodes
        node = nodes[-1] if nodes else None
        nf = len(fv) // 2
        if node is not None:
            limit = max_bytes if 0 < max_bytes <= LISTPACK_MAX_SIZE else LISTPACK_MAX_SIZE
            if node.nbytes() + sum(map(len, fv)) >= limit or (
                max_entries and node.live + node.deleted >= max_entries
            ):
                node = None
        if node is None:
            node = Node(sid, fv[0::2])
            nodes.append(node)
            same = True
        else:
            mf = node.fields
            same = nf == len(mf) and all(mf[i] == fv[2 * i] for i in range(nf))
        master = node.master
        size = 2 + _int_len(_s64(sid[0] - master[0])) + _int_len(_s64(sid[1] - master[1]))
        if same:
            size += sum(map(_str_len, fv[1::2])) + _int_len(nf + 3)
        else:
            size += _int_len(nf) + sum(map(_str_len, fv)) + _int_len(2 * nf + 4)
        node.base += size
        node.live += 1
        node.last = sid
        self.ids.append(sid)
        self.entries[sid] = fv
        self.entries_added += 1
        self.last_id = sid
        if len(self.ids) == 1:
            self.first_id = sid

    def delete(self, sid: Id) -> bool:
        """streamDeleteItem: tombstone one live entry (the node goes when it empties)."""
        if self.entries.pop(sid, None) is None:
            return False
        ids = self.ids
        del ids[bisect_left(ids, sid)]
        nodes = self.nodes
        i = bisect_right(nodes, sid, key=_master) - 1
        node = nodes[i]
        if node.live == 1:
            del nodes[i]
        else:
            node.live -= 1
            node.deleted += 1
        return True

    def trim(self, maxlen: int | None, minid: Id | None, approx: bool, limit: int) -> int:
        """streamTrim: MAXLEN (``maxlen``) or MINID (``minid``); returns entries removed."""
        nodes = self.nodes
        ids = self.ids
        deleted = 0
        while nodes:
            if maxlen is not None and len(ids) <= maxlen:
                break
            node = nodes[0]
            n = node.live
            if limit and deleted + n > limit:
                break
            if maxlen is not None:
                remove = len(ids) - n >= maxlen
            else:
                assert minid is not None
                remove = node.last < minid
            if remove:
                del nodes[0]
                self._drop_head(n)
                deleted += n
                continue
            if approx:
                break
            if maxlen is not None:
                k = len(ids) - maxlen
            else:
                assert minid is not None
                k = bisect_left(ids, minid)
            if k > 0:
                self._drop_head(k)
                node.live -= k
                node.deleted += k
                deleted += k
            break
        if not ids:
            self.first_id = MIN_ID
        elif deleted:
            self.first_id = ids[0]
        return deleted

    def _drop_head(self, n: int) -> None:
        entries = self.entries
        ids = self.ids
        for sid in ids[:n]:
            del entries[sid]
        del ids[:n]

    def range(self, start: Id, end: Id, count: int = 0, rev: bool = False) -> list[Id]:
        """Live IDs in [start, end], at most ``count`` (0 = all), reversed when ``rev``."""
        ids = self.ids
        lo = bisect_left(ids, start)
        hi = bisect_right(ids, end)
        if lo >= hi:
            return []
        if not rev:
            return ids[lo : lo + count if count and lo + count < hi else hi]
        if count and hi - count > lo:
            lo = hi - count
        out = ids[lo:hi]
        out.reverse()
        return out

    def last_valid_id(self) -> Id:
        """streamLastValidID: the last live entry (0-0 when empty)."""
        return self.ids[-1] if self.ids else MIN_ID

    # -- introspection --------------------------------------------------------------------
    def rax_nodes(self) -> int:
        """The rax's numnodes for the node keys (128-bit big-endian master IDs)."""
        keys = [m[0].to_bytes(8, "big") + m[1].to_bytes(8, "big") for m in map(_master, self.nodes)]
        if not keys:
            return 1
        return _rax_count(sorted(keys), 0)

    def lag(self, g: Group) -> int | None:
        return group_lag(
            self.entries_added, len(self.ids), self.first_id, self.last_id,
            self.max_deleted_id, g.last_id, g.entries_read,
        )  # fmt: skip

    def estimate_entries_read(self, sid: Id) -> int:
        from persistence.stream_lag import estimate_distance

        v = estimate_distance(
            self.entries_added, len(self.ids), self.first_id, self.last_id,
            self.max_deleted_id, sid,
        )  # fmt: skip
        return INVALID_ENTRIES_READ if v is None else v

    def copy(self) -> Stream:
        """streamDup: same nodes, entries, metadata, groups, consumers and PELs."""
        s = Stream()
        s.ids = list(self.ids)
        s.entries = dict(self.entries)
        s.nodes = [n.copy() for n in self.nodes]
        s.last_id, s.first_id = self.last_id, self.first_id
        s.max_deleted_id, s.entries_added = self.max_deleted_id, self.entries_added
        for name, g in self.groups.items():
            ng = Group(g.last_id, g.entries_read)
            for cname, c in g.consumers.items():
                nc = Consumer(cname, c.seen_time)
                nc.active_time = c.active_time
                ng.consumers[cname] = nc
            for sid, nack in g.pel.items():
                nn = Nack(None, nack.delivery_time)
                nn.delivery_count = nack.delivery_count
                if nack.consumer is not None:
                    nn.consumer = ng.consumers[nack.consumer.name]
                    nn.consumer.pel[sid] = nn
                ng.pel[sid] = nn
            s.groups[name] = ng
        return s


def _master(n: Node) -> Id:
    return n.master


def _rax_count(keys: list[bytes], depth: int) -> int:
    """Nodes of a rax holding ``keys`` (all of one length, sharing ``depth`` bytes): a branch
    is a plain node, a single path a compressed node, the end a key node (src/rax.c)."""
    width = len(keys[0])
    if depth == width:
        return 1
    if len(keys) == 1:
        return 2
    first, last = keys[0], keys[-1]
    d = depth
    while first[d] == last[d]:
        d += 1
    if d > depth:  # a compressed node for the common part, then the branch below it
        return 1 + _rax_count(keys, d)
    total = 1
    i = 0
    n = len(keys)
    while i < n:
        j = i + 1
        b = keys[i][depth]
        while j < n and keys[j][depth] == b:
            j += 1
        total += _rax_count(keys[i:j], depth + 1)
        i = j
    return total


# ---- records --------------------------------------------------------------------------------


def _sid(i: Id) -> StreamID:
    return StreamID(i[0], i[1])


def _tid(s: StreamID) -> Id:
    return (s.ms, s.seq)


def _to_record(s: Stream) -> Value:
    entries = []
    for sid in s.ids:
        fv = s.entries[sid]
        entries.append((_sid(sid), list(zip(fv[0::2], fv[1::2], strict=True))))
    groups = []
    for name in sorted(s.groups):
        g = s.groups[name]
        pel = [
            StreamPending(_sid(i), n.consumer.name if n.consumer else b"", n.delivery_time,
                          n.delivery_count)
            for i, n in g.pel.items()
        ]  # fmt: skip
        consumers = [
            StreamConsumer(c.name, c.seen_time, c.active_time, [_sid(i) for i in c.pel])
            for c in g.sorted_consumers()
        ]
        groups.append(StreamGroup(name, _sid(g.last_id), g.entries_read, pel, consumers))
    return StreamValue(
        entries, len(s.ids), _sid(s.last_id), _sid(s.first_id), _sid(s.max_deleted_id),
        s.entries_added, groups,
    )  # fmt: skip


def from_stream_value(v: StreamValue, max_bytes: int = 4096, max_entries: int = 100) -> Stream:
    """A stream from a record. The node layout is rebuilt by appending the live entries (the
    record does not carry the source's listpacks and tombstones)."""
    s = Stream()
    for sid, pairs in v.entries:
        fv: list[bytes] = []
        for f, x in pairs:
            fv.append(f)
            fv.append(x)
        s.append(_tid(sid), fv, max_bytes, max_entries)
    s.last_id = _tid(v.last_id)
    s.first_id = _tid(v.first_id)
    s.max_deleted_id = _tid(v.max_deleted_id)
    s.entries_added = v.entries_added
    for rg in v.groups:
        g = Group(_tid(rg.last_id), rg.entries_read)
        for rc in rg.consumers:
            c = Consumer(rc.name, rc.seen_time_ms)
            c.active_time = rc.active_time_ms
            g.consumers[rc.name] = c
        for p in rg.pel:
            c2 = g.consumers.get(p.consumer)
            if c2 is None:
                c2 = g.consumers[p.consumer] = Consumer(p.consumer, 0)
            nack = Nack(c2, p.delivery_time_ms)
            nack.delivery_count = p.delivery_count
            sid2 = _tid(p.id)
            g.pel[sid2] = nack
            c2.pel[sid2] = nack
        s.groups[rg.name] = g
    return s


def _from_record(v: Value) -> Stream:
    assert isinstance(v, StreamValue)
    return from_stream_value(v)


register(TypeInfo("stream", Stream, _to_record, _from_record, lambda s: "stream", Stream.copy))
