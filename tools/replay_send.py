"""The senders of ``valkey-aof replay``: segments in, pipelined pieces out.

:class:`Standalone` queues each segment on its one connection (a SELECT first when the db
changes). :class:`Cluster` splits a segment by the node owning each command's slot, keeping the
order per node (commands for different nodes touch different keys, so their relative order does
not matter). A raw run from the fast scanner (tools/replay_fastscan.py) is routed in one tight
loop: one-key commands get their slot from the key at the command table's key position, with no
per-command object built. Cross-slot commands become their per-slot effects
(tools/replay_xslot.py): split ones are queued like any other command, the others run
synchronously through ``on_sync`` after everything queued before them was acknowledged.
Transactions spanning slots are sent as one MULTI/EXEC per slot when each of their commands
has one slot, else command by command (``split_txns`` counts them for the report).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate, compress, repeat
from operator import itemgetter
from typing import overload

from persistence.aof.encoder import encode_command
from persistence.crc import key_slot
from tools.replay_cluster import NO_KEY, ClusterMap, CrossSlot
from tools.replay_conn import Cmd, Conn, Piece
from tools.replay_fastscan import ARG_SIZE, ARGC_SIZE, RawCmds
from tools.replay_mset import batch, batched_commands
from tools.replay_source import GenCmd, Segment
from tools.replay_xslot import handled, split_by_slot

_MULTI = encode_command([b"MULTI"])
_EXEC = encode_command([b"EXEC"])
_ARG = ARG_SIZE.__getitem__
_FIRST = itemgetter(0)
_SECOND = itemgetter(1)

Item = int | tuple[int, Cmd]  # a raw run's position, or (position, command)


class Standalone:
    """One connection. With ``pairs`` >= 2, runs of plain SETs go as MSETs
    (tools/replay_mset.py). The first MSET goes alone and its reply is awaited: a target that
    refuses MSET (an ACL user without +mset: NOPERM; ``rename-command MSET``: unknown command)
    gets every command as the file has it from then on, these ones included, and ``note``
    says so once."""

    mode = "standalone"

    def __init__(
        self, conn: Conn, pairs: int = 0, note: Callable[[str], None] | None = None
    ) -> None:
        self.conn = conn
        self.conns = {conn.name: conn}
        self.pairs = pairs  # MSET pairs at most; < 2: send as the file has it
        self.proven = False  # the target answered an MSET without refusing the command
        self.note = note
        self.batched = 0  # file commands sent inside MSETs
        self.msets = 0

    def off(self, why: str) -> None:
        self.pairs = 0
        if self.note is not None:
            self.note(f"{why}: every command is sent as the file has it (as with --as-is)")

    def send(self, seg: Segment) -> None:
        if self.pairs >= 2 and not seg.txn:
            if not self.proven:
                self._probe(seg)
                return
            done = batch(seg.cmds, seg.data, self.pairs)
            if done is not None:
                data, groups = done
                cmds, msets = batched_commands(groups, len(seg.cmds))
                self.batched += cmds
                self.msets += msets
                self._queue(seg, data, seg.cmds, seg.first_index, groups)
                return
        self._queue(seg, seg.data, seg.cmds, seg.first_index)

    def _queue(
        self, seg: Segment, data: bytes, cmds: Sequence[Cmd], first: int,
        groups: Sequence[int] | None = None,
    ) -> Piece:  # fmt: skip
        c = self.conn
        prefix = 0
        if c.db != seg.db:
            data = encode_command([b"SELECT", b"%d" % seg.db]) + data
            prefix = 1
        c.db = seg.db if seg.db_after is None else seg.db_after
        piece = Piece(data, cmds, first, txn=seg.txn, prefix=prefix, groups=groups)
        c.queue(piece)
        return piece

    def _probe(self, seg: Segment) -> None:
        """Send ``seg`` with its first MSET alone and awaited (see the class docstring)."""
        done = batch(seg.cmds, seg.data, self.pairs)
        if done is None:
            self._queue(seg, seg.data, seg.cmds, seg.first_index)
            return
        groups = done[1]
        k = next(i for i in range(len(groups)) if _span(groups, i, len(seg.cmds)) > 1)
        a = groups[k]
        b = a + _span(groups, k, len(seg.cmds))
        cmds = list(seg.cmds)
        offsets = [0, *accumulate(c.size for c in cmds)]  # they add up (batch checked it)
        first = seg.first_index
        if a:
            self._queue(seg, seg.data[: offsets[a]], cmds[:a], first)
        one = Segment(cmds[a:b], seg.data[offsets[a] : offsets[b]], seg.db, first + a)
        mset = batch(one.cmds, one.data, self.pairs)
        assert mset is not None and len(mset[1]) == 1
        probe = self._queue(one, mset[0], one.cmds, one.first_index, mset[1])
        self.conn.drain()
        msg = probe.errors[0][1] if probe.errors else ""
        if msg.startswith(("NOPERM", "ERR unknown command")):
            self.conn.acked.remove(probe)
            self.off(f"the target refuses MSET ({msg})")
            rest = Segment(cmds[a:], seg.data[offsets[a] :], seg.db, first + a)
        else:
            self.proven = True
            self.batched += b - a
            self.msets += 1
            rest = Segment(cmds[b:], seg.data[offsets[b] :], seg.db, first + b)
        if rest.cmds:
            self.send(rest)


def _span(groups: Sequence[int], k: int, n: int) -> int:
    """Commands answered by reply ``k``."""
    return (groups[k + 1] if k + 1 < len(groups) else n) - groups[k]


class PickCmds(Sequence[Cmd]):
    """The commands of one node's piece: positions in a raw run, or commands."""

    __slots__ = ("items", "raw")

    def __init__(self, raw: RawCmds | None, items: Sequence[Item]) -> None:
        self.raw = raw
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def _get(self, it: Item) -> Cmd:
        if type(it) is int:
            assert self.raw is not None
            return self.raw[it]
        assert isinstance(it, tuple)
        return it[1]

    @overload
    def __getitem__(self, i: int) -> Cmd: ...
    @overload
    def __getitem__(self, i: slice) -> list[Cmd]: ...
    def __getitem__(self, i: int | slice) -> Cmd | list[Cmd]:
        if isinstance(i, slice):
            return [self._get(it) for it in self.items[i]]
        return self._get(self.items[i])

    def __iter__(self) -> Iterator[Cmd]:
        return (self._get(it) for it in self.items)


