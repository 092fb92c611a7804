"""The RESP server: asyncio (uvloop when available), one Protocol object per connection
(engine/server/connection.py).

How this works: ``data_received`` feeds the connection's sans-IO parser and runs every complete
command through ``Engine.execute`` (or, where no per-command work is due, through the hot paths
of engine/server/runs.py, a mixin of :class:`Server`); replies are encoded with the client's
protocol and kept until the end of the event-loop turn, when :meth:`Server.flush` writes the AOF
(one write, and one fsync with ``appendfsync always``: a group commit across every client served
in that turn) and then each connection's replies with one ``transport.write``. So a pipeline is
handled per read and answered once, and no reply leaves before its write is durable.

A command that must wait (BLPOP ...) returns a :class:`~engine.blocking.Block`: the connection
stops reading its pipeline, is parked on the keys, and the command runs again when a write
signals one of them ready, or answers the timeout reply. Pub/sub messages queued by the engine
are written in the same flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from engine.blocking import Block
from engine.commands.table import Command
from engine.commands.table import lookup as lookup_command
from engine.commands.util import OK
from engine.config import parse_memory
from engine.context import ClientState, Effect
from engine.engine import Engine
from engine.errors import SHUTDOWN_FAILED
from engine.server.cluster_config import ClusterConfig
from engine.server.connection import Connection
from engine.server.durability import AofWriter, Durability, split_held
from engine.server.runs import TIMESTAMPS, Runs
from persistence.resp.parser import RequestParser
from persistence.resp.reply import OK as OK_REPLY
from persistence.resp.reply import encode_value, integer
from persistence.resp.tokens import ProtocolError

log = logging.getLogger("valkey-engine")


@dataclass
class LifeCycle:
    """What Server.start and Server.close keep: the listening sockets, the shutdown request,
    the cron timer. (Kept apart: CPython 3.11 keeps an instance's attributes in its fast
    layout only up to 30 of them, and Server's hot paths use its attributes and methods.)"""

    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)
    cron: asyncio.TimerHandle | None = None


