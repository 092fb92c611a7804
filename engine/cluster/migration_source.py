"""The export side of atomic slot migration: :class:`SourceJob` (spec 3.5 "Source", 3.6-3.9).

What the server does with a job (all in the event loop, no I/O here):
1. connect to the target's client port; then :meth:`SourceJob.connected` (or
   :meth:`connect_failed`); write :meth:`data_to_send` after every call; feed every byte read
   to :meth:`receive_data`; on EOF/reset call :meth:`link_lost`.
2. on :class:`StartSnapshot`: take a copy-on-write view of the slots' keys and call
   :meth:`begin_snapshot` with an iterable of records (then :meth:`pump_snapshot` until it
   says done), or fork a child that writes :func:`encode_snapshot` to the socket, then call
   :meth:`snapshot_done`.
3. after every write command, :meth:`write_propagated` with its db, propagated argv and slot.
4. :meth:`tick` about every 100 ms; :meth:`topology` when slot ownership changes.
5. carry out the returned actions in order (pause/resume writes to the slots, delete the moved
   keys, close the link).

Better than Valkey 9.1.2: the streamed writes always start with ``SELECT <db>`` (Valkey tracks
the db of the parent only, so a write made during the snapshot lands in whatever db the
snapshot ended in: fixtures/valkey-9.1.2/slot_migration/dbbug_*), and the write pause covers
only the slots being moved, never the whole node.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import ClassVar, Final

from engine.cluster import syncslots as S
from engine.cluster.migration_job import (
    ANY,
    ESTABLISH_REPLY_LIMIT,
    MF_PAUSE_MULT,
    OPERATION_TIMEOUT_MS,
    Action,
    CloseLink,
    DeleteSlots,
    Ev,
    Finished,
    Job,
    JobState,
    MigrationConfig,
    PauseWrites,
    ResumeWrites,
    Row,
    StartSnapshot,
    row,
)
from persistence.aof.encoder import encode_command, record_commands, select_command
from persistence.crc import key_slot
from persistence.records import KeyRecord

J = JobState


def encode_snapshot(records: Iterable[KeyRecord], ranges: S.Ranges) -> Iterator[bytes]:
    """The snapshot bytes, as src/cluster_migrateslots.c childSnapshotForSyncSlot writes them:
    ``SELECT db`` before each (db, slot) group, the AOF-rewrite commands of each key of the
    ranges (records of other slots are skipped), then ``CLUSTER SYNCSLOTS SNAPSHOT-EOF``.
    Records should come grouped by db then slot, as Valkey walks them."""
    yield from _snapshot_chunks(iter(records), ranges, 64 * 1024)
    yield S.encode(S.SnapshotEof())


def _snapshot_chunks(
    records: Iterator[KeyRecord], ranges: S.Ranges, budget: int
) -> Iterator[bytes]:
    group: tuple[int, int] | None = None
    parts: list[bytes] = []
    size = 0
    for rec in records:
        slot = key_slot(rec.key)
        if not S.in_ranges(slot, ranges):
            continue
        if (rec.db, slot) != group:
            group = (rec.db, slot)
            sel = encode_command(select_command(rec.db))
            parts.append(sel)
            size += len(sel)
        for cmd in record_commands(rec):
            data = encode_command(cmd)
            parts.append(data)
            size += len(data)
        if size >= budget:
            yield b"".join(parts)
            parts = []
            size = 0
    if parts:
        yield b"".join(parts)


class SourceJob(Job):
    """One ``CLUSTER MIGRATESLOTS`` group on the source primary."""

    operation: ClassVar[bytes] = b"EXPORT"
    # (state, event) -> (handler, states it may lead to). ANY = every in-progress state.
    TABLE: ClassVar[dict[tuple[JobState | str, Ev], Row]] = {
        (J.CONNECTING, Ev.CONNECTED): row("_send_auth_or_establish", J.READ_AUTH_RESPONSE, J.READ_ESTABLISH_RESPONSE),  # via sending-auth-command / sending-establish-command  # noqa: E501
        (J.CONNECTING, Ev.CONNECT_FAILED): row("_on_connect_failed", J.FAILED),
        (J.READ_AUTH_RESPONSE, Ev.REPLY_OK): row("_send_establish", J.READ_ESTABLISH_RESPONSE),
        (J.READ_AUTH_RESPONSE, Ev.REPLY_ERROR): row("_on_auth_error", J.FAILED),
        (J.READ_ESTABLISH_RESPONSE, Ev.REPLY_OK): row("_on_established", J.WAITING_TO_SNAPSHOT),
        (J.READ_ESTABLISH_RESPONSE, Ev.REPLY_ERROR): row("_on_establish_error", J.FAILED),
        (J.WAITING_TO_SNAPSHOT, Ev.SNAPSHOT_BEGIN): row("_on_snapshot_begin", J.SNAPSHOTTING),
        (J.WAITING_TO_SNAPSHOT, Ev.SNAPSHOT_FAILED): row("_on_snapshot_not_started", J.FAILED),
        (J.SNAPSHOTTING, Ev.SNAPSHOT_DONE): row("_begin_streaming", J.STREAMING),
        (J.SNAPSHOTTING, Ev.SNAPSHOT_FAILED): row("_on_snapshot_failed", J.FAILED),
        (J.SNAPSHOTTING, Ev.REQUEST_PAUSE): row("_on_request_pause", J.WAITING_TO_PAUSE, J.FAILOVER_PAUSED),  # noqa: E501
        (J.STREAMING, Ev.REQUEST_PAUSE): row("_on_request_pause", J.WAITING_TO_PAUSE, J.FAILOVER_PAUSED),  # noqa: E501
        (J.WAITING_TO_PAUSE, Ev.TICK): row("_tick_try_pause", J.FAILOVER_PAUSED, J.FAILED),
        (J.FAILOVER_PAUSED, Ev.REQUEST_FAILOVER): row("_on_request_failover", J.EXPORT_FAILOVER_GRANTED, J.FAILED),  # noqa: E501
        (J.FAILOVER_PAUSED, Ev.TICK): row("_tick_pause_expiry", J.FAILED),
        (J.EXPORT_FAILOVER_GRANTED, Ev.TICK): row("_tick_grant_expiry", J.FAILED),
        (J.EXPORT_FAILOVER_GRANTED, Ev.LINK_LOST): row("_ignore"),  # wait for topology/pause end
        (J.EXPORT_FAILOVER_GRANTED, Ev.CANCEL): row("_ignore"),  # too late: see _ignore
        (ANY, Ev.ACK): row("_on_ack"),
        (ANY, Ev.TICK): row("_tick", J.FAILED),
        (ANY, Ev.TOPOLOGY): row("_on_topology", J.SUCCESS, J.FAILED),
        (ANY, Ev.CANCEL): row("_on_cancel", J.CANCELLED),
        (ANY, Ev.LINK_LOST): row("_on_link_lost", J.FAILED),
        (ANY, Ev.FAIL): row("_fail", J.FAILED),
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
    ) -> None:
        super().__init__(
            name,
            ranges,
            source_id=source_id,
            target_id=target_id,
            state=J.CONNECTING,
            now_ms=now_ms,
            config=config or MigrationConfig(),
        )
        self.pause_until_ms = 0  # mf_end; 0 = this job holds no pause
        # bytes of this link the server took from data_to_send but has not written yet: the
        # server keeps it current; the pause waits until it and the send buffer are drained
        self.transport_backlog = 0
        self.streamed_commands = 0
        self._reply = bytearray()
        self._established = False
        self._held = bytearray()  # live writes made while the snapshot is produced
        self._stream_db: int | None = None
        self._chunks: Iterator[bytes] | None = None

    # -- inputs ----------------------------------------------------------------------------
    def connected(self, now_ms: int) -> list[Action]:
        return self._event(Ev.CONNECTED, now_ms)

    def connect_failed(self, now_ms: int, error: str) -> list[Action]:
        return self._event(Ev.CONNECT_FAILED, now_ms, error)

    def receive_data(self, data: bytes, now_ms: int, *, unsent: int | None = None) -> list[Action]:
        """Bytes from the target: replies until ESTABLISH is answered, then SYNCSLOTS commands.
        ``unsent`` (optional) updates :attr:`transport_backlog`."""
        if unsent is not None:
            self.transport_backlog = unsent
        if not self._established and self.in_progress:
            self._reply += data
            data = self._read_reply(now_ms)
        if data and self._established:
            for argv in self._received_commands(data, now_ms):
                if S.is_syncslots(argv):
                    self._message(argv, now_ms)
                else:  # Valkey runs it as a super-user command; we refuse to guess
                    self._fail(now_ms, S.MSG_UNEXPECTED)
        return self._take()

    def tick(self, now_ms: int, *, unsent: int | None = None) -> list[Action]:
        if unsent is not None:
            self.transport_backlog = unsent
        return self._event(Ev.TICK, now_ms)

    def begin_snapshot(
        self, now_ms: int, records: Iterable[KeyRecord] | None = None
    ) -> list[Action]:
        """The snapshot is taken now. With ``records`` (a copy-on-write view of the keyspace as
        of now) the job encodes it itself through :meth:`pump_snapshot`; without, the caller
        writes :func:`encode_snapshot` to the link (after :meth:`data_to_send`) and then calls
        :meth:`snapshot_done`."""
        return self._event(Ev.SNAPSHOT_BEGIN, now_ms, records)

    def snapshot_not_started(self, now_ms: int) -> list[Action]:
        return self._event(Ev.SNAPSHOT_FAILED, now_ms)

    def pump_snapshot(self, now_ms: int, max_bytes: int | None = None) -> list[Action]:
        """Encode about ``max_bytes`` more of the snapshot into the send buffer; when the
        records run out, ``SNAPSHOT-EOF`` and the writes held meanwhile follow."""
        if self.state is not J.SNAPSHOTTING or self._chunks is None:
            return []
        budget = max_bytes or self.config.snapshot_chunk_bytes
        produced = 0
        for chunk in self._chunks:
            self._out += chunk
            produced += len(chunk)
            if produced >= budget:
                return []
        self._chunks = None
        self._send(S.SnapshotEof())
        return self._event(Ev.SNAPSHOT_DONE, now_ms)

    @property
    def snapshotting(self) -> bool:
        return self.state is J.SNAPSHOTTING

    def snapshot_done(self, now_ms: int, ok: bool = True, cow_size: int = 0) -> list[Action]:
        """The forked child finished writing the snapshot (ok) or died (not ok)."""
        self.cow_size = cow_size
        return self._event(Ev.SNAPSHOT_DONE if ok else Ev.SNAPSHOT_FAILED, now_ms)

    def write_propagated(self, db: int, argv: list[bytes], slot: int | None) -> None:
        """A write propagated on this node (its AOF/replication form). Keyless commands
        (``slot`` None: MULTI, EXEC, ...) are not forwarded: the move is atomic anyway
        (src/cluster_migrateslots.c clusterFeedSlotExportJobs)."""
        if slot is None or self.state not in _STREAMS or not S.in_ranges(slot, self.ranges):
            return
        buf = self._held if self.state is J.SNAPSHOTTING else self._out
        if db != self._stream_db:
            buf += encode_command(select_command(db))
            self._stream_db = db
        buf += encode_command(argv)
        self.streamed_commands += 1

    def topology(self, now_ms: int, owner: bytes | None) -> list[Action]:
        """Slot ownership changed: ``owner`` is the one node owning every slot of the job, or
        None when they are split or unassigned."""
        return self._event(Ev.TOPOLOGY, now_ms, owner)

    def cancel(self, now_ms: int) -> list[Action]:
        return self._event(Ev.CANCEL, now_ms)

    def link_lost(self, now_ms: int) -> list[Action]:
        return self._event(Ev.LINK_LOST, now_ms)

    def fail(self, now_ms: int, message: str) -> list[Action]:
        """Fail for a reason found outside the link (``Data was flushed``, lost ownership)."""
        return self._event(Ev.FAIL, now_ms, message)

    def remaining_repl_size(self) -> int:
        return len(self._out) + len(self._held) + self.transport_backlog

    # -- handshake -------------------------------------------------------------------------
    def _read_reply(self, now_ms: int) -> bytes:
        """One reply line (AUTH, then ESTABLISH); returns the bytes that follow it."""
        while not self._established and self.in_progress:
            end = self._reply.find(b"\r\n")
            if end < 0:
                if len(self._reply) >= ESTABLISH_REPLY_LIMIT:
                    self._fail(now_ms, S.MSG_ESTABLISH_TOO_LARGE)
                return b""
            line = bytes(self._reply[: end + 2])
            del self._reply[: end + 2]
            if line.startswith(b"-"):
                self._dispatch(Ev.REPLY_ERROR, now_ms, line)
            else:
                self._dispatch(Ev.REPLY_OK, now_ms)
        rest = bytes(self._reply)
        self._reply.clear()
        return rest

    def _send_auth_or_establish(self, now_ms: int) -> None:
        auth = self.config.auth
        if auth:
            self._goto(J.SEND_AUTH, now_ms)
            self._out += encode_command([b"AUTH", *auth])  # src/replication.c replicationSendAuth
            self._goto(J.READ_AUTH_RESPONSE, now_ms)
        else:
            self._send_establish(now_ms)

    def _send_establish(self, now_ms: int) -> None:
        self._goto(J.SEND_ESTABLISH, now_ms)
        self._send(S.Establish(self.name, self.ranges, self.source_id))
        self._goto(J.READ_ESTABLISH_RESPONSE, now_ms)

    def _on_connect_failed(self, now_ms: int, error: str) -> None:
        self._fail(now_ms, S.MSG_CONNECT_FAILED.format(error))

    def _on_auth_error(self, now_ms: int, line: bytes) -> None:
        text = line.rstrip(b"\r\n").decode("utf-8", "replace")
        self._fail(now_ms, S.MSG_AUTH_FAILED.format(text))

    def _on_established(self, now_ms: int) -> None:
        self._established = True
        self._goto(J.WAITING_TO_SNAPSHOT, now_ms)
        self._send(S.Ack())  # takes the target out of waiting-for-ack
        self.last_sent_ack_ms = now_ms
        self._act(StartSnapshot())

    def _on_establish_error(self, now_ms: int, line: bytes) -> None:
        # src/cluster_migrateslots.c keeps the whole reply buffer, CRLF included
        self._fail(now_ms, S.MSG_ESTABLISH_ERROR.format(line.decode("utf-8", "replace")))

    # -- snapshot and stream ---------------------------------------------------------------
    def _on_snapshot_begin(self, now_ms: int, records: Iterable[KeyRecord] | None) -> None:
        if records is not None:
            budget = self.config.snapshot_chunk_bytes
            self._chunks = _snapshot_chunks(iter(records), self.ranges, budget)
        self._stream_db = None  # the first streamed write always selects its db
        self._goto(J.SNAPSHOTTING, now_ms)

    def _on_snapshot_not_started(self, now_ms: int) -> None:
        self._fail(now_ms, S.MSG_SNAPSHOT_START)

    def _on_snapshot_failed(self, now_ms: int) -> None:
        self._fail(now_ms, S.MSG_SNAPSHOT_FAILED)

    def _begin_streaming(self, now_ms: int) -> None:
        self._chunks = None
        self._out += self._held
        self._held = bytearray()
        self._goto(J.STREAMING, now_ms)

    # -- cut-over --------------------------------------------------------------------------
    def _on_request_pause(self, now_ms: int, _msg: S.Message) -> None:
        if self.state is J.SNAPSHOTTING:  # the child may not have exited yet (Valkey too)
            self._begin_streaming(now_ms)
        if not self._try_pause(now_ms):
            self._goto(J.WAITING_TO_PAUSE, now_ms)

    def _try_pause(self, now_ms: int) -> bool:
        """Pause only when the stream's unsent tail is within the limit, so the pause lasts as
        long as draining that tail, whatever the size of the slots."""
        limit = self.config.max_failover_repl_bytes
        if limit >= 0 and len(self._out) + self.transport_backlog > limit:
            return False
        self.pause_until_ms = now_ms + self.config.mf_timeout_ms * MF_PAUSE_MULT
        self._act(PauseWrites(self.name, self.ranges, self.pause_until_ms))
        self._send(S.Paused())
        self._goto(J.FAILOVER_PAUSED, now_ms)
        return True

    def _on_request_failover(self, now_ms: int, _msg: S.Message) -> None:
        if now_ms > self.pause_until_ms:
            self._fail(now_ms, S.MSG_UNPAUSED_BEFORE_FAILOVER)
            return
        deadline = now_ms + OPERATION_TIMEOUT_MS  # keep paused until the gossip gets around
        if self.pause_until_ms < deadline:
            self.pause_until_ms = deadline
            self._act(PauseWrites(self.name, self.ranges, deadline))
        self._send(S.FailoverGranted())
        self._goto(J.EXPORT_FAILOVER_GRANTED, now_ms)

    def _on_topology(self, now_ms: int, owner: bytes | None) -> None:
        # src/cluster_migrateslots.c checkSlotExportOwnership
        if owner == self.source_id:
            return
        if owner is not None and owner == self.target_id:
            self._finish(now_ms, J.SUCCESS, "")
        else:
            self._fail(now_ms, S.MSG_NOT_OWNER)

    # -- timers ----------------------------------------------------------------------------
    def _tick(self, now_ms: int) -> None:
        if not self._timed_out(now_ms):
            self._maybe_ack(now_ms)

    def _tick_try_pause(self, now_ms: int) -> None:
        if not self._timed_out(now_ms):
            self._try_pause(now_ms)
            self._maybe_ack(now_ms)

    def _tick_pause_expiry(self, now_ms: int) -> None:
        if self._timed_out(now_ms):
            return
        if now_ms > self.pause_until_ms:
            self._fail(now_ms, S.MSG_PAUSE_TIMEOUT)
        else:
            self._maybe_ack(now_ms)

    def _tick_grant_expiry(self, now_ms: int) -> None:
        if now_ms > self.pause_until_ms:  # "Write loss risk!" in Valkey's log
            self._fail(now_ms, S.MSG_UNPAUSED_BEFORE_DONE)

    def _timed_out(self, now_ms: int) -> bool:
        if now_ms - self.last_ack_ms > self.config.repl_timeout_ms:
            self._fail(now_ms, S.MSG_TIMEOUT)
            return True
        return False

    def _maybe_ack(self, now_ms: int) -> None:
        # src/cluster_migrateslots.c canSlotMigrationJobSendAck; pending output counts as one
        if self.state in _NO_ACK or self._out:
            return
        if now_ms - self.last_sent_ack_ms >= self.config.ack_interval_ms:
            self._send(S.Ack())
            self.last_sent_ack_ms = now_ms

    def _on_ack(self, now_ms: int, _msg: S.Message | None = None) -> None:
        self.last_ack_ms = now_ms

    def _ignore(self, now_ms: int, *_: object) -> None:
        """After FAILOVER-GRANTED the target may already own the slots. Valkey still lets
        CANCELSLOTMIGRATIONS end the job and lift the pause here, so writes accepted before the
        gossip arrives are lost; we keep waiting (paused) for the topology or the pause end."""

    # -- endings ---------------------------------------------------------------------------
    def _on_cancel(self, now_ms: int) -> None:
        self._finish(now_ms, J.CANCELLED, "")

    def _on_link_lost(self, now_ms: int) -> None:
        self._fail(now_ms, S.MSG_LINK_LOST_EXPORT)

    def _fail(self, now_ms: int, message: str) -> None:
        self._finish(now_ms, J.FAILED, message)

    def _finish(self, now_ms: int, state: JobState, message: str) -> None:
        self.message = message
        self._goto(state, now_ms)
        self._out.clear()
        self._held.clear()
        self._chunks = None
        if state is J.SUCCESS:
            self._act(DeleteSlots(self.ranges))
        if self.pause_until_ms:
            self.pause_until_ms = 0
            self._act(ResumeWrites(self.name))
        self._act(CloseLink())
        self._act(Finished(state, message))


_STREAMS: Final = frozenset(
    {J.SNAPSHOTTING, J.STREAMING, J.WAITING_TO_PAUSE, J.FAILOVER_PAUSED, J.EXPORT_FAILOVER_GRANTED}
)
_NO_ACK: Final = frozenset(
    {
        J.SNAPSHOTTING,
        J.CONNECTING,
        J.SEND_AUTH,
        J.READ_AUTH_RESPONSE,
        J.SEND_ESTABLISH,
        J.READ_ESTABLISH_RESPONSE,
        J.EXPORT_FAILOVER_GRANTED,
    }
)
