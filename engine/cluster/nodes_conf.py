"""nodes.conf and CLUSTER NODES: one line per node, rendered and parsed as Valkey does (and the
CLUSTER INFO text, :func:`info_text`).

A line is (src/cluster_legacy.c clusterGenNodeDescription)::

    <id> <ip>:<port>@<cport>[,<hostname>][,aux=value...] <flags> <primary|-> <ping_sent>
    <pong_received> <config epoch> <connected|disconnected> <slot or start-end> ... [open slots]

CLUSTER NODES shows the hostname only when set and never the aux fields; nodes.conf always has
the comma after the address (an empty hostname), then the aux fields from the last handler to
the first (``client-tls-port`` ... ``shard-id``, ``tcp-port`` left out for a plain-TCP node
since it is the main port), leaves out nodes in handshake, and ends with
``vars currentEpoch <n> lastVoteEpoch <n>``. Only the "myself" line lists open slots:
``[slot->-<id>]`` (migrating to) and ``[slot-<-<id>]`` (importing from).

:func:`parse` reads a file back (clusterLoadConfig) into a :class:`ClusterState`. Pure: bytes in,
bytes out; writing the file atomically is the server's job. Ping/pong times are kept as written
(Valkey replaces a non-zero value by the load time; the link layer owns them).
"""

from __future__ import annotations

import shlex

from engine.cluster.slots import (
    CLUSTER_SLOTS,
    FLAG_ALIASES,
    FLAG_ORDER,
    PORT_INCR,
    ClusterState,
    NodeRecord,
    valid_node_id,
)

# src/cluster_legacy.c auxFieldHandlers, in index order
AUX_FIELDS = ("shard-id", "nodename", "tcp-port", "tls-port", "client-ipv4", "client-ipv6",
              "client-tcp-port", "client-tls-port")  # fmt: skip
# src/cluster_legacy.c clusterGetMessageTypeString, in message type order
MESSAGE_TYPES = ("ping", "pong", "meet", "fail", "publish", "publishshard", "auth-req",
                 "auth-ack", "update", "mfstart", "module")  # fmt: skip

_INVALID_AUX = set(";<=>?@[]^{|}~\\")


class NodesConfError(Exception):
    """A nodes.conf Valkey would refuse (it panics with this text)."""

    def __init__(self, line: str, lineno: int, why: str = "") -> None:
        # src/cluster_legacy.c clusterLoadConfig fmterr
        msg = f'Unrecoverable error: corrupted cluster config file "{line}".'
        super().__init__(f"line {lineno}: {msg}" + (f" ({why})" if why else ""))
        self.line = line
        self.lineno = lineno


def _flags(node: NodeRecord) -> str:
    names = [f for f in FLAG_ORDER if f in node.flags]
    return ",".join(names) if names else "noflags"


def _aux(node: NodeRecord) -> str:
    out = []
    present = {
        "client-tls-port": 0 < node.client_tls_port < 65536,
        "client-tcp-port": 0 < node.client_tcp_port < 65536,
        "client-ipv6": bool(node.client_ipv6),
        "client-ipv4": bool(node.client_ipv4),
        "tls-port": 0 <= node.tls_port < 65536,
        "nodename": bool(node.human_nodename),
        "shard-id": bool(node.shard_id),
    }
    values = {
        "client-tls-port": str(node.client_tls_port),
        "client-tcp-port": str(node.client_tcp_port),
        "client-ipv6": node.client_ipv6,
        "client-ipv4": node.client_ipv4,
        "tls-port": str(node.tls_port),
        "nodename": node.human_nodename,
        "shard-id": node.shard_id,
    }
    for name in reversed(AUX_FIELDS):
        if name != "tcp-port" and present[name]:
            out.append(f",{name}={values[name]}")
    return "".join(out)


def node_line(state: ClusterState, node: NodeRecord, *, conf: bool) -> str:
    """One node's line: for nodes.conf (``conf``) or for CLUSTER NODES."""
    parts = [f"{node.name} {node.ip}:{node.port}@{node.cport}"]
    if node.hostname:
        parts.append(f",{node.hostname}")
    if conf:
        if not node.hostname:
            parts.append(",")
        parts.append(_aux(node))
    primary = node.primary.name if node.primary is not None else "-"
    link = "connected" if node.link or node.myself else "disconnected"
    parts.append(
        f" {_flags(node)} {primary} {node.ping_sent} {node.pong_received} {node.epoch} {link}"
    )
    for start, end in state.slot_ranges(node):
        parts.append(f" {start}" if start == end else f" {start}-{end}")
    if node.myself:
        for slot in sorted(set(state.migrating) | set(state.importing)):
            dest = state.migrating.get(slot)
            if dest is not None:
                parts.append(f" [{slot}->-{dest.name}]")
            else:
                parts.append(f" [{slot}-<-{state.importing[slot].name}]")
    return "".join(parts)


def cluster_nodes(state: ClusterState) -> bytes:
    """The CLUSTER NODES text (every node, handshake included)."""
    return "".join(node_line(state, n, conf=False) + "\n" for n in state.nodes.values()).encode()


