"""Server commands: CONFIG, TIME, DEBUG (the subset without I/O), SHUTDOWN,
MONITOR (src/config.c, src/server.c, src/debug.c). INFO is in engine/commands/info.py,
COMMAND in engine/commands/introspection.py, LASTSAVE/SAVE/BGSAVE/BGREWRITEAOF in
engine/commands/persistence.py; DBSIZE/FLUSHALL belong to keys.py.

What the engine cannot do itself it marks for the server, which acts after the reply:
``shutdown`` (SHUTDOWN; options in ``engine.server_info["shutdown"]``), ``monitor`` (MONITOR:
the server streams commands to the client), ``sleep`` (DEBUG SLEEP: microseconds in
``client.conn["sleep_us"]``). CONFIG REWRITE calls ``engine.server_info["config_rewrite"]`` when
the server registered one (it owns the config file), else answers Valkey's no-file error.
"""

from __future__ import annotations

from typing import Any

from engine.commands import info as _info  # noqa: F401 - registers INFO
from engine.commands import introspection as _introspection  # noqa: F401 - registers COMMAND
from engine.commands.client import help_reply
from engine.commands.table import command, container
from engine.commands.util import OK, float_arg
from engine.config import BY_NAME
from engine.context import Ctx
from engine.errors import (
    NO_CONFIG_FILE,
    SYNTAX,
    CommandError,
    config_set_failed,
    subcommand_or_arity,
    wrong_arity,
)

_ADMIN = "admin noscript loading stale"

# -- CONFIG -------------------------------------------------------------------------------
container("config", -2, acl="@slow")


@command("config|get", -3, _ADMIN, acl="@admin @slow @dangerous")
def config_get(ctx: Ctx, argv: list[bytes]) -> Any:
    config = ctx.engine.config
    out: dict[bytes, bytes] = {}
    for pat in argv[2:]:
        for name, value in config.get(pat.decode(errors="replace")):
            out.setdefault(name.encode(), value.encode())
    return out


@command("config|set", -4, _ADMIN, acl="@admin @slow @dangerous")
def config_set(ctx: Ctx, argv: list[bytes]) -> Any:
    # src/config.c configSetCommand: all or nothing
    if len(argv) % 2:
        raise wrong_arity(b"config|set")
    config = ctx.engine.config
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i in range(2, len(argv), 2):
        name = argv[i].decode(errors="replace")
        p = BY_NAME.get(name.lower())
        if p is None:
            raise CommandError(
                f"ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            )
        if p.name in seen:
            raise config_set_failed(name, "duplicate parameter")
        seen.add(p.name)
        pairs.append((name, argv[i + 1].decode(errors="replace")))
    old = dict(config.values)
    try:
        for name, text in pairs:
            config.set(name, text)
    except CommandError:
        for name in seen:  # roll back, hooks included
            if config.values[name] != old[name]:
                config.values[name] = old[name]
                hook = config.on_change.get(name)
                if hook is not None:
                    hook(old[name])
        raise
    return OK


@command("config|resetstat", 2, _ADMIN, acl="@admin @slow @dangerous")
def config_resetstat(ctx: Ctx, argv: list[bytes]) -> Any:
    # src/server.c resetServerStats (rdb_changes_since_last_save is not a statistic)
    engine = ctx.engine
    dirty = engine.stats.dirty
    engine.stats = type(engine.stats)()
    engine.stats.dirty = dirty
    engine.keyspace.stats_expired_keys = 0
    engine.keyspace.stats_expired_fields = 0
    return OK


@command("config|rewrite", 2, _ADMIN, acl="@admin @slow @dangerous")
def config_rewrite(ctx: Ctx, argv: list[bytes]) -> Any:
    rewrite = ctx.engine.server_info.get("config_rewrite")
    if rewrite is None or not ctx.engine.server_info.get("config_file"):
        raise CommandError(NO_CONFIG_FILE)
    rewrite()
    return OK


_CONFIG_HELP = [
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Print this help.",
]


@command("config|help", 2, "loading stale", acl="@slow")
def config_help(ctx: Ctx, argv: list[bytes]) -> Any:
    return help_reply(_CONFIG_HELP)


# -- TIME, MONITOR, SHUTDOWN ----------------------------------------------------
@command("time", 1, "loading stale fast", acl="@fast")
def time_(ctx: Ctx, argv: list[bytes]) -> Any:
    us = ctx.engine.clock.now_us()
    return [b"%d" % (us // 1_000_000), b"%d" % (us % 1_000_000)]


@command("monitor", 1, _ADMIN, acl="@admin @slow @dangerous")
def monitor(ctx: Ctx, argv: list[bytes]) -> Any:
    ctx.client.flags.add("monitor")
    return OK


@command("shutdown", -1, "admin noscript loading stale no_multi allow_busy",
         acl="@admin @slow @dangerous")  # fmt: skip
def shutdown(ctx: Ctx, argv: list[bytes]) -> Any:
    # src/server.c shutdownCommand
    opts: set[str] = set()
    for a in argv[1:]:
        o = a.lower()
        if o in (b"nosave", b"save", b"now", b"force", b"abort"):
            opts.add(o.decode())
        else:
            raise CommandError(SYNTAX)
    if ("nosave" in opts and "save" in opts) or ("abort" in opts and len(opts) > 1):
        raise CommandError(SYNTAX)
    if "abort" in opts:
        raise CommandError("ERR No shutdown in progress.")
    ctx.engine.server_info["shutdown"] = opts
    ctx.client.flags.add("shutdown")
    return OK


# -- DEBUG (no I/O) -----------------------------------------------------------------------
@command("debug", -2, _ADMIN, acl="@admin @slow @dangerous")
def debug(ctx: Ctx, argv: list[bytes]) -> Any:
    sub = argv[1].lower()
    n = len(argv)
    if sub == b"sleep" and n == 3:
        secs = float_arg(argv[2])
        if secs > 0:
            ctx.client.conn["sleep_us"] = int(secs * 1_000_000)
            ctx.client.flags.add("sleep")
        return OK
    if sub == b"set-active-expire" and n == 3:
        ctx.engine.server_info["active_expire"] = argv[2] != b"0"
        return OK
    if sub == b"help" and n == 2:
        return help_reply(_DEBUG_HELP)
    raise subcommand_or_arity(argv[1], "DEBUG")


_DEBUG_HELP = [
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "HELP",
    "    Print this help.",
]
