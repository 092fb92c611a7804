"""What the export and import jobs share: Valkey's states, the actions a job asks of the server,
the settings, and the table-driven base class (spec 3.5).

How this works: a job is a sans-IO state machine (h11 style). The server feeds it events (bytes
received, timer ticks with ``now_ms``, "snapshot produced", "write propagated", "cancel", "link
lost", topology changes) through its methods; each method returns the list of :class:`Action`
the server must carry out, in order, and the bytes to write on the job's connection accumulate
in :meth:`Job.data_to_send`. Which handler runs for an event is decided by the subclass's
``TABLE``: ``(state, event) -> (handler, allowed next states)``, with ``ANY`` for events that
apply to every in-progress state. A handler that moves the job anywhere else is a bug and
raises at once.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeAlias

from engine.cluster import syncslots as S
from engine.errors import CommandError
from persistence.resp.parser import RequestParser
from persistence.resp.tokens import ProtocolError


class JobState(enum.Enum):
    """src/cluster_migrateslots.c slotMigrationJobState: (internal name, the ``state`` string of
    slotMigrationJobStateToString)."""

    # target (import)
    WAIT_ACK = ("SLOT_IMPORT_WAIT_ACK", "waiting-for-ack")
    RECEIVE_SNAPSHOT = ("SLOT_IMPORT_RECEIVE_SNAPSHOT", "receiving-snapshot")
    WAITING_FOR_PAUSED = ("SLOT_IMPORT_WAITING_FOR_PAUSED", "waiting-for-paused")
    FAILOVER_REQUESTED = ("SLOT_IMPORT_FAILOVER_REQUESTED", "failover-requested")
    IMPORT_FAILOVER_GRANTED = ("SLOT_IMPORT_FAILOVER_GRANTED", "failover-granted")
    CLEANING_UP = ("SLOT_IMPORT_FINISHED_CLEANING_UP", "cleaning-up")
    OCCURRING_ON_PRIMARY = ("SLOT_IMPORT_OCCURRING_ON_PRIMARY", "occurring-on-primary")
    # source (export)
    CONNECTING = ("SLOT_EXPORT_CONNECTING", "connecting")
    SEND_AUTH = ("SLOT_EXPORT_SEND_AUTH", "sending-auth-command")
    READ_AUTH_RESPONSE = ("SLOT_EXPORT_READ_AUTH_RESPONSE", "reading-auth-response")
    SEND_ESTABLISH = ("SLOT_EXPORT_SEND_ESTABLISH", "sending-establish-command")
    READ_ESTABLISH_RESPONSE = ("SLOT_EXPORT_READ_ESTABLISH_RESPONSE", "reading-establish-response")
    WAITING_TO_SNAPSHOT = ("SLOT_EXPORT_WAITING_TO_SNAPSHOT", "waiting-to-snapshot")
    SNAPSHOTTING = ("SLOT_EXPORT_SNAPSHOTTING", "snapshotting")
    STREAMING = ("SLOT_EXPORT_STREAMING", "replicating")
    WAITING_TO_PAUSE = ("SLOT_EXPORT_WAITING_TO_PAUSE", "waiting-to-pause")
    FAILOVER_PAUSED = ("SLOT_EXPORT_FAILOVER_PAUSED", "failover-paused")
    EXPORT_FAILOVER_GRANTED = ("SLOT_EXPORT_FAILOVER_GRANTED", "failover-granted")
    # terminal
    FAILED = ("SLOT_MIGRATION_JOB_FAILED", "failed")
    CANCELLED = ("SLOT_MIGRATION_JOB_CANCELLED", "cancelled")
    SUCCESS = ("SLOT_MIGRATION_JOB_SUCCESS", "success")

    @property
    def text(self) -> str:
        return self.value[1]


FINISHED: Final = frozenset({JobState.FAILED, JobState.CANCELLED, JobState.SUCCESS})


class Ev(enum.Enum):
    """The events a job reacts to; messages received are events named after the message."""

    CONNECTED = "connected"
    CONNECT_FAILED = "connect-failed"
    REPLY_OK = "reply-ok"
    REPLY_ERROR = "reply-error"
    SNAPSHOT_BEGIN = "snapshot-begin"
    SNAPSHOT_DONE = "snapshot-done"
    SNAPSHOT_FAILED = "snapshot-failed"
    ACK = "ack"
    SNAPSHOT_EOF = "snapshot-eof"
    REQUEST_PAUSE = "request-pause"
    PAUSED = "paused"
    REQUEST_FAILOVER = "request-failover"
    FAILOVER_GRANTED = "failover-granted"
    FINISH = "finish"
    TICK = "tick"
    TOPOLOGY = "topology"
    CANCEL = "cancel"
    LINK_LOST = "link-lost"
    FAIL = "fail"  # flush, OOM, apply error, promotion, restart ...: fail with a message


MESSAGE_EVENTS: Final[dict[type, Ev]] = {
    S.Ack: Ev.ACK,
    S.SnapshotEof: Ev.SNAPSHOT_EOF,
    S.RequestPause: Ev.REQUEST_PAUSE,
    S.Paused: Ev.PAUSED,
    S.RequestFailover: Ev.REQUEST_FAILOVER,
    S.FailoverGranted: Ev.FAILOVER_GRANTED,
    S.Finish: Ev.FINISH,
}


# ---- actions: what the server must do, in order ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Apply:
    """Target: run this command on the import client (no redirection, no expiry, no reply;
    ``SELECT`` included), and append it to the AOF as usual. An error reply must be reported
    back with :meth:`TargetJob.apply_failed`."""

    argv: list[bytes]


@dataclass(frozen=True, slots=True)
class Propagate:
    """Target: append this command (ESTABLISH / FINISH) to the AOF and the replication stream
    (forced propagation, spec 3.11)."""

    argv: list[bytes]


@dataclass(frozen=True, slots=True)
class HideSlots:
    """Target: keys of these slots (all dbs) exist but are not counted or listed (spec 3.10)."""

    ranges: S.Ranges


@dataclass(frozen=True, slots=True)
class UnhideSlots:
    ranges: S.Ranges


@dataclass(frozen=True, slots=True)
class DropSlots:
    """Target cleanup: delete every key of these slots in all dbs that this node does not own,
    propagating ``UNLINK`` per key (src/cluster_migrateslots.c delKeysNotOwnedByMyself)."""

    ranges: S.Ranges


@dataclass(frozen=True, slots=True)
class TakeOwnership:
    """Target: bump the config epoch without consensus, assign the slots to myself, save and
    fsync nodes.conf, broadcast PONG (src/cluster_migrateslots.c performSlotImportJobFailover)."""

    ranges: S.Ranges


@dataclass(frozen=True, slots=True)
class PauseWrites:
    """Source: refuse (hold) client writes, expiry and eviction touching these slots until
    ``until_ms`` or :class:`ResumeWrites` for this job. Issuing it again extends the pause."""

    job: bytes
    ranges: S.Ranges
    until_ms: int


@dataclass(frozen=True, slots=True)
class ResumeWrites:
    job: bytes


@dataclass(frozen=True, slots=True)
class DeleteSlots:
    """Source after success: delete the moved keys of these slots in all dbs (``UNLINK``
    propagated to AOF/replicas; src/cluster_legacy.c dirty-slot cleanup)."""

    ranges: S.Ranges


@dataclass(frozen=True, slots=True)
class StartSnapshot:
    """Source: take a snapshot of the slots now (fork or copy-on-write) and call
    :meth:`SourceJob.begin_snapshot`; when impossible (another child running) try later."""


@dataclass(frozen=True, slots=True)
class CloseLink:
    """Close the job's connection (after writing what :meth:`Job.data_to_send` still holds)."""


