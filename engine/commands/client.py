"""CLIENT subcommands (src/networking.c clientCommand).

CLIENT LIST/INFO print Valkey's line format field for field. The engine knows the logical state
(name, db, subscriptions, MULTI, WATCH, flags); connection-level numbers (fd, buffers, bytes in
and out) come from ``ClientState.conn``, which the server fills (missing ones print as 0).
Killing a client marks it ``closing`` (``kill_requested``); the server closes it.
"""

from __future__ import annotations

from typing import Any

from engine.commands.table import command, container
from engine.commands.util import OK, int_arg
from engine.context import ClientState, Ctx
from engine.errors import (
    MAXAGE_NOT_INTEGER,
    NO_SUCH_CLIENT,
    SYNTAX,
    CommandError,
    no_such_user,
    setinfo_chars,
    unknown_client_type,
    unrecognized_option,
)
from persistence.resp.frames import SimpleString, Verbatim

container("client", -2, acl="@slow")

_ADMIN = "admin noscript loading stale"
_CONN = "noscript loading stale allow_busy"


@command("client|id", 2, _CONN, acl="@slow @connection")
def client_id(ctx: Ctx, argv: list[bytes]) -> Any:
    return ctx.client.id


@command("client|setname", 3, _CONN, acl="@slow @connection")
def client_setname(ctx: Ctx, argv: list[bytes]) -> Any:
    from engine.commands.connection import set_client_name

    set_client_name(ctx.client, argv[2])
    return OK


@command("client|getname", 2, _CONN, acl="@slow @connection")
def client_getname(ctx: Ctx, argv: list[bytes]) -> Any:
    return ctx.client.name


@command("client|setinfo", 4, _CONN, acl="@slow @connection")
def client_setinfo(ctx: Ctx, argv: list[bytes]) -> Any:
    from engine.commands.connection import valid_client_name

    opt = argv[2].upper()
    value = argv[3]
    if opt not in (b"LIB-NAME", b"LIB-VER"):
        raise unrecognized_option(argv[2])
    if not valid_client_name(value):
        raise setinfo_chars(opt.decode())
    if opt == b"LIB-NAME":
        ctx.client.lib_name = value or None
    else:
        ctx.client.lib_ver = value or None
    return OK


def _on_off(arg: bytes) -> bool:
    a = arg.lower()
    if a == b"on":
        return True
    if a == b"off":
        return False
    raise CommandError(SYNTAX)


@command(
    "client|no-evict",
    3,
    "admin noscript loading stale allow_busy",
    acl="@admin @slow @dangerous @connection",
)
def client_no_evict(ctx: Ctx, argv: list[bytes]) -> Any:
    ctx.client.no_evict = _on_off(argv[2])
    return OK


@command("client|no-touch", 3, _CONN, acl="@slow @connection")
def client_no_touch(ctx: Ctx, argv: list[bytes]) -> Any:
    ctx.client.no_touch = _on_off(argv[2])
    return OK


@command("client|reply", 3, "noscript loading stale no_multi allow_busy", acl="@slow @connection")
def client_reply(ctx: Ctx, argv: list[bytes]) -> Any:
    mode = argv[2].lower()
    if mode == b"on":
        ctx.client.reply_mode = "on"
        return OK
    if mode == b"off":
        ctx.client.reply_mode = "off"  # this reply and the next ones are not sent
        return OK
    if mode == b"skip":
        ctx.client.reply_mode = "skip-next"  # this reply and the next one are not sent
        return OK
    raise CommandError(SYNTAX)


# -- CLIENT LIST / INFO -------------------------------------------------------------------
def _flags(c: ClientState) -> str:
    """src/networking.c catClientInfoString, the letters we can have."""
    f = c.flags
    out = ""
    if "monitor" in f:
        out += "O"
    if c.subscriptions:
        out += "P"
    if c.multi is not None:
        out += "x"
    if "blocked" in f:
        out += "b"
    if "tracking" in f:
        out += "t"
    if c.dirty_cas:
        out += "d"
    if "closing" in f or c.kill_requested:
        out += "c"
    if "unix" in f:
        out += "U"
    if "readonly" in f:
        out += "r"
    if c.no_evict:
        out += "e"
    if c.no_touch:
        out += "T"
    return out or "N"


