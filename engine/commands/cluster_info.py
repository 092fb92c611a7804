"""CLUSTER subcommands that only read (src/cluster.c clusterCommand): HELP, MYID, MYSHARDID,
NODES, SLOTS, SHARDS, INFO, KEYSLOT, COUNTKEYSINSLOT, GETKEYSINSLOT, LINKS,
COUNT-FAILURE-REPORTS, REPLICAS; and the argument helpers ``cluster.py`` shares.

How this works: each reads ``engine.cluster`` (:class:`~engine.cluster.slots.ClusterState`)
and formats it as Valkey does (engine/cluster/nodes_conf.py for the NODES and INFO texts).
"""

from __future__ import annotations

from typing import Any

from engine import errors as E
from engine.cluster.nodes_conf import cluster_nodes, info_text, node_line
from engine.cluster.slots import CLUSTER_SLOTS, ClusterState, NodeRecord
from engine.commands.table import TABLE, command, container
from engine.commands.util import int_arg
from engine.context import Ctx
from engine.errors import CommandError
from persistence.crc import key_slot
from persistence.resp.frames import SimpleString, Verbatim
from persistence.resp.tokens import string2ll

if b"cluster" not in TABLE:  # another module may have registered the container first
    container("cluster", -2, acl="@slow")

ADMIN_ACL = "@admin @slow @dangerous"
HELP = [
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MYID",
    "    Return the node id.",
    "MYSHARDID",
    "    Return the node's shard id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port@bus-port[,hostname]> <flags> <primary> <pings> <pongs> <epoch> <link> "
    "<slot> ...",
    "REPLICAS <node-id>",
    "    Return <node-id> replicas.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, primary and replicas IP addresses, ports and ids",
    "SLOT-STATS",
    "    Return an array of slot usage statistics for slots assigned to the current node.",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "ADDSLOTS <slot> [<slot> ...]",
    "    Assign slots to current node.",
    "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Assign slots which are between <start-slot> and <end-slot> to current node.",
    "BUMPEPOCH",
    "    Advance the cluster config epoch.",
    "COUNT-FAILURE-REPORTS <node-id>",
    "    Return number of failure reports for <node-id>.",
    "DELSLOTS <slot> [<slot> ...]",
    "    Delete slots information from current node.",
    "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
    "FAILOVER [FORCE|TAKEOVER]",
    "    Promote current replica node to being a master.",
    "FORGET <node-id>",
    "    Remove a node from the cluster.",
    "FLUSHSLOTS",
    "    Delete current node own slots information.",
    "MEET <ip> <port> [<bus-port>]",
    "    Connect nodes into a working cluster.",
    "REPLICATE <node-id>",
    "    Configure current node as replica to <node-id>.",
    "RESET [HARD|SOFT]",
    "    Reset current node (default: soft).",
    "SET-CONFIG-EPOCH <epoch>",
    "    Set config epoch of current node.",
    "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
    "    Set slot state.",
    "SAVECONFIG",
    "    Force saving cluster configuration on disk.",
    "LINKS",
    "    Return information about all network links between this node and its peers.",
    "    Output format is an array where each array element is a map containing attributes of a "
    "link",
    "MIGRATESLOTS SLOTSRANGE start-slot end-slot [start-slot end-slot ...] NODE node-id "
    "[SLOTSRANGE start-slot end-slot [start-slot end-slot ...] NODE node-id ...]",
    "    Migrate the specified slot ranges from this node to the specified node.",
    "CANCELSLOTMIGRATIONS ALL",
    "    Cancel all migrations.",
    "GETSLOTMIGRATIONS",
    "    Get information about ongoing and recently finished slot imports and exports.",
    "HELP",
    "    Print this help.",
]


def cluster_of(ctx: Ctx) -> ClusterState:
    cluster = ctx.engine.cluster
    if cluster is None:
        raise CommandError(E.CLUSTER_DISABLED)
    return cluster


def update_state(ctx: Ctx, cluster: ClusterState) -> None:
    config = ctx.engine.config
    cluster.update_state(
        ctx.now_ms,
        full_coverage=config["cluster-require-full-coverage"],
        node_timeout=config["cluster-node-timeout"],
    )


def slot_arg(arg: bytes) -> int:
    """getSlotOrReply (src/cluster_legacy.c)."""
    v = string2ll(arg)
    if v is None or not 0 <= v < CLUSTER_SLOTS:
        raise CommandError(E.INVALID_SLOT)
    return v


def node_arg(cluster: ClusterState, arg: bytes, err: Any = E.unknown_node) -> NodeRecord:
    name = arg.decode(errors="replace")
    node = cluster.lookup(name)
    if node is None:
        raise CommandError(err(name))
    return node


# -- introspection --------------------------------------------------------------------------
@command("cluster|help", 2, "loading stale", acl="@slow")
def cluster_help(ctx: Ctx, argv: list[bytes]) -> Any:
    cluster_of(ctx)
    return [SimpleString(line.encode()) for line in HELP]


@command("cluster|myid", 2, "loading stale", acl="@slow")
def cluster_myid(ctx: Ctx, argv: list[bytes]) -> Any:
    return cluster_of(ctx).myself.name.encode()


@command("cluster|myshardid", 2, "loading stale", acl="@slow")
def cluster_myshardid(ctx: Ctx, argv: list[bytes]) -> Any:
    return cluster_of(ctx).myself.shard_id.encode()


