"""The RESP server: asyncio (uvloop when available), one Protocol object per connection.

How this works: ``data_received`` feeds the connection's sans-IO parser and runs every complete
command through ``Engine.execute``; replies are encoded with the client's protocol and kept until
the end of the event-loop turn, when :meth:`Server.flush` writes the AOF (one write, and one fsync
with ``appendfsync always``: a group commit across every client served in that turn) and then
each connection's replies with one ``transport.write``. So a pipeline is handled per read and
answered once, and no reply leaves before its write is durable.

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
from collections.abc import Callable, Collection, Mapping
from typing import Any, cast

from engine.blocking import Block
from engine.commands.table import Command
from engine.commands.table import lookup as lookup_command
from engine.commands.util import OK
from engine.config import parse_memory
from engine.context import ClientState, Effect
from engine.engine import Engine
from engine.errors import SHUTDOWN_FAILED
from engine.server.cluster_config import ClusterConfig
from engine.server.durability import AofWriter, Durability, split_held
from persistence.resp.parser import RUN_MAX, ProtocolError, RequestParser
from persistence.resp.reply import OK as OK_REPLY
from persistence.resp.reply import encode_value, integer

log = logging.getLogger("valkey-engine")

MAX_CLIENTS_ERR = b"-ERR max number of clients reached\r\n"
# client-query-buffer-limit is at least 1 MB (src/config.c): smaller buffers skip the check
QUERY_BUFFER_FLOOR = 1024 * 1024
TIMESTAMPS = "aof-timestamp-enabled"  # records get #TS: annotations: AofWriter.feed writes them
PROTECTED_ERR = (
    b"-DENIED Valkey is running in protected mode because protected mode is enabled and no "
    b"password is set for the default user. In this mode connections are only accepted from "
    b"the loopback interface. If you want to connect from external computers to Valkey you may "
    b"adopt one of the following solutions: 1) Just disable protected mode sending the command "
    b"'CONFIG SET protected-mode no' from the loopback interface by connecting to Valkey from "
    b"the same host the server is running, however MAKE SURE Valkey is not publicly accessible "
    b"from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) "
    b"Alternatively you can just disable the protected mode by editing the Valkey configuration "
    b"file, and setting the protected mode option to 'no', and then restarting the server. 3) If "
    b"you started the server manually just for testing, restart it with the '--protected-mode "
    b"no' option. 4) Set up an authentication password for the default user. NOTE: You only need "
    b"to do one of the above things in order for the server to start accepting connections from "
    b"the outside.\r\n"
)


class Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.client: ClientState | None = None
        self.parser = RequestParser(max_bulk_len=server.engine.config["proto-max-bulk-len"])
        self.out: list[bytes] = []
        self.blocked: Block | None = None
        self.blocked_argv: list[bytes] | None = None
        self.timeout_handle: asyncio.TimerHandle | None = None
        self.closing = False
        self.soft_since = 0.0  # when the output buffer went over the soft limit
        # set when the connection stops being a client: the bytes go to a link handler instead
        # (the SYNCSLOTS stream of a slot import, the cluster bus)
        self.raw_sink: Callable[[bytes], None] | None = None

    # -- asyncio callbacks ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they have its methods
        self.transport = cast(asyncio.Transport, transport)
        srv = self.server
        peer = transport.get_extra_info("peername") or ("?", 0)
        sock = transport.get_extra_info("sockname") or ("?", 0)
        addr, laddr = _fmt_addr(peer), _fmt_addr(sock)
        engine = srv.engine
        if len(srv.connections) >= engine.config["maxclients"]:
            engine.stats.rejected_connections += 1
            self.transport.write(MAX_CLIENTS_ERR)
            self.transport.close()
            return
        if (
            engine.config["protected-mode"]
            and not engine.config["requirepass"]
            and not _is_loopback(peer[0])
        ):
            self.transport.write(PROTECTED_ERR)
            self.transport.close()
            return
        self.client = engine.new_client(addr, laddr)
        srv.connections[self.client.id] = self

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client is not None:
            self.server.drop(self)

    def data_received(self, data: bytes) -> None:
        if self.client is None or self.closing:
            return
        if self.raw_sink is not None:
            self.raw_sink(data)
            return
        srv = self.server
        size = self.parser.shape_size
        if self.blocked is None and size > 0 and not len(data) % size:
            # the hot paths: a read of the shape the client keeps sending (RequestParser.sole)
            if len(data) == size:
                if srv.join_read(self, data):
                    return
            elif srv.run_read(self, data):
                return
        while self.blocked is not None and srv.group:
            # a command read before this may unblock it: that comes first, then its
            # commands read before this (Server.run_group), then these
            srv.run_group()
        size = self.parser.feed(data)
        if self.blocked is None:
            srv.process(self)
        if size > QUERY_BUFFER_FLOOR and self.parser.buffered > QUERY_BUFFER_FLOOR:
            self.server.check_query_buffer(self)

    # -- helpers --------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if not self.out:
            self.server.pending.append(self)
        self.out.append(data)
        self.server.schedule_flush()


class Server:
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
        # single commands of this loop turn waiting to run together (join, run_group): all of
        # one command, argument count, db and protocol; coalesce: whether reads may wait so
        # (the event loop's server; tests that call process() and read the reply at once
        # leave it off)
        self.group: list[tuple[Connection, list[bytes], bytes | None]] = []
        self.group_cmd: Command | None = None
        self.group_key = (0, 2, 0)  # db, protocol, argument count
        self.coalesce = False
        # called by the cluster bus, inside the message handler, after it changed a slot's owner
        # (the migration jobs' ``topology`` events); each returns the slots whose keys it
        # deletes itself, which the bus then leaves alone. The bus' ``broadcast()`` announces a
        # local change at once
        self.topology_listeners: list[Callable[[], Collection[int]]] = []
        # set by the migration while a cut-over pauses writes to some slots (else None)
        self.write_hold: Callable[[Connection, list[bytes]], bool] | None = None
        self.servers: list[asyncio.AbstractServer] = []
        self.shutdown_event = asyncio.Event()
        self.cron_handle: asyncio.TimerHandle | None = None
        self.monitors: list[Connection] = []
        self._limits: dict[str, tuple[int, int, int]] = {}
        self._limits_text = ""
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

    def run(self, conn: Connection, cmd: Command, argv: list[bytes], aof: AofWriter | None) -> int:
        """``argv`` and the run of its kind behind it (RequestParser.same_after) through
        Engine.execute_run, when no per-command work of the server is due either (MONITOR,
        connection flags, pushes, a write pause; for a write, an AOF record other than its
        bytes, another listener). Returns how many of them ran (0: none, execute ``argv``);
        their replies are added."""
        client = conn.client
        assert client is not None
        if self.monitors or client.flags or client.conn or client.pushes or self.write_hold:
            return 0
        if cmd.write and not self.as_came(aof, client.db):
            return 0
        parser = conn.parser
        replies = self.engine.execute_run(
            client, cmd, argv, parser.same_after if parser.more else None
        )
        done = len(replies)
        if done:
            if cmd.write:
                raw = parser.take(done - 1) if done > 1 else parser.last_raw()
                if raw is None:  # an inline command: encoded
                    self.propagate([(client.db, argv)])
                elif aof is not None:
                    aof.buf.append(raw)
            elif done > 1:
                parser.take(done - 1)
            conn.out.append(replies[0] if done == 1 else b"".join(replies))
        return done

    def raw_aof(self) -> AofWriter | None:
        """The AOF writer when a command propagated as it came may be written as the bytes it
        came in (RequestParser.last_raw: what encode_command would make, without the work):
        no #TS annotations to add, no slot-export stream to feed; else None."""
        aof = self.aof
        if aof is not None and (self.effect_listeners or self.engine.config.values[TIMESTAMPS]):
            return None
        return aof

    def as_came(self, aof: AofWriter | None, db: int) -> bool:
        """Whether a write of ``db`` run outside Engine.execute may go on as it came: its bytes
        as the AOF record (``aof`` from raw_aof, already on ``db``), or nothing to propagate to
        at all."""
        if aof is not None:
            return aof.selected_db == db
        return self.aof is None and not self.effect_listeners

    def join(
        self, conn: Connection, cmd: Command, argv: list[bytes], aof: AofWriter | None
    ) -> bool:
        """Add the single command of ``conn``'s read to this loop turn's group (run_group runs
        it with the others, as one run of the engine, before anything that came after it);
        False when it must run now (no grouping, another kind of group is not possible ...)."""
        client = conn.client
        assert client is not None
        if self.accepts(client, True) is None:
            return False
        raw = None
        if cmd.write:
            if not self.as_came(aof, client.db):
                return False
            if aof is not None:
                raw = conn.parser.last_raw()
                if raw is None:  # an inline command
                    return False
        self.add(conn, client, cmd, argv, raw)
        return True

    def join_read(self, conn: Connection, data: bytes) -> bool:
        """:meth:`join` of ``data`` at once, when it is one whole command of the shape the
        client keeps sending (RequestParser.sole) and has a run handler: what feeding it and
        :meth:`process` would do, without their work (the hot path of clients that send one
        command at a time). False: nothing done, process it."""
        client = conn.client
        assert client is not None
        accept = self.accepts(client, True)
        if accept is None:
            return False
        argv = conn.parser.sole(data, accept)
        if argv is None:
            return False
        cmd = self.runs[argv[0]]
        assert cmd is not None
        # (a write accepted: its bytes go to the AOF as they came, if there is one)
        self.add(conn, client, cmd, argv, data if cmd.write and self.aof is not None else None)
        if not self.flush_scheduled:
            self.schedule_flush()
        return True

    def run_read(self, conn: Connection, data: bytes) -> bool:
        """:meth:`run` of ``data`` at once, when it is several commands, all of the shape the
        client keeps sending (RequestParser.sole_run), with a run handler: what feeding it and
        :meth:`process` would do, without their work (the hot path of pipelining clients).
        Where the run stops, the rest is fed and processed. False: nothing done, process it."""
        client = conn.client
        assert client is not None
        while self.group:  # (as process: the single commands read before this come first)
            self.run_group()
        if self.monitors or client.flags or client.conn or client.pushes or self.write_hold:
            return False  # (what run() checks)
        accept = self.accepts(client, False)
        assert accept is not None
        parser = conn.parser
        found = parser.sole_run(data, accept)
        if found is None:
            return False
        name, argc, items = found
        cmd = self.runs[name]
        assert cmd is not None
        argv = [name, items[0]] if argc == 2 else [name, *items[0]]
        rest = items[1:]
        engine = self.engine
        replies = engine.execute_run(client, cmd, argv, lambda _: rest)
        done = len(replies)
        if not done:
            return False
        n = done * (len(data) // len(items))
        aof = self.aof
        if cmd.write and aof is not None:  # (accepted: the bytes as they came)
            aof.buf.append(data if n == len(data) else data[:n])
        out = conn.out
        if not out:
            self.pending.append(conn)
        out.append(replies[0] if done == 1 else b"".join(replies))
        if engine.ready_keys:  # (as after run(): blocked clients before the next command)
            self.serve_ready(self.unblocked)
        parser.skip(data, n)
        if n < len(data):
            self.process(conn)  # the rest, then what process does at its end
            return True
        if self.unblocked:
            self.resume_unblocked()
        if engine.pushed:
            self.deliver_pushes()
        if not self.flush_scheduled:
            self.schedule_flush()
        return True

    def accepts(self, client: ClientState, join: bool) -> Mapping[bytes, object] | None:
        """The commands ``client``'s shaped reads may be of (RequestParser.sole, sole_run):
        those with a run handler; only those that do not write when as_came() does not hold
        (a write accepted goes to the AOF, if there is one, as the bytes it came in). ``join``:
        None when its single commands may not wait for the end of the loop turn."""
        if join and (
            not self.coalesce
            or self.monitors
            or client.multi is not None
            or client.flags
            or client.conn
            or client.pushes
            or self.write_hold
            or self.engine.cluster is not None
        ):
            return None
        aof = self.aof  # raw_aof() and as_came(), inline
        if aof is not None:
            if self.effect_listeners or self.engine.config.values[TIMESTAMPS]:
                return self.read_runs
            return self.runs if aof.selected_db == client.db else self.read_runs
        return self.read_runs if self.effect_listeners else self.runs

    def add(
        self,
        conn: Connection,
        client: ClientState,
        cmd: Command,
        argv: list[bytes],
        raw: bytes | None,
    ) -> None:
        """Join ``argv`` (with its AOF bytes, for a write with an AOF) to the group, after
        running the group when it is of another kind or full."""
        group = self.group
        key = (client.db, client.resp, len(argv))
        if group and (cmd is not self.group_cmd or key != self.group_key or len(group) >= RUN_MAX):
            self.run_group()
            group = self.group
        if not group:
            self.group_cmd = cmd
            self.group_key = key
        group.append((conn, argv, raw))

    def resume_unblocked(self) -> None:
        """The next commands of clients serve_ready served inside a pipeline or a group
        (src/blocked.c processUnblockedClients)."""
        unblocked, self.unblocked = self.unblocked, []
        for c in unblocked:
            if c.blocked is None and c.client is not None and c.parser.buffered:
                self.process(c)

    def run_group(self) -> None:
        """The single commands joined this loop turn, in the order they came: as one run of the
        engine where it can (Engine.execute_run with their clients), the rest one by one; then
        the clients they unblocked go on (as each read's unblocked clients do after it)."""
        group, self.group = self.group, []
        cmd = self.group_cmd
        assert cmd is not None
        engine = self.engine
        clients: list[ClientState] = []
        raws: list[bytes] = []
        for conn, _, raw in group:
            c = conn.client
            if c is None or c.flags or c.pushes:
                break
            clients.append(c)
            if raw is not None:
                raws.append(raw)
        aof = self.raw_aof()
        replies: list[bytes] = []
        if (
            len(clients) == len(group)
            and not self.write_hold
            and not self.monitors
            and (
                not cmd.write
                or (self.as_came(aof, clients[0].db) and (aof is None or len(raws) == len(group)))
            )
        ):
            argv0 = group[0][1]
            if len(group) == 1:
                replies = engine.execute_run(clients[0], cmd, argv0, None)
            else:
                items = [tuple(a[1:]) if len(a) > 2 else a[1] for _, a, _ in group[1:]]
                replies = engine.execute_run(clients[0], cmd, argv0, lambda _: items, clients[1:])
        done = len(replies)
        if done and cmd.write and aof is not None:
            aof.buf.append(b"".join(raws[:done]))
        pending = self.pending
        for (conn, _, _), reply in zip(group, replies):
            if not conn.out:
                pending.append(conn)
            conn.out.append(reply)
        if engine.ready_keys:  # (a push run stops after making a list: its waiters come first)
            self.serve_ready(self.unblocked)
        for conn, argv, _ in group[done:]:  # where the run stopped: one at a time
            self.execute_one(conn, argv)
        if engine.pushed:
            self.deliver_pushes()
        if self.unblocked:
            self.resume_unblocked()

    def execute_one(self, conn: Connection, argv: list[bytes]) -> None:
        """One command of ``conn`` outside its read's loop (run_group's rest); none blocks."""
        client = conn.client
        if client is None:
            return
        reply, effects = self.engine.execute(client, argv)
        if effects:
            self.propagate(effects)
        out = conn.out
        if not out:
            self.pending.append(conn)
        for msg in client.pushes:
            out.append(encode_value(msg, client.resp))
        client.pushes.clear()
        if client.reply_mode == "on":
            out.append(encode_value(reply, client.resp))
        elif client.reply_mode == "skip":
            client.reply_mode = "on"
        if self.engine.ready_keys:
            self.serve_ready(self.unblocked)

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
                if t.get_write_buffer_size() > 65536 and self.over_output_limit(conn):
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
        if text != self._limits_text:
            parts = text.split()
            limits: dict[str, tuple[int, int, int]] = {}
            for i in range(0, len(parts) - 3, 4):
                cls = parts[i]
                hard, soft = parse_memory(parts[i + 1]), parse_memory(parts[i + 2])
                limits["replica" if cls == "slave" else cls] = (hard, soft, int(parts[i + 3]))
            self._limits, self._limits_text = limits, text
        return self._limits

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
            self.cron_handle = self.loop.call_later(1 / max(1, engine.config["hz"]), self.cron)

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
            self.servers.append(srv)
        self.cron_handle = self.loop.call_later(1 / max(1, cfg["hz"]), self.cron)

    def request_shutdown(self) -> None:
        self.shutdown_event.set()

    async def serve_until_shutdown(self) -> None:
        await self.shutdown_event.wait()
        await self.close()

    async def close(self) -> None:
        if self.cron_handle is not None:
            self.cron_handle.cancel()
        for srv in self.servers:
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


def _fmt_addr(addr: Any) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "localhost") or host.startswith("::ffff:127.")


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def uptime(start: float) -> int:
    return int(time.time() - start)