class NodePositions(Sequence[int]):
    """Positions in a run of the commands owned by node ``o`` (``owners[i]`` is the node of
    command i): counted and found at C speed, listed only when an error needs them."""

    __slots__ = ("_list", "n", "o", "owners")

    def __init__(self, owners: list[int], o: int) -> None:
        self.owners = owners
        self.o = o
        self.n = owners.count(o)
        self._list: list[int] | None = None

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> list[int]: ...
    def __getitem__(self, i: int | slice) -> int | list[int]:
        if i == 0 and self._list is None:
            return self.owners.index(self.o)
        if self._list is None:
            self._list = list(compress(range(len(self.owners)), map(self.o.__eq__, self.owners)))
        return self._list[i]


class Cluster:
    mode = "cluster"

    def __init__(
        self,
        cmap: ClusterMap,
        multi_db: bool,
        on_cross: Callable[[Cmd, str], None],
        on_sync: Callable[[Cmd, int, int], None],
    ) -> None:
        self.map = cmap
        self.multi_db = multi_db
        self.on_cross = on_cross  # a command that cannot be replayed on a cluster
        self.on_sync = on_sync  # (cmd, db, index): run a cross-slot command synchronously
        self.conns = cmap.conns
        self.redirects: list[tuple[int, Cmd, str, str, int]] = []  # index, cmd, kind, node, db
        self.split_txns = 0
        self.extra_parts = 0  # acknowledgements of split commands beyond one per command
        self.cross_slot: Counter[str] = Counter()  # cross-slot commands replayed as effects

    def _conn(self, name: str) -> Conn:
        return self.map.conn(name)

    def _prefix(self, conn: Conn, db: int) -> tuple[bytes, int]:
        if not self.multi_db or conn.db == db:
            return b"", 0
        conn.db = db
        return encode_command([b"SELECT", b"%d" % db]), 1

    def send(self, seg: Segment) -> None:
        if seg.txn:
            self._send_txn(seg)
        elif type(seg.cmds) is RawCmds:
            self._send_raw(seg.cmds, seg.data, seg.db, seg.first_index)
        else:
            pos = 0
            pairs: list[tuple[Cmd, bytes]] = []
            for c in seg.cmds:
                pairs.append((c, seg.data[pos : pos + c.size]))
                pos += c.size
            self._send_cmds(pairs, seg.db, seg.first_index)

    # -- plain commands ------------------------------------------------------------------------
    def _queue(
        self, raw: RawCmds | None, parts: list[list[bytes]], items: Sequence[Sequence[Item]],
        db: int, first: int,
    ) -> None:  # fmt: skip
        primaries = self.map.primaries
        for o, body in enumerate(parts):
            if not body:
                continue
            its = items[o]
            conn = self._conn(primaries[o])
            pre, n = self._prefix(conn, db)
            data = b"".join(body)
            conn.queue(Piece(pre + data if pre else data, PickCmds(raw, its), first, its,
                             prefix=n, db=db, index_base=first))  # fmt: skip

    def _route(
        self, c: Cmd, piece: bytes, i: int, db: int, first: int, raw: RawCmds | None,
        parts: list[list[bytes]], items: list[list[Item]],
    ) -> bool:  # fmt: skip
        """Route one command by the general rules; True when the batch was flushed (a
        synchronous cross-slot command ran, the caller starts new lists)."""
        cmap = self.map
        try:
            slot = cmap.slot_of(c.argv)
        except CrossSlot as e:
            split = split_by_slot(c.argv)
            if split is not None:
                self.extra_parts += len(split) - 1  # each part is acknowledged as the command
                for s, argv in split:
                    o = cmap.primaries.index(cmap.node_of(s))
                    parts[o].append(encode_command(argv))
                    items[o].append((i, GenCmd(argv, c.file, c.offset, c.size)))
                self.cross_slot[c.argv[0].decode(errors="replace").upper()] += 1
                return False
            if handled(c.argv):
                self._queue(raw, parts, items, db, first)
                self.cross_slot[c.argv[0].decode(errors="replace").upper()] += 1
                self.on_sync(c, db, first + i)
                return True
            self.on_cross(c, str(e))
            return False
        if slot == NO_KEY:
            for o in range(len(cmap.primaries)):
                parts[o].append(piece)
                items[o].append((i, c))
        else:
            o = cmap.owner[slot]
            if o < 0:
                o = cmap.primaries.index(cmap.node_of(slot))
            parts[o].append(piece)
            items[o].append((i, c))
        return False

    def _send_cmds(self, pairs: list[tuple[Cmd, bytes]], db: int, first: int) -> None:
        n = len(self.map.primaries)
        parts: list[list[bytes]] = [[] for _ in range(n)]
        items: list[list[Item]] = [[] for _ in range(n)]
        for i, (c, piece) in enumerate(pairs):
            if self._route(c, piece, i, db, first, None, parts, items):
                n = len(self.map.primaries)
                parts = [[] for _ in range(n)]
                items = [[] for _ in range(n)]
        self._queue(None, parts, items, db, first)

    def _send_raw(self, raw: RawCmds, data: bytes, db: int, first: int) -> None:
        if not self._send_raw_bulk(raw, data, db, first):
            self._send_raw_each(raw, data, db, first)

    def _send_raw_bulk(self, raw: RawCmds, data: bytes, db: int, first: int) -> bool:
        """The usual run (one-key commands, key first, no hash tag, every slot served), with
        no Python step per command: slots, owners and each node's share are computed a list
        at a time. When ``\r\n*`` occurs only between commands (no value holds it), a split
        there cuts the run into its commands, and each node's bytes are joined back from
        those pieces; else the sizes are added up command by command."""
        cmap = self.map
        argvs = raw.argvs
        for name in set(map(_FIRST, argvs)):
            k = cmap.simple_keys.get(name)
            if k is None:
                k = cmap.learn([name])
            if k != 1:
                return False
        if min(map(len, argvs)) < 2:
            return False
        keys = list(map(_SECOND, argvs))
        if b"{" in b"".join(keys):
            return False
        crc, table = cmap.crc16, cmap.crc16_table
        owners = list(map(cmap.owner16.__getitem__, map(crc, keys, repeat(0), repeat(table))))
        if -1 in owners:
            return False
        used = set(owners)
        n = len(argvs)
        pieces = data[1:-2].split(b"\r\n*")  # each command minus its '*' and final CRLF
        if len(pieces) != n:
            pieces = self._command_bytes(argvs, data)
            glue = b""
        else:
            glue = b"\r\n*"
        parts: list[list[bytes]] = []
        items: list[Sequence[Item]] = []
        for o in range(len(cmap.primaries)):
            if o not in used:
                parts.append([])
                items.append([])
                continue
            if len(used) == 1:
                chosen = pieces
                items.append(range(n))
            else:
                chosen = list(compress(pieces, map(o.__eq__, owners)))
                items.append(NodePositions(owners, o))
            parts.append([b"*" + glue.join(chosen) + b"\r\n"] if glue else chosen)
        self._queue(raw, parts, items, db, first)
        return True

    @staticmethod
    def _command_bytes(argvs: list[list[bytes]], data: bytes) -> list[bytes]:
        slices: list[bytes] = []
        append = slices.append
        sizes = ARG_SIZE
        argc_size = ARGC_SIZE
        pos = 0
        for argv in argvs:
            if len(argv) == 3:  # unrolled for the common shape: 40% less time than sum(map())
                a0, a1, a2 = argv
                size = 4 + sizes[len(a0)] + sizes[len(a1)] + sizes[len(a2)]
            else:
                size = argc_size[len(argv)] + sum(map(_ARG, map(len, argv)))
            append(data[pos : pos + size])
            pos += size
        return slices

    def _send_raw_each(self, raw: RawCmds, data: bytes, db: int, first: int) -> None:
        """A run of plain commands, routed one by one without building command objects."""
        cmap = self.map
        simple = cmap.simple_keys
        owner = cmap.owner
        crc = cmap.crc16
        table = cmap.crc16_table
        learn = cmap.learn
        argc_size = ARGC_SIZE
        arg = _ARG
        n = len(cmap.primaries)
        parts: list[list[bytes]] = [[] for _ in range(n)]
        items: list[list[Item]] = [[] for _ in range(n)]
        pos = 0
        sizes = ARG_SIZE
        for i, argv in enumerate(raw.argvs):
            if len(argv) == 3:  # unrolled for the common shape: 40% less time than sum(map())
                a0, a1, a2 = argv
                size = 4 + sizes[len(a0)] + sizes[len(a1)] + sizes[len(a2)]
            else:
                size = argc_size[len(argv)] + sum(map(arg, map(len, argv)))
            k = simple.get(argv[0])
            if k is None:
                k = learn(argv)
            if k is not None and len(argv) > k:
                key = argv[k]
                slot = key_slot(key) if 123 in key else crc(key, 0, table) & 0x3FFF  # '{'
                o = owner[slot]
                if o >= 0:
                    parts[o].append(data[pos : pos + size])
                    items[o].append(i)
                    pos += size
                    continue
            c = raw[i]
            if self._route(c, data[pos : pos + size], i, db, first, raw, parts, items):
                owner = cmap.owner
                n = len(cmap.primaries)
                parts = [[] for _ in range(n)]
                items = [[] for _ in range(n)]
            pos += size
        self._queue(raw, parts, items, db, first)

    # -- transactions --------------------------------------------------------------------------
    def _send_txn(self, seg: Segment) -> None:
        cmap = self.map
        slots: list[int] = []
        cross = False
        for c in seg.cmds:
            try:
                slots.append(cmap.slot_of(c.argv))
            except CrossSlot:
                cross = True
                slots.append(NO_KEY)
        keyed = {s for s in slots if s != NO_KEY}
        if not cross and len(keyed) <= 1:
            slot = keyed.pop() if keyed else NO_KEY
            names = [cmap.node_of(slot)] if slot != NO_KEY else cmap.primaries[:1]
            for name in names:
                conn = self._conn(name)
                pre, n = self._prefix(conn, seg.db)
                conn.queue(
                    Piece(pre + seg.data, seg.cmds, seg.first_index, txn=True, prefix=n, db=seg.db)
                )
                if seg.db_after is not None and self.multi_db:
                    conn.db = seg.db_after
            return
        # one MULTI/EXEC per (db, slot); command by command if some command has no slot
        self.split_txns += 1
        groups: dict[tuple[int, int], list[int]] = {}
        runs: list[tuple[int, int, int]] = []  # (db, start, end) between SELECTs
        db = seg.db
        start = 0
        for i, c in enumerate(seg.cmds):
            if c.argv[0].upper() == b"SELECT":  # written by Source with the mapped db
                runs.append((db, start, i))
                db = int(c.argv[1])
                start = i + 1
                continue
            groups.setdefault((db, slots[i]), []).append(i)
        runs.append((db, start, len(seg.cmds)))
        pairs: list[tuple[Cmd, bytes]] = [(c, encode_command(c.argv)) for c in seg.cmds]
        if cross or any(s == NO_KEY for _, s in groups):
            for db, a, b in runs:
                if a < b:
                    self._send_cmds(pairs[a:b], db, seg.first_index + a)
            return
        for (db, s), positions in groups.items():
            conn = self._conn(cmap.node_of(s))
            pre, n = self._prefix(conn, db)
            body = b"".join(pairs[i][1] for i in positions)
            idx = [seg.first_index + i for i in positions]
            cmds = [pairs[i][0] for i in positions]
            conn.queue(Piece(pre + _MULTI + body + _EXEC, cmds, idx[0], idx, txn=True, prefix=n,
                             db=db))  # fmt: skip

    # -- redirections --------------------------------------------------------------------------
    def resend(self, redirects: list[tuple[int, Cmd, str, str, int]]) -> None:
        if any(kind == "MOVED" for _, _, kind, _, _ in redirects):
            self.map.refresh()
        for index, cmd, kind, node, db in sorted(redirects, key=lambda r: r[0]):
            if kind == "ASK":
                conn = self._conn(node)
            else:
                conn = self._conn(self.map.node_of(self.map.slot_of(cmd.argv)))
            pre, n = self._prefix(conn, db)
            if kind == "ASK":
                pre, n = pre + encode_command([b"ASKING"]), n + 1
            data = pre + encode_command(cmd.argv)
            conn.queue(Piece(data, [cmd], index, [index], prefix=n, db=db))
