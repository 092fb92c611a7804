"""CLUSTER subcommands, ASKING, READONLY, READWRITE (src/cluster.c clusterCommand,
src/cluster_legacy.c clusterCommandSpecial).

They read and change ``engine.cluster`` (:class:`~engine.cluster.slots.ClusterState`). A change
that must reach nodes.conf sets ``cluster.todo_save``; the server writes the file. CLUSTER MEET
records the node in handshake state; the bus link that completes the handshake is the server's.
The atomic migration subcommands (MIGRATESLOTS, GETSLOTMIGRATIONS, CANCELSLOTMIGRATIONS,
SYNCSLOTS) hand over to ``engine.migration`` (the server's). Not here yet: REPLICATE, FAILOVER,
SLOT-STATS. The subcommands that only read (NODES, SLOTS, SHARDS, INFO, KEYSLOT ...) are in
``cluster_info.py``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from engine import errors as E
from engine.cluster.migration import MigrationHost
from engine.cluster.slots import CLUSTER_SLOTS, PORT_INCR, ClusterState, NodeRecord
from engine.commands.cluster_info import (
    ADMIN_ACL,
    cluster_of,
    node_arg,
    slot_arg,
    update_state,
)
from engine.commands.table import command
from engine.commands.util import OK, int_arg
from engine.context import Ctx
from engine.errors import SYNTAX, CommandError, wrong_arity
from persistence.resp.frames import SimpleString
from persistence.resp.tokens import string2ll

_ADMIN = "admin stale no_async_loading"


def _changed(ctx: Ctx, cluster: ClusterState) -> None:
    """clusterDoBeforeSleep(CLUSTER_TODO_UPDATE_STATE | CLUSTER_TODO_SAVE_CONFIG)."""
    cluster.todo_save = True
    update_state(ctx, cluster)
    cluster.announce()  # the bus tells every node now (engine/server/cluster_bus.py)


def _no_keys(ctx: Ctx) -> bool:
    """dbsHaveNoKeys."""
    return all(not db.data for db in ctx.engine.keyspace.dbs)


# -- slot assignment ------------------------------------------------------------------------
def _check_assignments(
    cluster: ClusterState, chosen: bytearray, delete: bool, start: int, end: int
) -> None:
    """checkSlotAssignmentsOrReply."""
    for slot in range(start, end + 1):
        if delete and cluster.slots[slot] is None:
            raise CommandError(E.slot_unassigned(slot))
        if not delete and cluster.slots[slot] is not None:
            raise CommandError(E.slot_busy(slot))
        chosen[slot] += 1
        if chosen[slot] == 2:
            raise CommandError(E.slot_twice(slot))


def _update_slots(ctx: Ctx, cluster: ClusterState, chosen: bytearray, delete: bool) -> Any:
    """clusterUpdateSlots."""
    for slot in range(CLUSTER_SLOTS):
        if chosen[slot]:
            cluster.importing.pop(slot, None)  # we are the real owner now
            if delete:
                cluster.del_slot(slot)
            else:
                cluster.add_slot(cluster.myself, slot)
    _changed(ctx, cluster)
    return OK


def _slots_cmd(ctx: Ctx, argv: list[bytes], delete: bool) -> Any:
    cluster = cluster_of(ctx)
    slots = [slot_arg(a) for a in argv[2:]]  # every argument parses first
    chosen = bytearray(CLUSTER_SLOTS)
    for slot in slots:
        _check_assignments(cluster, chosen, delete, slot, slot)
    return _update_slots(ctx, cluster, chosen, delete)


def _ranges_cmd(ctx: Ctx, argv: list[bytes], delete: bool) -> Any:
    cluster = cluster_of(ctx)
    if len(argv) % 2 == 1:
        raise wrong_arity(b"cluster|" + argv[1].lower())
    chosen = bytearray(CLUSTER_SLOTS)
    for j in range(2, len(argv), 2):
        start, end = slot_arg(argv[j]), slot_arg(argv[j + 1])
        if start > end:
            raise CommandError(E.start_after_end(start, end))
        _check_assignments(cluster, chosen, delete, start, end)
    return _update_slots(ctx, cluster, chosen, delete)


@command("cluster|addslots", -3, _ADMIN, acl=ADMIN_ACL)
def cluster_addslots(ctx: Ctx, argv: list[bytes]) -> Any:
    return _slots_cmd(ctx, argv, False)


@command("cluster|delslots", -3, _ADMIN, acl=ADMIN_ACL)
def cluster_delslots(ctx: Ctx, argv: list[bytes]) -> Any:
    return _slots_cmd(ctx, argv, True)


@command("cluster|addslotsrange", -4, _ADMIN, acl=ADMIN_ACL)
def cluster_addslotsrange(ctx: Ctx, argv: list[bytes]) -> Any:
    return _ranges_cmd(ctx, argv, False)


@command("cluster|delslotsrange", -4, _ADMIN, acl=ADMIN_ACL)
def cluster_delslotsrange(ctx: Ctx, argv: list[bytes]) -> Any:
    return _ranges_cmd(ctx, argv, True)


@command("cluster|flushslots", 2, _ADMIN, acl=ADMIN_ACL)
def cluster_flushslots(ctx: Ctx, argv: list[bytes]) -> Any:
    cluster = cluster_of(ctx)
    if not _no_keys(ctx):
        raise CommandError(E.FLUSHSLOTS_NOT_EMPTY)
    for slot in range(CLUSTER_SLOTS):
        if cluster.slots[slot] is cluster.myself:
            cluster.del_slot(slot)
    _changed(ctx, cluster)
    return OK


def _timeout_opts(argv: list[bytes], start: int) -> None:
    """The TIMEOUT option of SETSLOT (getTimeoutFromObjectOrReply, milliseconds)."""
    for i in range(start, len(argv)):
        if argv[i].lower() == b"timeout":
            if i + 1 >= len(argv):
                raise CommandError(E.MISSING_TIMEOUT)
            t = string2ll(argv[i + 1])
            if t is None:
                raise CommandError(E.TIMEOUT_NOT_INT)
            if t < 0:
                raise CommandError(E.TIMEOUT_NEGATIVE)


@command("cluster|setslot", -4, _ADMIN, acl=ADMIN_ACL)
def cluster_setslot(ctx: Ctx, argv: list[bytes]) -> Any:
    """clusterParseSetSlotCommand + clusterCommandSetSlot (no replicas to wait for here)."""
    cluster = cluster_of(ctx)
    me = cluster.myself
    if me.is_replica and "must_obey" not in ctx.client.flags:
        raise CommandError(E.SETSLOT_REPLICA)
    host: MigrationHost | None = ctx.engine.migration
    busy = host.setslot_error() if host is not None else None
    if busy is not None:  # src/cluster_legacy.c: no manual moves during an atomic one
        raise CommandError(busy)
    slot = slot_arg(argv[2])
    action = argv[3].lower()
    argc = len(argv)
    node: NodeRecord | None = None
    if action == b"migrating" and argc >= 5:
        if me.is_primary and cluster.slots[slot] is not me:
            raise CommandError(E.not_owner(slot))
        node = node_arg(cluster, argv[4], E.dont_know_node)
    elif action == b"importing" and argc >= 5:
        if cluster.slots[slot] is me:
            raise CommandError(E.already_owner(slot))
        node = node_arg(cluster, argv[4], E.dont_know_node)
    elif action == b"stable" and argc >= 4:
        pass
    elif action == b"node" and argc >= 5:
        node = node_arg(cluster, argv[4])
    else:
        raise CommandError(E.SETSLOT_SYNTAX)
    if node is not None and node.is_replica:
        raise CommandError(E.TARGET_NOT_PRIMARY)
    keys = ctx.engine.keyspace
    holding = action == b"node" and node is not me and cluster.slots[slot] is me
    if holding and keys.count_keys_in_slot(slot):
        raise CommandError(E.still_holding_keys(slot))
    _timeout_opts(argv, 4 if action == b"stable" else 5)
    if action == b"migrating":
        assert node is not None
        cluster.migrating[slot] = node
    elif action == b"importing":
        assert node is not None
        cluster.importing[slot] = node
    elif action == b"stable":
        cluster.importing.pop(slot, None)
        cluster.migrating.pop(slot, None)
    else:
        assert node is not None
        if keys.count_keys_in_slot(slot) == 0:
            cluster.migrating.pop(slot, None)
        cluster.del_slot(slot)
        cluster.add_slot(node, slot)
        # Not modelled: with cluster-allow-replica-migration a primary that loses its last
        # slot this way turns into a replica of ``node`` (needs replication).
        if (node is me or node is me.primary) and slot in cluster.importing:
            del cluster.importing[slot]
            if node is me:
                cluster.bump_epoch()  # the slot was migrated by hand: a new config epoch
    _changed(ctx, cluster)
    return OK


# -- nodes ----------------------------------------------------------------------------------
@command("cluster|meet", -4, _ADMIN, acl=ADMIN_ACL)
def cluster_meet(ctx: Ctx, argv: list[bytes]) -> Any:
    """CLUSTER MEET records the node in handshake (clusterStartHandshake); the bus link that
    completes the handshake is the server's."""
    cluster = cluster_of(ctx)
    if len(argv) > 5:
        raise CommandError(_syntax_sub(argv))
    text_port = argv[3].decode(errors="replace")
    port = string2ll(argv[3])
    if port is None:
        raise CommandError(E.bad_port(text_port))
    if not 0 < port <= 65535:
        raise CommandError(E.PORT_RANGE)
    if len(argv) == 5:
        cport = string2ll(argv[4])
        if cport is None:
            raise CommandError(E.bad_bus_port(argv[4].decode(errors="replace")))
    else:
        cport = port + PORT_INCR
    if not 0 < cport <= 65535:
        raise CommandError(E.BUS_PORT_RANGE)
    ip_text = argv[2].decode(errors="replace")
    try:
        ip = str(ipaddress.ip_address(ip_text))  # inet_pton + inet_ntop: the normal form
    except ValueError:
        raise CommandError(E.bad_address(ip_text, text_port)) from None
    for n in cluster.nodes.values():  # clusterHandshakeInProgress: nothing new, still +OK
        if "handshake" in n.flags and n.ip == ip and n.port == port and n.cport == cport:
            return OK
    node = NodeRecord(
        cluster.random_hex(), ip=ip, port=port, cport=cport, flags={"handshake", "meet"},
        shard_id=cluster.random_hex(), ctime=ctx.now_ms,
    )  # fmt: skip
    cluster.add_node(node)
    return OK


