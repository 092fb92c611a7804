"""The source's side of the cut-over: the per-slot write pause and the deletion of moved keys.

How this works: :class:`WritePause` holds, like blocked clients, the connections whose next
command writes to a paused slot (``Server.write_hold`` is set only while a pause is on, so the
check costs one attribute test per command otherwise); on resume each held command runs again,
which answers ``MOVED`` when the slots moved, or runs normally when the job failed. Only the
migrating slots pause, never the whole node (Valkey pauses every write of the node).

:class:`MovedKeys` deletes the keys of slots this node lost, a few hundred per event-loop turn,
propagating ``UNLINK`` for each (the AOF and replicas see every deletion, spec 8.8). The keys are
unreachable meanwhile (every keyed command gets ``MOVED``), so neither the pause nor the
latency of other clients grows with the slot size.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from engine.blocking import Block
from engine.cluster import syncslots as S
from engine.cluster.migration import PauseWrites
from engine.cluster.routing import CROSS, NO_KEYS, command_slot
from engine.commands.table import TABLE, Command
from engine.context import Effect
from persistence.resp.reply import encode_value

if TYPE_CHECKING:
    from engine.server.connection import Connection
    from engine.server.server import Server

log = logging.getLogger("valkey-engine")

DELETE_BATCH = 500  # moved keys deleted per event-loop turn


class WritePause:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.paused: dict[bytes, tuple[frozenset[int], int]] = {}  # job -> (slots, until ms)
        self.since: dict[bytes, float] = {}  # job -> when its pause started (monotonic)
        self.slots: frozenset[int] = frozenset()
        self.held: list[Connection] = []

    def pause(self, a: PauseWrites) -> None:
        """Start (or extend) the pause of one job."""
        slots = frozenset(x for s, e in a.ranges for x in range(s, e + 1))
        if a.job not in self.paused:
            self.since[a.job] = time.monotonic()
        self.paused[a.job] = (slots, a.until_ms)
        self._update()

    def resume(self, job: bytes) -> None:
        if self.paused.pop(job, None) is None:
            return
        took = (time.monotonic() - self.since.pop(job, time.monotonic())) * 1000
        log.info("Slot migration %s: writes to its slots were paused for %.1f ms (%d clients "
                 "held)", job.decode(), took, len(self.held))  # fmt: skip
        self._update()
        held, self.held = self.held, []
        for conn in held:
            self._release(conn)

    def expire(self, now_ms: int) -> None:
        """A pause never outlives its deadline (the job's own tick fails it too)."""
        for job, (_, until) in list(self.paused.items()):
            if now_ms > until:
                self.resume(job)

    def _update(self) -> None:
        slots: set[int] = set()
        for s, _ in self.paused.values():
            slots |= s
        self.slots = frozenset(slots)
        self.server.write_hold = self.hold if slots else None

    def hold(self, conn: Connection, argv: list[bytes]) -> bool:
        """Asked by Server.process before a command while a pause is on: True when it writes
        to a paused slot (EXEC: any queued write does); the connection is then parked."""
        client = conn.client
        if client is None:
            return False
        cmd = _resolve(argv)
        if cmd is None:
            return False
        if cmd.name == "exec":
            queued = client.multi or []
            writes = [(c, q) for q in queued if (c := _resolve(q)) is not None and c.write]
        elif client.multi is not None or not cmd.write:
            return False
        else:
            writes = [(cmd, argv)]
        for c, q in writes:
            slot = command_slot(c, q)
            if slot not in (NO_KEYS, CROSS) and slot in self.slots:
                self.server.block(conn, argv, Block(client.db, [], 0, None))
                self.held.append(conn)
                return True
        return False

    def _release(self, conn: Connection) -> None:
        """Run the held command now (as Server.serve_ready does), then the rest of its
        pipeline."""
        server = self.server
        argv = conn.blocked_argv
        client = conn.client
        server._unpark(conn)
        if argv is None or client is None or conn.closing:
            return
        if server.write_hold is not None and self.hold(conn, argv):
            return  # another job still pauses that slot
        reply, effects = server.engine.execute(client, argv)
        if effects:
            server.propagate(effects)
        if type(reply) is Block:
            server.block(conn, argv, reply)
            return
        if client.reply_mode == "on":
            conn.send(encode_value(reply, client.resp))
        elif client.reply_mode == "skip":
            client.reply_mode = "on"
        if conn.parser.buffered:
            server.process(conn)


class MovedKeys:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.slots: set[int] = set()  # slots whose keys are still being deleted
        self.scheduled = False

    def delete_later(self, ranges: S.Ranges) -> None:
        self.slots.update(x for s, e in ranges for x in range(s, e + 1))
        self._schedule()

    def _schedule(self) -> None:
        loop = self.server.loop
        if not self.scheduled and loop is not None:
            self.scheduled = True
            loop.call_soon(self.step)

    def step(self) -> None:
        """Delete up to DELETE_BATCH keys of lost slots (slots owned again are left alone)."""
        self.scheduled = False
        cluster = self.server.engine.cluster
        assert cluster is not None
        budget = DELETE_BATCH
        effects: list[Effect] = []
        for slot in sorted(self.slots):
            if cluster.slots[slot] is cluster.myself:
                self.slots.discard(slot)
                continue
            for db in self.server.engine.keyspace.dbs:
                keys = db.keys_in_slot(slot)
                while keys and budget > 0:
                    key = next(iter(keys))
                    unlink(self.server, db.id, key, effects)
                    budget -= 1
            if budget <= 0:
                break
            self.slots.discard(slot)
        if effects:
            self.server.propagate(effects)
            self.server.schedule_flush()
        if self.slots:
            self._schedule()

    def finish(self, ranges: S.Ranges) -> None:
        """The slots come back before their old keys were all deleted: finish that first."""
        if any(S.in_ranges(x, ranges) for x in self.slots):
            while self.slots:
                self.step()


def unlink(server: Server, db_id: int, key: bytes, effects: list[Effect]) -> None:
    ks = server.engine.keyspace
    ks.dbs[db_id].delete(key)
    ks.touch_watched(db_id, key)
    effects.append((db_id, [b"UNLINK", key]))


def _resolve(argv: list[bytes]) -> Command | None:
    cmd = TABLE.get(argv[0].lower())
    if cmd is not None and cmd.container and len(argv) > 1:
        return cmd.subcommands.get(argv[1].lower())
    return cmd
