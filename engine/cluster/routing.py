"""The routing check run before a command in cluster mode (src/cluster.c getNodeByQuery and
clusterRedirectClient, src/server.c processCommand).

How this works: the keys of the command come from the command table
(``cmd.key_positions(argv)``); they must all hash to one slot (CROSSSLOT otherwise). A command
with no keys always runs here, except EXEC, whose slot is the common slot of the queued commands.
The slot's owner decides: no owner -> ``CLUSTERDOWN Hash slot not served``; another node ->
``MOVED``. While this node migrates the slot (``CLUSTER SETSLOT .. MIGRATING``) a command whose
keys are all missing is sent to the destination with ``ASK``, and one with some keys missing
gets ``TRYAGAIN``; while it imports the slot, a client that sent ASKING is served (TRYAGAIN for
several different keys some of which are missing). MOVE, and COPY with a DB argument other than
the current db, get TRYAGAIN while the slot is open (spec 2.3). When the cluster state is fail,
keyed commands get ``CLUSTERDOWN The cluster is down`` (``cluster-allow-reads-when-down``).

:func:`check` returns None when the command may run, else the error text. It also keeps the
ASKING flag for exactly one command (src/networking.c resetClient).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine import errors as E
from engine.commands.table import TABLE, Command
from persistence.crc import key_slot
from persistence.resp.tokens import string2ll

if TYPE_CHECKING:
    from engine.context import ClientState
    from engine.engine import Engine

NO_KEYS = -1
CROSS = -2


def command_slot(cmd: Command, argv: list[bytes]) -> int:
    """clusterSlotByCommand: the slot of every key, NO_KEYS, or CROSS."""
    slot = NO_KEYS
    for pos in cmd.key_positions(argv):
        s = key_slot(argv[pos])
        if slot == NO_KEYS:
            slot = s
        elif s != slot:
            return CROSS
    return slot


def _resolve(argv: list[bytes]) -> Command | None:
    cmd = TABLE.get(argv[0].lower())
    if cmd is not None and cmd.container and len(argv) > 1:
        return cmd.subcommands.get(argv[1].lower())
    return cmd


def check(engine: Engine, client: ClientState, cmd: Command, argv: list[bytes]) -> str | None:
    """None when ``argv`` may run on this node, else the redirection/error text."""
    flags = client.flags
    asking = "asking" in flags
    if asking and client.multi is None and cmd.name not in ("asking", "multi"):
        flags.discard("asking")  # ASKING lasts one command, or one transaction
    if engine.loading or "must_obey" in flags:  # src/server.c mustObeyClient: AOF, primary
        return None
    cluster = engine.cluster
    assert cluster is not None
    is_exec = cmd.name == "exec"
    if is_exec:
        if client.multi is None:
            return None
        queued: list[tuple[Command, list[bytes]]] = []
        slot = NO_KEYS
        for qargv in client.multi:
            qcmd = _resolve(qargv)
            if qcmd is None:
                continue
            queued.append((qcmd, qargv))
            s = command_slot(qcmd, qargv)
            if slot == NO_KEYS:
                slot = s
            elif s != NO_KEYS and s != slot:
                return E.CROSSSLOT
    else:
        slot = command_slot(cmd, argv)
        if slot == CROSS:
            return E.CROSSSLOT
        queued = [(cmd, argv)]
    if slot < 0:
        return None
    owner = cluster.slots[slot]
    if owner is None:
        return E.CLUSTERDOWN_UNBOUND
    me = cluster.myself
    if owner is me and cluster.ok and not cluster.migrating and not cluster.importing:
        return None  # the common case: a stable slot of ours
    migrating = importing = False
    if me.is_primary or "readonly" in flags:
        if owner is cluster.primary_of(me) and slot in cluster.migrating:
            migrating = True
        elif slot in cluster.importing:
            importing = True
    cmd_flags: frozenset[str] = cmd.flags
    if is_exec:
        for qcmd, _ in queued:
            cmd_flags = cmd_flags | qcmd.flags
    pubsub = "pubsub" in cmd_flags
    missing = existing = 0
    multiple = False
    if migrating or importing:
        first: bytes | None = None
        db = engine.keyspace.dbs[client.db]
        count = client.multi is None or is_exec  # inside MULTI, keys are checked at EXEC
        now = engine.clock.now_ms()
        for qcmd, qargv in queued:
            if qcmd.name == "select":  # the db a queued SELECT switches to (spec 2.3)
                n = string2ll(qargv[1])
                if n is not None and 0 <= n < len(engine.keyspace.dbs):
                    db = engine.keyspace.dbs[n]
            for pos in qcmd.key_positions(qargv):
                key = qargv[pos]
                if first is None:
                    first = key
                elif importing and key != first:
                    multiple = True
                if qcmd.name == "move":
                    return E.TRYAGAIN
                if qcmd.name == "copy" and len(qargv) >= 4 and qargv[3].lower() == b"db":
                    target = string2ll(qargv[4]) if len(qargv) > 4 else None
                    if target is None or target != db.id:
                        return E.TRYAGAIN
                if count and not pubsub:
                    exp = db.expires.get(key)
                    if key in db.data and (exp is None or now <= exp):
                        existing += 1
                    else:
                        missing += 1
    if not cluster.ok:
        config = engine.config
        cluster.update_state(
            engine.clock.now_ms(),
            full_coverage=config["cluster-require-full-coverage"],
            node_timeout=config["cluster-node-timeout"],
        )
        if not cluster.ok:
            if pubsub:
                if not config["cluster-allow-pubsubshard-when-down"]:
                    return E.CLUSTERDOWN
            elif not config["cluster-allow-reads-when-down"]:
                return E.CLUSTERDOWN
            elif "write" in cmd_flags:
                return E.CLUSTERDOWN_RO
    if (migrating or importing) and cmd.name == "migrate" and me.is_primary:
        return None
    if migrating and missing:
        if existing:
            return E.TRYAGAIN
        dest = cluster.migrating[slot]
        return E.ask(slot, dest.ip, dest.client_port)
    if importing and (asking or "asking" in cmd_flags):
        if multiple and missing:
            return E.TRYAGAIN
        return None
    if (
        ("readonly" in flags or pubsub)
        and "write" not in cmd_flags
        and me.is_replica
        and cluster.primary_of(me) is owner
    ):
        return None
    if owner is not me:
        return E.moved(slot, owner.ip, owner.client_port)
    return None