def render(state: ClusterState) -> bytes:
    """The whole nodes.conf (clusterSaveConfig): nodes not in handshake, then the vars line."""
    lines = [node_line(state, n, conf=True) + "\n" for n in state.nodes.values()
             if "handshake" not in n.flags]  # fmt: skip
    lines.append(f"vars currentEpoch {state.current_epoch} lastVoteEpoch {state.last_vote_epoch}\n")
    return "".join(lines).encode()


def info_text(cluster: ClusterState) -> bytes:
    """genClusterInfoString (src/cluster_legacy.c), with the 9.1 byte counters."""
    assigned = ok = pfail = fail = 0
    nodes_pfail = nodes_fail = voting_pfail = voting_fail = 0
    for n in cluster.nodes.values():
        if n.numslots:
            assigned += n.numslots
            if n.failed:
                fail += n.numslots
            elif n.timed_out:
                pfail += n.numslots
            else:
                ok += n.numslots
        voting = n.is_primary and n.numslots > 0
        if n.timed_out:
            nodes_pfail += 1
            voting_pfail += voting
        if n.failed:
            nodes_fail += 1
            voting_fail += voting
    lines = [
        f"cluster_state:{'ok' if cluster.ok else 'fail'}",
        f"cluster_slots_assigned:{assigned}",
        f"cluster_slots_ok:{ok}",
        f"cluster_slots_pfail:{pfail}",
        f"cluster_slots_fail:{fail}",
        f"cluster_nodes_pfail:{nodes_pfail}",
        f"cluster_nodes_fail:{nodes_fail}",
        f"cluster_voting_nodes_pfail:{voting_pfail}",
        f"cluster_voting_nodes_fail:{voting_fail}",
        f"cluster_known_nodes:{len(cluster.nodes)}",
        f"cluster_size:{cluster.size}",
        f"cluster_current_epoch:{cluster.current_epoch}",
        f"cluster_my_epoch:{cluster.myself.epoch}",
    ]
    for direction, counts in (("sent", cluster.messages_sent),
                              ("received", cluster.messages_received)):  # fmt: skip
        for t in MESSAGE_TYPES:
            if counts.get(t):
                lines.append(f"cluster_stats_messages_{t}_{direction}:{counts[t]}")
        lines.append(f"cluster_stats_messages_{direction}:{sum(counts.values())}")
    for name in ("cluster_stats_bytes_sent", "cluster_stats_bytes_received",
                 "cluster_stats_pubsub_bytes_sent", "cluster_stats_pubsub_bytes_received",
                 "cluster_stats_module_bytes_sent", "cluster_stats_module_bytes_received",
                 "total_cluster_links_buffer_limit_exceeded"):  # fmt: skip
        lines.append(f"{name}:{cluster.stats.get(name, 0)}")
    return "".join(line + "\r\n" for line in lines).encode()


# -- parsing ---------------------------------------------------------------------------------
class _Loader:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeRecord] = {}
        self.myself: NodeRecord | None = None
        self.slots: dict[int, NodeRecord] = {}
        self.migrating: dict[int, NodeRecord] = {}
        self.importing: dict[int, NodeRecord] = {}
        self.current_epoch = 0
        self.last_vote_epoch = 0

    def node(self, name: str) -> NodeRecord:
        n = self.nodes.get(name)
        if n is None:
            n = self.nodes[name] = NodeRecord(name)
        return n


def _atoi(text: str) -> int:
    """atoi: leading digits (with sign), 0 when there are none."""
    t = text.strip()
    i = 1 if t[:1] in ("-", "+") else 0
    while i < len(t) and t[i].isdigit():
        i += 1
    try:
        return int(t[:i])
    except ValueError:
        return 0


def _set_aux(node: NodeRecord, name: str, value: str) -> bool:
    """The aux field setters of src/cluster_legacy.c; False when the value is refused."""
    if name == "shard-id":
        if not valid_node_id(value):
            return False
        node.shard_id = value
    elif name == "nodename":
        node.human_nodename = value
    elif name in ("tcp-port", "tls-port", "client-tcp-port", "client-tls-port"):
        if not 1 <= len(value) <= 5:
            return False
        port = _atoi(value)
        if not 0 <= port < 65536:
            return False
        attr = {"tcp-port": "port", "tls-port": "tls_port", "client-tcp-port": "client_tcp_port",
                "client-tls-port": "client_tls_port"}[name]  # fmt: skip
        setattr(node, attr, port)
    elif name == "client-ipv4":
        node.client_ipv4 = value
    elif name == "client-ipv6":
        node.client_ipv6 = value
    else:
        return False
    return True


def _valid_aux(text: str) -> bool:
    """isValidAuxChar (src/cluster.c): nothing up to ',' (0x2C), no DEL, none of ;<=>?@[]^{|}~\\."""
    return all(ord(c) > 0x2C and ord(c) != 0x7F and c not in _INVALID_AUX for c in text)


