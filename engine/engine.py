"""The engine: executes commands against the keyspace and reports their propagated effects.

``Engine.execute(client, argv)`` is Valkey's processCommand + call in one: look the command up in
the table, check arity and authentication, queue it inside MULTI, run the handler with a
:class:`~engine.context.Ctx`, and return ``(reply, effects)``. ``effects`` is the execution unit's
propagation, already wrapped in MULTI/EXEC when it holds more than one command, as
``(db, argv)`` pairs (db -1 for MULTI/EXEC); the server hands them to the AOF writer (which adds
SELECT) and to slot-migration streams. Pure: no I/O, time from the injected clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine import commands as _commands  # noqa: F401 - registers every command
from engine import types as _types  # noqa: F401 - registers every value type
from engine.clock import Clock, SystemClock
from engine.cluster.routing import check as _cluster_check
from engine.cluster.slots import ClusterState
from engine.commands import cluster as _cluster_commands  # noqa: F401 - CLUSTER, ASKING ...
from engine.commands.hashes_expire import active_expire_fields as _expire_fields
from engine.commands.table import TABLE, Command
from engine.config import Config
from engine.context import ClientState, Ctx, Effect
from engine.errors import (
    EXEC_ABORT,
    NOAUTH,
    CommandError,
    exec_abort_because,
    not_in_transaction,
    pubsub_context,
    unknown_command,
    unknown_subcommand,
    wrong_arity,
)
from engine.keyspace import Keyspace
from persistence.resp.frames import Array, Error, Push, SimpleString

_perf_ns = time.perf_counter_ns
# command names as clients spell them -> table entries (bounded; see Engine.execute)
_BY_WIRE_NAME: dict[bytes, Command] = {}

MULTI: Effect = (-1, [b"MULTI"])
EXEC: Effect = (-1, [b"EXEC"])
QUEUED = SimpleString(b"QUEUED")
NULL_ARRAY = Array(None)
# commands that run at once inside MULTI (src/server.c processCommand)
_MULTI_IMMEDIATE = frozenset((b"exec", b"discard", b"multi", b"watch", b"quit", b"reset"))
# commands whose handlers need the full path while loading (transactions)
_LOADING_SLOW = frozenset(("multi", "exec", "discard", "watch", "unwatch"))
_NO_AUTH_NEEDED = frozenset((b"auth", b"hello", b"quit", b"reset"))
# what a RESP2 client in subscribed state may run (src/server.c)
_PUBSUB_ALLOWED = frozenset(
    (b"subscribe", b"ssubscribe", b"unsubscribe", b"sunsubscribe", b"psubscribe",
     b"punsubscribe", b"ping", b"quit", b"reset")
)  # fmt: skip


@dataclass
class CommandStats:
    calls: int = 0
    usec: int = 0
    rejected_calls: int = 0
    failed_calls: int = 0


@dataclass
class Stats:
    total_commands_processed: int = 0
    total_connections_received: int = 0
    rejected_connections: int = 0
    keyspace_hits: int = 0
    keyspace_misses: int = 0
    total_error_replies: int = 0
    dirty: int = 0  # changes since the last save (rdb_changes_since_last_save)
    commands: dict[str, CommandStats] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


_NOTIFY_FLAGS = {"g": "g", "$": "$", "l": "l", "s": "s", "h": "h", "z": "z", "x": "x",
                 "e": "e", "t": "t", "m": "m", "n": "n", "d": "d"}  # fmt: skip
_NOTIFY_ALL = "g$lshzxetd"  # 'A' (src/notify.c NOTIFY_ALL, without m and n)


def parse_notify_flags(text: str) -> frozenset[str]:
    """src/notify.c keyspaceEventsStringToFlags; raises ValueError on an unknown class."""
    flags: set[str] = set()
    for ch in text:
        if ch == "A":
            flags.update(_NOTIFY_ALL)
        elif ch in ("K", "E") or ch in _NOTIFY_FLAGS:
            flags.add(ch)
        else:
            raise ValueError(ch)
    return frozenset(flags)


class Engine:
    def __init__(self, config: Config | None = None, clock: Clock | None = None) -> None:
        self.config = config or Config()
        self.clock: Clock = clock or SystemClock()
        n = self.config["databases"]
        if self.config["cluster-enabled"]:
            n = self.config["cluster-databases"]
        self.keyspace = Keyspace(n)
        # cluster mode (config cluster-enabled): the slot map and the routing check; the
        # server replaces ``cluster`` with the state it loads from nodes.conf
        self.cluster: ClusterState | None = None
        if self.config["cluster-enabled"]:
            port = self.config["port"]
            self.cluster = ClusterState.fresh(port, self.config["cluster-port"])
            self.keyspace.enable_slot_index()
            self.cluster.update_state(self.clock.now_ms())
        self.keyspace.lazyfree_lazy_expire = self.config["lazyfree-lazy-expire"]
        self.loading = False
        self.stats = Stats()
        self.clients: dict[int, ClientState] = {}
        self.next_client_id = 1
        self.channels: dict[bytes, set[ClientState]] = {}
        self.patterns: dict[bytes, set[ClientState]] = {}
        self.shard_channels: dict[bytes, set[ClientState]] = {}
        self.pushed: set[ClientState] = set()  # clients with pushes to write
        self.ready_keys: list[tuple[int, bytes]] = []  # keys blocked clients may want
        self.notify_flags = parse_notify_flags(self.config["notify-keyspace-events"])
        self.config.on_change["notify-keyspace-events"] = self._set_notify
        self.config.on_change["lazyfree-lazy-expire"] = self._set_lazyfree
        self.start_time = time.time()
        self.server_info: dict[str, Any] = {}  # filled by the server (port, pid, ...)
        self._loading_ctx: Ctx | None = None
        # the MISCONF text while the server can't persist (set by engine/server/durability.py)
        self.disk_error: str | None = None
        # INFO sections contributed by the server/durability code: name -> () -> fields
        self.info_providers: dict[str, Callable[[], list[tuple[str, str]]]] = {}
        # the atomic slot migration host (engine.cluster.migration.MigrationHost), set by the
        # server in cluster mode: CLUSTER MIGRATESLOTS / SYNCSLOTS ... reach it
        self.migration: Any = None

    def _set_notify(self, text: Any) -> None:
        try:
            self.notify_flags = parse_notify_flags(str(text))
        except ValueError:
            raise CommandError(
                "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events')"
                " - Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
            ) from None

    def _set_lazyfree(self, value: Any) -> None:
        self.keyspace.lazyfree_lazy_expire = bool(value)

    # -- clients --------------------------------------------------------------------------
    def new_client(self, addr: str = "", laddr: str = "") -> ClientState:
        c = ClientState(id=self.next_client_id, addr=addr, laddr=laddr)
        c.created_ms = c.last_interaction_ms = self.clock.now_ms()
        c.authenticated = not self.config["requirepass"]
        self.next_client_id += 1
        self.clients[c.id] = c
        self.stats.total_connections_received += 1
        return c

    def drop_client(self, client: ClientState) -> None:
        self.keyspace.unwatch_all(client)
        for ch in client.channels:
            subs = self.channels.get(ch)
            if subs is not None:
                subs.discard(client)
                if not subs:
                    del self.channels[ch]
        for pat in client.patterns:
            subs = self.patterns.get(pat)
            if subs is not None:
                subs.discard(client)
                if not subs:
                    del self.patterns[pat]
        for ch in client.shard_channels:
            subs = self.shard_channels.get(ch)
            if subs is not None:
                subs.discard(client)
                if not subs:
                    del self.shard_channels[ch]
        client.channels.clear()
        client.patterns.clear()
        client.shard_channels.clear()
        self.pushed.discard(client)
        self.clients.pop(client.id, None)

    # -- execution ------------------------------------------------------------------------
    def execute(self, client: ClientState, argv: list[bytes]) -> tuple[Any, list[Effect]]:
        """Run one command from ``client``; returns (reply, effects)."""
        if client.reply_mode == "skip-next":  # CLIENT REPLY SKIP: this reply is dropped
            client.reply_mode = "skip"
        name = argv[0]
        cmd = _BY_WIRE_NAME.get(name)
        if cmd is None:
            cmd = TABLE.get(name) or TABLE.get(name.lower())
            if cmd is None:
                return self._reject(client, unknown_command(name, argv[1:]), None)
            if len(_BY_WIRE_NAME) < 4096:  # "SET", "set", "Set" ...: one lookup next time
                _BY_WIRE_NAME[name] = cmd
        if cmd.container:
            if len(argv) < 2:
                if cmd.arity != -1:  # a container with arity -1 (COMMAND) runs alone too
                    return self._reject(client, wrong_arity(name), cmd)
            else:
                sub = cmd.subcommands.get(argv[1].lower())
                if sub is None:
                    return self._reject(client, unknown_subcommand(argv[1], name), cmd)
                cmd = sub
        a, n = cmd.arity, len(argv)
        if (n != a) if a >= 0 else (n < -a):
            return self._reject(client, wrong_arity(cmd.lname), cmd)
        lname = cmd.lname
        if not client.authenticated and lname not in _NO_AUTH_NEEDED:
            return self._reject(client, CommandError(NOAUTH), cmd)
        multi = client.multi
        if multi is not None and "no_multi" in cmd.flags:  # src/server.c processCommand
            return self._reject(client, not_in_transaction(cmd.name), cmd)
        if self.cluster is not None:  # src/server.c processCommand: cluster redirection
            redirect = _cluster_check(self, client, cmd, argv)
            if redirect is not None:
                return self._redirect(client, cmd, redirect)
        if self.disk_error is not None and self._disk_denied(client, cmd):
            return self._reject(client, CommandError(self.disk_error), cmd)
        if multi is not None and lname not in _MULTI_IMMEDIATE:
            multi.append(argv)
            return QUEUED, []
        if (
            (client.channels or client.patterns or client.shard_channels)
            and client.resp == 2
            and lname not in _PUBSUB_ALLOWED
        ):
            return self._reject(client, pubsub_context(cmd.name), cmd)
        # call() inlined: this is the per-command hot path (src/server.c call)
        ctx = client.ctx
        if ctx is None:
            ctx = client.ctx = Ctx(self, client, 0)
        ctx.db = self.keyspace.dbs[client.db]
        ctx.now_ms = now = self.clock.now_ms()
        ctx.argv = argv
        ctx.dirty = 0
        ctx.effects = effects = []
        ctx.propagate_as = None
        ctx.prevented = False
        ctx.may_block = True
        stats = self.stats
        st = stats.commands.get(cmd.name)
        if st is None:
            st = stats.commands[cmd.name] = CommandStats()
        t0 = _perf_ns()
        try:
            reply = cmd.handler(ctx, argv)
        except CommandError as e:
            reply = Error(e.message.encode())
            st.failed_calls += 1
            self._count_error(e.message)
        st.calls += 1
        st.usec += (_perf_ns() - t0) // 1000
        stats.total_commands_processed += 1
        client.last_cmd = lname
        client.last_interaction_ms = now
        changed = ctx.dirty
        if changed:
            stats.dirty += changed
            if cmd.write and not ctx.prevented:
                effects.append((ctx.db.id, ctx.propagate_as or argv))
        if len(effects) > 1:
            effects = [MULTI, *effects, EXEC]
        return reply, effects

    def run_command(self, name: bytes) -> Command | None:
        """The command spelt ``name`` when it has a run handler (Command.run), else None."""
        cmd = TABLE.get(name) or TABLE.get(name.lower())
        return cmd if cmd is not None and cmd.run is not None else None

    def execute_run(
        self,
        client: ClientState,
        cmd: Command,
        argv: list[bytes],
        more: Callable[[list[bytes]], list[Any]] | list[Any] | None,
        others: list[ClientState] | None = None,
    ) -> list[bytes]:
        """``argv`` and then the commands ``more`` gives (same name and argument count: a list
        of those already read, or a function of ``argv`` finding them, RequestParser.same_after;
        None: none) through ``cmd.run``: what :meth:`execute`
        does for each, with the stats added up once, where none of its per-command work is
        due (MULTI, authentication, a reply mode, subscriptions, cluster routing, a disk error,
        WATCH, keyspace events, loading; ``more`` is not called then). ``others``: the clients
        the commands of ``more`` come from, when not all from ``client`` (the server's
        single commands of one event-loop turn): the run stops before the first of them that
        is not as ``client`` is (another db or protocol, flags, pushes ...). Returns the replies
        (RESP) of those that ran, in order; none when it can do none at once (then
        :meth:`execute` takes ``argv``). A write command's ones are each propagated as they
        came: the caller writes their bytes to the AOF."""
        a, n = cmd.arity, len(argv)
        if (
            ((n != a) if a >= 0 else (n < -a))
            or client.multi is not None
            or not client.authenticated
            or client.reply_mode != "on"
            or client.channels
            or client.patterns
            or client.shard_channels
            or self.cluster is not None
            or self.disk_error is not None
            or self.notify_flags
            or self.keyspace.watchers
            or self.loading
        ):
            return []
        stop = -1
        if others is not None:
            db, resp = client.db, client.resp
            for c in others:
                if (
                    c.multi is not None
                    or not c.authenticated
                    or c.reply_mode != "on"
                    or c.channels
                    or c.patterns
                    or c.shard_channels
                    or c.db != db
                    or c.resp != resp
                    or c.flags
                    or c.pushes
                ):
                    stop = others.index(c)  # (the run stops before it)
                    break
        assert cmd.run is not None
        ctx = client.ctx
        if ctx is None:
            ctx = client.ctx = Ctx(self, client, 0)
        # what run handlers use of ctx (the rest is for execute's handlers, which set it)
        ctx.db = self.keyspace.dbs[client.db]
        ctx.now_ms = now = self.clock.now_ms()
        ctx.dirty = 0
        t0 = _perf_ns()
        if more is None:
            rest: list[Any] = []
        elif isinstance(more, list):  # (commands already read)
            rest = more if stop < 0 else more[:stop]
        else:
            rest = more(argv) if stop < 0 else more(argv)[:stop]
        replies = cmd.run(ctx, argv, rest)
        if replies:
            done = len(replies)
            stats = self.stats
            st = stats.commands.get(cmd.name)
            if st is None:
                st = stats.commands[cmd.name] = CommandStats()
            st.calls += done
            st.usec += (_perf_ns() - t0) // 1000
            stats.total_commands_processed += done
            stats.dirty += ctx.dirty
            client.last_cmd = cmd.lname
            client.last_interaction_ms = now
            if others is not None:
                for c in others[: done - 1]:
                    c.last_cmd = cmd.lname
                    c.last_interaction_ms = now
        return replies

    def execute_loading(self, client: ClientState, argv: list[bytes]) -> Any:
        """Start-up replay of one AOF command: the command table's handler without the
        per-client checks, stats and propagation of :meth:`execute` (src/aof.c runs them in a
        fake client whose replies are discarded). Anything unusual takes the full path."""
        cmd = TABLE.get(argv[0])
        if cmd is None:
            cmd = TABLE.get(argv[0].lower())
        if (
            cmd is None
            or cmd.container
            or not cmd.arity_ok(len(argv))
            or client.multi is not None
            or cmd.name in _LOADING_SLOW
            or self.cluster is not None
        ):
            return self.execute(client, argv)[0]
        ctx = self._loading_ctx
        if ctx is None or ctx.client is not client:
            ctx = self._loading_ctx = Ctx(self, client, 0)
        ctx.db = self.keyspace.dbs[client.db]
        ctx.now_ms = self.clock.now_ms()
        ctx.argv = argv
        ctx.may_block = False
        if ctx.effects:
            ctx.effects = []
        try:
            return cmd.handler(ctx, argv)
        except CommandError as e:
            return Error(e.message.encode())

    def call(self, ctx: Ctx, cmd: Command, argv: list[bytes], *, may_block: bool) -> Any:
        """Run the handler; the command's own propagation is appended to ``ctx.effects``."""
        ctx.argv = argv
        db_id = ctx.db.id
        dirty_before = ctx.dirty
        ctx.propagate_as = None
        ctx.prevented = False
        stats = self.stats
        st = stats.commands.get(cmd.name)
        if st is None:
            st = stats.commands[cmd.name] = CommandStats()
        t0 = _perf_ns()
        ctx.may_block = may_block
        try:
            reply = cmd.handler(ctx, argv)
        except CommandError as e:
            reply = Error(e.message.encode())
            st.failed_calls += 1
            self._count_error(e.message)
        st.calls += 1
        st.usec += (_perf_ns() - t0) // 1000
        stats.total_commands_processed += 1
        ctx.client.last_cmd = cmd.lname
        ctx.client.last_interaction_ms = ctx.now_ms
        changed = ctx.dirty - dirty_before
        if changed:
            stats.dirty += changed
            if cmd.write and not ctx.prevented:
                ctx.effects.append((db_id, ctx.propagate_as or argv))
        return reply

    def _disk_denied(self, client: ClientState, cmd: Command) -> bool:
        """src/server.c processCommand: writes, PING and an EXEC holding writes are refused."""
        if cmd.write or cmd.lname == b"ping":
            return True
        if cmd.lname != b"exec" or not client.multi:
            return False
        return any((c := TABLE.get(a[0].lower())) is not None and c.write for a in client.multi)

    def _reject(
        self, client: ClientState, err: CommandError, cmd: Command | None
    ) -> tuple[Any, list[Effect]]:
        if client.multi is not None:
            client.multi_error = True
        if cmd is not None and cmd.name == "exec":  # src/multi.c execCommandAbort
            client.multi = None
            client.multi_error = False
            self.keyspace.unwatch_all(client)
            err = exec_abort_because(err.message)
        if cmd is not None:
            st = self.stats.commands.setdefault(cmd.name, CommandStats())
            st.rejected_calls += 1
        self._count_error(err.message)
        return Error(err.message.encode()), []

    def _redirect(
        self, client: ClientState, cmd: Command, message: str
    ) -> tuple[Any, list[Effect]]:
        """A cluster redirection: EXEC discards the transaction and gets the error itself,
        a command inside MULTI flags it (src/server.c processCommand)."""
        if cmd.name == "exec":
            client.multi = None
            client.multi_error = False
            self.keyspace.unwatch_all(client)
        elif client.multi is not None:
            client.multi_error = True
        self.stats.commands.setdefault(cmd.name, CommandStats()).rejected_calls += 1
        self._count_error(message)
        return Error(message.encode()), []

    def _count_error(self, message: str) -> None:
        self.stats.total_error_replies += 1
        code = message.split(" ", 1)[0]
        self.stats.errors[code] = self.stats.errors.get(code, 0) + 1

    def exec_transaction(self, ctx: Ctx) -> Any:
        """EXEC: run the queued commands as one execution unit (src/multi.c execCommand)."""
        client = ctx.client
        queued = client.multi or []
        client.multi = None
        if client.multi_error:
            client.multi_error = False
            self.keyspace.unwatch_all(client)
            raise CommandError(EXEC_ABORT)
        if client.dirty_cas:
            self.keyspace.unwatch_all(client)
            return NULL_ARRAY
        self.keyspace.unwatch_all(client)
        replies: list[Any] = []
        for argv in queued:
            cmd = TABLE.get(argv[0].lower())
            assert cmd is not None
            if cmd.container and len(argv) > 1:
                cmd = cmd.subcommands[argv[1].lower()]
            ctx.db = self.keyspace.dbs[client.db]
            replies.append(self.call(ctx, cmd, argv, may_block=False))
        ctx.db = self.keyspace.dbs[client.db]
        ctx.prevent()
        # the queued commands already counted their changes in stats.dirty; EXEC must not
        # count them again
        ctx.dirty = 0
        return replies

    # -- keyspace events ------------------------------------------------------------------
    def notify(self, cls: str, event: bytes, key: bytes, db: int) -> None:
        flags = self.notify_flags
        if not flags or cls not in flags:
            return
        if "K" in flags:
            self.publish(b"__keyspace@%d__:%b" % (db, key), event)
        if "E" in flags:
            self.publish(b"__keyevent@%d__:%b" % (db, event), key)

    def signal_ready(self, db: int, key: bytes) -> None:
        self.ready_keys.append((db, key))

    # -- pub/sub --------------------------------------------------------------------------
    def publish(self, channel: bytes, message: bytes) -> int:
        from persistence.rdb.glob import glob_match

        n = 0
        subs = self.channels.get(channel)
        if subs:
            for c in subs:
                self._push(c, [b"message", channel, message])
                n += 1
        for pat, psubs in self.patterns.items():
            if glob_match(pat, channel):
                for c in psubs:
                    self._push(c, [b"pmessage", pat, channel, message])
                    n += 1
        return n

    def _push(self, client: ClientState, items: list[Any]) -> None:
        client.pushes.append(Push(_frames(items)))
        self.pushed.add(client)

    # -- expiry ---------------------------------------------------------------------------
    def active_expire(self, max_keys: int = 200) -> list[list[Effect]]:
        """One active expiry step: delete up to ``max_keys`` due keys per db. Each deleted key
        is its own execution unit (observed: a bare ``UNLINK`` per key). Off after DEBUG
        SET-ACTIVE-EXPIRE 0 (src/server.c databasesCron: server.active_expire_enabled)."""
        if self.loading or not self.server_info.get("active_expire", True):
            return []
        units: list[list[Effect]] = []
        now = self.clock.now_ms()
        client = _INTERNAL
        for db in self.keyspace.dbs:
            if not db.heap:
                continue
            for key in db.due_keys(now, max_keys):
                ctx = Ctx(self, client, now)
                ctx.db = db
                db.expire_key(ctx, key)
                units.append(ctx.effects)
        return units

    def active_expire_fields(self, max_fields: int = 1000) -> list[list[Effect]]:
        """One active expiry step for hash fields (spec 1.7): up to ``max_fields`` due fields
        per db; each batch of <= 1024 fields of one hash is its own unit (``HDEL``, plus
        ``UNLINK`` in MULTI/EXEC when the hash became empty). See commands/hashes_expire.py."""
        if self.loading or not self.server_info.get("active_expire", True):
            return []
        return _expire_fields(self, max_fields)


def _frames(items: list[Any]) -> list[Any]:
    from persistence.resp.frames import Bulk, Integer

    return [Bulk(i) if isinstance(i, bytes) else Integer(i) if isinstance(i, int) else i
            for i in items]  # fmt: skip


_INTERNAL = ClientState(id=0)
