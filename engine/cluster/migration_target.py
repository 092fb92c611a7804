"""The import side of atomic slot migration: :class:`TargetJob` (spec 3.5 "Target", 3.7-3.11).

What the server does with a job:
1. ``CLUSTER SYNCSLOTS ESTABLISH`` arrives as an ordinary command; the command handler builds
   the job (``SlotMigrations.establish``), replies ``+OK`` and from then on turns replies off
   on that connection and hands every later byte to :meth:`TargetJob.receive_data` (or every
   later parsed command to :meth:`receive_command`); :meth:`data_to_send` holds the target's
   own messages (ACK, REQUEST-PAUSE, REQUEST-FAILOVER), written despite reply-off.
2. carry out the returned actions in order: :class:`Apply` runs a command on the import client
   (no redirection, no expiry, past TTLs stored; an error reply -> :meth:`apply_failed`),
   :class:`Propagate` appends ESTABLISH/FINISH to the AOF and replicas, :class:`HideSlots` /
   :class:`UnhideSlots`, :class:`DropSlots` (delete unowned keys of the slots, all dbs),
   :class:`TakeOwnership` (epoch bump without consensus, slots to myself, nodes.conf, PONG).
3. :meth:`tick` about every 100 ms; :meth:`link_lost` on EOF; :meth:`topology` when slot
   ownership changes; :meth:`fail` for flushes, OOM, promotion.

Until success the imported keys stay hidden; on any failure they are dropped, so the slots'
keys end up either all on the target (success) or none of them (failure).
"""

from __future__ import annotations

from typing import ClassVar

from engine.cluster import syncslots as S
from engine.cluster.migration_job import (
    ANY,
    OPERATION_TIMEOUT_MS,
    Action,
    Apply,
    CloseLink,
    DropSlots,
    Ev,
    Finished,
    HideSlots,
    Job,
    JobState,
    MigrationConfig,
    Propagate,
    Row,
    TakeOwnership,
    UnhideSlots,
    row,
)

J = JobState
# not a Valkey text: Valkey takes over whenever the grant arrives (see _take_over)
MSG_LATE_GRANT = "Failover granted too late: the source may have resumed writes"


