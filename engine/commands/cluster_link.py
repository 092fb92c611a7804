"""``CLUSTER BUS <message>``: a cluster bus message received on the client port.

The bus (docs/cluster.md, :mod:`engine.cluster.gossip`) sends every message as this command on a
link it opened to the other node's client port; the reply is an array of messages (the PONG of
a PING or MEET, any UPDATE). The subcommand is internal: the real server has no such thing, so
it is left out of COMMAND / COMMAND INFO / COMMAND DOCS / COMMAND LIST (they list a container's
subcommands through ``values()``, which skips it) while dispatch still finds it.
"""

from __future__ import annotations

import random
from typing import Any

from engine import errors as E
from engine.cluster import gossip
from engine.commands.table import TABLE, Command, command
from engine.context import Ctx
from engine.errors import CommandError

_rng = random.Random()


class _HiddenSubcommands(dict[bytes, Command]):
    """A container's subcommand dict whose iteration leaves the internal ones out."""

    hidden: frozenset[bytes] = frozenset({b"bus"})

    def values(self) -> Any:
        return [v for k, v in super().items() if k not in self.hidden]

    def items(self) -> Any:
        return [(k, v) for k, v in super().items() if k not in self.hidden]

    def keys(self) -> Any:
        return [k for k in dict.__iter__(self) if k not in self.hidden]

    def __iter__(self) -> Any:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())


_parent = TABLE[b"cluster"]
if not isinstance(_parent.subcommands, _HiddenSubcommands):
    _parent.subcommands = _HiddenSubcommands(dict.items(_parent.subcommands))


def _host(addr: str) -> str:
    """``127.0.0.1:6379`` / ``[::1]:6379`` -> the host part."""
    host = addr.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") else host


@command("cluster|bus", -12, "admin stale loading noscript", acl="@admin @slow @dangerous")
def cluster_bus(ctx: Ctx, argv: list[bytes]) -> Any:
    cluster = ctx.engine.cluster
    if cluster is None:
        raise CommandError(E.CLUSTER_DISABLED)
    keyspace = ctx.engine.keyspace
    try:
        msg = gossip.decode(argv[2:])
        out = gossip.receive(
            cluster, msg, ctx.now_ms, _rng,
            peer_ip=_host(ctx.client.addr), local_ip=_host(ctx.client.laddr),
            has_keys=lambda slot: keyspace.count_keys_in_slot(slot) > 0,
        )  # fmt: skip
    except gossip.GossipError as e:  # a bad slot range is found while applying
        raise CommandError(E.bus_message(str(e))) from None
    if ctx.client.id not in cluster.inbound:  # CLUSTER LINKS "from" (freeClusterLink: gone)
        cluster.inbound[ctx.client.id] = (msg.sender, ctx.now_ms)
    for reply in out.replies:
        gossip.count(cluster.messages_sent, reply.type)
    if cluster.bus_hook is not None:
        cluster.bus_hook(out)  # the server's bus: listeners, new links, broadcast
    return [gossip.encode(m) for m in out.replies]
