"""MULTI EXEC DISCARD WATCH UNWATCH (src/multi.c).

Queueing happens in ``Engine.execute`` (commands other than EXEC/DISCARD/MULTI/WATCH/QUIT/RESET
are answered ``+QUEUED``; a rejected one flags the transaction so EXEC answers EXECABORT;
``no_multi`` commands such as WATCH and MULTI are rejected there with "Command 'watch' not
allowed inside a transaction", as 9.1.2 does, before watchCommand's own check could run).
``Engine.exec_transaction`` runs the queue as one execution unit: its effects are wrapped in
MULTI/EXEC when more than one command propagates (observed: MULTI INCR GET EXEC -> a bare INCR).
"""

from __future__ import annotations

from typing import Any

from engine.commands.table import command
from engine.commands.util import OK
from engine.context import Ctx
from engine.errors import (
    DISCARD_WITHOUT_MULTI,
    EXEC_WITHOUT_MULTI,
    MULTI_NESTED,
    WATCH_IN_MULTI,
    CommandError,
)

_TX = "noscript loading stale fast allow_busy"


@command("multi", 1, "noscript loading stale fast no_multi allow_busy", acl="@fast @transaction")
def multi(ctx: Ctx, argv: list[bytes]) -> Any:
    if ctx.client.multi is not None:  # unreachable: no_multi rejects it first (server.c)
        raise CommandError(MULTI_NESTED)
    ctx.client.multi = []
    ctx.client.multi_error = False
    return OK


@command("exec", 1, "noscript loading stale skip_commandlog", acl="@slow @transaction")
def exec_(ctx: Ctx, argv: list[bytes]) -> Any:
    if ctx.client.multi is None:
        raise CommandError(EXEC_WITHOUT_MULTI)
    return ctx.engine.exec_transaction(ctx)


@command("discard", 1, _TX, acl="@fast @transaction")
def discard(ctx: Ctx, argv: list[bytes]) -> Any:
    c = ctx.client
    if c.multi is None:
        raise CommandError(DISCARD_WITHOUT_MULTI)
    c.multi = None
    c.multi_error = False
    ctx.engine.keyspace.unwatch_all(c)
    return OK


@command("watch", -2, "noscript loading stale fast no_multi allow_busy", 1, -1, 1,
         acl="@fast @transaction")  # fmt: skip
def watch(ctx: Ctx, argv: list[bytes]) -> Any:
    c = ctx.client
    if c.multi is not None:  # unreachable: no_multi rejects it first (server.c)
        raise CommandError(WATCH_IN_MULTI)
    ks = ctx.engine.keyspace
    db = c.db
    for key in argv[1:]:
        ks.watch(c, db, key)
    return OK


@command("unwatch", 1, _TX, acl="@fast @transaction")
def unwatch(ctx: Ctx, argv: list[bytes]) -> Any:
    ctx.engine.keyspace.unwatch_all(ctx.client)
    return OK
