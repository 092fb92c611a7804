"""Cluster targets for ``valkey-aof replay``: the slot map, routing and redirections.

Each command goes to the primary owning the slot of its keys (key positions from the one
command table, ``engine.commands.table.lookup(argv).key_positions(argv)``; slot from
``persistence.crc.key_slot``). Commands without keys that change data (FLUSHALL, FLUSHDB,
FUNCTION LOAD ...) go to every primary. A command whose keys hash to different slots, or a
transaction spanning slots, cannot run on a cluster as such (src/cluster.c getNodeByQuery:
CROSSSLOT): :meth:`ClusterMap.slot_of` raises :class:`CrossSlot` and tools/replay_xslot.py
replays its effect instead. ``MOVED`` / ``ASK`` / ``TRYAGAIN`` replies are handled by
the replayer: it drains every connection, refreshes this map and re-sends the redirected
commands in their original order.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.commands.table import Command, lookup
from persistence.crc import CRC16_C, CRC16_TABLE, key_slot
from persistence.resp import Array, Bulk, Error, Frame, Integer, SimpleString
from tools.replay_conn import Conn, ReplayConnError, Target

SLOTS = 16384
NO_KEY = -1
# commands whose destination key follows a keyword (movable keys in the target's COMMAND reply)
_STORE_CMDS = {b"SORT", b"GEORADIUS", b"GEORADIUSBYMEMBER"}
_STORE_WORDS = (b"STORE", b"STOREDIST")


class CrossSlot(Exception):
    pass


class ClusterMap:
    def __init__(self, seed: Conn, target: Target, *, timeout: float = 30.0) -> None:
        self.target = target
        self.timeout = timeout
        self.conns: dict[str, Conn] = {seed.name: seed}
        self.seed = seed
        self.slots: list[str | None] = [None] * SLOTS
        self.primaries: list[str] = []
        self.owner: list[int] = [-1] * SLOTS
        self.owner16: list[int] = [-1] * (SLOTS * 4)
        self.simple_keys: dict[bytes, int] = {}  # argv[0] -> key index for one-key commands
        self._not_simple: set[bytes] = set()
        self.crc16, self.crc16_table = CRC16_C, CRC16_TABLE  # key_slot's C parts, per key
        # key specs of commands our table does not have (PFADD, SORT, GEO...): the target's
        # COMMAND reply (first key, last key, step), so they are routed, not broadcast
        self.specs, self.movable = _target_specs(seed)
        self.refresh()

    def refresh(self) -> None:
        """Load the slot map with CLUSTER SLOTS from any reachable node."""
        last: Exception | None = None
        for conn in [self.seed, *[c for c in self.conns.values() if c is not self.seed]]:
            if conn.pending:
                conn.drain()
            try:
                reply = conn.call("CLUSTER", "SLOTS")
            except ReplayConnError as e:
                last = e
                continue
            if isinstance(reply, Error):
                raise ReplayConnError(
                    f"{conn.name}: CLUSTER SLOTS: {reply.message.decode(errors='replace')}"
                )
            self._load(reply, conn)
            return
        raise ReplayConnError(f"no cluster node answered CLUSTER SLOTS ({last})")

    def _load(self, reply: Frame, via: Conn) -> None:
        slots: list[str | None] = [None] * SLOTS
        primaries: list[str] = []
        assert isinstance(reply, Array) and reply.items is not None
        for entry in reply.items:
            assert isinstance(entry, Array) and entry.items is not None
            lo, hi, node = entry.items[0], entry.items[1], entry.items[2]
            assert isinstance(lo, Integer) and isinstance(hi, Integer) and isinstance(node, Array)
            assert node.items is not None
            host_f, port_f = node.items[0], node.items[1]
            assert isinstance(port_f, Integer)
            host = host_f.value.decode() if isinstance(host_f, Bulk) and host_f.value else ""
            if not host or host == "?":  # an unknown endpoint: the address we used (cluster docs)
                host = via.host
            name = f"{host}:{port_f.value}"
            if name not in primaries:
                primaries.append(name)
            for s in range(lo.value, hi.value + 1):
                slots[s] = name
        self.slots = slots
        self.primaries = primaries
        index = {name: i for i, name in enumerate(primaries)}
        self.owner = [-1 if n is None else index[n] for n in slots]  # slot -> primaries index
        self.owner16 = self.owner * 4  # CRC16 -> primaries index (slot = crc & 0x3FFF)

    def conn(self, name: str) -> Conn:
        c = self.conns.get(name)
        if c is None:
            host, port = name.rsplit(":", 1)
            c = Conn(host, int(port), timeout=self.timeout, tls=self.seed.tls,
                     server_name=self.target.tls.sni if self.target.tls else None)  # fmt: skip
            auth(c, self.target)
            self.conns[name] = c
        return c

    def node_of(self, slot: int) -> str:
        name = self.slots[slot]
        if name is None:
            raise ReplayConnError(f"slot {slot} is not served by any node (CLUSTERDOWN)")
        return name

    def key_positions(self, argv: list[bytes]) -> list[int]:
        """Key indexes by our command table, else by the target's key specs."""
        cmd = lookup(argv)
        if cmd is not None:
            if _one_key(cmd) and not cmd.container:
                self.simple_keys[argv[0]] = cmd.first_key
            return cmd.key_positions(argv)
        spec = self.specs.get(argv[0].lower())
        if spec is None:
            return []
        first, last, step = spec
        if first <= 0:
            return []
        end = last if last >= 0 else len(argv) + last
        keys = list(range(first, min(end, len(argv) - 1) + 1, step or 1))
        if argv[0].upper() in _STORE_CMDS:  # SORT/GEORADIUS ... STORE|STOREDIST dest
            up = [a.upper() for a in argv[:-1]]
            keys += [i + 1 for i, a in enumerate(up) if i > first and a in _STORE_WORDS]
        return keys

    def slot_of(self, argv: list[bytes]) -> int:
        """The slot of the command's keys, :data:`NO_KEY` without keys; raises CrossSlot."""
        i = self.simple_keys.get(argv[0])
        if i is not None and len(argv) > i:
            return key_slot(argv[i])
        keys = self.key_positions(argv)
        if not keys:
            return NO_KEY
        slot = key_slot(argv[keys[0]])
        for k in keys[1:]:
            if key_slot(argv[k]) != slot:
                raise CrossSlot(
                    f"{argv[0].decode(errors='replace')} touches keys in different slots, which "
                    f"a cluster refuses (CROSSSLOT)"
                )
        return slot

    def learn(self, argv: list[bytes]) -> int | None:
        """The key index of ``argv[0]`` if it names a one-key command (remembered)."""
        name = argv[0]
        if name in self._not_simple:
            return None
        cmd = lookup(argv)
        if cmd is not None and _one_key(cmd) and not cmd.container:
            self.simple_keys[name] = cmd.first_key
            return cmd.first_key
        spec = self.specs.get(name.lower()) if cmd is None else None
        if (
            spec is not None
            and spec[0] > 0
            and spec[0] == spec[1]
            and name.lower() not in self.movable
        ):
            self.simple_keys[name] = spec[0]
            return spec[0]
        self._not_simple.add(name)
        return None

    def slot_of_all(self, cmds: Sequence[list[bytes]]) -> int:
        """One slot for a whole transaction (NO_KEY if none has keys); raises CrossSlot."""
        slot = NO_KEY
        for argv in cmds:
            s = self.slot_of(argv)
            if s == NO_KEY:
                continue
            if slot not in (NO_KEY, s):
                raise CrossSlot(
                    "a MULTI/EXEC transaction touches keys in different slots (here "
                    f"{slot} and {s}); a cluster cannot run it atomically"
                )
            slot = s
        return slot

    def close(self) -> None:
        for c in self.conns.values():
            c.close()


