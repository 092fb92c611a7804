"""The cluster bus messages and what a node does with them: sans-IO, no sockets, no clock.

How this works: Valkey's nodes talk over a binary bus on ``port + 10000``; ours talk RESP on
the client port. A node keeps one outbound link to every other node and sends each message as
a command, ``CLUSTER BUS <fields...>``; the receiving node answers with an array of messages
(the PONG for a PING or MEET, then any UPDATE the sender needs, or nothing). So a PING is a
command and its PONG is the reply, and ``engine/server/cluster_bus.py`` only moves bytes.

A message is a flat list of bulk strings (docs/cluster.md has sizes and rates)::

    type sender current-epoch config-epoch port cport flags shard-id slots count
        [name ip port cport flags ping-sent pong-received] * count      MEET, PING, PONG
    type sender current-epoch config-epoch port cport flags shard-id slots
        node config-epoch node-slots                                    UPDATE

``slots`` is the sender's slots as ranges (``0-5460,5462``), the text of nodes.conf; Valkey
sends a 2 KB bitmap. :func:`receive` applies one message to a :class:`ClusterState` with the
rules of src/cluster_legacy.c clusterProcessPacket: epochs, the MEET/handshake dance,
clusterUpdateSlotsConfigWith (a higher config epoch wins a slot), UPDATE for a stale claim,
clusterHandleConfigEpochCollision, clusterProcessGossipSection (new nodes are learned from
known senders only, never a forgotten one). No failure reports, FAIL or failover: the bus only
marks a silent node ``fail?`` (PFAIL).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.cluster.slots import CLUSTER_SLOTS, ClusterState, NodeRecord, valid_node_id

TYPES = ("meet", "ping", "pong", "update")
HEADER_FIELDS = 9
GOSSIP_FIELDS = 7
_NODE_FLAGS = ("master", "slave", "nofailover")  # what a node learned from gossip keeps


class GossipError(Exception):
    """A malformed bus message."""


@dataclass(slots=True)
class Gossip:
    """One entry of a gossip section (src/cluster_legacy.h clusterMsgDataGossip)."""

    name: str
    ip: str
    port: int
    cport: int
    flags: str
    ping_sent: int
    pong_received: int


@dataclass(slots=True)
class Message:
    type: str
    sender: str
    current_epoch: int
    config_epoch: int
    port: int
    cport: int
    flags: str
    shard_id: str
    slots: bytes
    gossip: list[Gossip] = field(default_factory=list)
    node: str = ""  # UPDATE: the node whose slots the receiver has wrong
    node_epoch: int = 0
    node_slots: bytes = b""


@dataclass
class Outcome:
    """What :func:`receive` did, for the I/O layer to act on."""

    replies: list[Message] = field(default_factory=list)  # answer of an inbound message
    updates: list[Message] = field(default_factory=list)  # UPDATEs for the link's node
    topology: bool = False  # a slot changed owner
    announce: bool = False  # myself changed (epoch collision): broadcast now
    nodes_changed: bool = False  # a node was added, renamed or deleted
    drop_link: bool = False  # the link's node was deleted (a duplicate handshake)
    relink: list[NodeRecord] = field(default_factory=list)  # address changed: reconnect
    lost_slots: list[int] = field(default_factory=list)  # lost ownership with keys inside


# -- encoding -----------------------------------------------------------------------------------
def encode(msg: Message) -> list[bytes]:
    out = [msg.type.encode(), msg.sender.encode(), b"%d" % msg.current_epoch,
           b"%d" % msg.config_epoch, b"%d" % msg.port, b"%d" % msg.cport, msg.flags.encode(),
           msg.shard_id.encode(), msg.slots]  # fmt: skip
    if msg.type == "update":
        out += [msg.node.encode(), b"%d" % msg.node_epoch, msg.node_slots]
        return out
    out.append(b"%d" % len(msg.gossip))
    for g in msg.gossip:
        out += [g.name.encode(), g.ip.encode(), b"%d" % g.port, b"%d" % g.cport, g.flags.encode(),
                b"%d" % g.ping_sent, b"%d" % g.pong_received]  # fmt: skip
    return out


def _int(b: bytes) -> int:
    try:
        return int(b)
    except ValueError:
        raise GossipError(f"not an integer: {b[:20]!r}") from None


def _text(b: bytes) -> str:
    try:
        return b.decode("ascii")
    except UnicodeDecodeError:
        raise GossipError("not ASCII") from None


def decode(fields: list[bytes]) -> Message:
    """The message of ``fields`` (everything after ``CLUSTER BUS``); GossipError if malformed."""
    if len(fields) < HEADER_FIELDS:
        raise GossipError("short header")
    kind = _text(fields[0]).lower()
    if kind not in TYPES:
        raise GossipError(f"unknown message type {kind!r}")
    f = fields
    msg = Message(kind, _text(f[1]), _int(f[2]), _int(f[3]), _int(f[4]), _int(f[5]),
                  _text(f[6]), _text(f[7]), bytes(f[8]))  # fmt: skip
    if not valid_node_id(msg.sender):
        raise GossipError("bad sender id")
    rest = fields[HEADER_FIELDS:]
    if kind == "update":
        if len(rest) != 3:
            raise GossipError("UPDATE has 3 fields after the header")
        msg.node, msg.node_epoch, msg.node_slots = _text(rest[0]), _int(rest[1]), bytes(rest[2])
        return msg
    if not rest:
        raise GossipError("no gossip count")
    count = _int(rest[0])
    if count < 0 or len(rest) != 1 + count * GOSSIP_FIELDS:
        raise GossipError("gossip count does not match")
    for i in range(1, len(rest), GOSSIP_FIELDS):
        f = rest[i : i + GOSSIP_FIELDS]
        msg.gossip.append(Gossip(_text(f[0]), _text(f[1]), _int(f[2]), _int(f[3]), _text(f[4]),
                                 _int(f[5]), _int(f[6])))  # fmt: skip
    return msg


def expand_slots(text: bytes) -> list[int]:
    """``0-3,7`` -> [0, 1, 2, 3, 7]; GossipError on a bad range."""
    out: list[int] = []
    if not text:
        return out
    for part in text.split(b","):
        a, dash, b = part.partition(b"-")
        start = _int(a)
        end = _int(b) if dash else start
        if not 0 <= start <= end < CLUSTER_SLOTS:
            raise GossipError(f"bad slot range {part[:30]!r}")
        out.extend(range(start, end + 1))
    return out


# -- building messages ----------------------------------------------------------------------
def node_flags(node: NodeRecord) -> str:
    """The flags a node announces (clusterNodeFlagsTable order, without ``myself``)."""
    names = [f for f in ("master", "slave", "fail?", "fail", "noaddr", "nofailover")
             if f in node.flags]  # fmt: skip
    return ",".join(names) or "noflags"


def header(state: ClusterState, kind: str) -> Message:
    """clusterBuildMessageHdr: who I am, my epochs and my slots."""
    me = state.myself
    return Message(kind, me.name, state.current_epoch, me.epoch, me.port, me.cport,
                   node_flags(me), me.shard_id, state.ranges_text(me))  # fmt: skip


def make_ping(
    state: ClusterState, kind: str, target: NodeRecord | None, rng: random.Random
) -> Message:
    """clusterSendPing: the header plus a gossip section of max(3, N/10) random healthy nodes
    and every node this node thinks is failing."""
    msg = header(state, kind)
    me = state.myself
    nodes = list(state.nodes.values())
    fresh = len(nodes) - 2
    wanted = min(max(3, len(nodes) // 10), fresh)  # src/cluster_legacy.c clusterSendPing
    chosen: set[str] = set()
    tries = wanted * 3
    while fresh > 0 and len(chosen) < wanted and tries > 0:
        tries -= 1
        n = rng.choice(nodes)
        if n is me or n is target or n.name in chosen or "fail?" in n.flags:
            continue
        if n.flags & {"handshake", "noaddr"} or (not n.link and n.numslots == 0):
            continue
        chosen.add(n.name)
    for n in nodes:  # PFAIL nodes always travel (clusterSendPing's second loop)
        if "fail?" in n.flags and n is not me and "handshake" not in n.flags:
            chosen.add(n.name)
    for name in chosen:
        n = state.nodes[name]
        msg.gossip.append(Gossip(n.name, n.ip, n.port, n.cport, node_flags(n), n.ping_sent,
                                 n.pong_received))  # fmt: skip
    return msg


def make_update(state: ClusterState, node: NodeRecord) -> Message:
    """clusterSendUpdate: the node's config epoch and slots as this node knows them."""
    msg = header(state, "update")
    msg.node, msg.node_epoch, msg.node_slots = node.name, node.config_epoch, state.ranges_text(node)
    return msg


