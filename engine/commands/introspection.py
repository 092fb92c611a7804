"""COMMAND and its subcommands (src/commands.c / src/server.c commandCommand ...).

Answered from the command table: name, arity, flags, key range and ACL categories come from
each entry (flags and categories printed in Valkey's fixed order, with the categories Valkey
implies from the flags: src/server.c setImplicitACLCategories); tips, key specs and docs come
from ``command_meta`` (generated from a real 9.1.2). Only commands we implement are listed.
"""

from __future__ import annotations

import json
from typing import Any

from engine.commands.client import help_reply
from engine.commands.table import TABLE, Command, command, container
from engine.context import Ctx
from engine.errors import (
    GETKEYS_INVALID,
    GETKEYS_INVALID_ARGS,
    GETKEYS_INVALID_COMMAND,
    GETKEYS_NO_KEYS,
    SYNTAX,
    CommandError,
)
from persistence.rdb.glob import glob_match
from persistence.resp.frames import Array, Bulk, Integer, Map, Null, Set, SimpleString

# src/server.c addReplyCommandFlags order (hidden ones left out)
_FLAG_ORDER = ("write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript",
               "blocking", "loading", "stale", "skip_monitor", "skip_commandlog", "asking",
               "fast", "no_auth", "no_mandatory_keys", "no_async_loading", "no_multi",
               "movablekeys", "allow_busy")  # fmt: skip
# src/acl.c ACLCommandCategories order
_ACL_ORDER = ("keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
              "bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow",
              "blocking", "dangerous", "connection", "transaction", "scripting")  # fmt: skip

_meta: dict[str, Any] | None = None
_info_cache: dict[tuple[str, int], Any] = {}


def meta(name: str) -> dict[str, Any]:
    global _meta
    if _meta is None:
        from engine.commands.command_meta import DATA

        _meta = json.loads(DATA)
    found: dict[str, Any] = _meta.get(name, {})
    return found


def frame(v: Any) -> Any:
    """Typed JSON (see tests/command_meta_gen.py) -> RESP frames."""
    if isinstance(v, str):
        return Bulk(v.encode())
    if isinstance(v, int):
        return Integer(v)
    if v is None:
        return Null()
    if isinstance(v, list):
        return Array([frame(x) for x in v])
    if "+" in v:
        return SimpleString(v["+"].encode())
    if "~" in v:
        return Set([frame(x) for x in v["~"]])
    return Map([(frame(k), frame(x)) for k, x in v["%"]])


def flag_names(cmd: Command) -> list[str]:
    flags = set(cmd.flags)
    if cmd.keys_fn is not None:
        flags.add("movablekeys")
    return [f for f in _FLAG_ORDER if f in flags]


def acl_categories(cmd: Command) -> list[str]:
    cats = {a.lstrip("@").lower() for a in cmd.acl}
    f = cmd.flags
    if "write" in f:
        cats.add("write")
    if "readonly" in f and "scripting" not in cats:
        cats.add("read")
    if "admin" in f:
        cats.update(("admin", "dangerous"))
    if "pubsub" in f:
        cats.add("pubsub")
    if "fast" in f:
        cats.add("fast")
    if "blocking" in f:
        cats.add("blocking")
    if "fast" not in cats:
        cats.add("slow")
    return [c for c in _ACL_ORDER if c in cats]


def _info(cmd: Command) -> Any:
    m = meta(cmd.name)
    subs = [_info(s) for s in cmd.subcommands.values()]
    return Array([
        Bulk(cmd.name.encode()),
        Integer(cmd.arity),
        Set([SimpleString(f.encode()) for f in flag_names(cmd)]),
        Integer(cmd.first_key),
        Integer(cmd.last_key),
        Integer(cmd.step),
        Set([SimpleString(b"@" + c.encode()) for c in acl_categories(cmd)]),
        frame(m.get("tips", {"~": []})),
        frame(m.get("key_specs", {"~": []})),
        Array(subs),
    ])  # fmt: skip


def _find(name: bytes) -> Command | None:
    """A command by name, or ``container|sub`` (src/server.c lookupCommandBySds)."""
    parts = name.lower().split(b"|")
    cmd = TABLE.get(parts[0])
    if cmd is None or len(parts) == 1:
        return cmd
    if len(parts) != 2:
        return None
    return cmd.subcommands.get(parts[1])


def _all() -> list[Command]:
    return list(TABLE.values())


def _command_all(ctx: Ctx, argv: list[bytes]) -> Any:
    return Array([_info(c) for c in _all()])


# COMMAND alone lists everything: a container with arity -1 runs its own handler when it has
# no subcommand argument (engine.execute)
container("command", -1, "loading stale", acl="@slow @connection")
TABLE[b"command"].handler = _command_all


@command("command|count", 2, "loading stale", acl="@slow @connection")
def command_count(ctx: Ctx, argv: list[bytes]) -> Any:
    return len(TABLE)


@command("command|info", -2, "loading stale", acl="@slow @connection")
def command_info(ctx: Ctx, argv: list[bytes]) -> Any:
    if len(argv) == 2:
        return _command_all(ctx, argv)
    out: list[Any] = []
    for name in argv[2:]:
        cmd = _find(name)
        out.append(Null() if cmd is None else _info(cmd))
    return Array(out)


def _docs(cmd: Command) -> Any:
    m = meta(cmd.name).get("docs", {"%": []})
    pairs = [(frame(k), frame(v)) for k, v in m["%"]]
    if cmd.subcommands:
        subs: list[tuple[Any, Any]] = [
            (Bulk(s.name.encode()), _docs(s)) for s in cmd.subcommands.values()
        ]
        pairs.append((Bulk(b"subcommands"), Map(subs)))
    return Map(pairs)