def _syntax_sub(argv: list[bytes]) -> str:
    sub = argv[1].decode(errors="replace")
    return f"ERR unknown subcommand or wrong number of arguments for '{sub}'. Try CLUSTER HELP."


@command("cluster|forget", 3, _ADMIN, acl=ADMIN_ACL)
def cluster_forget(ctx: Ctx, argv: list[bytes]) -> Any:
    cluster = cluster_of(ctx)
    name = argv[2].decode(errors="replace")
    node = cluster.lookup(name)
    now_s = ctx.now_ms // 1000
    if node is None:
        if cluster.blacklisted(name, now_s):  # already forgotten: pretend it worked
            return OK
        raise CommandError(E.unknown_node(name))
    me = cluster.myself
    if node is me:
        raise CommandError(E.FORGET_MYSELF)
    if me.is_replica and me.primary is node:
        raise CommandError(E.FORGET_PRIMARY)
    cluster.blacklist_add(name, now_s)
    cluster.del_node(node)
    _changed(ctx, cluster)
    return OK


@command("cluster|reset", -2, "admin noscript stale", acl=ADMIN_ACL)
def cluster_reset(ctx: Ctx, argv: list[bytes]) -> Any:
    cluster = cluster_of(ctx)
    if len(argv) > 3:
        raise CommandError(_syntax_sub(argv))
    hard = False
    if len(argv) == 3:
        mode = argv[2].lower()
        if mode not in (b"hard", b"soft"):
            raise CommandError(SYNTAX)
        hard = mode == b"hard"
    if cluster.myself.is_primary and not _no_keys(ctx):
        raise CommandError(E.RESET_WITH_KEYS)
    cluster.reset(hard)
    _changed(ctx, cluster)
    return OK


