"""Per-client state and the per-command execution context handlers receive.

A handler gets a :class:`Ctx`: the current :class:`~engine.keyspace.Database`, the client, the
command's time (``ctx.now_ms``, fixed for the whole command like Valkey's cached command time),
and the calls through which it reports what it did:

- ``ctx.dirty += n`` for every change (what Valkey counts in ``server.dirty``): a write command
  that changed something is propagated;
- ``ctx.rewrite(argv)`` to propagate a deterministic form instead of the command as typed
  (``SET k v PXAT ms``), ``ctx.prevent()`` to propagate nothing of the command itself;
- ``ctx.also(argv)`` for extra commands of the same execution unit (``UNLINK`` of a key found
  expired, ``HDEL`` of expired fields) — they come before the command's own form;
- ``ctx.notify(cls, event, key)`` for keyspace notifications, ``ctx.modified(key)`` for WATCH,
  ``ctx.ready(key)`` for clients blocked on a key.

The engine turns these into the unit's effects, wrapped in MULTI/EXEC when there is more than
one command (src/server.c propagatePendingCommands).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.engine import Engine
    from engine.keyspace import Database

Effect = tuple[int, list[bytes]]  # (db, argv); db -1 for MULTI/EXEC


@dataclass(eq=False)
class ClientState:
    """What the engine knows of one connection (the server keeps the socket)."""

    id: int
    db: int = 0
    resp: int = 2
    name: bytes | None = None
    lib_name: bytes | None = None
    lib_ver: bytes | None = None
    addr: str = ""
    laddr: str = ""
    authenticated: bool = True
    user: bytes = b"default"
    created_ms: int = 0
    last_cmd: bytes = b"NULL"
    last_interaction_ms: int = 0
    multi: list[list[bytes]] | None = None  # queued commands while in MULTI
    multi_error: bool = False  # a queued command was rejected: EXEC aborts
    watched: set[tuple[int, bytes]] = field(default_factory=set)
    dirty_cas: bool = False  # a watched key was touched
    channels: set[bytes] = field(default_factory=set)
    patterns: set[bytes] = field(default_factory=set)
    shard_channels: set[bytes] = field(default_factory=set)  # SSUBSCRIBE
    pushes: list[Any] = field(default_factory=list)  # pub/sub messages waiting to be written
    # CLIENT REPLY on|off|skip; "skip-next" while CLIENT REPLY SKIP itself runs (no reply):
    # the engine turns it into "skip" when the next command starts (src/networking.c)
    reply_mode: str = "on"
    no_evict: bool = False
    no_touch: bool = False
    flags: set[str] = field(default_factory=set)  # "readonly", "asking", "monitor", "closing"
    kill_requested: bool = False
    # connection-level numbers the server fills for CLIENT LIST: fd, qbuf, tot-net-in, ...
    conn: dict[str, int] = field(default_factory=dict)
    # the engine's reusable execution context for this client's commands (Engine.execute)
    ctx: Ctx | None = field(default=None, repr=False)

    @property
    def subscriptions(self) -> int:
        """All subscriptions, shard channels included (Valkey's CLIENT_PUBSUB context)."""
        return len(self.channels) + len(self.patterns) + len(self.shard_channels)


class Ctx:
    """Execution context of one command (see the module docstring)."""

    __slots__ = (
        "argv",
        "client",
        "db",
        "dirty",
        "effects",
        "engine",
        "may_block",
        "now_ms",
        "prevented",
        "propagate_as",
    )

    def __init__(self, engine: Engine, client: ClientState, now_ms: int) -> None:
        self.engine = engine
        self.client = client
        self.db: Database = engine.keyspace.dbs[client.db]
        self.now_ms = now_ms
        self.argv: list[bytes] = []
        self.dirty = 0
        self.effects: list[Effect] = []
        self.propagate_as: list[bytes] | None = None
        self.prevented = False
        self.may_block = True

    # -- propagation ----------------------------------------------------------------------
    def rewrite(self, argv: list[bytes]) -> None:
        self.propagate_as = argv

    def prevent(self) -> None:
        self.prevented = True

    def also(self, argv: list[bytes], db: int | None = None) -> None:
        self.effects.append((self.db.id if db is None else db, argv))

    # -- signals --------------------------------------------------------------------------
    def notify(self, cls: str, event: bytes, key: bytes, db: int | None = None) -> None:
        if self.engine.notify_flags:  # notify-keyspace-events "" (the default): nothing to do
            self.engine.notify(cls, event, key, self.db.id if db is None else db)

    def modified(self, key: bytes, db: int | None = None) -> None:
        keyspace = self.engine.keyspace
        if keyspace.watchers:  # no client WATCHes anything: nothing to touch
            keyspace.touch_watched(self.db.id if db is None else db, key)

    def ready(self, key: bytes, db: int | None = None) -> None:
        self.engine.signal_ready(self.db.id if db is None else db, key)

    @property
    def loading(self) -> bool:
        return self.engine.loading
