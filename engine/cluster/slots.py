"""The node table and slot map of one cluster node, as Valkey keeps them in ``server.cluster``.

How this works: :class:`ClusterState` holds every known node (:class:`NodeRecord`, keyed by its
40-hex name, in the order they became known), the owner of each of the 16384 slots (a list of
node records or None), the slots this node is migrating to / importing from another node
(legacy ``CLUSTER SETSLOT``), the current epoch and last vote epoch, and the cluster state
(ok/fail) computed as src/cluster_legacy.c clusterUpdateState does. It is pure: time comes in as
``now_ms`` arguments, new node names from an injectable ``random_hex`` function.

``todo_save`` is Valkey's CLUSTER_TODO_SAVE_CONFIG: set by every change that must reach
nodes.conf; the server renders :func:`engine.cluster.nodes_conf.render`, writes it atomically and
clears the flag.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

CLUSTER_SLOTS = 16384
NAMELEN = 40
PORT_INCR = 10000  # src/cluster.h CLUSTER_PORT_INCR
WRITABLE_DELAY = 2000  # src/cluster_legacy.c CLUSTER_WRITABLE_DELAY
MIN_REJOIN_DELAY = 500
MAX_REJOIN_DELAY = 5000
BLACKLIST_TTL_S = 60  # src/cluster_legacy.c CLUSTER_BLACKLIST_TTL

# src/cluster_legacy.c clusterNodeFlagsTable: the order flags are written in
FLAG_ORDER = ("myself", "master", "slave", "fail?", "fail", "handshake", "noaddr", "nofailover")
# names accepted when reading nodes.conf (clusterLoadConfig)
FLAG_ALIASES = {"primary": "master", "replica": "slave"}


def random_hex() -> str:
    """getRandomHexChars: 40 random lower-case hex characters."""
    return secrets.token_hex(NAMELEN // 2)


def valid_node_id(name: str) -> bool:
    """src/cluster.c verifyClusterNodeId: exactly 40 characters of [a-z0-9]."""
    return len(name) == NAMELEN and all("a" <= c <= "z" or "0" <= c <= "9" for c in name)


@dataclass(eq=False)
class NodeRecord:
    """One node of the cluster as this node knows it (src/cluster_legacy.h clusterNode)."""

    name: str
    ip: str = ""
    port: int = 0  # tcp_port
    cport: int = 0
    flags: set[str] = field(default_factory=set)  # FLAG_ORDER names, plus "meet"
    primary: NodeRecord | None = None  # replicaof
    ping_sent: int = 0
    pong_received: int = 0
    config_epoch: int = 0
    link: bool = False  # an outbound bus link is up (CLUSTER NODES "connected")
    hostname: str = ""
    shard_id: str = ""
    human_nodename: str = ""
    tls_port: int = 0
    client_ipv4: str = ""
    client_ipv6: str = ""
    client_tcp_port: int = 0
    client_tls_port: int = 0
    repl_offset: int = 0
    numslots: int = 0
    ctime: int = 0  # when the record was created (ms): the handshake timeout counts from it

    @property
    def myself(self) -> bool:
        return "myself" in self.flags

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags

    @property
    def is_replica(self) -> bool:
        return "slave" in self.flags

    @property
    def failed(self) -> bool:
        return "fail" in self.flags

    @property
    def timed_out(self) -> bool:
        return "fail?" in self.flags

    @property
    def client_port(self) -> int:
        """clusterNodeClientPort for a plain-TCP client."""
        return self.client_tcp_port or self.port

    @property
    def epoch(self) -> int:
        """nodeEpoch: a replica shows its primary's config epoch."""
        return self.primary.config_epoch if self.primary is not None else self.config_epoch