class Server(Runs):
    def __init__(self, engine: Engine, aof: AofWriter | None) -> None:
        self.engine = engine
        self.aof = aof
        self.connections: dict[int, Connection] = {}
        self.pending: list[Connection] = []
        self.flush_scheduled = False
        self.blocked: dict[tuple[int, bytes], deque[Connection]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.cluster_config: ClusterConfig | None = None  # nodes.conf (cluster mode)
        self.cluster_bus: Any = None  # engine/server/cluster_bus.py (cluster mode)
        self.migration: Any = None  # the slot-migration I/O (cluster mode)
        self.cron_hooks: list[Callable[[], None]] = []  # run by every cron tick
        self.effect_listeners: list[Callable[[list[Effect]], None]] = []  # besides the AOF
        # command names as clients spell them -> the command if it has a run handler
        self.runs: dict[bytes, Command | None] = {}
        self.read_runs: dict[bytes, Command] = {}  # those of them that do not write
        # clients served by serve_ready inside another's pipeline, whose next commands wait
        self.unblocked: list[Connection] = []
        # single commands of this loop turn waiting to run together (add, run_group): their
        # connections, arguments after the name (a tuple each, the argument itself when there
        # is one) and, for writes with an AOF, bytes as they came; all of one name as spelt
        # and argument count. coalesce: whether reads may wait so (the event loop's server;
        # tests that call process() and read the reply at once leave it off)
        self.group: list[Connection] = []
        self.group_items: list[Any] = []
        self.group_raws: list[bytes] | None = None  # (None: not kept)
        self.group_cmd: Command | None = None
        self.group_name = b""
        self.group_argc = 0
        self.coalesce = False
        # called by the cluster bus, inside the message handler, after it changed a slot's owner
        # (the migration jobs' ``topology`` events); each returns the slots whose keys it
        # deletes itself, which the bus then leaves alone. The bus' ``broadcast()`` announces a
        # local change at once
        self.topology_listeners: list[Callable[[], Collection[int]]] = []
        # set by the migration while a cut-over pauses writes to some slots (else None)
        self.write_hold: Callable[[Connection, list[bytes]], bool] | None = None
        self.life = LifeCycle()
        self.monitors: list[Connection] = []
        # client-output-buffer-limit as last parsed: its text, its classes' limits
        self._limits: tuple[str, dict[str, tuple[int, int, int]]] = ("", {})
        self.durability = Durability(engine, aof)  # SAVE/BGSAVE/BGREWRITEAOF, cron, INFO

    # -- command processing ---------------------------------------------------------------
    def process(self, conn: Connection) -> None:
        """Run every complete command of ``conn``'s pipeline (until it blocks)."""
        engine = self.engine
        client = conn.client
        assert client is not None
        next_command = conn.parser.next_command
        out = conn.out
        append = out.append
        had_out = bool(out)
        execute = engine.execute
        aof = self.aof  # raw_aof(), inline: this runs once per read
        if aof is not None and (self.effect_listeners or engine.config.values[TIMESTAMPS]):
            aof = None
        parser = conn.parser
        runs = self.runs
        # each way the loop can block or close the connection leaves it at once
        if conn.blocked is None and not conn.closing:
            while True:
                try:
                    argv = next_command()
                except ProtocolError as e:
                    append(e.wire)
                    conn.closing = True
                    break
                if argv is None:
                    break
                if self.write_hold is not None and self.write_hold(conn, argv):
                    break  # a write to slots paused by a migration: parked until the resume
                # a pipelined run of one command with one shape: at once (Engine.execute_run)
                # (a command alone is a run of one: that path does less than execute's)
                try:
                    run = runs[argv[0]]
                except KeyError:
                    run = engine.run_command(argv[0])
                    if len(runs) < 4096:  # "SET", "set", "Set" ...
                        runs[argv[0]] = run
                        if run is not None and not run.write:
                            self.read_runs[argv[0]] = run
                # a read of one command: it waits for the others of this loop turn (run_group)
                if run is not None and not parser.more and self.join(conn, run, argv, aof):
                    break
                # anything else runs after the commands read before it (and after what they
                # unblocked: an earlier read would have run that at its end)
                while self.group:
                    self.run_group()
                if run is not None and self.run(conn, run, argv, aof):
                    if engine.ready_keys:
                        self.serve_ready(self.unblocked)
                    if not len(out) & 63 and self.pipeline_over_limit(conn):
                        break
                    if not parser.more:
                        break  # (what next_command would find out, without the call)
                    continue
                reply, effects = execute(client, argv)
                if effects:
                    if aof is not None and len(effects) == 1:
                        db, prop = effects[0]
                        raw = parser.last_raw() if prop is argv and db == aof.selected_db else None
                        if raw is not None:
                            aof.buf.append(raw)
                        else:
                            self.propagate(effects)
                    else:
                        self.propagate(effects)
                # src/server.c processCommand: blocked clients get their keys after each
                # command (their next commands wait for the end of this read)
                if engine.ready_keys:
                    self.serve_ready(self.unblocked)
                t = type(reply)
                if t is Block:
                    self.block(conn, argv, reply)
                    break
                if client.pushes:  # its own SUBSCRIBE confirmations come before the reply
                    for msg in client.pushes:
                        append(encode_value(msg, client.resp))
                    client.pushes.clear()
                    engine.pushed.discard(client)
                mode = client.reply_mode
                if mode == "on":
                    # the common replies inline (what encode_value does for them, without the call)
                    if reply is OK:
                        append(OK_REPLY)
                    elif t is bytes:
                        append(b"$%d\r\n%b\r\n" % (len(reply), reply))
                    elif t is int:
                        append(integer(reply))
                    else:
                        append(encode_value(reply, client.resp))
                elif mode == "skip":
                    client.reply_mode = "on"
                n = len(out)
                if n and not n & 63 and self.pipeline_over_limit(conn):
                    break  # replies piling up faster than the client reads: dropped, as Valkey does
                if self.monitors:
                    self.feed_monitors(client, argv)
                if (client.flags or client.conn) and self.after_command(conn, argv):
                    break
                if not parser.more:
                    break
        if out and not had_out:
            self.pending.append(conn)
        if engine.ready_keys:
            self.serve_ready()
        if self.unblocked:
            self.resume_unblocked()
        if engine.pushed:
            self.deliver_pushes()
        if not self.flush_scheduled:  # once per event-loop turn
            self.schedule_flush()

    def after_command(self, conn: Connection, argv: list[bytes]) -> bool:
        """Connection-level effects of a command (QUIT, CLIENT KILL, SHUTDOWN ...)."""
        client = conn.client
        assert client is not None
        flags = client.flags
        sleep_us = client.conn.pop("sleep_us", 0)
        if sleep_us:
            time.sleep(sleep_us / 1e6)  # DEBUG SLEEP blocks the whole server, as in Valkey
        if "monitor" in flags and conn not in self.monitors:
            self.monitors.append(conn)
        if "closing" in flags:
            conn.closing = True
            return True
        if "shutdown" in flags:
            # src/server.c: a successful SHUTDOWN never replies; the connection just closes
            flags.discard("shutdown")
            opts = self.engine.server_info.get("shutdown") or set()
            if not self.durability.shutdown(set(opts)):
                if conn.out:  # src/server.c shutdownCommand: the save failed, keep running
                    conn.out[-1] = b"-%s\r\n" % SHUTDOWN_FAILED.encode()
                return False
            if conn.out:
                conn.out.pop()
            conn.closing = True
            self.request_shutdown()
            return True
        return False

    def feed_monitors(self, client: ClientState, argv: list[bytes]) -> None:
        """MONITOR lines (src/replication.c replicationFeedMonitors)."""
        cmd = lookup_command(argv)
        if cmd is not None and "admin" in cmd.flags:
            return  # src/server.c call(): admin commands (CONFIG, CLUSTER BUS ...) are not shown
        now = time.time()
        args = " ".join('"' + _repr_arg(a) + '"' for a in argv)
        line = f"+{now:.6f} [{client.db} {client.addr}] {args}\r\n".encode()
        for m in self.monitors:
            if m is not None and m.client is not client and m.client is not None:
                m.send(line)

    def propagate(self, effects: list[Effect]) -> None:
        if self.aof is not None:
            self.aof.feed(effects)
        for listener in self.effect_listeners:  # slot-export streams (atomic slot migration)
            listener(effects)

    # -- blocking -------------------------------------------------------------------------
    def block(self, conn: Connection, argv: list[bytes], blk: Block) -> None:
        conn.blocked = blk
        conn.blocked_argv = getattr(blk, "resume_argv", None) or argv
        for key in blk.keys:
            self.blocked.setdefault((blk.db, key), deque()).append(conn)
        if blk.timeout_ms > 0 and self.loop is not None:
            conn.timeout_handle = self.loop.call_later(
                blk.timeout_ms / 1000, self.unblock_timeout, conn
            )

    def _unpark(self, conn: Connection) -> None:
        blk = conn.blocked
        if blk is None:
            return
        for key in blk.keys:
            q = self.blocked.get((blk.db, key))
            if q is not None:
                with contextlib.suppress(ValueError):
                    q.remove(conn)
                if not q:
                    del self.blocked[(blk.db, key)]
        if conn.timeout_handle is not None:
            conn.timeout_handle.cancel()
            conn.timeout_handle = None
        conn.blocked = None
        conn.blocked_argv = None

    def unblock_timeout(self, conn: Connection) -> None:
        while self.group:  # a push read before the timeout fired may serve it
            self.run_group()
        blk = conn.blocked
        if blk is None or conn.client is None:
            return
        self._unpark(conn)
        conn.send(encode_value(blk.timeout_reply, conn.client.resp))
        self.process(conn)  # the rest of its pipeline

    def serve_ready(self, resume_later: list[Connection] | None = None) -> None:
        """Run the commands of clients blocked on the keys now ready; a served client's next
        commands run now, or after the caller's when it gives ``resume_later``."""
        if self.group:
            self.run_group()
        engine = self.engine
        while engine.ready_keys:
            ready, engine.ready_keys = engine.ready_keys, []
            for dk in ready:
                q = self.blocked.get(dk)
                if not q:
                    continue
                for conn in list(q):
                    if conn.blocked is None or conn.client is None:
                        continue
                    argv = conn.blocked_argv
                    assert argv is not None
                    reply, effects = engine.execute(conn.client, argv)
                    if effects:
                        self.propagate(effects)
                    if type(reply) is Block:
                        continue  # still nothing for it
                    self._unpark(conn)
                    conn.send(encode_value(reply, conn.client.resp))
                    if conn.parser.buffered:
                        if resume_later is not None:
                            resume_later.append(conn)
                        else:
                            self.process(conn)

    def deliver_pushes(self) -> None:
        engine = self.engine
        for client in engine.pushed:
            conn = self.connections.get(client.id)
            if conn is not None and client.pushes:
                for msg in client.pushes:
                    conn.send(encode_value(msg, client.resp))
            client.pushes.clear()
        engine.pushed.clear()

    # -- output ---------------------------------------------------------------------------
    def schedule_flush(self) -> None:
        if not self.flush_scheduled and self.loop is not None:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """End of the event-loop turn: AOF first (durable before any reply), then replies."""
        self.flush_scheduled = False
        while self.group:  # (a client it unblocks may start another)
            self.run_group()
        if self.cluster_config is not None:  # clusterBeforeSleep: nodes.conf before replies
            self.cluster_config.save_if_needed()
        pending, self.pending = self.pending, []
        if self.aof is not None and not self.aof.flush():
            # appendfsync always, AOF write failed: replies wait for the disk (aof_writer.py)
            pending, self.pending = split_held(pending)
        for conn in pending:
            t = conn.transport
            out = conn.out
            if out and t is not None and not t.is_closing():
                t.write(out[0] if len(out) == 1 else b"".join(out))
                if conn.paused and self.over_output_limit(conn):  # (over 64 KB unsent)
                    out.clear()
                    conn.closing = True
                    t.abort()  # what it has not read is dropped, as Valkey frees the client
                    continue
            out.clear()
            if conn.closing and t is not None:
                t.close()

    def pipeline_over_limit(self, conn: Connection) -> bool:
        """Checked every 64 replies of one pipeline: the replies not yet written count against
        client-output-buffer-limit too (src/networking.c checks after every reply it adds), so a
        long pipeline of big replies to a client that does not read stops at the limit instead
        of building all of them first."""
        t = conn.transport
        if t is None or not self.over_output_limit(conn, sum(map(len, conn.out))):
            return False
        conn.out.clear()
        conn.closing = True
        t.abort()
        return True

    def over_output_limit(self, conn: Connection, unwritten: int = 0) -> bool:
        """client-output-buffer-limit (src/networking.c checkClientOutputBufferLimits): the hard
        limit closes at once, the soft one after being exceeded for its seconds."""
        client = conn.client
        t = conn.transport
        if client is None or t is None:
            return False
        cls = "pubsub" if client.subscriptions else "normal"
        hard, soft, secs = self.output_limits().get(cls, (0, 0, 0))
        used = t.get_write_buffer_size() + unwritten
        now = time.monotonic()
        if hard and used >= hard:
            reason = "hard"
        elif soft and used >= soft:
            since = conn.soft_since or now
            conn.soft_since = since
            if now - since < secs:
                return False
            reason = "soft"
        else:
            conn.soft_since = 0.0
            return False
        info = self.engine.server_info
        key = "client_output_buffer_limit_disconnections"
        info[key] = int(info.get(key, 0)) + 1
        log.warning(
            "Client id=%d addr=%s scheduled to be closed ASAP for overcoming of output buffer "
            "limits (%s limit, %d bytes).", client.id, client.addr, reason, used,
        )  # fmt: skip
        return True

    def output_limits(self) -> dict[str, tuple[int, int, int]]:
        text = str(self.engine.config["client-output-buffer-limit"])
        if text != self._limits[0]:
            parts = text.split()
            limits: dict[str, tuple[int, int, int]] = {}
            for i in range(0, len(parts) - 3, 4):
                cls = parts[i]
                hard, soft = parse_memory(parts[i + 1]), parse_memory(parts[i + 2])
                limits["replica" if cls == "slave" else cls] = (hard, soft, int(parts[i + 3]))
            self._limits = (text, limits)
        return self._limits[1]

    def check_query_buffer(self, conn: Connection) -> None:
        """client-query-buffer-limit (src/networking.c readQueryFromClient): a client whose
        unprocessed input passes the limit is logged and closed; its buffer is freed."""
        client = conn.client
        used = conn.parser.buffered
        if client is None or used <= self.engine.config["client-query-buffer-limit"]:
            return
        info = self.engine.server_info
        key = "client_query_buffer_limit_disconnections"
        info[key] = int(info.get(key, 0)) + 1
        log.warning(
            "Closing client that reached max query buffer length: id=%d addr=%s qbuf=%d",
            client.id, client.addr, used,
        )  # fmt: skip
        conn.closing = True
        conn.parser = RequestParser()  # free what it sent at once
        if conn.transport is not None:
            conn.transport.abort()

    def drop(self, conn: Connection) -> None:
        while self.group:  # its last command was read: it runs (its reply goes nowhere)
            self.run_group()
        self._unpark(conn)
        if conn in self.monitors:
            self.monitors.remove(conn)
        client = conn.client
        if client is not None:
            self.connections.pop(client.id, None)
            self.engine.drop_client(client)
            conn.client = None

    # -- cron -----------------------------------------------------------------------------
    def cron(self) -> None:
        """serverCron: active expiry, client timeouts, CLIENT KILL requests."""
        while self.group:  # (what was read before it runs before it, as in Valkey's event loop)
            self.run_group()
        engine = self.engine
        self.durability.cron()
        for hook in self.cron_hooks:
            hook()
        for unit in engine.active_expire():
            self.propagate(unit)
        for unit in engine.active_expire_fields():
            self.propagate(unit)
        timeout = engine.config["timeout"]
        now = engine.clock.now_ms()
        for conn in list(self.connections.values()):
            c = conn.client
            if c is None:
                continue
            idle = (timeout and conn.blocked is None and not c.subscriptions
                    and now - c.last_interaction_ms > timeout * 1000)  # fmt: skip
            if (c.kill_requested or idle) and conn.transport is not None:
                conn.transport.close()
        if engine.ready_keys:
            self.serve_ready()
        if engine.pushed:
            self.deliver_pushes()
        self.schedule_flush()
        if self.loop is not None:
            self.life.cron = self.loop.call_later(1 / max(1, engine.config["hz"]), self.cron)

    # -- life cycle -----------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.coalesce = True
        cfg = self.engine.config
        port = cfg["port"]
        for host in str(cfg["bind"]).split():
            optional = host.startswith("-")
            host = host.lstrip("-")
            try:
                srv = await self.loop.create_server(
                    lambda: Connection(self), host, port, reuse_address=True, backlog=511
                )
            except OSError as e:
                if optional:
                    log.warning("Could not bind %s:%d (optional): %s", host, port, e)
                    continue
                raise
            self.life.servers.append(srv)
        self.life.cron = self.loop.call_later(1 / max(1, cfg["hz"]), self.cron)

    def request_shutdown(self) -> None:
        self.life.shutdown.set()

    async def serve_until_shutdown(self) -> None:
        await self.life.shutdown.wait()
        await self.close()

    async def close(self) -> None:
        if self.life.cron is not None:
            self.life.cron.cancel()
        for srv in self.life.servers:
            srv.close()
        self.flush()
        for conn in list(self.connections.values()):
            if conn.transport is not None:
                conn.transport.close()
        if not self.durability.shut_down:  # SIGTERM: as SHUTDOWN without options
            self.durability.shutdown(set())
        if self.aof is not None:
            self.aof.close()
        if self.cluster_config is not None:
            self.cluster_config.close()


def _repr_arg(a: bytes) -> str:
    """sdscatrepr without the quotes: printable bytes as is, the rest escaped."""
    out = []
    for ch in a:
        if ch in (0x5C, 0x22):
            out.append("\\" + chr(ch))
        elif ch == 0x0A:
            out.append("\\n")
        elif ch == 0x0D:
            out.append("\\r")
        elif ch == 0x09:
            out.append("\\t")
        elif 0x20 <= ch < 0x7F:
            out.append(chr(ch))
        else:
            out.append(f"\\x{ch:02x}")
    return "".join(out)


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def uptime(start: float) -> int:
    return int(time.time() - start)