def count(counts: dict[str, int], kind: str, n: int = 1) -> None:
    counts[kind] = counts.get(kind, 0) + n


# -- receiving ------------------------------------------------------------------------------
def receive(
    state: ClusterState,
    msg: Message,
    now_ms: int,
    rng: random.Random,
    *,
    link_node: NodeRecord | None = None,
    peer_ip: str = "",
    local_ip: str = "",
    has_keys: Callable[[int], bool] = lambda slot: False,
) -> Outcome:
    """Apply one message (src/cluster_legacy.c clusterProcessPacket). ``link_node`` is the node
    of the outbound link a reply came on (None for a message received as a command);
    ``peer_ip``/``local_ip`` the addresses of an inbound connection."""
    out = Outcome()
    count(state.messages_received, msg.type)
    me = state.myself
    kind = msg.type
    sender = state.lookup(msg.sender)
    if sender is not None and "handshake" in sender.flags:
        sender = None
    if sender is not None and sender is not me:
        _epochs(state, sender, msg)
    if kind in ("ping", "meet"):
        # a MEET (or any PING while we have none) tells this node its own address
        if local_ip and (kind == "meet" or not me.ip) and local_ip != me.ip:
            me.ip = local_ip
            state.todo_save = True
        if sender is None and kind == "meet" and peer_ip:
            node = NodeRecord(state.random_hex(), ip=peer_ip, port=msg.port, cport=msg.cport,
                              flags={"handshake"}, shard_id=state.random_hex(),
                              ctime=now_ms)  # fmt: skip
            state.add_node(node)
            out.nodes_changed = True
        # nodeUpdateAddressIfNeeded: a known node talks from a new address
        moved = (
            sender is not None
            and sender is not me
            and link_node is None
            and peer_ip != ""
            and (sender.ip, sender.port, sender.cport) != (peer_ip, msg.port, msg.cport)
        )
        if moved and sender is not None:
            sender.ip, sender.port, sender.cport = peer_ip, msg.port, msg.cport
            state.todo_save = True
            out.relink.append(sender)
    if kind == "update":
        _update(state, sender, msg, has_keys, out)
        return out
    if link_node is not None:
        if "handshake" in link_node.flags:
            if sender is not None:
                # we know this node already: the handshake record was a duplicate
                state.del_node(link_node)
                out.drop_link = out.nodes_changed = True
                return out
            state.rename_node(link_node, msg.sender)
            link_node.flags = {f for f in msg.flags.split(",") if f in _NODE_FLAGS} or {"master"}
            link_node.shard_id = msg.shard_id or link_node.shard_id
            out.nodes_changed = True
            sender = link_node
            _epochs(state, sender, msg)
        elif link_node.name != msg.sender:
            # another node answers at that address: src/cluster_legacy.c marks it noaddr
            link_node.flags.add("noaddr")
            link_node.ip, link_node.port, link_node.cport = "", 0, 0
            out.drop_link = out.nodes_changed = True
            state.todo_save = True
            return out
        if kind == "pong":
            link_node.pong_received = now_ms
            link_node.ping_sent = 0
            link_node.flags.discard("fail?")
    if sender is not None and sender is not me:
        if kind == "pong" and link_node is None:  # a broadcast PONG: the node is alive
            sender.pong_received = now_ms
            sender.flags.discard("fail?")
        if msg.shard_id and sender.shard_id != msg.shard_id and valid_node_id(msg.shard_id):
            sender.shard_id = msg.shard_id
            state.todo_save = True
        if state.ranges_text(sender) != msg.slots:
            claimed = expand_slots(msg.slots)
            if sender.is_primary:
                update_slots(state, sender, msg.config_epoch, claimed, has_keys, out)
            for slot in claimed:  # a stale claim: tell the sender who owns it (UPDATE)
                owner = state.slots[slot]
                stale = owner is not None and owner is not sender
                if stale and owner is not None and owner.config_epoch > msg.config_epoch:
                    out.updates.append(make_update(state, owner))
                    break
        if sender.is_primary and me.is_primary and msg.config_epoch == me.config_epoch:
            out.announce |= handle_epoch_collision(state, sender)
        _gossip_section(state, msg, sender, now_ms, out)
    if kind in ("ping", "meet"):
        pong = make_ping(state, "pong", sender, rng)
        out.replies.append(pong)
        out.replies.extend(out.updates)
        out.updates = []
    return out