@command("cluster|nodes", 2, "loading stale", acl="@slow")
def cluster_nodes_(ctx: Ctx, argv: list[bytes]) -> Any:
    return Verbatim(b"txt", cluster_nodes(cluster_of(ctx)))


def _node_entry(node: NodeRecord) -> list[Any]:
    """addNodeToNodeReply with cluster-preferred-endpoint-type ip."""
    extra: dict[bytes, bytes] = {}
    if node.hostname:
        extra[b"hostname"] = node.hostname.encode()
    return [node.ip.encode(), node.client_port, node.name.encode(), extra]


@command("cluster|slots", 2, "loading stale", acl="@slow")
def cluster_slots(ctx: Ctx, argv: list[bytes]) -> Any:
    """clusterCommandSlots: one entry per run of slots with the same owner."""
    cluster = cluster_of(ctx)
    out: list[Any] = []
    for start, end, node in cluster.owner_runs():
        entry: list[Any] = [start, end, _node_entry(node)]
        for r in cluster.replicas_of(node):
            if not r.failed and r.repl_offset != 0:  # isNodeAvailable
                entry.append(_node_entry(r))
        out.append(entry)
    return out


def _shard_node(cluster: ClusterState, node: NodeRecord) -> dict[bytes, Any]:
    """addNodeDetailsToShardReply."""
    d: dict[bytes, Any] = {b"id": node.name.encode()}
    if node.port:
        d[b"port"] = node.client_port
    if node.tls_port:
        d[b"tls-port"] = node.client_tls_port or node.tls_port
    d[b"ip"] = node.ip.encode()
    d[b"endpoint"] = node.ip.encode()
    if node.hostname:
        d[b"hostname"] = node.hostname.encode()
    d[b"role"] = b"replica" if node.is_replica else b"master"
    d[b"replication-offset"] = node.repl_offset
    if node.failed:
        health = b"fail"
    elif node.is_replica and node.repl_offset == 0:
        health = b"loading"
    else:
        health = b"online"
    d[b"health"] = health
    return d


@command("cluster|shards", 2, "loading stale", acl="@slow")
def cluster_shards(ctx: Ctx, argv: list[bytes]) -> Any:
    """clusterCommandShards (Valkey 9.1 adds the shard ``id``)."""
    cluster = cluster_of(ctx)
    out: list[Any] = []
    for shard_id, nodes in cluster.shards().items():
        slots: list[int] = []
        for n in nodes:
            ranges = cluster.slot_ranges(n)
            if ranges:
                slots = [x for r in ranges for x in r]
                break
        out.append(
            {
                b"slots": slots,
                b"nodes": [_shard_node(cluster, n) for n in nodes],
                b"id": shard_id.encode(),
            }
        )
    return out


@command("cluster|info", 2, "loading stale", acl="@slow")
def cluster_info(ctx: Ctx, argv: list[bytes]) -> Any:
    cluster = cluster_of(ctx)
    update_state(ctx, cluster)  # what clusterCron would have done by now
    return Verbatim(b"txt", info_text(cluster))


@command("cluster|keyslot", 3, "stale", acl="@slow")
def cluster_keyslot(ctx: Ctx, argv: list[bytes]) -> Any:
    cluster_of(ctx)
    return key_slot(argv[2])


@command("cluster|countkeysinslot", 3, "stale", acl="@slow")
def cluster_countkeysinslot(ctx: Ctx, argv: list[bytes]) -> Any:
    cluster_of(ctx)
    slot = int_arg(argv[2])
    if not 0 <= slot < CLUSTER_SLOTS:
        raise CommandError(E.INVALID_SLOT_SHORT)
    return len(ctx.db.keys_in_slot(slot))  # the selected db only (spec 2.3)


@command("cluster|getkeysinslot", 4, "stale", acl="@slow")
def cluster_getkeysinslot(ctx: Ctx, argv: list[bytes]) -> Any:
    cluster_of(ctx)
    slot = int_arg(argv[2])
    count = int_arg(argv[3])
    if not 0 <= slot < CLUSTER_SLOTS or count < 0:
        raise CommandError(E.INVALID_SLOT_OR_COUNT)
    out: list[bytes] = []
    for key in ctx.db.keys_in_slot(slot):
        if len(out) >= count:
            break
        out.append(key)
    return out


@command("cluster|links", 2, "stale", acl="@slow")
def cluster_links(ctx: Ctx, argv: list[bytes]) -> Any:
    hook = cluster_of(ctx).links_hook  # the server's bus owns the links
    return hook() if hook is not None else []


@command("cluster|count-failure-reports", 3, "admin stale", acl=ADMIN_ACL)
def cluster_count_failure_reports(ctx: Ctx, argv: list[bytes]) -> Any:
    node_arg(cluster_of(ctx), argv[2])
    return 0


def _replicas(ctx: Ctx, argv: list[bytes]) -> Any:
    cluster = cluster_of(ctx)
    node = node_arg(cluster, argv[2])
    if node.is_replica:
        raise CommandError(E.NOT_A_PRIMARY)
    return [node_line(cluster, r, conf=False).encode() for r in cluster.replicas_of(node)]


command("cluster|replicas", 3, "admin stale", acl=ADMIN_ACL)(_replicas)
command("cluster|slaves", 3, "admin stale", acl=ADMIN_ACL)(_replicas)