class TargetJob(Job):
    """One import on the target primary (or a tracking-only copy on a replica / after a
    restart, in ``occurring-on-primary``)."""

    operation: ClassVar[bytes] = b"IMPORT"
    # (state, event) -> (handler, states it may lead to). ANY = every in-progress state.
    TABLE: ClassVar[dict[tuple[JobState | str, Ev], Row]] = {
        (J.WAIT_ACK, Ev.ACK): row("_on_first_ack", J.RECEIVE_SNAPSHOT),
        (J.RECEIVE_SNAPSHOT, Ev.SNAPSHOT_EOF): row("_on_snapshot_eof", J.WAITING_FOR_PAUSED),
        (J.WAITING_FOR_PAUSED, Ev.PAUSED): row("_on_paused", J.FAILOVER_REQUESTED),
        (J.FAILOVER_REQUESTED, Ev.FAILOVER_GRANTED): row("_take_over", J.SUCCESS, J.FAILED),  # via failover-granted  # noqa: E501
        (J.OCCURRING_ON_PRIMARY, Ev.FINISH): row("_on_finish", J.SUCCESS, J.FAILED),
        (J.OCCURRING_ON_PRIMARY, Ev.FAIL): row("_fail", J.FAILED),  # via cleaning-up (primary)
        (J.OCCURRING_ON_PRIMARY, Ev.TICK): row("_ignore"),
        (J.OCCURRING_ON_PRIMARY, Ev.LINK_LOST): row("_ignore"),
        (J.OCCURRING_ON_PRIMARY, Ev.TOPOLOGY): row("_ignore"),
        (ANY, Ev.ACK): row("_on_ack"),
        (ANY, Ev.TICK): row("_tick", J.FAILED),  # via cleaning-up
        (ANY, Ev.TOPOLOGY): row("_on_topology", J.FAILED),  # via cleaning-up
        (ANY, Ev.LINK_LOST): row("_on_link_lost", J.FAILED),  # via cleaning-up
        (ANY, Ev.FAIL): row("_fail", J.FAILED),  # via cleaning-up
    }  # fmt: skip

    def __init__(
        self,
        name: bytes,
        ranges: S.Ranges,
        *,
        source_id: bytes,
        target_id: bytes,
        now_ms: int,
        config: MigrationConfig | None = None,
        tracking_only: bool = False,
        primary: bool = True,
    ) -> None:
        super().__init__(
            name,
            ranges,
            source_id=source_id,
            target_id=target_id,
            state=J.OCCURRING_ON_PRIMARY if tracking_only else J.WAIT_ACK,
            now_ms=now_ms,
            config=config or MigrationConfig(),
            tracking_only=tracking_only,
        )
        self.primary = primary
        self.failover_requested_ms = 0
        self.last_rx_ms = now_ms
        self.applied_commands = 0

    @classmethod
    def established(
        cls,
        msg: S.Establish,
        *,
        myself: bytes,
        now_ms: int,
        config: MigrationConfig | None = None,
    ) -> tuple[TargetJob, list[Action]]:
        """A new import from a validated ESTABLISH (src/cluster_migrateslots.c
        createSlotImportJob): hide the slots, put the ESTABLISH in the AOF and replication."""
        assert msg.source is not None
        job = cls(
            msg.name, msg.ranges, source_id=msg.source, target_id=myself, now_ms=now_ms,
            config=config,
        )  # fmt: skip
        return job, [HideSlots(msg.ranges), Propagate(S.message_argv(msg))]

    @classmethod
    def tracking(
        cls, name: bytes, ranges: S.Ranges, *, now_ms: int, primary: bool
    ) -> tuple[TargetJob, list[Action]]:
        """A tracking-only job: ESTABLISH seen in replication or an AOF, or RDB opcode 243."""
        job = cls(
            name, ranges, source_id=b"", target_id=b"", now_ms=now_ms, tracking_only=True,
            primary=primary,
        )  # fmt: skip
        return job, [HideSlots(ranges)]

    # -- inputs ----------------------------------------------------------------------------
    def receive_data(self, data: bytes, now_ms: int) -> list[Action]:
        """Bytes from the source: write commands to apply and SYNCSLOTS messages."""
        if data:
            self.last_rx_ms = now_ms
        for argv in self._received_commands(data, now_ms):
            self._command(argv, now_ms)
        return self._take()

    def receive_command(self, argv: list[bytes], now_ms: int) -> list[Action]:
        """One command already parsed from the import link."""
        self.last_rx_ms = now_ms
        if self.in_progress:
            self._command(argv, now_ms)
        return self._take()

    def tick(self, now_ms: int) -> list[Action]:
        return self._event(Ev.TICK, now_ms)

    def topology(self, now_ms: int, owner: bytes | None) -> list[Action]:
        """Ownership changed: ``owner`` owns every slot of the job, None when split/unowned."""
        return self._event(Ev.TOPOLOGY, now_ms, owner)

    def link_lost(self, now_ms: int) -> list[Action]:
        return self._event(Ev.LINK_LOST, now_ms)

    def apply_failed(self, now_ms: int) -> list[Action]:
        """An applied command replied with an error."""
        return self._event(Ev.FAIL, now_ms, S.MSG_APPLY_FAILED)

    def fail(self, now_ms: int, message: str) -> list[Action]:
        """Fail for an outside reason: S.MSG_FLUSHED, S.MSG_OOM, S.MSG_PROMOTED,
        S.MSG_RESTARTED (a primary after loading a tracking job), S.MSG_FULL_SYNC ..."""
        return self._event(Ev.FAIL, now_ms, message)

    def finish_received(self, msg: S.Finish, now_ms: int) -> list[Action]:
        """``SYNCSLOTS FINISH`` from the primary (tracking-only jobs)."""
        return self._event(Ev.FINISH, now_ms, msg)

    # -- handlers --------------------------------------------------------------------------
    def _command(self, argv: list[bytes], now_ms: int) -> None:
        if S.is_syncslots(argv):
            self._message(argv, now_ms)
        else:
            self.applied_commands += 1
            self._act(Apply(argv))

    def _on_first_ack(self, now_ms: int, _msg: S.Message) -> None:
        self.last_ack_ms = now_ms
        self._goto(J.RECEIVE_SNAPSHOT, now_ms)

    def _on_ack(self, now_ms: int, _msg: S.Message) -> None:
        self.last_ack_ms = now_ms

    def _on_snapshot_eof(self, now_ms: int, _msg: S.Message) -> None:
        self._send(S.RequestPause())
        self._goto(J.WAITING_FOR_PAUSED, now_ms)

    def _on_paused(self, now_ms: int, _msg: S.Message) -> None:
        self._send(S.RequestFailover())  # everything before PAUSED has been applied
        self.failover_requested_ms = now_ms
        self._goto(J.FAILOVER_REQUESTED, now_ms)

    def _take_over(self, now_ms: int, _msg: S.Message) -> None:
        # Better than Valkey 9.1.2: the source keeps its writes paused until at least
        # OPERATION_TIMEOUT_MS after it granted, and it granted after our request; a grant
        # that arrives later than half of that may find the source already unpaused and
        # serving writes again, so taking over then could lose them: refuse, and the source
        # keeps the slots (its job fails when its pause ends)
        if now_ms - self.failover_requested_ms > OPERATION_TIMEOUT_MS // 2:
            self._fail(now_ms, MSG_LATE_GRANT)
            return
        self._goto(J.IMPORT_FAILOVER_GRANTED, now_ms)
        self._act(TakeOwnership(self.ranges))
        self._finish(now_ms, J.SUCCESS, "")

    def _on_finish(self, now_ms: int, msg: S.Finish) -> None:
        state = J.SUCCESS if msg.success else J.FAILED
        self._finish(now_ms, state, (msg.message or b"").decode(), finish_seen=True)

    def _on_topology(self, now_ms: int, owner: bytes | None) -> None:
        # src/cluster_migrateslots.c clusterUpdateSlotImportsOnOwnershipChange
        if owner is not None and owner == self.source_id:
            return
        if owner is not None and owner == self.target_id:
            self._fail(now_ms, S.MSG_ASSIGNED_TO_ME)
        else:
            self._fail(now_ms, S.MSG_SOURCE_NOT_OWNER)

    def _tick(self, now_ms: int) -> None:
        if now_ms - self.last_rx_ms > self.config.repl_timeout_ms:
            self._fail(now_ms, S.MSG_TIMEOUT)
            return
        # src/cluster_migrateslots.c canSlotMigrationJobSendAck: not before the source's ACK
        if self.state is not J.WAIT_ACK and (
            now_ms - self.last_sent_ack_ms >= self.config.ack_interval_ms
        ):
            self._send(S.Ack())
            self.last_sent_ack_ms = now_ms

    def _ignore(self, now_ms: int, *_: object) -> None:
        pass

    def _on_link_lost(self, now_ms: int) -> None:
        self._fail(now_ms, S.MSG_LINK_LOST_IMPORT)

    def _fail(self, now_ms: int, message: str) -> None:
        self._finish(now_ms, J.FAILED, message)

    def _finish(
        self, now_ms: int, state: JobState, message: str, *, finish_seen: bool = False
    ) -> None:
        # src/cluster_migrateslots.c finishSlotMigrationJob: a primary cleans up the keys of a
        # failed import first (cleaning-up), then unhides the slots and propagates FINISH; a
        # FINISH received (replica) means the primary already cleaned up: it is passed on as is
        self.message = message
        self._out.clear()
        if not self.tracking_only:
            self._act(CloseLink())
        if self.primary and state is not J.SUCCESS and not finish_seen:
            self._goto(J.CLEANING_UP, now_ms)
            self._act(DropSlots(self.ranges))
        self._goto(state, now_ms)
        self._act(UnhideSlots(self.ranges))
        if self.primary or finish_seen:
            msg = S.Finish(self.name, state is J.SUCCESS, message.encode())
            self._act(Propagate(S.message_argv(msg)))
        self._act(Finished(state, message))
