"""The cluster bus I/O: one outbound RESP link per known node, on its client port.

How this works (the messages and rules are :mod:`engine.cluster.gossip`; docs/cluster.md has
the sizes and rates): for every node it knows, a node keeps one outbound connection (the
``connected`` of CLUSTER NODES) and sends its messages as ``CLUSTER BUS ...`` commands; the
other node's command handler (engine/commands/cluster_link.py) applies each one and answers
with its PONG. Inbound connections are ordinary client connections. Every cron tick
(``hz``, 10/s by default, src/cluster_legacy.c clusterCron) the bus

- connects to nodes without a link (again after a broken one, at most every 500 ms), and drops
  handshake nodes that did not answer within max(node timeout, 1 s);
- pings one node: of 5 random linked nodes, the one whose PONG is oldest (Valkey does this once
  a second; we do it every tick so a cluster forms in seconds), and every node whose
  PONG is older than half the node timeout;
- marks ``fail?`` a node whose PING (or failed connect) waits longer than the node timeout,
  and reconnects a link whose PING waits longer than half of it (no FAIL, no failover);
- broadcasts a PONG to every node when this node's epochs or slots changed; CLUSTER commands
  call :meth:`ClusterBus.broadcast` through ``ClusterState.announce`` at once.

After a message changed a slot's owner the server's ``topology_listeners`` are called at once,
and the keys of slots this node lost are deleted, but for those a listener deletes itself
(src/cluster_legacy.c clusterUpdateSlotsConfigWith).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from engine.cluster import gossip
from engine.cluster.slots import ClusterState, NodeRecord
from persistence.aof.encoder import encode_command
from persistence.resp import frames as F
from persistence.resp.reply_parser import ReplyParser
from persistence.resp.tokens import ProtocolError

if TYPE_CHECKING:
    from engine.server.server import Server

log = logging.getLogger("valkey-engine")

RECONNECT_MS = 500
PING_SAMPLE = 5  # src/cluster_legacy.c clusterCron: 5 random nodes, the oldest PONG wins
_BUS = (b"CLUSTER", b"BUS")


class BusLink(asyncio.Protocol):
    """An outbound link to one node: sends messages, parses the replies."""

    def __init__(self, bus: ClusterBus, node: NodeRecord) -> None:
        self.bus = bus
        self.node = node
        self.transport: asyncio.Transport | None = None
        self.parser = ReplyParser()
        self.inflight: deque[str] = deque()
        self.closed = False
        self.created_ms = bus.now()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.bus.link_up(self)

    def data_received(self, data: bytes) -> None:
        self.bus.bytes_received(len(data))
        self.parser.feed(data)
        try:
            for frame in self.parser.frames():
                self.bus.on_reply(self, frame)
                if self.closed:
                    return
        except (ProtocolError, gossip.GossipError) as e:
            log.warning("Cluster bus link to %s: bad reply (%s)", self.node.name, e)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.bus.link_down(self)

    def send(self, msg: gossip.Message) -> None:
        if self.transport is None or self.closed:
            return
        data = encode_command([*_BUS, *gossip.encode(msg)])
        self.transport.write(data)
        self.inflight.append(msg.type)
        self.bus.sent(msg, len(data))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            self.bus.link_down(self)


class ClusterBus:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.engine = server.engine
        self.rng = random.Random()
        self.links: dict[NodeRecord, BusLink] = {}
        self.connecting: set[NodeRecord] = set()
        self.next_attempt: dict[NodeRecord, int] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.announced: tuple[Any, ...] = ()
        self.broadcast_pending = False
        self.warned: set[str] = set()

    @property
    def state(self) -> ClusterState:
        state = self.engine.cluster
        assert state is not None
        return state

    def now(self) -> int:
        return self.engine.clock.now_ms()

    def start(self) -> None:
        srv = self.server
        srv.cluster_bus = self
        srv.cron_hooks.append(self.cron)
        state = self.state
        state.bus_hook = self.on_inbound
        state.announce_hook = self.request_broadcast
        state.links_hook = self.links_info
        for node in state.nodes.values():
            node.link = False  # clusterLoadConfig ignores nodes.conf's link state: no link yet
        self.announced = self._signature()

    def close(self) -> None:
        for link in list(self.links.values()):
            link.close()
        for task in self.tasks:
            task.cancel()

    # -- statistics -----------------------------------------------------------------------
    def sent(self, msg: gossip.Message, nbytes: int) -> None:
        state = self.state
        gossip.count(state.messages_sent, msg.type)
        state.stats["cluster_stats_bytes_sent"] = (
            state.stats.get("cluster_stats_bytes_sent", 0) + nbytes
        )

    def bytes_received(self, nbytes: int) -> None:
        stats = self.state.stats
        stats["cluster_stats_bytes_received"] = (
            stats.get("cluster_stats_bytes_received", 0) + nbytes
        )

    # -- links ----------------------------------------------------------------------------
    def connect(self, node: NodeRecord, now: int) -> None:
        loop = self.server.loop
        if loop is None:
            return
        self.connecting.add(node)
        self.next_attempt[node] = now + RECONNECT_MS
        task = loop.create_task(self._open(node))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _open(self, node: NodeRecord) -> None:
        loop = self.server.loop
        assert loop is not None
        try:
            await loop.create_connection(lambda: BusLink(self, node), node.ip, node.port)
        except OSError:
            # clusterNodeCronHandleReconnect: without a pending ping failure detection cannot
            # work, so a failed connect counts as a ping sent now (retried by the cron)
            if node.ping_sent == 0:
                node.ping_sent = self.now()
        finally:
            self.connecting.discard(node)

    def link_up(self, link: BusLink) -> None:
        node = link.node
        state = self.state
        if state.nodes.get(node.name) is not node or node in self.links:
            link.close()  # forgotten meanwhile, or a second link
            return
        self.links[node] = link
        node.link = True
        password = self.engine.config["requirepass"]
        if password:  # the nodes of a cluster share requirepass; Valkey's bus has no AUTH
            assert link.transport is not None
            link.transport.write(encode_command([b"AUTH", password]))
            link.inflight.append("auth")
        # clusterLinkConnectHandler: the first message is a MEET for a met node, else a PING
        self.ping(link, "meet" if "meet" in node.flags else "ping")

    def link_down(self, link: BusLink) -> None:
        node = link.node
        if self.links.get(node) is link:
            del self.links[node]
            node.link = False
            self.next_attempt[node] = self.now() + RECONNECT_MS

    def ping(self, link: BusLink, kind: str = "ping") -> None:
        node = link.node
        msg = gossip.make_ping(self.state, kind, node, self.rng)
        if node.ping_sent == 0:
            node.ping_sent = self.now()
        link.send(msg)

    def links_info(self) -> list[Any]:
        """CLUSTER LINKS (src/cluster_legacy.c addReplyClusterLinkDescription): the outbound
        links ("to") and the connections other nodes' messages came on ("from")."""
        state = self.state
        out: list[Any] = []
        for node, link in self.links.items():
            t = link.transport
            used = t.get_write_buffer_size() if t is not None else 0
            out.append(_link_entry(b"to", node.name, link.created_ms, used))
        conns = self.server.connections
        for cid in [c for c in state.inbound if c not in conns]:
            del state.inbound[cid]
        for cid, (name, created) in state.inbound.items():
            known = state.lookup(name)
            if known is None or "handshake" in known.flags:
                continue
            t = conns[cid].transport
            used = t.get_write_buffer_size() if t is not None else 0
            out.append(_link_entry(b"from", name, created, used))
        return out

    # -- messages -------------------------------------------------------------------------
    def on_reply(self, link: BusLink, frame: Any) -> None:
        kind = link.inflight.popleft() if link.inflight else "?"
        if kind == "auth" and not isinstance(frame, F.Error):
            return
        if isinstance(frame, F.Error):
            text = frame.message.decode(errors="replace")
            if link.node.name not in self.warned:
                self.warned.add(link.node.name)
                log.warning("Cluster bus: %s:%d answered %s: %s", link.node.ip, link.node.port,
                            kind.upper(), text)  # fmt: skip
            return
        if not isinstance(frame, F.Array) or frame.items is None:
            raise gossip.GossipError("a reply is an array of messages")
        now = self.now()
        for item in frame.items:
            if not isinstance(item, F.Array) or item.items is None:
                raise gossip.GossipError("a message is an array")
            fields = [f.value for f in item.items if isinstance(f, F.Bulk) and f.value is not None]
            msg = gossip.decode(fields)
            out = gossip.receive(self.state, msg, now, self.rng, link_node=link.node,
                                 has_keys=self._has_keys)  # fmt: skip
            for update in out.updates:
                link.send(update)
            # the same path as a message received as a command (others may sit in front)
            hook = self.state.bus_hook
            (hook or self.on_inbound)(out)
            if out.drop_link:
                link.close()
                return

    def on_inbound(self, out: gossip.Outcome) -> None:
        """``ClusterState.bus_hook``: the outcome of every message, received as a command
        (inside the engine) or as a reply; acted on after the current callback."""
        if out.topology:
            # the listeners first, inside the handler: a migration source answers the writes it
            # holds (MOVED) at once and deletes the moved keys itself, a few per loop turn,
            # instead of this bus deleting them in one go (migration_io.MovedKeys)
            claimed: set[int] = set()
            for listener in list(self.server.topology_listeners):
                claimed.update(listener())
            if claimed and out.lost_slots:
                out.lost_slots[:] = [s for s in out.lost_slots if s not in claimed]
        loop = self.server.loop
        busy = out.topology or out.announce or out.relink or out.lost_slots
        if busy and loop is not None:
            loop.call_soon(self.act, out)

    def act(self, out: gossip.Outcome) -> None:
        for node in out.relink:
            link = self.links.get(node)
            if link is not None:
                link.close()
            self.next_attempt[node] = 0
        if out.lost_slots:
            self._delete_lost_keys(out.lost_slots)
        if out.topology:
            self._update_state()
        if out.announce:
            self.request_broadcast()
        self.server.schedule_flush()  # nodes.conf is saved before the next replies

    def _has_keys(self, slot: int) -> bool:
        return self.engine.keyspace.count_keys_in_slot(slot) > 0

    def _delete_lost_keys(self, slots: list[int]) -> None:
        """clusterDelKeysInSlot for the slots another node took with a higher epoch: the keys
        are deleted through CLUSTER FLUSHSLOT so the AOF records it."""
        engine = self.engine
        state = self.state
        client = engine.new_client("cluster-bus", "")
        try:
            for slot in slots:
                if state.slots[slot] is state.myself or not self._has_keys(slot):
                    continue
                _, effects = engine.execute(client, [b"CLUSTER", b"FLUSHSLOT", b"%d" % slot])
                if effects:
                    self.server.propagate(effects)
        finally:
            engine.drop_client(client)

    def request_broadcast(self) -> None:
        loop = self.server.loop
        if not self.broadcast_pending and loop is not None:
            self.broadcast_pending = True
            loop.call_soon(self.broadcast)

    def broadcast(self) -> None:
        """clusterBroadcastPong: announce this node's state to every node now."""
        self.broadcast_pending = False
        self.announced = self._signature()
        state = self.state
        for node, link in list(self.links.items()):
            if "handshake" not in node.flags and not link.closed:
                link.send(gossip.make_ping(state, "pong", node, self.rng))

    def _signature(self) -> tuple[Any, ...]:
        state = self.state
        me = state.myself
        return (me.name, me.config_epoch, state.current_epoch, state.ranges_text(me), me.shard_id)

    def _update_state(self) -> None:
        cfg = self.engine.config
        self.state.update_state(self.now(), full_coverage=cfg["cluster-require-full-coverage"],
                                node_timeout=cfg["cluster-node-timeout"])  # fmt: skip

    # -- cron -----------------------------------------------------------------------------
    def cron(self) -> None:
        """clusterCron: links, handshake timeouts, pings, PFAIL, broadcast on change."""
        state = self.state
        if state.bus_hook is None:  # CLUSTER RESET keeps the object; a new state does not
            state.bus_hook = self.on_inbound
            state.announce_hook = self.request_broadcast
        now = self.now()
        if len(state.inbound) > 2 * len(state.nodes):  # connections that are gone
            conns = self.server.connections
            state.inbound = {c: v for c, v in state.inbound.items() if c in conns}
        timeout = int(self.engine.config["cluster-node-timeout"])
        handshake_timeout = max(timeout, 1000)
        me = state.myself
        for node, link in list(self.links.items()):
            if state.nodes.get(node.name) is not node:
                link.close()  # forgotten or renamed away
        due: list[BusLink] = []
        idle: list[BusLink] = []
        for node in list(state.nodes.values()):
            if node is me:
                continue
            if node.ctime == 0:
                node.ctime = now  # a record from CLUSTER MEET or nodes.conf
            if "handshake" in node.flags and now - node.ctime > handshake_timeout:
                state.del_node(node)  # clusterNodeCronHandleReconnect: handshake timed out
                continue
            wait = now - node.ping_sent if node.ping_sent else 0
            if wait > timeout:
                node.flags.add("fail?")  # PFAIL; FAIL needs failure reports: not here
            found = self.links.get(node)
            if found is None:
                if (node not in self.connecting and "noaddr" not in node.flags and node.ip
                        and node.port and now >= self.next_attempt.get(node, 0)):  # fmt: skip
                    self.connect(node, now)
                continue
            link = found
            if wait > timeout // 2 and now - link.created_ms > timeout // 2:
                link.close()  # src/cluster_legacy.c: free a link that does not answer
                continue
            if node.ping_sent == 0:
                idle.append(link)
                if now - node.pong_received > timeout // 2:
                    due.append(link)
        if idle:
            sample = self.rng.sample(idle, min(PING_SAMPLE, len(idle)))
            oldest = min(sample, key=lambda lk: lk.node.pong_received)
            if oldest not in due:
                due.append(oldest)
        for link in due:
            self.ping(link)
        if self._signature() != self.announced:
            self.broadcast()
        self._update_state()


def _link_entry(direction: bytes, name: str, created: int, used: int) -> dict[bytes, Any]:
    return {b"direction": direction, b"node": name.encode(), b"create-time": created,
            b"events": b"r" if not used else b"rw", b"send-buffer-allocated": used,
            b"send-buffer-used": used}  # fmt: skip
