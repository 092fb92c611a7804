"""Server configuration: the parameters we support, with valkey-server's names, defaults and
CONFIG GET/SET behaviour (src/config.c). Pure data; reading valkey.conf files is done by
``engine/server/config_file.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.errors import CommandError
from persistence.rdb.glob import glob_match


@dataclass(slots=True)
class Param:
    name: str
    kind: str  # "int" "bool" "str" "enum" "memory" "special"
    default: Any
    mutable: bool = True
    choices: tuple[str, ...] = ()
    alias: str | None = None
    hidden: bool = False  # src/config.c HIDDEN_CONFIG: CONFIG GET matches its exact name only


_MEM_UNITS = {"k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}


def _set_failed(name: str, why: str) -> CommandError:
    """src/config.c configSetCommand's wording."""
    return CommandError(f"ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")


def parse_memory(text: str) -> int:
    """memtoull (src/util.c): 1k = 1000, 1kb = 1024, case-insensitive."""
    t = text.strip().lower()
    for unit in ("kb", "mb", "gb", "k", "m", "g"):
        if t.endswith(unit):
            return int(t[: -len(unit)]) * _MEM_UNITS[unit]
    if t.endswith("b"):
        t = t[:-1]
    return int(t)


PARAMS: list[Param] = [
    Param("port", "int", 6379, mutable=False),
    Param("bind", "str", "127.0.0.1 -::1", mutable=False),
    Param("protected-mode", "bool", True),
    Param("dir", "str", "./data"),
    Param("dbfilename", "str", "dump.rdb"),
    Param("requirepass", "str", ""),
    Param("databases", "int", 16, mutable=False),
    Param("maxclients", "int", 10000),
    Param("timeout", "int", 0),
    Param("tcp-keepalive", "int", 300),
    Param("hz", "int", 10),
    Param(
        "loglevel", "enum", "notice", choices=("debug", "verbose", "notice", "warning", "nothing")
    ),
    Param("logfile", "str", "", mutable=False),
    Param("daemonize", "bool", False, mutable=False),
    Param("pidfile", "str", ""),
    Param("appendonly", "bool", True),
    Param("appendfilename", "str", "appendonly.aof", mutable=False),
    Param("appenddirname", "str", "appendonlydir", mutable=False),
    Param("appendfsync", "enum", "everysec", choices=("always", "everysec", "no")),
    Param("aof-use-rdb-preamble", "bool", True),
    Param("aof-timestamp-enabled", "bool", False),
    Param("aof-load-truncated", "bool", True),
    Param("auto-aof-rewrite-percentage", "int", 100),
    Param("auto-aof-rewrite-min-size", "memory", 64 * 1024 * 1024),
    Param("aof-disable-auto-gc", "bool", False, hidden=True),
    Param("stop-writes-on-bgsave-error", "bool", True),
    Param("save", "str", "3600 1 300 100 60 10000"),
    Param("rdbcompression", "bool", True),
    Param("rdbchecksum", "bool", True),
    Param("notify-keyspace-events", "str", ""),
    Param("lazyfree-lazy-expire", "bool", True),
    Param("active-expire-effort", "int", 1),
    Param("proto-max-bulk-len", "memory", 512 * 1024 * 1024),
    Param("client-query-buffer-limit", "memory", 1024 * 1024 * 1024),
    Param(
        "client-output-buffer-limit",
        "str",
        "normal 0 0 0 replica 268435456 67108864 60 pubsub 33554432 8388608 60",
    ),
    Param("maxmemory", "memory", 0),
    Param(
        "maxmemory-policy",
        "enum",
        "noeviction",
        choices=(
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "noeviction",
        ),
    ),
    Param("hash-max-listpack-entries", "int", 512, alias="hash-max-ziplist-entries"),
    Param("hash-max-listpack-value", "int", 64, alias="hash-max-ziplist-value"),
    Param("set-max-intset-entries", "int", 512),
    Param("set-max-listpack-entries", "int", 128),
    Param("set-max-listpack-value", "int", 64),
    Param("zset-max-listpack-entries", "int", 128, alias="zset-max-ziplist-entries"),
    Param("zset-max-listpack-value", "int", 64, alias="zset-max-ziplist-value"),
    Param("list-max-listpack-size", "int", -2, alias="list-max-ziplist-size"),
    Param("stream-node-max-entries", "int", 100),
    Param("stream-node-max-bytes", "memory", 4096),
    Param("cluster-enabled", "bool", False, mutable=False),
    Param("cluster-databases", "int", 1, mutable=False),
    Param("cluster-config-file", "str", "nodes.conf", mutable=False),
    Param("cluster-node-timeout", "int", 15000),
    Param("cluster-port", "int", 0, mutable=False),
    Param("cluster-require-full-coverage", "bool", True),
    Param("cluster-allow-reads-when-down", "bool", False),
    Param("cluster-allow-pubsubshard-when-down", "bool", True),
    # atomic slot migration (spec 3.2; engine/cluster/migration.py config_from)
    Param("repl-timeout", "int", 60),
    Param("cluster-manual-failover-timeout", "int", 5000),
    Param("slot-migration-max-failover-repl-bytes", "int", 0),
    Param("cluster-slot-migration-log-max-len", "int", 1000),
    Param("enable-debug-command", "enum", "no", choices=("no", "yes", "local")),
    Param("slowlog-log-slower-than", "int", 10000),
    Param("slowlog-max-len", "int", 128),
    Param("latency-tracking", "bool", True),
    Param("lua-time-limit", "int", 5000),
]
BY_NAME: dict[str, Param] = {}
for _p in PARAMS:
    BY_NAME[_p.name] = _p
    if _p.alias:
        BY_NAME[_p.alias] = _p