@command("command|docs", -2, "loading stale", acl="@slow @connection")
def command_docs(ctx: Ctx, argv: list[bytes]) -> Any:
    if len(argv) == 2:
        cmds = _all()
    else:
        found = [_find(n) for n in argv[2:]]
        cmds = [c for c in found if c is not None]
    return Map([(Bulk(c.name.encode()), _docs(c)) for c in cmds])


def _names(with_subs: bool = True) -> list[Command]:
    out: list[Command] = []
    for c in TABLE.values():
        out.append(c)
        if with_subs:
            out.extend(c.subcommands.values())
    return out


@command("command|list", -2, "loading stale", acl="@slow @connection")
def command_list(ctx: Ctx, argv: list[bytes]) -> Any:
    cmds = _names()
    if len(argv) == 2:
        return [c.name.encode() for c in cmds]
    if len(argv) != 5 or argv[2].lower() != b"filterby":
        raise CommandError(SYNTAX)
    kind, value = argv[3].lower(), argv[4]
    if kind == b"module":
        return []
    if kind == b"aclcat":
        cat = value.lower().decode(errors="replace")
        return [c.name.encode() for c in cmds if cat in acl_categories(c)]
    if kind == b"pattern":
        return [c.name.encode() for c in cmds if glob_match(value, c.name.encode(), nocase=True)]
    raise CommandError(SYNTAX)


def _resolve(argv: list[bytes]) -> tuple[Command, list[bytes]]:
    """COMMAND GETKEYS <full-command>: the (sub)command and its argv (src/server.c)."""
    args = argv[2:]
    cmd = TABLE.get(args[0].lower())
    if cmd is not None and cmd.container:
        cmd = cmd.subcommands.get(args[1].lower()) if len(args) > 1 else None
    if cmd is None:
        raise CommandError(GETKEYS_INVALID_COMMAND)
    specs = meta(cmd.name).get("key_specs", {"~": []})["~"]
    if cmd.keys_fn is None and cmd.first_key <= 0 and not specs:
        raise CommandError(GETKEYS_NO_KEYS)
    if not cmd.arity_ok(len(args)):
        raise CommandError(GETKEYS_INVALID_ARGS)
    return cmd, args


@command("command|getkeys", -3, "loading stale", acl="@slow @connection")
def command_getkeys(ctx: Ctx, argv: list[bytes]) -> Any:
    cmd, args = _resolve(argv)
    pos = cmd.key_positions(args)
    if not pos and "no_mandatory_keys" not in cmd.flags:
        raise CommandError(GETKEYS_INVALID)
    return [args[i] for i in pos]


def _spec_keys(spec: dict[str, Any], argv: list[bytes]) -> list[int] | None:
    """src/db.c getKeysUsingKeySpecs for one spec: its key positions, None if invalid."""
    d = dict((k, v) for k, v in spec["%"])
    bs = dict((k, v) for k, v in d["begin_search"]["%"])
    bspec = dict((k, v) for k, v in bs["spec"]["%"])
    argc = len(argv)
    if bs["type"] == "index":
        first = bspec["index"]
    elif bs["type"] == "keyword":
        kw = bspec["keyword"].encode().lower()
        start = bspec["startfrom"]
        rng = range(start, argc) if start >= 0 else range(argc + start, 0, -1)
        first = next((i + 1 for i in rng if 0 < i < argc and argv[i].lower() == kw), 0)
        if not first:
            return []
    else:
        return None
    fk = dict((k, v) for k, v in d["find_keys"]["%"])
    fspec = dict((k, v) for k, v in fk["spec"]["%"])
    if fk["type"] == "range":
        lastkey, step, limit = fspec["lastkey"], fspec["keystep"], fspec["limit"]
        if lastkey >= 0:
            last = first + lastkey
        elif not limit:
            last = argc + lastkey
        else:
            last = first + ((argc - first) // limit + lastkey)
    elif fk["type"] == "keynum":
        idx = first + fspec["keynumidx"]
        if idx >= argc:
            return None
        try:
            numkeys = int(argv[idx])
        except ValueError:
            return None
        if numkeys < 0:
            return None
        first += fspec["firstkey"]
        last = first + numkeys - 1
        step = fspec["keystep"]
    else:
        return None
    return [i for i in range(first, last + 1, step or 1) if first <= i < argc]


@command("command|getkeysandflags", -3, "loading stale", acl="@slow @connection")
def command_getkeysandflags(ctx: Ctx, argv: list[bytes]) -> Any:
    cmd, args = _resolve(argv)
    specs = meta(cmd.name).get("key_specs", {"~": []})["~"]
    out: list[Any] = []
    for spec in specs:
        pos = _spec_keys(spec, args)
        if pos is None:
            out = []
            break
        flags = next(v for k, v in spec["%"] if k == "flags")
        out.extend(Array([Bulk(args[i]), frame(flags)]) for i in pos)
    if not out and "no_mandatory_keys" not in cmd.flags:
        raise CommandError(GETKEYS_INVALID)
    return Array(out)


_HELP = [
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all commands.",
    "COUNT",
    "    Return the total number of commands in this server.",
    "LIST",
    "    Return a list of all commands in this server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full command.",
    "HELP",
    "    Print this help.",
]


@command("command|help", 2, "loading stale", acl="@slow @connection")
def command_help(ctx: Ctx, argv: list[bytes]) -> Any:
    return help_reply(_HELP)