@dataclass(frozen=True, slots=True)
class Finished:
    """The job reached a terminal state (for logs and module events)."""

    state: JobState
    message: str


Action: TypeAlias = (
    Apply
    | Propagate
    | HideSlots
    | UnhideSlots
    | DropSlots
    | TakeOwnership
    | PauseWrites
    | ResumeWrites
    | DeleteSlots
    | StartSnapshot
    | CloseLink
    | Finished
)


@dataclass(frozen=True, slots=True)
class MigrationConfig:
    repl_timeout_ms: int = 60_000  # repl-timeout
    ack_interval_ms: int = 1_000  # clusterSlotMigrationCron run_with_period(1000)
    mf_timeout_ms: int = 5_000  # cluster-manual-failover-timeout
    max_failover_repl_bytes: int = 0  # slot-migration-max-failover-repl-bytes
    auth: tuple[bytes, ...] | None = None  # (masterauth,) or (masteruser, masterauth)
    snapshot_chunk_bytes: int = 64 * 1024


MF_PAUSE_MULT: Final = 2  # src/cluster_legacy.h CLUSTER_MF_PAUSE_MULT
OPERATION_TIMEOUT_MS: Final = 2_000  # src/cluster_legacy.h CLUSTER_OPERATION_TIMEOUT
ESTABLISH_REPLY_LIMIT: Final = 16 * 1024  # src/server.h PROTO_IOBUF_LEN

Handler: TypeAlias = Callable[..., None]
Row: TypeAlias = tuple[str, frozenset[JobState]]


def row(handler: str, *targets: JobState) -> Row:
    return handler, frozenset(targets)


ANY: Final = "any in-progress state"


class TransitionError(Exception):
    """A handler moved the job to a state its table row does not allow (a bug)."""