def _epochs(state: ClusterState, sender: NodeRecord, msg: Message) -> None:
    if msg.current_epoch > state.current_epoch:
        state.current_epoch = msg.current_epoch
        state.todo_save = True
    if msg.config_epoch > sender.config_epoch and sender.primary is None:
        sender.config_epoch = msg.config_epoch
        state.todo_save = True


def _update(
    state: ClusterState,
    sender: NodeRecord | None,
    msg: Message,
    has_keys: Callable[[int], bool],
    out: Outcome,
) -> None:
    """The UPDATE message: ``node`` owns ``node_slots`` with ``node_epoch``."""
    if sender is None:
        return  # src/cluster_legacy.c: we don't know the sender
    node = state.lookup(msg.node)
    if node is None or node.config_epoch >= msg.node_epoch:
        return
    node.config_epoch = msg.node_epoch
    state.todo_save = True
    update_slots(state, node, msg.node_epoch, expand_slots(msg.node_slots), has_keys, out)


def update_slots(
    state: ClusterState,
    sender: NodeRecord,
    epoch: int,
    claimed: list[int],
    has_keys: Callable[[int], bool],
    out: Outcome,
) -> None:
    """src/cluster_legacy.c clusterUpdateSlotsConfigWith: a claimed slot goes to ``sender``
    when it is unassigned or its owner's config epoch is lower, unless we are importing it."""
    me = state.myself
    if sender is me:
        return  # "Discarding UPDATE message about myself."
    slots = state.slots
    for slot in claimed:
        owner = slots[slot]
        if owner is sender or slot in state.importing:
            continue
        if owner is None or owner.config_epoch < epoch:
            if owner is me and has_keys(slot):
                out.lost_slots.append(slot)  # dirty_slots: their keys are deleted
            if state.migrating.get(slot) is sender:
                del state.migrating[slot]  # the slot we were migrating has arrived
            state.del_slot(slot)
            state.add_slot(sender, slot)
            out.topology = True
    # Not modelled: a primary left without slots becomes a replica of the node that took
    # them (cluster-allow-replica-migration) - there are no replicas here.


