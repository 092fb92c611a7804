"""Connection commands: PING ECHO SELECT QUIT RESET HELLO AUTH CLIENT ... (src/server.c,
src/networking.c). Owner of the rest: the connection/server helper."""

from __future__ import annotations

from typing import Any

from engine.commands.table import command
from engine.commands.util import PONG, int_arg
from engine.context import Ctx
from engine.errors import DB_INDEX, CommandError
from persistence.resp.frames import SimpleString

OK = SimpleString(b"OK")


@command("ping", -1, "fast sentinel", acl="@fast @connection")
def ping(ctx: Ctx, argv: list[bytes]) -> Any:
    if len(argv) > 2:
        raise CommandError("ERR wrong number of arguments for 'ping' command")
    if ctx.client.resp == 2 and ctx.client.subscriptions:
        return [b"pong", argv[1] if len(argv) == 2 else b""]
    return argv[1] if len(argv) == 2 else PONG


@command("echo", 2, "fast", acl="@fast @connection")
def echo(ctx: Ctx, argv: list[bytes]) -> Any:
    return argv[1]


@command("select", 2, "loading stale fast", acl="@keyspace @fast")
def select(ctx: Ctx, argv: list[bytes]) -> Any:
    try:
        db = int_arg(argv[1], "ERR value is not an integer or out of range")
    except CommandError:
        raise
    if db < 0 or db >= len(ctx.engine.keyspace.dbs):
        raise CommandError(DB_INDEX)
    ctx.client.db = db
    ctx.db = ctx.engine.keyspace.dbs[db]
    return OK