class Job:
    """Shared bookkeeping: identity, timestamps, message, the send buffer and the dispatcher."""

    TABLE: ClassVar[dict[tuple[JobState | str, Ev], Row]] = {}
    operation: ClassVar[bytes] = b""

    def __init__(
        self,
        name: bytes,
        ranges: S.Ranges,
        *,
        source_id: bytes,
        target_id: bytes,
        state: JobState,
        now_ms: int,
        config: MigrationConfig,
        tracking_only: bool = False,
    ) -> None:
        self.name = name
        self.ranges = ranges
        self.source_id = source_id
        self.target_id = target_id
        self.state = state
        self.config = config
        self.tracking_only = tracking_only
        self.created_ms = now_ms
        self.updated_ms = now_ms
        self.last_ack_ms = now_ms
        self.last_sent_ack_ms = now_ms
        self.message = ""
        self.cow_size = 0
        self._out = bytearray()
        self._actions: list[Action] = []
        self._commands = RequestParser()
        self.sent_bytes = 0  # everything handed out by data_to_send

    # -- queries ---------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def in_progress(self) -> bool:
        return self.state not in FINISHED and self.state is not JobState.CLEANING_UP

    @property
    def pending_bytes(self) -> int:
        """Bytes queued for the connection and not yet taken by :meth:`data_to_send`."""
        return len(self._out)

    def owns_slot(self, slot: int) -> bool:
        return S.in_ranges(slot, self.ranges)

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        self.sent_bytes += len(data)
        return data

    def entry(self) -> dict[bytes, bytes | int]:
        """One CLUSTER GETSLOTMIGRATIONS entry, fields in Valkey 9.1's order (spec 3.1)."""
        e: dict[bytes, bytes | int] = {
            b"name": self.name,
            b"operation": self.operation,
            b"slot_ranges": S.ranges_text(self.ranges),
        }
        if not self.tracking_only:
            e[b"target_node"] = self.target_id
            e[b"source_node"] = self.source_id
        e[b"create_time"] = self.created_ms // 1000
        e[b"last_update_time"] = self.updated_ms // 1000
        e[b"last_ack_time"] = self.last_ack_ms // 1000
        e[b"state"] = self.state.text.encode()
        e[b"message"] = self.message.encode()
        e[b"cow_size"] = self.cow_size
        e[b"remaining_repl_size"] = self.remaining_repl_size()
        return e

    def remaining_repl_size(self) -> int:
        return 0

    # -- machinery -------------------------------------------------------------------------
    def _send(self, msg: S.Message) -> None:
        self._out += S.encode(msg)

    def _act(self, action: Action) -> None:
        self._actions.append(action)

    def _take(self) -> list[Action]:
        out = self._actions
        self._actions = []
        return out

    def _goto(self, state: JobState, now_ms: int) -> None:
        if state is not self.state:
            self.state = state
            self.updated_ms = now_ms  # src/cluster_migrateslots.c updateSlotMigrationJobState

    def _dispatch(self, ev: Ev, now_ms: int, *args: Any) -> bool:
        """Run the handler of ``(state, ev)``; False when the table has no row for it."""
        if self.finished:
            return True  # terminal states ignore everything
        key: tuple[JobState | str, Ev] = (self.state, ev)
        entry = self.TABLE.get(key)
        if entry is None and self.in_progress:
            entry = self.TABLE.get((ANY, ev))
        if entry is None:
            return False
        handler_name, allowed = entry
        before = self.state
        handler: Handler = getattr(self, handler_name)
        handler(now_ms, *args)
        if self.state is not before and self.state not in allowed:
            raise TransitionError(
                f"{type(self).__name__}.{handler_name}: {before.text} -> {self.state.text}"
            )
        return True

    def _event(self, ev: Ev, now_ms: int, *args: Any) -> list[Action]:
        if not self._dispatch(ev, now_ms, *args) and self.in_progress:
            self._fail(now_ms, S.MSG_UNEXPECTED)
        return self._take()

    def _received_commands(self, data: bytes, now_ms: int) -> Iterable[list[bytes]]:
        self._commands.feed(data)
        while self.in_progress:
            try:
                cmd = self._commands.next_command()
            except ProtocolError:
                # src/networking.c: a protocol error closes the link
                self._dispatch(Ev.LINK_LOST, now_ms)
                return
            if cmd is None:
                return
            yield cmd

    def _message(self, argv: list[bytes], now_ms: int) -> None:
        """A received SYNCSLOTS command: dispatch it as its event."""
        try:
            msg = S.parse(argv)
        except CommandError:  # a malformed ESTABLISH/FINISH has no place on a live link
            self._fail(now_ms, S.MSG_UNEXPECTED)
            return
        if isinstance(msg, S.Unknown):
            self._fail(now_ms, S.MSG_UNKNOWN_SUB)
            return
        if isinstance(msg, S.Capa):
            return
        ev = MESSAGE_EVENTS.get(type(msg))
        if ev is None or not self._dispatch(ev, now_ms, msg):
            self._fail(now_ms, S.MSG_UNEXPECTED)

    def _fail(self, now_ms: int, message: str) -> None:
        raise NotImplementedError