def parse(data: bytes | str) -> ClusterState:
    """Read a nodes.conf (src/cluster_legacy.c clusterLoadConfig); NodesConfError if Valkey
    would refuse it."""
    text = data.decode() if isinstance(data, bytes) else data
    ld = _Loader()
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        try:
            argv = shlex.split(line)  # sdssplitargs
        except ValueError:
            raise NodesConfError(line, lineno, "unbalanced quotes") from None
        if not argv:
            continue
        if argv[0].lower() == "vars":
            if len(argv) % 2 == 0:
                raise NodesConfError(line, lineno, "vars needs name/value pairs")
            for j in range(1, len(argv), 2):
                if argv[j].lower() == "currentepoch":
                    ld.current_epoch = _atoi(argv[j + 1])
                elif argv[j].lower() == "lastvoteepoch":
                    ld.last_vote_epoch = _atoi(argv[j + 1])
            continue
        _parse_node(ld, argv, line, lineno)
    if ld.myself is None:
        raise NodesConfError(text.split("\n", 1)[0], 1, "no node has the myself flag")
    state = ClusterState(ld.myself)
    state.nodes = dict(ld.nodes)
    for slot, n in sorted(ld.slots.items()):
        state.add_slot(n, slot)
    state.migrating = ld.migrating
    state.importing = ld.importing
    state.current_epoch = max(ld.current_epoch, 0)
    state.last_vote_epoch = ld.last_vote_epoch
    # currentEpoch is at least the highest config epoch (clusterLoadConfig)
    state.current_epoch = max(state.current_epoch, state.max_epoch())
    state.todo_save = False
    return state


def _parse_node(ld: _Loader, argv: list[str], line: str, lineno: int) -> None:
    def bad(why: str) -> NodesConfError:
        return NodesConfError(line, lineno, why)

    if len(argv) < 8:
        raise bad("a node line has at least 8 fields")
    if not valid_node_id(argv[0]):
        raise bad(f"bad node id {argv[0]!r}")
    n = ld.node(argv[0])
    aux = argv[1].split(",")
    n.hostname = aux[1] if len(aux) > 1 else ""
    seen: set[str] = set()
    for item in aux[2:]:
        kv = item.split("=")
        if len(kv) != 2 or not _valid_aux(kv[0]) or not _valid_aux(kv[1]):
            raise bad(f"bad aux field {item!r}")
        if kv[0] not in AUX_FIELDS or not _set_aux(n, kv[0], kv[1]):
            raise bad(f"bad aux field {item!r}")
        seen.add(kv[0])
    addr = aux[0]
    colon = addr.rfind(":")
    if colon == -1:
        raise bad(f"no port in {addr!r}")
    n.ip = addr[:colon]
    port_text, _, bus = addr[colon + 1 :].partition("@")
    if "tcp-port" in seen and "tls-port" not in seen:
        n.tls_port = _atoi(port_text)
    elif "tcp-port" not in seen:
        n.port = _atoi(port_text)
    n.cport = _atoi(bus) if bus else n.port + PORT_INCR
    for flag in argv[2].split(","):
        f = FLAG_ALIASES.get(flag.lower(), flag.lower())
        if f == "myself":
            if ld.myself is not None:
                raise bad("two nodes have the myself flag")
            ld.myself = n
        if f == "noaddr":
            n.flags.add("fail")
        if f == "noflags":
            continue
        if f not in FLAG_ORDER:
            # src/cluster_legacy.c: serverPanic("Unknown flag in ... cluster config file")
            raise bad(f"unknown flag {flag!r}")
        n.flags.add(f)
    if argv[3][0] != "-":
        if not valid_node_id(argv[3]):
            raise bad(f"bad primary id {argv[3]!r}")
        n.primary = ld.node(argv[3])
        if "shard-id" not in seen:
            n.shard_id = n.primary.shard_id
    n.ping_sent = _atoi(argv[4])
    n.pong_received = _atoi(argv[5])
    n.config_epoch = 0 if (n.is_replica and n.primary is not None) else _atoi(argv[6])
    n.link = argv[7] == "connected"
    for item in argv[8:]:
        if item.startswith("["):
            dash = item.find("-")
            if dash == -1 or item[dash + 1 : dash + 3] not in ("<-", ">-"):
                raise bad(f"bad open slot {item!r}")
            slot = _atoi(item[1:dash])
            direction = item[dash + 1]
            close = item.find("]", dash + 3)
            peer = item[dash + 3 : close] if close != -1 else ""
            if not 0 <= slot < CLUSTER_SLOTS or not valid_node_id(peer):
                raise bad(f"bad open slot {item!r}")
            (ld.migrating if direction == ">" else ld.importing)[slot] = ld.node(peer)
            continue
        start_text, dash_, stop_text = item.partition("-")
        start = _atoi(start_text)
        stop = _atoi(stop_text) if dash_ else start
        if not (0 <= start < CLUSTER_SLOTS and 0 <= stop < CLUSTER_SLOTS):
            raise bad(f"bad slot range {item!r}")
        for slot in range(start, stop + 1):
            ld.slots.setdefault(slot, n)
