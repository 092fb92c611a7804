"""The server's hot paths: runs of one command (Engine.execute_run), turn groups and shaped reads
taken at once. A mixin of :class:`~engine.server.server.Server`.

How this works (docs/engine.md has the whole story):
- :meth:`Runs.run`: a command with a run handler, and the commands of its name and shape
  pipelined behind it (RequestParser.same_after), through one Engine.execute_run;
- :meth:`Runs.join` / :meth:`Runs.run_group`: a read of one such command waits for the other
  such reads of its event-loop turn; they run as one run of the engine with their clients,
  before anything read after them, so execution and AOF order are the order of arrival;
- :meth:`Runs.join_read` / :meth:`Runs.run_read`: a read that is all of the shape the client
  keeps sending skips the parser's buffer and ``process`` (RequestParser.sole, sole_run);
- a write that goes one of these ways goes to the AOF as the bytes it came in, so each path
  checks that those bytes are its record (:meth:`Runs.accepts`, :meth:`Runs.as_came`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from engine.commands.table import Command
from engine.context import ClientState, Effect
from engine.engine import Engine
from engine.server.durability import AofWriter
from persistence.resp.parser import RUN_MAX
from persistence.resp.reply import encode_value

if TYPE_CHECKING:
    from engine.server.connection import Connection

TIMESTAMPS = "aof-timestamp-enabled"  # records get #TS: annotations: AofWriter.feed writes them


class Runs:
    """The hot paths of :class:`~engine.server.server.Server` (its attributes, set there)."""

    engine: Engine
    aof: AofWriter | None
    pending: list[Connection]
    flush_scheduled: bool
    effect_listeners: list[Callable[[list[Effect]], None]]
    runs: dict[bytes, Command | None]
    read_runs: dict[bytes, Command]
    unblocked: list[Connection]
    group: list[Connection]
    group_items: list[Any]
    group_raws: list[bytes] | None
    group_cmd: Command | None
    group_name: bytes
    group_argc: int
    coalesce: bool
    write_hold: Callable[[Connection, list[bytes]], bool] | None
    monitors: list[Connection]

    if TYPE_CHECKING:  # (Server's)

        def process(self, conn: Connection) -> None: ...
        def propagate(self, effects: list[Effect]) -> None: ...
        def serve_ready(self, resume_later: list[Connection] | None = None) -> None: ...
        def deliver_pushes(self) -> None: ...
        def schedule_flush(self) -> None: ...

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
        accept = self.accepts(client, True)
        if accept is None or accept.get(argv[0]) is None:  # (a write where as_came() fails)
            return False
        raw = b""
        if cmd.write and aof is not None:
            last = conn.parser.last_raw()
            if last is None:  # an inline command
                return False
            raw = last
        self.add(conn, argv[0], len(argv), argv[1] if len(argv) == 2 else tuple(argv[1:]), raw)
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
        parser = conn.parser
        item = parser.sole(data, accept)
        if item is None:
            return False
        # (a write accepted: its bytes go to the AOF as they came, if there is one)
        name, argc, group = parser.shape_name, parser.shape_argc, self.group
        if not group or name != self.group_name or argc != self.group_argc or len(group) >= RUN_MAX:
            group = self.start_group(name, argc)
        group.append(conn)  # (add, inline: the hot path)
        self.group_items.append(item)
        raws = self.group_raws
        if raws is not None:
            raws.append(data)
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
        argv = _argv(name, argc, items[0])
        rest = items[1:]
        engine = self.engine
        replies = engine.execute_run(client, cmd, argv, rest)
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

    def add(self, conn: Connection, name: bytes, argc: int, item: Any, raw: bytes) -> None:
        """Join a command of ``conn`` (its name as spelt, argument count, arguments after the
        name as RequestParser.sole gives them, bytes as it came: kept for a write with an AOF)
        to the group, after running the group when it is of another kind or full. The
        clients' db and protocol are run_group's to check (Engine.execute_run)."""
        group = self.group
        if not group or name != self.group_name or argc != self.group_argc or len(group) >= RUN_MAX:
            group = self.start_group(name, argc)
        group.append(conn)
        self.group_items.append(item)
        raws = self.group_raws
        if raws is not None:
            raws.append(raw)

    def start_group(self, name: bytes, argc: int) -> list[Connection]:
        """A new, empty group of commands of ``name`` (as spelt) and ``argc``, after running
        the one there is (and those the clients it unblocks may start)."""
        while self.group:
            self.run_group()
        cmd = self.group_cmd = self.runs[name]
        assert cmd is not None
        self.group_name = name
        self.group_argc = argc
        self.group_raws = [] if cmd.write and self.aof is not None else None
        return self.group

    def resume_unblocked(self) -> None:
        """The next commands of clients serve_ready served inside a pipeline or a group
        (src/blocked.c processUnblockedClients)."""
        unblocked, self.unblocked = self.unblocked, []
        for c in unblocked:
            if c.blocked is None and c.client is not None and c.parser.buffered:
                self.process(c)

    def run_group(self) -> None:
        """The single commands joined this loop turn, in the order they came: as runs of the
        engine where they can (Engine.execute_run with their clients: one run, unless their
        db or protocol differ), the rest one by one; then the clients they unblocked go on (as
        each read's unblocked clients do after it)."""
        group, self.group = self.group, []
        items, self.group_items = self.group_items, []
        raws, self.group_raws = self.group_raws or [], None
        cmd = self.group_cmd
        assert cmd is not None
        name, argc, n = self.group_name, self.group_argc, len(group)
        engine = self.engine
        pending = self.pending
        clients = [conn.client for conn in group]
        # the first not run yet (all go one at a time when a client went away: execute_one
        # drops its command)
        at = n if None in clients else 0
        alive = cast("list[ClientState]", clients)
        while at < n:
            replies: list[bytes] = []
            c = alive[at]
            aof = self.raw_aof()
            if (
                not c.flags
                and not c.pushes
                and not self.write_hold
                and not self.monitors
                and (not cmd.write or (self.as_came(aof, c.db) and (aof is None or len(raws) == n)))
            ):
                argv = _argv(name, argc, items[at])
                if at == n - 1:
                    replies = engine.execute_run(c, cmd, argv, None)
                else:
                    more = items[at + 1 :]
                    replies = engine.execute_run(c, cmd, argv, more, alive[at + 1 :])
            done = len(replies)
            if not done:
                break
            if cmd.write and aof is not None:
                aof.buf.append(raws[0] if n == 1 else b"".join(raws[at : at + done]))
            for conn, reply in zip(group[at : at + done] if at else group, replies):
                out = conn.out
                if not out:
                    pending.append(conn)
                out.append(reply)
            at += done  # (a run stops before a client of another db or protocol: it starts one)
            if engine.ready_keys:  # (a push run stops after making a list: waiters first)
                self.serve_ready(self.unblocked)
        if at < n:  # where the runs stopped: one at a time
            for conn, item in zip(group[at:], items[at:]):
                self.execute_one(conn, _argv(name, argc, item))
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


def _argv(name: bytes, argc: int, item: Any) -> list[bytes]:
    """The command of ``name`` whose arguments after the name RequestParser.sole / sole_run
    gave as ``item`` (the argument itself when ``argc`` is 2, else a tuple)."""
    return [name, item] if argc == 2 else [name, *item]
