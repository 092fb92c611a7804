"""Atomic slot migration: the node's list of jobs and the user commands (spec 3.1).

How this works: :class:`SlotMigrations` holds every export (:class:`SourceJob`) and import
(:class:`TargetJob`) of this node, newest first, as ``CLUSTER GETSLOTMIGRATIONS`` lists them.
It parses ``CLUSTER MIGRATESLOTS`` and ``CLUSTER SYNCSLOTS ESTABLISH`` with Valkey's checks and
errors, cancels exports, routes propagated writes to the exports whose slots they touch, and
fans timer ticks and topology changes out to the jobs. Everything is sans-IO: the methods
return ``(job, actions)`` pairs and each job's bytes wait in ``job.data_to_send()``; the server
(engine/server/) owns the sockets, the fork, the pause and the keyspace operations the actions
ask for. The protocol itself lives in migration_source.py / migration_target.py (the state
tables) and syncslots.py (the messages).

Server checklist:
- ``CLUSTER MIGRATESLOTS``: ``jobs = m.migrate_slots(argv, now, ...)``, reply ``+OK``, then open
  a connection per job to its ``target_id`` and call ``job.connected(now)``.
- ``CLUSTER SYNCSLOTS ESTABLISH`` from a client: ``job, actions = m.establish(argv, now, ...)``,
  reply ``+OK``, turn replies off and give that connection's later input to the job.
- ``CLUSTER SYNCSLOTS`` anything else outside a migration link: ``ERR syntax error`` / the job's
  handling; ``CLUSTER GETSLOTMIGRATIONS``: ``m.entries()``; ``CLUSTER CANCELSLOTMIGRATIONS``:
  ``m.cancel(now)``.
- after every command: ``m.feed(effects)``; every ~100 ms: ``m.tick(now)``; on slot ownership
  change: ``m.topology(now, owner_of)``; on FLUSHDB/FLUSHALL: ``m.flushed(now)``.
- keys of ``m.importing_slots()`` are hidden (DBSIZE, KEYS, SCAN, RANDOMKEY, active expiry).

engine/server/migration_io.py is that server side; tests/test_migration_model.py drives two
nodes in process the same way.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

from engine import errors as E
from engine.cluster import syncslots as S
from engine.cluster.migration_job import (
    Action,
    Apply,
    CloseLink,
    DeleteSlots,
    DropSlots,
    Finished,
    HideSlots,
    Job,
    JobState,
    MigrationConfig,
    PauseWrites,
    Propagate,
    ResumeWrites,
    StartSnapshot,
    TakeOwnership,
    UnhideSlots,
)
from engine.cluster.migration_source import SourceJob, encode_snapshot
from engine.cluster.migration_target import TargetJob
from engine.commands.table import lookup
from engine.errors import SYNTAX, CommandError
from persistence.crc import key_slot

__all__ = [
    "Action",
    "Apply",
    "CloseLink",
    "DeleteSlots",
    "DropSlots",
    "Finished",
    "HideSlots",
    "Job",
    "JobState",
    "MigrationConfig",
    "MigrationHost",
    "PauseWrites",
    "Propagate",
    "ResumeWrites",
    "SlotMigrations",
    "SourceJob",
    "StartSnapshot",
    "TakeOwnership",
    "TargetJob",
    "UnhideSlots",
    "config_from",
    "encode_snapshot",
    "owner_of_ranges",
]

LOG_MAX_LEN: Final = 1000  # cluster-slot-migration-log-max-len default


def config_from(values: Callable[[str], Any]) -> MigrationConfig:
    """MigrationConfig from the server's settings (``values(name)``)."""
    return MigrationConfig(
        repl_timeout_ms=int(values("repl-timeout")) * 1000,
        mf_timeout_ms=int(values("cluster-manual-failover-timeout")),
        max_failover_repl_bytes=int(values("slot-migration-max-failover-repl-bytes")),
    )


OwnerOf = Callable[[int], bytes | None]
Outcome = list[tuple[Job, list[Action]]]


class MigrationHost(Protocol):
    """What the CLUSTER command handlers (engine/commands/cluster.py) ask of the server's
    migration I/O (engine/server/migration_io.py), found at ``engine.migration``."""

    def migrate_slots(self, client_id: int, argv: list[bytes], now_ms: int) -> Any: ...

    def syncslots(self, client_id: int, argv: list[bytes], now_ms: int) -> Any: ...

    def cancel(self, now_ms: int) -> Any: ...

    def entries(self) -> list[dict[bytes, bytes | int]]: ...

    def setslot_error(self) -> str | None: ...