class ClusterState:
    """``server.cluster`` of one node (see the module docstring)."""

    def __init__(self, myself: NodeRecord, *, random_hex: Callable[[], str] = random_hex) -> None:
        self.random_hex = random_hex
        self.nodes: dict[str, NodeRecord] = {}
        self.slots: list[NodeRecord | None] = [None] * CLUSTER_SLOTS
        self.migrating: dict[int, NodeRecord] = {}  # slot -> destination
        self.importing: dict[int, NodeRecord] = {}  # slot -> source
        self.blacklist: dict[str, int] = {}  # forgotten node name -> until (unix s)
        self.current_epoch = 0
        self.last_vote_epoch = 0
        self.ok = False  # CLUSTER_FAIL at start (clusterInit)
        self.size = 0
        self.first_update_ms = 0
        self.among_minority_ms = 0
        self.todo_save = True
        # set by the server: write nodes.conf now (CLUSTER SAVECONFIG); an error text or None
        self.save_now: Callable[[], str | None] | None = None
        # bus statistics, filled by the link layer: message type -> count
        self.messages_sent: dict[str, int] = {}
        self.messages_received: dict[str, int] = {}
        self.stats: dict[str, int] = {}
        # bumped by every change of a slot's owner (the bus caches per-node slot ranges by it)
        self.slots_version = 0
        self._ranges_version = -1
        self._ranges: dict[str, bytes] = {}
        # set by the cluster bus (engine/server/cluster_bus.py): ``announce`` is called after a
        # local change that other nodes must hear about now; ``bus_hook`` gets the outcome of
        # every message received by the CLUSTER BUS handler
        self.announce_hook: Callable[[], None] | None = None
        self.bus_hook: Callable[[Any], None] | None = None
        self.links_hook: Callable[[], list[Any]] | None = None  # CLUSTER LINKS
        # inbound links: client id -> (sender node name, create time ms), by CLUSTER BUS
        self.inbound: dict[int, tuple[str, int]] = {}
        self.myself = myself
        myself.flags.add("myself")
        self.add_node(myself)

    @classmethod
    def fresh(
        cls, port: int, cport: int = 0, *, random_hex: Callable[[], str] = random_hex
    ) -> ClusterState:
        """A new node: random name and shard id, primary, no slots (clusterInit when there is
        no nodes.conf yet)."""
        me = NodeRecord(
            random_hex(),
            port=port,
            cport=cport or port + PORT_INCR,
            flags={"myself", "master"},
            shard_id=random_hex(),
        )
        return cls(me, random_hex=random_hex)

    # -- nodes ----------------------------------------------------------------------------
    def add_node(self, node: NodeRecord) -> None:
        self.nodes[node.name] = node
        self.todo_save = True

    def lookup(self, name: str) -> NodeRecord | None:
        return self.nodes.get(name)

    def rename_node(self, node: NodeRecord, name: str) -> None:
        """clusterRenameNode: a handshake node gets the name its PONG announced."""
        self.nodes.pop(node.name, None)
        node.name = name
        self.nodes[name] = node
        self.slots_version += 1  # the ranges cache is keyed by name
        self.todo_save = True

    def announce(self) -> None:
        """A local change other nodes must hear about at once (the bus broadcasts a PONG)."""
        if self.announce_hook is not None:
            self.announce_hook()

    def del_node(self, node: NodeRecord) -> None:
        """clusterDelNode: its slots become unassigned, open slots pointing at it close."""
        for slot in [s for s, n in self.importing.items() if n is node]:
            del self.importing[slot]
        for slot in [s for s, n in self.migrating.items() if n is node]:
            del self.migrating[slot]
        if node.numslots:
            for slot in range(CLUSTER_SLOTS):
                if self.slots[slot] is node:
                    self.del_slot(slot)
        for other in self.nodes.values():
            if other.primary is node:
                other.primary = None
        self.nodes.pop(node.name, None)
        self.todo_save = True

    def replicas_of(self, node: NodeRecord) -> list[NodeRecord]:
        return [n for n in self.nodes.values() if n.primary is node]

    def primary_of(self, node: NodeRecord) -> NodeRecord:
        """clusterNodeGetPrimary."""
        seen = node
        while seen.primary is not None and seen.primary is not node:
            seen = seen.primary
        return seen

    def shards(self) -> dict[str, list[NodeRecord]]:
        """shard id -> its nodes, in the order the nodes became known."""
        out: dict[str, list[NodeRecord]] = {}
        for n in self.nodes.values():
            if "handshake" in n.flags:  # not in a shard until the handshake completes
                continue
            out.setdefault(n.shard_id, []).append(n)
        return out

    def blacklist_add(self, name: str, now_s: int) -> None:
        self.blacklist[name] = now_s + BLACKLIST_TTL_S

    def blacklisted(self, name: str, now_s: int) -> bool:
        until = self.blacklist.get(name)
        if until is None:
            return False
        if until < now_s:
            del self.blacklist[name]
            return False
        return True

    # -- slots ----------------------------------------------------------------------------
    def add_slot(self, node: NodeRecord, slot: int) -> bool:
        """clusterAddSlot: False when the slot already has an owner."""
        if self.slots[slot] is not None:
            return False
        self.slots[slot] = node
        node.numslots += 1
        self.slots_version += 1
        self.todo_save = True
        return True

    def del_slot(self, slot: int) -> bool:
        """clusterDelSlot: False when the slot had no owner."""
        n = self.slots[slot]
        if n is None:
            return False
        self.slots[slot] = None
        n.numslots -= 1
        self.slots_version += 1
        self.todo_save = True
        return True

    def owner(self, slot: int) -> NodeRecord | None:
        return self.slots[slot]

    def slot_ranges(self, node: NodeRecord) -> list[tuple[int, int]]:
        """The (start, end) runs of slots ``node`` owns, ascending."""
        out: list[tuple[int, int]] = []
        if not node.numslots:
            return out
        slots = self.slots
        start = -1
        for j in range(CLUSTER_SLOTS + 1):
            mine = j < CLUSTER_SLOTS and slots[j] is node
            if mine and start == -1:
                start = j
            elif not mine and start != -1:
                out.append((start, j - 1))
                start = -1
        return out

    def ranges_text(self, node: NodeRecord) -> bytes:
        """``node``'s slots as the bus announces them: ``0-5460,5462`` (b"" for none), cached
        until a slot changes owner."""
        if self._ranges_version != self.slots_version:
            acc: dict[str, list[str]] = {}
            for start, end, n in self.owner_runs():
                acc.setdefault(n.name, []).append(f"{start}" if start == end else f"{start}-{end}")
            self._ranges = {k: ",".join(v).encode() for k, v in acc.items()}
            self._ranges_version = self.slots_version
        return self._ranges.get(node.name, b"")

    def owner_runs(self) -> Iterator[tuple[int, int, NodeRecord]]:
        """(start, end, owner) for every run of consecutive slots with one owner
        (src/cluster.c generateClusterSlotResponse)."""
        slots = self.slots
        start = 0
        cur = slots[0]
        for j in range(1, CLUSTER_SLOTS + 1):
            n = slots[j] if j < CLUSTER_SLOTS else None
            if j == CLUSTER_SLOTS or n is not cur:
                if cur is not None:
                    yield start, j - 1, cur
                start, cur = j, n

    def close_all_slots(self) -> None:
        """clusterCloseAllSlots."""
        self.migrating.clear()
        self.importing.clear()

    # -- epochs ---------------------------------------------------------------------------
    def max_epoch(self) -> int:
        """clusterGetMaxEpoch."""
        return max([self.current_epoch, *(n.config_epoch for n in self.nodes.values())])

    def bump_epoch(self) -> bool:
        """clusterBumpConfigEpochWithoutConsensus: True when the epoch was bumped."""
        me = self.myself
        if me.config_epoch == 0 or me.config_epoch != self.max_epoch():
            self.current_epoch += 1
            me.config_epoch = self.current_epoch
            self.todo_save = True
            return True
        return False

    # -- state ----------------------------------------------------------------------------
    def update_state(
        self, now_ms: int, *, full_coverage: bool = True, node_timeout: int = 15000
    ) -> None:
        """src/cluster_legacy.c clusterUpdateState."""
        if self.first_update_ms == 0:
            self.first_update_ms = now_ms
        me = self.myself
        # a primary waits CLUSTER_WRITABLE_DELAY after the first call before turning ok
        if me.is_primary and not self.ok and now_ms - self.first_update_ms < WRITABLE_DELAY:
            return
        new_ok = True
        if full_coverage:
            assigned = 0
            for n in self.nodes.values():
                if n.numslots:
                    if n.failed:
                        new_ok = False
                    assigned += n.numslots
            if assigned != CLUSTER_SLOTS:
                new_ok = False
        size = reachable = 0
        for n in self.nodes.values():
            if n.is_primary and n.numslots:
                size += 1
                if not n.failed and not n.timed_out:
                    reachable += 1
        self.size = size
        if reachable < size // 2 + 1:
            new_ok = False
            self.among_minority_ms = now_ms
        if new_ok != self.ok:
            rejoin = min(max(node_timeout, MIN_REJOIN_DELAY), MAX_REJOIN_DELAY)
            if new_ok and me.is_primary and now_ms - self.among_minority_ms < rejoin:
                return
            self.ok = new_ok

    # -- nodes.conf bookkeeping -----------------------------------------------------------
    def reset(self, hard: bool) -> None:
        """clusterReset (the data flush of a former replica is the caller's)."""
        me = self.myself
        was_replica = me.is_replica
        if was_replica:
            me.flags.discard("slave")
            me.flags.add("master")
            me.primary = None
        self.close_all_slots()
        for slot in range(CLUSTER_SLOTS):
            self.del_slot(slot)
        for n in list(self.nodes.values()):
            if n is not me:
                self.del_node(n)
        self.blacklist.clear()
        if hard:
            self.current_epoch = 0
            self.last_vote_epoch = 0
            me.config_epoch = 0
            del self.nodes[me.name]
            me.name = self.random_hex()
            me.shard_id = self.random_hex()
            self.nodes[me.name] = me
        elif was_replica:
            me.shard_id = self.random_hex()
        self.todo_save = True