class Config:
    """Current values, by canonical name. ``on_change`` hooks run after CONFIG SET."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {p.name: p.default for p in PARAMS}
        self.on_change: dict[str, Callable[[Any], None]] = {}

    def __getitem__(self, name: str) -> Any:
        return self.values[BY_NAME[name].name]

    def set(self, name: str, text: str, *, startup: bool = False) -> None:
        """Set from text; raises CommandError with Valkey's CONFIG SET wording."""
        p = BY_NAME.get(name.lower())
        if p is None:
            raise CommandError(
                f"ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            )
        if not p.mutable and not startup:
            raise _set_failed(name, "can't set immutable config")
        self.values[p.name] = self._parse(p, text, name)
        hook = self.on_change.get(p.name)
        if hook is not None:
            hook(self.values[p.name])

    def _parse(self, p: Param, text: str, name: str) -> Any:
        bad = _set_failed(name, "argument couldn't be parsed into an integer")
        if p.kind == "bool":
            t = text.lower()
            if t not in ("yes", "no"):
                raise _set_failed(name, "argument must be 'yes' or 'no'")
            return t == "yes"
        if p.kind == "int":
            try:
                return int(text)
            except ValueError:
                raise bad from None
        if p.kind == "memory":
            try:
                return parse_memory(text)
            except ValueError:
                raise bad from None
        if p.kind == "enum":
            t = text.lower()
            if t not in p.choices:
                raise _set_failed(
                    name, f"argument(s) must be one of the following: {', '.join(p.choices)}"
                )
            return t
        return text

    def render(self, name: str) -> str:
        p = BY_NAME[name]
        v = self.values[p.name]
        if p.kind == "bool":
            return "yes" if v else "no"
        return str(v)

    def get(self, pattern: str) -> list[tuple[str, str]]:
        """CONFIG GET: (name, value) for every parameter (and alias) matching ``pattern``."""
        out: list[tuple[str, str]] = []
        pat = pattern.lower().encode()
        for name, p in BY_NAME.items():
            if p.hidden and pat != name.encode():
                continue
            if glob_match(pat, name.encode()):
                out.append((name, self.render(p.name)))
        return out