def handle_epoch_collision(state: ClusterState, sender: NodeRecord) -> bool:
    """src/cluster_legacy.c clusterHandleConfigEpochCollision: of two primaries with the same
    config epoch, the one with the lexicographically smaller node id takes a new epoch."""
    me = state.myself
    if sender.config_epoch != me.config_epoch or not sender.is_primary or not me.is_primary:
        return False
    if sender.name <= me.name:
        return False  # the other node will act
    state.current_epoch += 1
    me.config_epoch = state.current_epoch
    state.todo_save = True
    return True


def _gossip_section(
    state: ClusterState, msg: Message, sender: NodeRecord, now_ms: int, out: Outcome
) -> None:
    """src/cluster_legacy.c clusterProcessGossipSection (no failure reports)."""
    now_s = now_ms // 1000
    for g in msg.gossip:
        flags = set(g.flags.split(","))
        node = state.lookup(g.name)
        if node is not None:
            # a node we cannot reach, seen healthy at another address: try that one
            if (
                node is not state.myself
                and node.flags & {"fail?", "fail"}
                and not flags & {"noaddr", "fail?", "fail"}
                and (node.ip, node.port, node.cport) != (g.ip, g.port, g.cport)
                and g.ip
            ):
                node.ip, node.port, node.cport = g.ip, g.port, g.cport
                state.todo_save = True
                out.relink.append(node)
            continue
        # a new node: trusted because a known node gossips about it (with its exact id)
        if "noaddr" in flags or not g.ip or not valid_node_id(g.name):
            continue
        if state.blacklisted(g.name, now_s):
            continue  # CLUSTER FORGET keeps it out for 60 s
        node = NodeRecord(g.name, ip=g.ip, port=g.port, cport=g.cport,
                          flags={f for f in flags if f in _NODE_FLAGS} or {"master"},
                          shard_id=state.random_hex(), ctime=now_ms)  # fmt: skip
        state.add_node(node)
        out.nodes_changed = True
