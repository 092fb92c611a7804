"""Atomic slot migration in the live server: the I/O around the sans-IO jobs (spec 3).

How this works: :class:`MigrationIO` owns the node's :class:`SlotMigrations` and carries out
every action its jobs return (engine/cluster/migration_job.py lists them). It is plugged into
the server through its hooks: ``engine.migration`` (the CLUSTER MIGRATESLOTS / SYNCSLOTS /
GETSLOTMIGRATIONS / CANCELSLOTMIGRATIONS handlers call it), ``effect_listeners`` (propagated
writes feed the export streams), ``cron_hooks`` (timers, ACKs, timeouts), ``topology_listeners``
(the cluster bus reports a slot owner change) and ``write_hold`` (the per-slot write pause).

Source: one :class:`ExportLink` (an asyncio client connection, migration_links.py) per job. The
snapshot comes from a forked child through a pipe (migration_snapshot.py); the link forwards it
with back-pressure, then the job's own bytes (the writes held meanwhile, the live stream, control
messages). The write pause (migration_pause.py) holds only commands writing to the job's slots,
like blocked clients; it starts when the stream's unsent tail is empty (our buffer and the
socket's send queue; the link's kernel buffers are small), so it lasts a few round trips
whatever the slot size. After success the moved keys are deleted in batches across event-loop
turns (they are already unreachable: every keyed command gets MOVED), so the pause does not
grow with the key count; ``on_topology`` returns those slots so the bus leaves them alone.

Target: ``CLUSTER SYNCSLOTS ESTABLISH`` on an ordinary connection makes it an
:class:`ImportLink` (``Connection.raw_sink``): its bytes go to the TargetJob, whose ``Apply``
actions run on an internal client with the loading semantics (no redirection, no expiry, past
TTLs stored) and go to the AOF like any write, between ``CLUSTER SYNCSLOTS ESTABLISH`` and
``FINISH`` records. Imported keys stay hidden (engine/keyspace.py) until the takeover: the AOF
is flushed, the slots assigned to this node with a bumped epoch, nodes.conf saved at once, and
the bus told to broadcast; the source learns the new owner from the bus.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from engine import errors as E
from engine.cluster import syncslots as S
from engine.cluster.migration import (
    Action,
    Apply,
    CloseLink,
    DeleteSlots,
    DropSlots,
    Finished,
    HideSlots,
    Job,
    JobState,
    PauseWrites,
    Propagate,
    ResumeWrites,
    SlotMigrations,
    SourceJob,
    StartSnapshot,
    TakeOwnership,
    TargetJob,
    UnhideSlots,
    config_from,
)
from engine.commands.util import OK
from engine.context import Effect
from engine.errors import SYNTAX, CommandError
from engine.server.migration_links import ExportLink, ImportLink
from engine.server.migration_pause import MovedKeys, WritePause, unlink
from persistence.resp.frames import Error

if TYPE_CHECKING:
    from engine.server.server import Server

log = logging.getLogger("valkey-engine")

J = JobState


class MigrationIO:
    """Every slot migration of this node (see the module docstring)."""

    def __init__(self, server: Server) -> None:
        engine = server.engine
        assert engine.cluster is not None
        self.server = server
        self.engine = engine
        cfg = engine.config
        self.m = SlotMigrations(
            engine.cluster.myself.name.encode(),
            config_from(cfg.__getitem__),
            log_max_len=int(cfg["cluster-slot-migration-log-max-len"]),
        )
        self.exports: dict[bytes, ExportLink] = {}
        self.imports: dict[bytes, ImportLink] = {}
        self.pause = WritePause(server)
        self.moved = MovedKeys(server)
        self.flush_scheduled = False
        self._states: dict[bytes, JobState] = {}
        self.client = engine.new_client("slot-migration", "")
        self.client.authenticated = True
        self.client.flags.add("must_obey")
        engine.clients.pop(self.client.id, None)  # internal: not in CLIENT LIST
        server.migration = self
        engine.migration = self
        server.effect_listeners.append(self.on_effects)
        server.cron_hooks.append(self.cron)
        server.topology_listeners.append(self.on_topology)
        self._fail_restored_imports()

    def _fail_restored_imports(self) -> None:
        """Imports the AOF left open (a target killed mid-import) become failed jobs and get
        their ``FINISH STATE FAILED ... MESSAGE "Process restarted"`` record, so a later import
        of the same slots is not dropped by the next load (src/cluster_migrateslots.c
        clusterCleanSlotImportsAfterLoad). The loader already dropped their keys."""
        now = self.now()
        restored = self.engine.server_info.pop("unfinished_imports", None) or {}
        for name, ranges in restored.items():
            tracked, actions = self.m.track(name, tuple(ranges), now, primary=True)
            self.run(tracked, actions)
        for job, actions in self.m.after_load(now, primary=True):
            self.run(job, actions)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self.server.loop
        assert loop is not None
        return loop

    def now(self) -> int:
        return self.engine.clock.now_ms()

    # -- cluster view -----------------------------------------------------------------------
    def owner_of(self, slot: int) -> bytes | None:
        cluster = self.engine.cluster
        assert cluster is not None
        node = cluster.slots[slot]
        return None if node is None else node.name.encode()

    def known(self, name: bytes) -> bool:
        cluster = self.engine.cluster
        assert cluster is not None
        node = cluster.lookup(name.decode("latin-1"))
        return node is not None and "handshake" not in node.flags

    def _manual(self) -> dict[str, bool]:
        """Before a new job: this node's current name (CLUSTER RESET HARD renames it) and
        settings (CONFIG SET), and the checks of validateSlotMigrationCanStartOrReply."""
        cluster = self.engine.cluster
        assert cluster is not None
        self.m.myself = cluster.myself.name.encode()
        self.m.config = config_from(self.engine.config.__getitem__)
        return {
            "primary": cluster.myself.is_primary,
            "manual_importing": bool(cluster.importing),
            "manual_migrating": bool(cluster.migrating),
        }

    # -- the commands (engine.cluster.migration.MigrationHost) ------------------------------
    def migrate_slots(self, client_id: int, argv: list[bytes], now_ms: int) -> Any:
        jobs = self.m.migrate_slots(
            argv, now_ms, owner_of=self.owner_of, known=self.known, **self._manual()
        )
        for job in jobs:
            link = ExportLink(self, job)
            self.exports[job.name] = link
            self.loop.create_task(self._connect(link))
        return OK

    async def _connect(self, link: ExportLink) -> None:
        cluster = self.engine.cluster
        assert cluster is not None
        job = link.job
        node = cluster.lookup(job.target_id.decode("latin-1"))
        try:
            if node is None:
                raise OSError("unknown node")
            await self.loop.create_connection(lambda: link, node.ip, node.client_port)
        except OSError as e:
            if not job.finished:
                self.run(job, job.connect_failed(self.now(), e.strerror or str(e)))

    def syncslots(self, client_id: int, argv: list[bytes], now_ms: int) -> Any:
        sub = argv[2].lower()
        if sub == b"establish":
            return self._establish(client_id, argv, now_ms)
        if sub == b"finish":  # from a primary or an operator: closes a tracking job
            msg = S.parse(argv)
            assert isinstance(msg, S.Finish)
            job = self.m.job(msg.name)
            if not isinstance(job, TargetJob) or not job.tracking_only:
                raise CommandError(E.ERR_NO_SUCH_JOB)
            self.run(job, job.finish_received(msg, now_ms))
            return OK
        if sub == b"capa":
            return OK
        raise CommandError(SYNTAX)  # the other messages only travel on a migration link

    def _establish(self, client_id: int, argv: list[bytes], now_ms: int) -> Any:
        conn = self.server.connections.get(client_id)
        if conn is None:
            raise CommandError(SYNTAX)
        msg = S.parse(argv, self.owner_of)
        if isinstance(msg, S.Establish):
            self.moved.finish(msg.ranges)
        job, actions = self.m.establish(
            argv, now_ms, owner_of=self.owner_of, known=self.known, **self._manual()
        )
        self._drop_strays(job.ranges)
        link = ImportLink(self, job, conn)
        self.imports[job.name] = link
        conn.raw_sink = link.receive  # replies off: the rest of the bytes are the stream
        log.info("Slot import %s of %s from %s started", job.name.decode(),
                 S.ranges_text(job.ranges).decode(), job.source_id.decode())  # fmt: skip
        self.run(job, actions)
        return OK

    def cancel(self, now_ms: int) -> Any:
        for job, actions in self.m.cancel(now_ms):
            self.run(job, actions)
        return OK

    def setslot_error(self) -> str | None:
        return self.m.setslot_error()

    def entries(self) -> list[dict[bytes, bytes | int]]:
        for link in self.exports.values():
            link.job.transport_backlog = link.unsent()
        return self.m.entries()

    # -- events -----------------------------------------------------------------------------
    def on_effects(self, effects: list[Effect]) -> None:
        m = self.m
        if not m.jobs:
            return
        for _, argv in effects:
            name = argv[0].lower()
            if name in (b"flushall", b"flushdb"):
                for job, actions in m.flushed(self.now()):
                    self.run(job, actions)
                break
        if self.exports:
            m.feed(effects)
            self.schedule_flush()

    def on_topology(self) -> set[int]:
        """The bus changed a slot's owner: the jobs hear it now (an export whose target took
        over answers its held writes with MOVED at once). Returns the slots whose moved keys
        :class:`MovedKeys` deletes a few per loop turn, which the bus must leave alone so the
        write pause does not grow with the slot size."""
        if not self.m.jobs:
            return set()
        for job, actions in self.m.topology(self.now(), self.owner_of):
            self.run(job, actions)
        return self.moved.slots

    def cron(self) -> None:
        if not self.m.jobs:
            return
        now = self.now()
        for name, ilink in list(self.imports.items()):
            if ilink.lost and not ilink.closed:
                ilink.closed = True
                self.run(ilink.job, ilink.job.link_lost(now))
            if ilink.job.finished:
                del self.imports[name]
        for link in self.exports.values():
            link.job.transport_backlog = link.unsent()
        for job, actions in self.m.tick(now):
            self.run(job, actions)
        self.pause.expire(now)
        for name, link in list(self.exports.items()):
            if link.job.finished and link.closed:
                del self.exports[name]
        self.flush_all()

    # -- carrying out actions ---------------------------------------------------------------
    def run(self, job: Job, actions: list[Action]) -> None:
        took_over = False
        server = self.server
        for a in actions:
            t = type(a)
            if t is Apply:
                assert isinstance(a, Apply) and isinstance(job, TargetJob)
                self._apply(job, a.argv)
            elif t is Propagate:
                assert isinstance(a, Propagate)
                server.propagate([(-1, a.argv)])
            elif t is HideSlots:
                assert isinstance(a, HideSlots)
                self.engine.keyspace.hide_slots(a.ranges)
            elif t is UnhideSlots:
                assert isinstance(a, UnhideSlots)
                self.engine.keyspace.unhide_slots(a.ranges)
            elif t is DropSlots:
                assert isinstance(a, DropSlots)
                self._drop_unowned(a.ranges)
            elif t is TakeOwnership:
                assert isinstance(a, TakeOwnership)
                self._take_ownership(a.ranges)
                took_over = True
            elif t is StartSnapshot:
                link = self.exports.get(job.name)
                if link is not None:
                    link.start_snapshot()
            elif t is PauseWrites:
                assert isinstance(a, PauseWrites)
                self.pause.pause(a)
            elif t is ResumeWrites:
                assert isinstance(a, ResumeWrites)
                self.pause.resume(a.job)
            elif t is DeleteSlots:
                assert isinstance(a, DeleteSlots)
                self.moved.delete_later(a.ranges)
            elif t is CloseLink:
                self._close(job)
            elif t is Finished:
                assert isinstance(a, Finished)
                log.info("Slot migration %s (%s %s) finished: %s %s", job.name.decode(),
                         job.operation.decode(), S.ranges_text(job.ranges).decode(),
                         a.state.text, a.message)  # fmt: skip
        if took_over:
            self._announce()
        if job.state is not self._states.get(job.name):
            self._states[job.name] = job.state
            log.debug("Slot migration %s: %s", job.name.decode(), job.state.text)
        self._flush_job(job)
        if isinstance(job, SourceJob) and job.state is J.WAITING_TO_PAUSE:
            self._retry_pause_soon(job)
        if self.engine.ready_keys:
            server.serve_ready()
        if self.engine.pushed:
            server.deliver_pushes()
        server.schedule_flush()

    def _flush_job(self, job: Job) -> None:
        link = self.exports.get(job.name) if isinstance(job, SourceJob) else None
        if link is not None:
            link.flush()
        elif isinstance(job, TargetJob):
            ilink = self.imports.get(job.name)
            if ilink is not None:
                ilink.flush()

    def schedule_flush(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush_all)

    def flush_all(self) -> None:
        self.flush_scheduled = False
        for link in self.exports.values():
            link.flush()
            job = link.job
            if job.state is J.WAITING_TO_PAUSE:
                self.run(job, job.tick(self.now(), unsent=link.unsent()))
        for ilink in self.imports.values():
            ilink.flush()

    def _retry_pause_soon(self, job: SourceJob) -> None:
        link = self.exports.get(job.name)
        if link is None or link.pause_retry is not None:
            return

        def retry() -> None:
            link.pause_retry = None
            if job.state is J.WAITING_TO_PAUSE:
                link.flush()
                self.run(job, job.tick(self.now(), unsent=link.unsent()))

        link.pause_retry = self.loop.call_later(0.002, retry)

    def _close(self, job: Job) -> None:
        if isinstance(job, SourceJob):
            link = self.exports.get(job.name)
            if link is not None:
                link.close()
        else:
            ilink = self.imports.get(job.name)
            if ilink is not None:
                ilink.close()

    # -- target -----------------------------------------------------------------------------
    def _apply(self, job: TargetJob, argv: list[bytes]) -> None:
        """Run one command of the import stream (spec 3.7): no redirection, no expiry, past
        TTLs stored, nothing replied; its propagated form goes to the AOF."""
        engine = self.engine
        was = engine.loading
        engine.loading = True
        try:
            reply, effects = engine.execute(self.client, argv)
        finally:
            engine.loading = was
        if effects:
            self.server.propagate(effects)
        if type(reply) is Error:
            log.warning("Slot import %s: %r failed: %s", job.name.decode(), argv[:2],
                        reply.message.decode(errors="replace"))  # fmt: skip
            self.run(job, job.apply_failed(self.now()))

    def _take_ownership(self, ranges: S.Ranges) -> None:
        """performSlotImportJobFailover: epoch bump without consensus, slots to myself."""
        cluster = self.engine.cluster
        assert cluster is not None
        cluster.bump_epoch()
        me = cluster.myself
        for s, e in ranges:
            for slot in range(s, e + 1):
                cluster.importing.pop(slot, None)
                cluster.del_slot(slot)
                cluster.add_slot(me, slot)
        cluster.todo_save = True
        cluster.update_state(self.now())

    def _announce(self) -> None:
        """After a takeover: the imported writes and FINISH durable first, then nodes.conf,
        then the news (clusterSaveConfigOrDie + clusterBroadcastPong)."""
        server = self.server
        if server.aof is not None:
            server.aof.flush()
        if server.cluster_config is not None:
            server.cluster_config.save()
        bus = server.cluster_bus
        if bus is not None:
            bus.broadcast()
        for listener in server.topology_listeners:
            if listener != self.on_topology:
                listener()

    def _drop_unowned(self, ranges: S.Ranges) -> None:
        """Cleanup of a failed import: delete the keys of slots this node does not own, in
        every db, one ``UNLINK`` each (src/cluster_migrateslots.c delKeysNotOwnedByMyself)."""
        cluster = self.engine.cluster
        assert cluster is not None
        me = cluster.myself
        slots = [x for s, e in ranges for x in range(s, e + 1) if cluster.slots[x] is not me]
        self._unlink_slots(slots)

    def _drop_strays(self, ranges: S.Ranges) -> None:
        """An import starts from empty slots (Valkey asserts it): leftovers are deleted."""
        self._unlink_slots([x for s, e in ranges for x in range(s, e + 1)])

    def _unlink_slots(self, slots: list[int]) -> None:
        effects: list[Effect] = []
        for db in self.engine.keyspace.dbs:
            if not db.data:
                continue
            for slot in slots:
                for key in list(db.keys_in_slot(slot)):
                    unlink(self.server, db.id, key, effects)
        if effects:
            self.server.propagate(effects)