def _target_specs(conn: Conn) -> tuple[dict[bytes, tuple[int, int, int]], set[bytes]]:
    """name -> (first key, last key, step) from the target's COMMAND reply (empty on error),
    and the names it flags ``movablekeys`` (SORT ... STORE dst: not one-key commands)."""
    out: dict[bytes, tuple[int, int, int]] = {}
    movable: set[bytes] = set()
    try:
        reply = conn.call("COMMAND")
    except ReplayConnError:
        return out, movable
    if not isinstance(reply, Array) or reply.items is None:
        return out, movable
    for entry in reply.items:
        if not isinstance(entry, Array) or not entry.items or len(entry.items) < 6:
            continue
        name, flags, first, last, step = entry.items[0], *entry.items[2:6]
        if (
            isinstance(name, Bulk)
            and name.value
            and isinstance(flags, Array)
            and any(
                isinstance(f, SimpleString) and f.value == b"movablekeys" for f in flags.items or ()
            )
        ):
            movable.add(name.value.lower())
        if (
            isinstance(name, Bulk) and name.value and isinstance(first, Integer)
            and isinstance(last, Integer) and isinstance(step, Integer)
        ):  # fmt: skip
            out[name.value.lower()] = (first.value, last.value, step.value)
    return out, movable


def _one_key(cmd: Command) -> bool:
    return cmd.keys_fn is None and cmd.first_key > 0 and cmd.last_key == cmd.first_key


def auth(conn: Conn, target: Target) -> None:
    if target.password is None:
        return
    if target.username is not None:
        conn.call_ok("AUTH", target.username, target.password)
    else:
        conn.call_ok("AUTH", target.password)


def parse_redirect(msg: str) -> tuple[str, int, str] | None:
    """``MOVED 3999 127.0.0.1:6381`` / ``ASK ...`` -> (kind, slot, host:port)."""
    parts = msg.split()
    if len(parts) == 3 and parts[0] in ("MOVED", "ASK") and parts[1].isdigit():
        return parts[0], int(parts[1]), parts[2]
    return None