@command("cluster|bumpepoch", 2, _ADMIN, acl=ADMIN_ACL)
def cluster_bumpepoch(ctx: Ctx, argv: list[bytes]) -> Any:
    cluster = cluster_of(ctx)
    bumped = cluster.bump_epoch()
    if bumped:
        cluster.announce()
    word = b"BUMPED" if bumped else b"STILL"
    return SimpleString(b"%s %d" % (word, cluster.myself.config_epoch))


@command("cluster|set-config-epoch", 3, _ADMIN, acl=ADMIN_ACL)
def cluster_set_config_epoch(ctx: Ctx, argv: list[bytes]) -> Any:
    cluster = cluster_of(ctx)
    epoch = int_arg(argv[2])
    if epoch < 0:
        raise CommandError(E.bad_epoch(epoch))
    if len(cluster.nodes) > 1:
        raise CommandError(E.EPOCH_OTHER_NODES)
    if cluster.myself.config_epoch != 0:
        raise CommandError(E.EPOCH_NONZERO)
    cluster.myself.config_epoch = epoch
    cluster.current_epoch = max(cluster.current_epoch, epoch)
    _changed(ctx, cluster)
    return OK


@command("cluster|saveconfig", 2, _ADMIN, acl=ADMIN_ACL)
def cluster_saveconfig(ctx: Ctx, argv: list[bytes]) -> Any:
    """Saving is the server's: it sets ``cluster.save_now`` (returns an error text or None);
    without one the state is only marked for saving."""
    cluster = cluster_of(ctx)
    cluster.todo_save = True
    if cluster.save_now is not None:
        why = cluster.save_now()
        if why is not None:
            raise CommandError(E.save_failed(why))
    return OK