def client_info_line(ctx: Ctx, c: ClientState) -> str:
    now = ctx.now_ms
    conn = c.conn
    cmd = ctx.argv and c is ctx.client
    last = _current_name(ctx) if cmd else c.last_cmd.decode(errors="replace")
    multi = -1 if c.multi is None else len(c.multi)
    name = (c.name or b"").decode(errors="replace")
    return (
        f"id={c.id} addr={c.addr} laddr={c.laddr} fd={conn.get('fd', -1)} name={name} "
        f"age={max(0, now - c.created_ms) // 1000} "
        f"idle={max(0, now - c.last_interaction_ms) // 1000} flags={_flags(c)} "
        f"capa={'r' if 'capa-redirect' in c.flags else ''} db={c.db} sub={len(c.channels)} "
        f"psub={len(c.patterns)} ssub={len(c.shard_channels)} multi={multi} "
        f"watch={len(c.watched)} qbuf={conn.get('qbuf', 0)} qbuf-free={conn.get('qbuf-free', 0)} "
        f"argv-mem={conn.get('argv-mem', 0)} multi-mem={conn.get('multi-mem', 0)} "
        f"rbs={conn.get('rbs', 0)} rbp={conn.get('rbp', 0)} obl={conn.get('obl', 0)} "
        f"oll={conn.get('oll', 0)} omem={conn.get('omem', 0)} tot-mem={conn.get('tot-mem', 0)} "
        f"events={'r' if conn.get('events-w', 0) == 0 else 'rw'} cmd={last} "
        f"user={c.user.decode(errors='replace')} "
        f"redir={0 if 'tracking' in c.flags else -1} resp={c.resp} "
        f"lib-name={(c.lib_name or b'').decode(errors='replace')} "
        f"lib-ver={(c.lib_ver or b'').decode(errors='replace')} "
        f"tot-net-in={conn.get('tot-net-in', 0)} tot-net-out={conn.get('tot-net-out', 0)} "
        f"tot-cmds={conn.get('tot-cmds', 0)}\n"
    )


def _current_name(ctx: Ctx) -> str:
    argv = ctx.argv
    name = argv[0].lower().decode(errors="replace")
    if len(argv) > 1 and name in ("client", "config", "command", "pubsub"):
        name += "|" + argv[1].lower().decode(errors="replace")
    return name


def _text(ctx: Ctx, text: str) -> Any:
    # src/networking.c: addReplyVerbatim(..., "txt") — a bulk string in RESP2
    return Verbatim(b"txt", text.encode())


_TYPES = (b"normal", b"master", b"primary", b"replica", b"slave", b"pubsub")
Filter = tuple[str, Any]


def _parse_filters(ctx: Ctx, args: list[bytes], *, kill: bool) -> tuple[list[Filter], bool]:
    """src/networking.c clientListCommand / clientKillCommand filters (the shared parser)."""
    filters: list[Filter] = []
    skipme = kill  # KILL skips the caller by default, LIST does not
    i = 0
    n = len(args)
    while i < n:
        opt = args[i].lower().decode(errors="replace")
        if i + 1 >= n:
            raise CommandError(SYNTAX)
        val = args[i + 1]
        i += 2
        if opt == "id":
            ids: set[int] = set()
            j = i - 1
            while j < n:
                v = _id_value(args[j])
                if v is None:
                    if j == i - 1:
                        raise CommandError(SYNTAX)
                    break
                ids.add(v)
                j += 1
            i = j
            filters.append(("id", ids))
        elif opt == "type":
            if val.lower() not in _TYPES:
                raise unknown_client_type(val)
            filters.append(("type", val.lower()))
        elif opt == "user":
            if val != b"default":
                raise no_such_user(val)
            filters.append(("user", val))
        elif opt == "skipme":
            if val.lower() not in (b"yes", b"no"):
                raise CommandError(SYNTAX)
            skipme = val.lower() == b"yes"
        elif opt == "maxage":
            filters.append(("maxage", int_arg(val, MAXAGE_NOT_INTEGER)))
        elif opt in ("idle", "db"):
            filters.append((opt, int_arg(val, SYNTAX)))
        elif opt in ("addr", "laddr", "ip", "name", "lib-name", "lib-ver", "flags", "capa"):
            filters.append((opt, val))
        else:
            raise CommandError(SYNTAX)
    return filters, skipme


