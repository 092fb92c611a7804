"""Connection commands: PING ECHO SELECT QUIT RESET HELLO AUTH (src/server.c,
src/networking.c, src/acl.c). CLIENT lives in engine/commands/client.py.

There are no ACL users: the default user has the password ``requirepass`` (none: ``nopass``).
QUIT marks the client ``closing``; the server closes the connection after the reply.
"""

from __future__ import annotations

from typing import Any

from engine.commands import client as _client  # noqa: F401 - registers CLIENT
from engine.commands.table import command
from engine.commands.util import PONG, int_arg
from engine.context import ClientState, Ctx
from engine.errors import (
    AUTH_NOT_CONFIGURED,
    CLIENT_NAME_CHARS,
    DB_INDEX,
    HELLO_NOAUTH,
    NOPROTO,
    PROTO_NOT_INTEGER,
    SYNTAX,
    WRONGPASS,
    CommandError,
    hello_syntax,
)
from persistence.resp.frames import SimpleString

OK = SimpleString(b"OK")
RESET = SimpleString(b"RESET")
VERSION = b"9.1.2"


@command("ping", -1, "fast", acl="@fast @connection")
def ping(ctx: Ctx, argv: list[bytes]) -> Any:
    if len(argv) > 2:
        raise CommandError("ERR wrong number of arguments for 'ping' command")
    if ctx.client.resp == 2 and ctx.client.subscriptions:
        return [b"pong", argv[1] if len(argv) == 2 else b""]
    return argv[1] if len(argv) == 2 else PONG


@command("echo", 2, "loading stale fast", acl="@fast @connection")
def echo(ctx: Ctx, argv: list[bytes]) -> Any:
    return argv[1]


@command("select", 2, "loading stale fast allow_busy", acl="@fast @connection")
def select(ctx: Ctx, argv: list[bytes]) -> Any:
    db = int_arg(argv[1], "ERR value is not an integer or out of range")
    if db < 0 or db >= len(ctx.engine.keyspace.dbs):
        raise CommandError(DB_INDEX)
    ctx.client.db = db
    ctx.db = ctx.engine.keyspace.dbs[db]
    return OK


@command("quit", -1, "noscript loading stale fast no_auth allow_busy", acl="@fast @connection")
def quit_(ctx: Ctx, argv: list[bytes]) -> Any:
    # src/networking.c: any arguments are ignored; the connection closes after +OK
    ctx.client.flags.add("closing")
    return OK


def check_password(ctx: Ctx, user: bytes, password: bytes) -> bool:
    """ACLAuthenticateUser with only the default user (src/acl.c): ``nopass`` accepts any
    password when requirepass is empty."""
    if user != b"default":
        return False
    required = ctx.engine.config["requirepass"]
    return not required or password == required.encode()


def _authenticate(ctx: Ctx, user: bytes, password: bytes) -> None:
    if not check_password(ctx, user, password):
        raise CommandError(WRONGPASS)
    ctx.client.authenticated = True
    ctx.client.user = user


@command("auth", -2, "noscript loading stale fast no_auth allow_busy", acl="@fast @connection")
def auth(ctx: Ctx, argv: list[bytes]) -> Any:
    # src/acl.c authCommand
    if len(argv) > 3:
        raise CommandError(SYNTAX)
    if len(argv) == 2:
        if not ctx.engine.config["requirepass"]:
            raise CommandError(AUTH_NOT_CONFIGURED)
        _authenticate(ctx, b"default", argv[1])
    else:
        _authenticate(ctx, argv[1], argv[2])
    return OK


def valid_client_name(name: bytes) -> bool:
    """src/networking.c validateClientAttr: printable ASCII ('!'..'~'), no spaces."""
    return all(33 <= ch <= 126 for ch in name)


def set_client_name(client: ClientState, name: bytes) -> None:
    if not valid_client_name(name):
        raise CommandError(CLIENT_NAME_CHARS)
    client.name = name or None


@command("hello", -1, "noscript loading stale fast no_auth allow_busy", acl="@fast @connection")
def hello(ctx: Ctx, argv: list[bytes]) -> Any:
    # src/networking.c helloCommand
    ver = 0
    i = 1
    if len(argv) >= 2:
        ver = int_arg(argv[1], PROTO_NOT_INTEGER)
        if ver < 2 or ver > 3:
            raise CommandError(NOPROTO)
        i = 2
    user = password = name = None
    n = len(argv)
    while i < n:
        more = n - 1 - i
        opt = argv[i].lower()
        if opt == b"auth" and more >= 2:
            user, password = argv[i + 1], argv[i + 2]
            i += 3
        elif opt == b"setname" and more >= 1:
            name = argv[i + 1]
            i += 2
        else:
            raise hello_syntax(argv[i])
    client = ctx.client
    if user is not None and password is not None:
        _authenticate(ctx, user, password)
    if not client.authenticated:
        raise CommandError(HELLO_NOAUTH)
    if name is not None:
        set_client_name(client, name)
    if ver:
        client.resp = ver
    cluster = bool(ctx.engine.config["cluster-enabled"])
    # Valkey 9.1.2 reports its built-in lua module here; we have no scripting: modules [].
    return {
        b"server": b"valkey",
        b"version": VERSION,
        b"proto": client.resp,
        b"id": client.id,
        b"mode": b"cluster" if cluster else b"standalone",
        b"role": b"master",
        b"modules": [],
    }


def reset_client(ctx: Ctx) -> None:
    """src/networking.c clearClientConnectionState: what RESET undoes."""
    from engine.commands.pubsub import unsubscribe_everything

    engine = ctx.engine
    client = ctx.client
    client.multi = None
    client.multi_error = False
    engine.keyspace.unwatch_all(client)
    client.db = 0
    ctx.db = engine.keyspace.dbs[0]
    client.resp = 2
    client.name = None
    client.reply_mode = "on"
    client.no_evict = False
    client.no_touch = False
    client.flags.discard("monitor")
    client.flags.discard("readonly")
    client.flags.discard("asking")
    client.flags.discard("tracking")
    unsubscribe_everything(engine, client)
    client.user = b"default"
    client.authenticated = not engine.config["requirepass"]


@command("reset", 1, "noscript loading stale fast no_auth allow_busy", acl="@fast @connection")
def reset(ctx: Ctx, argv: list[bytes]) -> Any:
    reset_client(ctx)
    return RESET