@command("cluster|flushslot", -3, "write admin no_async_loading",
         acl="@keyspace @write @admin @slow @dangerous")  # fmt: skip
def cluster_flushslot(ctx: Ctx, argv: list[bytes]) -> Any:
    """clusterCommandFlushslot: the slot's keys in every db (spec 2.3)."""
    cluster_of(ctx)
    slot = slot_arg(argv[2])
    if len(argv) > 4:
        raise CommandError(_syntax_sub(argv))
    if len(argv) == 4 and argv[3].lower() not in (b"async", b"sync"):
        raise CommandError(SYNTAX)
    for db in ctx.engine.keyspace.dbs:
        for key in list(db.keys_in_slot(slot)):
            db.delete(key)
            ctx.modified(key, db.id)
            ctx.notify("g", b"del", key, db.id)
            ctx.dirty += 1
    return OK


# -- atomic slot migration (spec 3.1; the I/O is engine/server/migration_io.py) -------------
def _migration(ctx: Ctx) -> MigrationHost:
    cluster_of(ctx)
    host: MigrationHost | None = ctx.engine.migration
    if host is None:  # an engine without a server: nothing can move
        raise CommandError(E.ERR_NO_MIGRATIONS)
    return host


@command("cluster|migrateslots", -4, _ADMIN, acl=ADMIN_ACL)
def cluster_migrateslots(ctx: Ctx, argv: list[bytes]) -> Any:
    return _migration(ctx).migrate_slots(ctx.client.id, argv, ctx.now_ms)


@command("cluster|getslotmigrations", 2, _ADMIN, acl=ADMIN_ACL)
def cluster_getslotmigrations(ctx: Ctx, argv: list[bytes]) -> Any:
    cluster_of(ctx)
    host: MigrationHost | None = ctx.engine.migration
    return [] if host is None else host.entries()


@command("cluster|cancelslotmigrations", 2, _ADMIN, acl=ADMIN_ACL)
def cluster_cancelslotmigrations(ctx: Ctx, argv: list[bytes]) -> Any:
    return _migration(ctx).cancel(ctx.now_ms)


@command("cluster|syncslots", -3, _ADMIN + " may_replicate", acl=ADMIN_ACL)
def cluster_syncslots(ctx: Ctx, argv: list[bytes]) -> Any:
    """ESTABLISH turns this connection into an import link; FINISH closes a tracking job."""
    return _migration(ctx).syncslots(ctx.client.id, argv, ctx.now_ms)


# -- connection flags -----------------------------------------------------------------------
@command("asking", 1, "fast", acl="@fast @connection")
def asking(ctx: Ctx, argv: list[bytes]) -> Any:
    cluster_of(ctx)
    ctx.client.flags.add("asking")
    return OK


@command("readonly", 1, "loading stale fast", acl="@fast @connection")
def readonly(ctx: Ctx, argv: list[bytes]) -> Any:
    ctx.client.flags.add("readonly")
    return OK


@command("readwrite", 1, "loading stale fast", acl="@fast @connection")
def readwrite(ctx: Ctx, argv: list[bytes]) -> Any:
    ctx.client.flags.discard("readonly")
    return OK


# the internal CLUSTER BUS subcommand (the cluster bus on the client port)
from engine.commands import cluster_link as _cluster_link  # noqa: E402, F401