def _match(ctx: Ctx, c: ClientState, kind: str, v: Any) -> bool:
    now = ctx.now_ms
    if kind == "id":
        return c.id in v
    if kind == "type":
        if v == b"pubsub":
            return bool(c.subscriptions)
        return v == b"normal" and not c.subscriptions and "monitor" not in c.flags
    if kind == "user":
        return bool(c.user == v)
    if kind == "maxage":
        return bool((now - c.created_ms) // 1000 >= v)
    if kind == "idle":
        return bool((now - c.last_interaction_ms) // 1000 >= v)
    if kind == "db":
        return bool(c.db == v)
    text = v.decode(errors="replace")
    if kind == "addr":
        return bool(c.addr == text)
    if kind == "laddr":
        return bool(c.laddr == text)
    if kind == "ip":
        return bool(c.addr.rsplit(":", 1)[0] == text)
    if kind == "name":
        return bool((c.name or b"") == v)
    if kind == "lib-name":
        return bool((c.lib_name or b"") == v)
    if kind == "lib-ver":
        return bool((c.lib_ver or b"") == v)
    if kind == "flags":
        return set(text) <= set(_flags(c))
    return text.lower() == "redirect" and "capa-redirect" in c.flags  # capa


def _id_value(b: bytes) -> int | None:
    try:
        v = int(b)
    except ValueError:
        return None
    return v if v > 0 and b.isdigit() else None


def _matching(ctx: Ctx, args: list[bytes], *, kill: bool) -> list[ClientState]:
    filters, skipme = _parse_filters(ctx, args, kill=kill)
    out: list[ClientState] = []
    for c in sorted(ctx.engine.clients.values(), key=lambda c: c.id):
        if skipme and c is ctx.client:
            continue
        if all(_match(ctx, c, k, v) for k, v in filters):
            out.append(c)
    return out


@command("client|list", -2, _ADMIN, acl="@admin @slow @dangerous @connection")
def client_list(ctx: Ctx, argv: list[bytes]) -> Any:
    clients = _matching(ctx, argv[2:], kill=False)
    return _text(ctx, "".join(client_info_line(ctx, c) for c in clients))


@command("client|info", 2, "noscript loading stale", acl="@slow @connection")
def client_info(ctx: Ctx, argv: list[bytes]) -> Any:
    return _text(ctx, client_info_line(ctx, ctx.client))


def _kill(c: ClientState) -> None:
    c.kill_requested = True
    c.flags.add("closing")


@command("client|kill", -3, _ADMIN, acl="@admin @slow @dangerous @connection")
def client_kill(ctx: Ctx, argv: list[bytes]) -> Any:
    if len(argv) == 3:  # old form: CLIENT KILL addr:port
        addr = argv[2].decode(errors="replace")
        for c in ctx.engine.clients.values():
            if c.addr == addr:
                _kill(c)
                return OK
        raise CommandError(NO_SUCH_CLIENT)
    victims = _matching(ctx, argv[2:], kill=True)
    for c in victims:
        _kill(c)
    return len(victims)


_HELP = [
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "CAPA <option> [options...]",
    "    The client claims its some capability options. Options are:",
    "    * REDIRECT",
    "      The client can handle redirection during primary and replica failover in standalone"
    " mode.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address.",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to the specified local address.",
    "    * TYPE (NORMAL|PRIMARY|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id> [<client-id>...]",
    "      Kill connections by client IDs.",
    "    * MAXAGE <maxage>",
    "      Kill connections older than the specified age.",
    "    * FLAGS <flags>",
    "      Kill connections that include the specified flags.",
    "    * NAME <client-name>",
    "      Kill connections with the specified name.",
    "    * IDLE <idle>",
    "      Kill connections with idle time greater than or equal to <idle> seconds.",
    "    * LIB-NAME <library-name>",
    "      Kill connections with the specified library name.",
    "    * LIB-VER <library-version>",
    "      Kill connections with the specified library version.",
    "    * DB <db-id>",
    "      Kill connections currently operating on the specified database ID.",
    "    * CAPA <capa>",
    "      Kill connections currently with the specified capa.",
    "    * IP <ip>",
    "      Kill connections made from the specified ip.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|PRIMARY|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "    * USER <username>",
    "      Return clients authenticated by <username>.",
    "    * ADDR <ip:port>",
    "      Return clients connected from the specified address.",
    "    * LADDR <ip:port>",
    "      Return clients connected to the specified local address.",
    "    * ID <client-id> [<client-id>...]",
    "      Return clients with the specified IDs.",
    "    * SKIPME (YES|NO)",
    "      Exclude the current client from the list (default: no).",
    "    * MAXAGE <maxage>",
    "      List connections older than the specified age.",
    "    * FLAGS <flags>",
    "      Return clients with the specified flags.",
    "    * NAME <client-name>",
    "      Return clients with the specified name.",
    "    * IDLE <idle>",
    "      Return clients with idle time greater than or equal to <idle> seconds.",
    "    * LIB-NAME <lib-name>",
    "      Return clients with the specified lib name.",
    "    * LIB-VER <lib-version>",
    "      Return clients with the specified lib version.",
    "    * DB <db-id>",
    "      Return clients currently operating on the specified database ID.",
    "    * CAPA <capa>",
    "      Return connections currently with the specified capa.",
    "    * IP <ip>",
    "      Return connections made from the specified ip.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "NO-TOUCH (ON|OFF)",
    "    Will not touch LRU/LFU stats when this mode is on.",
    "IMPORT-SOURCE (ON|OFF)",
    "    Mark this connection as an import source if import-mode is enabled.",
    "    Sync tools can set their connections into 'import-source' state to visit",
    "    expired keys.",
    "HELP",
    "    Print this help.",
]


def help_reply(lines: list[str]) -> list[Any]:
    """addReplyHelp (src/networking.c): status replies, one per line."""
    return [SimpleString(line.encode()) for line in lines]


@command("client|help", 2, "loading stale", acl="@slow @connection")
def client_help(ctx: Ctx, argv: list[bytes]) -> Any:
    return help_reply(_HELP)