def owner_of_ranges(ranges: S.Ranges, owner_of: OwnerOf) -> bytes | None:
    """The one node owning every slot of ``ranges``, None if split or unassigned
    (src/cluster_migrateslots.c getClusterNodeBySlotRanges)."""
    owner: bytes | None = None
    for s, e in ranges:
        for slot in range(s, e + 1):
            node = owner_of(slot)
            if node is None or (owner is not None and node != owner):
                return None
            owner = node
    return owner


def command_slot(argv: list[bytes]) -> int | None:
    """The slot of a propagated command (first key), None for keyless ones."""
    cmd = lookup(argv)
    if cmd is None:
        return None
    positions = cmd.key_positions(argv)
    return key_slot(argv[positions[0]]) if positions else None


class SlotMigrations:
    def __init__(
        self,
        myself: bytes,
        config: MigrationConfig | None = None,
        *,
        log_max_len: int = LOG_MAX_LEN,
        new_name: Callable[[], bytes] | None = None,
    ) -> None:
        self.myself = myself
        self.config = config or MigrationConfig()
        self.log_max_len = log_max_len
        self.jobs: list[Job] = []  # newest first
        self._new_name = new_name or (lambda: secrets.token_hex(20).encode())

    # -- queries ---------------------------------------------------------------------------
    def exports(self) -> list[SourceJob]:
        return [j for j in self.jobs if isinstance(j, SourceJob)]

    def imports(self) -> list[TargetJob]:
        return [j for j in self.jobs if isinstance(j, TargetJob)]

    def job(self, name: bytes) -> Job | None:
        return next((j for j in self.jobs if j.name == name), None)

    def is_exporting(self, slot: int) -> bool:
        return any(not j.finished and j.owns_slot(slot) for j in self.exports())

    def is_importing(self, slot: int) -> bool:
        return any(not j.finished and j.owns_slot(slot) for j in self.imports())

    def importing_slots(self) -> list[S.Range]:
        return [r for j in self.imports() if not j.finished for r in j.ranges]

    def setslot_error(self) -> str | None:
        """CLUSTER SETSLOT is refused while a job is in progress (spec 3.9)."""
        if any(j.in_progress for j in self.imports()):
            return E.ERR_SETSLOT_IMPORTING
        if any(j.in_progress for j in self.exports()):
            return E.ERR_SETSLOT_EXPORTING
        return None

    def entries(self) -> list[dict[bytes, bytes | int]]:
        """CLUSTER GETSLOTMIGRATIONS: one map per job, newest first."""
        return [j.entry() for j in self.jobs]

    # -- user commands ---------------------------------------------------------------------
    def migrate_slots(
        self,
        argv: list[bytes],
        now_ms: int,
        *,
        owner_of: OwnerOf,
        known: Callable[[bytes], bool],
        primary: bool = True,
        manual_importing: bool = False,
        manual_migrating: bool = False,
    ) -> list[SourceJob]:
        """``CLUSTER MIGRATESLOTS SLOTSRANGE s e [s e ...] NODE id [...]``: every group becomes
        a job in ``connecting``, or an error is raised and none is created
        (src/cluster_migrateslots.c clusterCommandMigrateSlots)."""
        _can_start(primary, manual_importing, manual_migrating)
        new: list[SourceJob] = []
        i = 2
        n = len(argv)
        while i < n:
            if argv[i].lower() != b"slotsrange":
                raise CommandError(SYNTAX)
            ranges, i, owner = S.parse_slot_ranges(argv, i + 1, owner_of)
            if owner != self.myself:
                raise CommandError(E.ERR_NOT_SERVED)
            for s, e in ranges:
                for slot in range(s, e + 1):
                    if self.is_exporting(slot):
                        raise S.err_already_migrating(slot)
            if any(S.ranges_overlap(j.ranges, ranges) for j in new):
                raise CommandError(E.ERR_RANGES_OVERLAP)
            if i + 1 >= n or argv[i].lower() != b"node":
                raise CommandError(SYNTAX)
            target = argv[i + 1]
            if len(target) != S.NAME_LEN:
                raise S.err_invalid_node(target)
            if not known(target):
                raise S.err_unknown_node(target)
            if target == self.myself:
                raise CommandError(E.ERR_TARGET_SELF)
            i += 2
            job = SourceJob(
                self._new_name(), ranges, source_id=self.myself, target_id=bytes(target),
                now_ms=now_ms, config=self.config,
            )  # fmt: skip
            new.insert(0, job)
        for job in new:  # listAddNodeHead twice over: the first group ends up newest
            self.jobs.insert(0, job)
        return list(reversed(new))

    def establish(
        self,
        argv: list[bytes],
        now_ms: int,
        *,
        owner_of: OwnerOf,
        known: Callable[[bytes], bool],
        primary: bool = True,
        manual_importing: bool = False,
        manual_migrating: bool = False,
    ) -> tuple[TargetJob, list[Action]]:
        """``CLUSTER SYNCSLOTS ESTABLISH`` from a source: validate as
        clusterCommandSyncSlotsEstablish does, create the import (reply ``+OK``)."""
        _can_start(primary, manual_importing, manual_migrating)
        msg = S.parse(argv, owner_of)
        if not isinstance(msg, S.Establish):
            raise CommandError(SYNTAX)
        if msg.source is None:
            raise CommandError(SYNTAX)
        # Valkey checks these while parsing, in argument order; ESTABLISH puts SOURCE first
        if not known(msg.source):
            raise CommandError(E.ERR_UNKNOWN_SOURCE)
        if msg.source == self.myself:
            raise CommandError(E.ERR_SOURCE_SELF)
        for s, e in msg.ranges:
            for slot in range(s, e + 1):
                if self.is_importing(slot):
                    raise CommandError(E.ERR_ALREADY_IMPORTING)
        if owner_of_ranges(msg.ranges, owner_of) != msg.source:
            raise CommandError(E.ERR_OWNERSHIP)
        job, actions = TargetJob.established(
            msg, myself=self.myself, now_ms=now_ms, config=self.config
        )
        self.jobs.insert(0, job)
        return job, actions

    def track(
        self, name: bytes, ranges: S.Ranges, now_ms: int, *, primary: bool
    ) -> tuple[TargetJob, list[Action]]:
        """A tracking-only import (ESTABLISH via replication, or RDB opcode 243 on load)."""
        job, actions = TargetJob.tracking(name, ranges, now_ms=now_ms, primary=primary)
        self.jobs.append(job)  # src/cluster_migrateslots.c clusterRDBLoadSlotImport: at the tail
        return job, actions

    def after_load(self, now_ms: int, *, primary: bool) -> Outcome:
        """After loading RDB/AOF: a primary fails the imports it restored ("Process
        restarted"), dropping their keys (clusterCleanSlotImportsAfterLoad)."""
        if not primary:
            return []
        return [(j, j.fail(now_ms, S.MSG_RESTARTED)) for j in self.imports() if j.in_progress]

    def cancel(self, now_ms: int) -> Outcome:
        """``CLUSTER CANCELSLOTMIGRATIONS``: every in-progress export -> ``cancelled``."""
        if not any(not j.finished for j in self.exports()):
            raise CommandError(E.ERR_NO_MIGRATIONS)
        return [(j, j.cancel(now_ms)) for j in self.exports() if j.in_progress]

    # -- events ----------------------------------------------------------------------------
    def feed(self, effects: Iterable[tuple[int, list[bytes]]]) -> None:
        """Propagated writes ``(db, argv)``: each goes to the exports whose slots it touches."""
        exports = [j for j in self.exports() if j.in_progress]
        if not exports:
            return
        for db, argv in effects:
            if db < 0:
                continue  # MULTI/EXEC: the move is atomic anyway
            slot = command_slot(argv)
            if slot is None:
                continue
            for job in exports:
                job.write_propagated(db, argv, slot)

    def tick(self, now_ms: int) -> Outcome:
        out: Outcome = []
        for job in list(self.jobs):
            if job.finished:
                continue
            assert isinstance(job, SourceJob | TargetJob)
            actions = job.tick(now_ms)
            if actions:
                out.append((job, actions))
        self.trim()
        return out

    def topology(self, now_ms: int, owner_of: OwnerOf) -> Outcome:
        out: Outcome = []
        for job in list(self.jobs):
            if job.in_progress:
                assert isinstance(job, SourceJob | TargetJob)
                actions = job.topology(now_ms, owner_of_ranges(job.ranges, owner_of))
                if actions:
                    out.append((job, actions))
        return out

    def flushed(self, now_ms: int) -> Outcome:
        """FLUSHDB/FLUSHALL fails every in-progress job (clusterHandleFlushDuringSlotMigration)."""
        out: Outcome = []
        for job in list(self.jobs):
            if job.in_progress:
                assert isinstance(job, SourceJob | TargetJob)
                out.append((job, job.fail(now_ms, S.MSG_FLUSHED)))
        return out

    def trim(self) -> None:
        """Drop the oldest finished jobs beyond the log length (clusterCleanupSlotMigrationLog)."""
        i = len(self.jobs) - 1
        while len(self.jobs) > self.log_max_len and i >= 0:
            if self.jobs[i].finished:
                del self.jobs[i]
            i -= 1


def _can_start(primary: bool, manual_importing: bool, manual_migrating: bool) -> None:
    # src/cluster_migrateslots.c validateSlotMigrationCanStartOrReply
    if not primary:
        raise CommandError(E.ERR_NOT_PRIMARY)
    if manual_importing:
        raise CommandError(E.ERR_MANUAL_IMPORT)
    if manual_migrating:
        raise CommandError(E.ERR_MANUAL_MIGRATE)
