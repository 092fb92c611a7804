"""Value type: lists, a deque of ``bytes`` plus a model of Valkey's encoding.

How this works: the elements live in a :class:`collections.deque` (O(1) pushes and pops at both
ends). OBJECT ENCODING must say what Valkey 9 would say, and Valkey's choice depends on byte
sizes and on the shape of its quicklist, so beside the deque we keep only numbers:

- listpack encoding: ``lp`` is the exact ``lpBytes`` of the listpack Valkey would hold (6-byte
  header + entries + EOF; entry sizes as src/listpack.c encodes them, integers included);
- quicklist encoding: ``nodes`` is the quicklist's node list, each node ``[sz, count, plain]``
  (``sz`` = lpBytes of the node's listpack, or the element size of a PLAIN node), updated the
  way src/quicklist.c pushes, pops, deletes, inserts (split + merge) and replaces.

Conversions follow src/t_list.c listTypeTryConversion: listpack -> quicklist before a push when
``lpBytes + added bytes`` exceeds the ``list-max-listpack-size`` limit; quicklist -> listpack
after a removal when a single packed node is at most half the limit. Callers pass the current
``list-max-listpack-size`` (``fill``); a quicklist keeps the fill it was created with.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from itertools import islice

from engine.types.base import TypeInfo, register
from persistence.records import ListValue, Value
from persistence.resp.tokens import string2ll

# src/quicklist.c
_OPTIMIZATION_LEVEL = (4096, 8192, 16384, 32768, 65536)
SIZE_SAFETY_LIMIT = 8192
SIZE_ESTIMATE_OVERHEAD = 8
FILL_MAX = (1 << 15) - 1  # (1 << (QL_FILL_BITS - 1)) - 1
LP_EMPTY = 7  # LP_HDR_SIZE + LP_EOF
DEFAULT_FILL = -2  # list-max-listpack-size default
_UINT_MAX = (1 << 32) - 1
_SIZE_MAX = (1 << 64) - 1

Node = list[int]  # [sz, count, plain]
_INT_START = frozenset(b"-0123456789")  # the first bytes string2ll may accept


def entry_size(v: bytes) -> int:
    """Bytes of one listpack entry holding ``v`` (src/listpack.c lpEncodeGetType + backlen)."""
    n = len(v)
    if n and v[0] in _INT_START and n <= 20:
        i = string2ll(v)
        if i is not None:
            if 0 <= i <= 127:
                return 2
            if -4096 <= i <= 4095:
                return 3
            if -32768 <= i <= 32767:
                return 4
            if -8388608 <= i <= 8388607:
                return 5
            if -2147483648 <= i <= 2147483647:
                return 6
            return 10
    if n < 64:
        return n + 2  # 1-byte header, 1-byte backlen (n + 1 <= 127)
    el = n + 2 if n < 4096 else n + 5
    if el <= 127:
        return el + 1
    if el < 16383:
        return el + 2
    if el < 2097151:
        return el + 3
    if el < 268435455:
        return el + 4
    return el + 5


def node_limit(fill: int) -> tuple[int, int]:
    """src/quicklist.c quicklistNodeLimit: (size limit, count limit)."""
    if fill >= 0:
        return _SIZE_MAX, (fill or 1)
    return _OPTIMIZATION_LEVEL[min(-fill - 1, 4)], _UINT_MAX


def exceeds(fill: int, sz: int, count: int) -> bool:
    """src/quicklist.c quicklistNodeExceedsLimit."""
    if fill < 0:
        return sz > _OPTIMIZATION_LEVEL[min(-fill - 1, 4)]
    if sz > SIZE_SAFETY_LIMIT:
        return True
    return count > (fill or 1)


def is_large(sz: int, fill: int) -> bool:
    """src/quicklist.c isLargeElement: such an element gets its own PLAIN node."""
    if fill >= 0:
        return sz > SIZE_SAFETY_LIMIT
    return sz > _OPTIMIZATION_LEVEL[min(-fill - 1, 4)]


class List:
    """A list value (see the module docstring)."""

    __slots__ = ("fill", "items", "lp", "nodes")

    def __init__(self) -> None:
        self.items: deque[bytes] = deque()
        self.lp = LP_EMPTY  # lpBytes while listpack-encoded
        self.nodes: list[Node] | None = None  # quicklist nodes, None while listpack
        self.fill = DEFAULT_FILL  # the quicklist's own fill (quicklistSetFill)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"List({list(self.items)!r}, {encoding(self)})"

    # -- conversions (src/t_list.c) -------------------------------------------------------
    def grow_check(self, fill: int, add_bytes: int, add_count: int) -> None:
        """listTypeTryConversionAppend: convert to quicklist before adding elements."""
        if self.nodes is None and exceeds(fill, self.lp + add_bytes, len(self.items) + add_count):
            self.fill = max(-5, min(fill, FILL_MAX))
            self.nodes = [[self.lp, len(self.items), 0]] if self.items else []

    def shrink_check(self, fill: int) -> None:
        """listTypeTryConvertQuicklist(shrinking=1): back to listpack below half the limit."""
        nodes = self.nodes
        if nodes is None or len(nodes) != 1 or nodes[0][2]:
            return
        sz_limit, count_limit = node_limit(fill)
        node = nodes[0]
        if node[0] > sz_limit // 2 or node[1] > count_limit // 2:
            return
        self.lp = node[0]
        self.nodes = None

    # -- ends -----------------------------------------------------------------------------
    def push(self, values: list[bytes], head: bool, fill: int, add_bytes: int = -1) -> None:
        """Push ``values`` one by one at the head or tail (pushGenericCommand)."""
        if self.nodes is None:
            if add_bytes < 0:
                add_bytes = len(values[0]) if len(values) == 1 else sum(map(len, values))
            self.grow_check(fill, add_bytes, len(values))
        nodes = self.nodes
        if nodes is None:
            lp = self.lp
            for v in values:
                lp += entry_size(v)
            self.lp = lp
        else:
            self._ql_push_all(nodes, values, head)
        if head:
            self.items.extendleft(values)
        else:
            self.items.extend(values)

    def push_one(self, v: bytes, head: bool, fill: int) -> None:
        """:meth:`push` of one element (LPUSH key element), without its temporaries."""
        if self.nodes is None:
            self.grow_check(fill, len(v), 1)
        nodes = self.nodes
        if nodes is None:
            self.lp += entry_size(v)
        else:
            self._ql_push_all(nodes, (v,), head)
        if head:
            self.items.appendleft(v)
        else:
            self.items.append(v)

    def _ql_push(self, nodes: list[Node], v: bytes, head: bool) -> None:
        """quicklistPushHead / quicklistPushTail (the common case: :meth:`_ql_push_all`)."""
        sz = len(v)
        fill = self.fill
        if is_large(sz, fill):
            node: Node = [sz, 1, 1]
        else:
            tail = (nodes[0] if head else nodes[-1]) if nodes else None
            if tail is not None and self._allow_insert(tail, sz):
                tail[0] += entry_size(v)
                tail[1] += 1
                return
            node = [LP_EMPTY + entry_size(v), 1, 0]
        if head:
            nodes.insert(0, node)
        else:
            nodes.append(node)

    def _ql_push_all(self, nodes: list[Node], values: Sequence[bytes], head: bool) -> None:
        """:meth:`_ql_push` of each value in order, the common case (size-limited nodes, an end
        node with room, a small value that is no integer) without a call per value."""
        fill = self.fill
        if fill < 0 and nodes:
            limit = _OPTIMIZATION_LEVEL[-fill - 1]  # fill is clamped to -5..
            end = nodes[0] if head else nodes[-1]
            if not end[2]:
                sz, count = end[0], end[1]
                for i, v in enumerate(values):
                    n = len(v)
                    if n > limit or sz + n + SIZE_ESTIMATE_OVERHEAD > limit:
                        end[0], end[1] = sz, count
                        values = values[i:]  # (a new node: _ql_push for the rest)
                        break
                    sz += n + 2 if n < 64 and (not n or v[0] not in _INT_START) else entry_size(v)
                    count += 1
                else:
                    end[0], end[1] = sz, count
                    return
        for v in values:
            self._ql_push(nodes, v, head)

    def _allow_insert(self, node: Node | None, sz: int) -> bool:
        """src/quicklist.c _quicklistNodeAllowInsert."""
        if node is None or node[2] or is_large(sz, self.fill):
            return False
        return not exceeds(self.fill, node[0] + sz + SIZE_ESTIMATE_OVERHEAD, node[1] + 1)

    def pop(self, head: bool) -> bytes:
        """Remove and return the head or tail element (listTypePop)."""
        v = self.items.popleft() if head else self.items.pop()
        nodes = self.nodes
        if nodes is None:
            self.lp -= entry_size(v)
        else:
            i = 0 if head else -1
            node = nodes[i]
            if node[2] or node[1] == 1:
                del nodes[i]
            else:
                node[0] -= entry_size(v)
                node[1] -= 1
        return v

    def pop_many(self, count: int, head: bool) -> list[bytes]:
        """Remove ``count`` elements from one end, in pop order (listTypeDelRange)."""
        items = self.items
        n = len(items)
        k = min(count, n)
        if head:
            self.delete_span(0, k)
            return [items.popleft() for _ in range(k)]
        self.delete_span(n - k, n)
        return [items.pop() for _ in range(k)]

    # -- middle ---------------------------------------------------------------------------
    def delete_span(self, lo: int, hi: int) -> None:
        """Account for deleting positions [lo, hi) (call BEFORE changing ``items``).

        quicklistDelRange / lpDeleteRange: entries leave their nodes, empty nodes go, no merge.
        """
        if lo >= hi:
            return
        nodes = self.nodes
        if nodes is None:
            self.lp -= sum(map(entry_size, islice(self.items, lo, hi)))
            return
        out: list[Node] = []
        pos = 0
        items = self.items
        for node in nodes:
            cnt = node[1]
            a = lo if lo > pos else pos
            b = hi if hi < pos + cnt else pos + cnt
            if a < b:
                if b - a < cnt:
                    node[0] -= sum(map(entry_size, islice(items, a, b)))
                    node[1] -= b - a
                    out.append(node)
            else:
                out.append(node)
            pos += cnt
        nodes[:] = out

    def delete_positions(self, positions: list[int]) -> None:
        """Account for deleting the sorted positions (LREM; call before changing ``items``)."""
        nodes = self.nodes
        items = self.items
        if nodes is None:
            self.lp -= sum(entry_size(items[i]) for i in positions)
            return
        out: list[Node] = []
        pos = 0
        j = 0
        np_ = len(positions)
        for node in nodes:
            end = pos + node[1]
            gone = 0
            size = 0
            while j < np_ and positions[j] < end:
                gone += 1
                size += entry_size(items[positions[j]])
                j += 1
            if gone < node[1]:
                node[0] -= size
                node[1] -= gone
                out.append(node)
            pos = end
        nodes[:] = out

    def _locate(self, index: int) -> tuple[int, int, int]:
        """(node index, offset in node, position of the node's first element)."""
        assert self.nodes is not None
        pos = 0
        for i, node in enumerate(self.nodes):
            if index < pos + node[1]:
                return i, index - pos, pos
            pos += node[1]
        raise IndexError(index)

    def insert(self, index: int, value: bytes, after: bool) -> None:
        """Insert ``value`` before/after position ``index`` (listTypeInsert)."""
        if self.nodes is None:
            self.lp += entry_size(value)
        else:
            ni, off, _ = self._locate(index)
            self._ql_insert(ni, off, value, after)
        self.items.insert(index + 1 if after else index, value)

    def _ql_insert(self, ni: int, off: int, value: bytes, after: bool) -> None:
        """src/quicklist.c _quicklistInsert, on node sizes."""
        nodes = self.nodes
        assert nodes is not None
        node = nodes[ni]
        sz = len(value)
        full = not self._allow_insert(node, sz)
        at_tail = after and off == node[1] - 1
        at_head = not after and off == 0
        avail_next = at_tail and ni + 1 < len(nodes) and self._allow_insert(nodes[ni + 1], sz)
        avail_prev = at_head and ni > 0 and self._allow_insert(nodes[ni - 1], sz)
        if is_large(sz, self.fill):
            plain: Node = [sz, 1, 1]
            if node[2] or at_tail or at_head:
                nodes.insert(ni + 1 if after else ni, plain)
            else:
                new = self._split(ni, off, after)
                if after:
                    nodes[ni + 1 : ni + 1] = [plain, new]
                else:
                    nodes[ni:ni] = [new, plain]
            return
        es = entry_size(value)
        if not full:
            node[0] += es
            node[1] += 1
        elif avail_next:
            nodes[ni + 1][0] += es
            nodes[ni + 1][1] += 1
        elif avail_prev:
            nodes[ni - 1][0] += es
            nodes[ni - 1][1] += 1
        elif at_tail or at_head:
            nodes.insert(ni + 1 if after else ni, [LP_EMPTY + es, 1, 0])
        else:
            new = self._split(ni, off, after)
            new[0] += es
            new[1] += 1
            nodes.insert(ni + 1 if after else ni, new)
            self._merge_around(node)

    def _split(self, ni: int, off: int, after: bool) -> Node:
        """src/quicklist.c _quicklistSplitNode: returns the new node (not yet linked)."""
        nodes = self.nodes
        assert nodes is not None
        node = nodes[ni]
        start = sum(n[1] for n in nodes[:ni])
        sizes = [entry_size(v) for v in islice(self.items, start, start + node[1])]
        cut = off + 1 if after else off
        left = LP_EMPTY + sum(sizes[:cut])
        right = LP_EMPTY + sum(sizes[cut:])
        if after:  # node keeps [0, off], the new node [off + 1, end]
            new = [right, node[1] - cut, 0]
            node[0], node[1] = left, cut
        else:  # the new node takes [0, off - 1], node keeps [off, end]
            new = [left, cut, 0]
            node[0], node[1] = right, node[1] - cut
        return new

    def _allow_merge(self, a: Node | None, b: Node | None) -> bool:
        """src/quicklist.c _quicklistNodeAllowMerge."""
        if a is None or b is None or a[2] or b[2]:
            return False
        return not exceeds(self.fill, a[0] + b[0] - LP_EMPTY, a[1] + b[1])

    def _merge(self, a: Node, b: Node) -> Node:
        """lpMerge of neighbours ``a`` (left) and ``b``: ``a`` is kept."""
        nodes = self.nodes
        assert nodes is not None
        a[0] = a[0] + b[0] - LP_EMPTY
        a[1] += b[1]
        del nodes[_index(nodes, b)]
        return a

    def _merge_around(self, center: Node) -> Node:
        """src/quicklist.c _quicklistMergeNodes."""
        nodes = self.nodes
        assert nodes is not None

        def at(i: int) -> Node | None:
            return nodes[i] if 0 <= i < len(nodes) else None

        i = _index(nodes, center)
        prev, prev_prev, nxt, nxt_nxt = at(i - 1), at(i - 2), at(i + 1), at(i + 2)
        if prev is not None and prev_prev is not None and self._allow_merge(prev, prev_prev):
            self._merge(prev_prev, prev)
        if nxt is not None and nxt_nxt is not None and self._allow_merge(nxt, nxt_nxt):
            self._merge(nxt, nxt_nxt)
        p = at(_index(nodes, center) - 1)
        target = center
        if p is not None and self._allow_merge(center, p):
            target = self._merge(p, center)
        n = at(_index(nodes, target) + 1)
        if n is not None and self._allow_merge(target, n):
            target = self._merge(target, n)
        return target

    def replace(self, index: int, value: bytes) -> None:
        """Replace the element at ``index`` (0 <= index < len) (listTypeReplaceAtIndex)."""
        items = self.items
        old = items[index]
        nodes = self.nodes
        if nodes is None:
            self.lp += entry_size(value) - entry_size(old)
            items[index] = value
            return
        # src/quicklist.c quicklistReplaceEntry
        ni, off, _ = self._locate(index)
        node = nodes[ni]
        sz = len(value)
        fill = self.fill
        large = is_large(sz, fill)
        if not node[2] and not large:
            projected = node[0] - entry_size(old) + entry_size(value)
            if not exceeds(fill, projected, node[1]):
                node[0] = projected
                items[index] = value
                return
        if node[2]:
            if large:
                node[0] = sz
            else:
                self._ql_insert(ni, 0, value, True)
                del nodes[_index(nodes, node)]
            items[index] = value
            return
        split = self._split(ni, off, True) if off != node[1] - 1 else None
        new: Node = [sz, 1, 1] if large else [LP_EMPTY + entry_size(value), 1, 0]
        nodes.insert(ni + 1, new)
        if split is not None:
            nodes.insert(ni + 2, split)
        if node[1] == 1:
            del nodes[ni]
        else:
            node[0] -= entry_size(old)
            node[1] -= 1
            self._merge_around(new)
        items[index] = value

    def copy(self) -> List:
        c = List()
        c.items = self.items.copy()
        c.lp = self.lp
        c.nodes = None if self.nodes is None else [n[:] for n in self.nodes]
        c.fill = self.fill
        return c


def _index(nodes: list[Node], node: Node) -> int:
    for i, n in enumerate(nodes):
        if n is node:
            return i
    raise ValueError("node not in quicklist")


def from_items(items: Iterable[bytes], fill: int = DEFAULT_FILL) -> List:
    """A list built as one RPUSH of all ``items`` into a new key (also how an RDB list with
    one node loads as listpack and a bigger one as quicklist nodes filled by push-tail)."""
    lst = List()
    lst.push(list(items), False, fill)
    return lst


def encoding(value: List) -> str:
    """OBJECT ENCODING of a list."""
    return "listpack" if value.nodes is None else "quicklist"


def _to_record(value: List) -> Value:
    return ListValue(list(value.items))


def _from_record(value: Value) -> List:
    assert isinstance(value, ListValue)
    return from_items(value.items)


register(TypeInfo("list", List, _to_record, _from_record, encoding, List.copy))
