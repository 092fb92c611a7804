"""An in-memory source and target node for the slot-migration machines (tests only).

Each node is an in-process Engine plus a ``SlotMigrations``; every byte a job sends goes through
a bandwidth-limited link and is parsed with ``persistence.resp`` on the other side, and the
actions are carried out the way engine/server/ will (snapshot from the keyspace, per-slot write
pause, takeover, cleanup). A third "shadow" engine runs every acknowledged write without any
migration: after a migration the slots' keys must equal the shadow's on exactly one node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.clock import ManualClock
from engine.cluster import syncslots as S
from engine.cluster.migration import (
    Action,
    Apply,
    CloseLink,
    DeleteSlots,
    DropSlots,
    Finished,
    HideSlots,
    JobState,
    MigrationConfig,
    PauseWrites,
    Propagate,
    ResumeWrites,
    SlotMigrations,
    SourceJob,
    StartSnapshot,
    TakeOwnership,
    TargetJob,
    UnhideSlots,
)
from engine.engine import Engine
from persistence.crc import key_slot
from persistence.records import StreamValue
from persistence.resp import RequestParser
from persistence.resp.frames import Error
from persistence.resp.reply import ok

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "valkey-9.1.2" / "slot_migration"
SRC = b"eee60c2fec6c9c4516175d74f503adc7737e2cfe"
TGT = b"d9f368b78b28f205e9c4a505e74474408532de4c"
OTHER = b"a0f35465c7d34b7bd88028f3e5ec6796a3c8009e"
JOB = b"626c5672c38e1b5a8ac23913907cac1afaeda4a0"
RANGES = ((100, 102),)
T0 = 1_795_694_845_000  # after the fixture's XCLAIM TIME (future times are clamped)
J = JobState


def tag_for(slot: int) -> bytes:
    """A hash tag that lands in ``slot``."""
    for i in range(200_000):
        t = b"t%d" % i
        if key_slot(t) == slot:
            return b"{" + t + b"}"
    raise AssertionError(slot)


TAGS = {s: tag_for(s) for s in (100, 101, 102, 103, 5000)}


class Node:
    def __init__(self, node_id: bytes, clock: ManualClock, cfg: MigrationConfig) -> None:
        self.id = node_id
        self.engine = Engine(clock=clock)
        self.client = self.engine.new_client()
        self.mig = SlotMigrations(node_id, cfg, new_name=lambda: JOB)
        self.paused: dict[bytes, tuple[S.Ranges, int]] = {}
        self.hidden: list[S.Range] = []
        self.aof: list[list[bytes]] = []
        self.finished: list[tuple[JobState, str]] = []
        self.deleted_slots = False

    def run(self, db: int, argv: list[bytes]) -> Any:
        self.engine.execute(self.client, [b"SELECT", b"%d" % db])
        reply, effects = self.engine.execute(self.client, argv)
        self.mig.feed(effects)
        self.aof.extend(a for _, a in effects)
        return reply

    def slot_data(self, ranges: S.Ranges = RANGES) -> dict[tuple[int, bytes], Any]:
        return {
            (r.db, r.key): (_comparable(r.value), r.expire_at_ms)
            for r in self.engine.keyspace.records()
            if S.in_ranges(key_slot(r.key), ranges)
        }

    def delete_slots(self, ranges: S.Ranges) -> None:
        for db in self.engine.keyspace.dbs:
            for key in [k for k in db.data if S.in_ranges(key_slot(k), ranges)]:
                db.delete(key)
                self.aof.append([b"UNLINK", key])


def _comparable(value: Any) -> Any:
    """Consumer seen/active times are not in the AOF-rewrite forms (src/aof.c: a claimed
    consumer is created at load time), so they cannot survive a migration; leave them out."""
    if isinstance(value, StreamValue):
        for g in value.groups:
            for c in g.consumers:
                c.seen_time_ms = c.active_time_ms = 0
    return value


class World:
    """Two nodes, one migration link, a clock, a slot map both nodes see (the target's
    takeover reaches the source ``gossip_ms`` later)."""

    def __init__(
        self,
        *,
        bandwidth: int = 1 << 20,
        chunk: int = 4096,
        gossip_ms: int = 20,
        cfg: MigrationConfig | None = None,
    ) -> None:
        self.clock = ManualClock(T0)
        self.cfg = cfg or MigrationConfig(snapshot_chunk_bytes=chunk)
        self.src = Node(SRC, self.clock, self.cfg)
        self.tgt = Node(TGT, self.clock, self.cfg)
        self.shadow = Node(OTHER, self.clock, self.cfg)  # every acknowledged write, no migration
        self.owners: dict[int, bytes] = {}
        self.src_view: dict[int, bytes] = {}
        self.bandwidth = bandwidth
        self.gossip_ms = gossip_ms
        self.gossip_at: int | None = None
        self.s2t = bytearray()
        self.t2s = bytearray()
        self.trace: list[tuple[str, list[bytes]]] = []  # ("s"|"t", argv) in send order
        self._slog = RequestParser()
        self._tlog = RequestParser()
        self._tparser = RequestParser()
        self.sjob: SourceJob | None = None
        self.tjob: TargetJob | None = None
        self.s_closed = self.t_closed = False
        self.target_dead = False
        self.pause_tail: int | None = None
        self.paused_at: int | None = None
        self.resumed_at: int | None = None
        self.defer_snapshot = True
        self.snapshot_wanted = False

    @property
    def now(self) -> int:
        return self.clock.ms

    def owner(self, slot: int) -> bytes:
        return self.owners.get(slot, SRC)

    def src_owner(self, slot: int) -> bytes:
        return self.src_view.get(slot, SRC)

    def known(self, node: bytes) -> bool:
        return node in (SRC, TGT, OTHER)

    # -- client writes ---------------------------------------------------------------------
    def write(self, db: int, argv: list[bytes]) -> bool:
        """A client write at the source; False when redirected or held by the pause."""
        slot = key_slot(argv[1])
        if self.src_owner(slot) != SRC:
            return False
        for ranges, until in self.src.paused.values():
            if S.in_ranges(slot, ranges) and self.now <= until:
                return False
        reply = self.src.run(db, argv)
        assert not isinstance(reply, Error), reply
        self.shadow.run(db, argv)
        self.flush()
        return True

    # -- the migration ---------------------------------------------------------------------
    def start(self, ranges: S.Ranges = RANGES) -> SourceJob:
        argv = [b"CLUSTER", b"MIGRATESLOTS", b"SLOTSRANGE"]
        for s, e in ranges:
            argv += [b"%d" % s, b"%d" % e]
        [job] = self.src.mig.migrate_slots(
            [*argv, b"NODE", TGT], self.now, owner_of=self.src_owner, known=self.known
        )
        self.sjob = job
        self.src_actions(job.connected(self.now))
        return job

    def flush(self) -> None:
        if self.sjob is not None and not self.s_closed:
            data = self.sjob.data_to_send()
            self.s2t += data
            self._slog.feed(data)
            self.trace += [("s", c) for c in self._slog.commands()]
        if self.tjob is not None and not self.t_closed:
            data = self.tjob.data_to_send()
            self.t2s += data
            self._tlog.feed(data)
            self.trace += [("t", c) for c in self._tlog.commands()]

    def src_actions(self, actions: list[Action]) -> None:
        job = self.sjob
        assert job is not None
        for a in actions:
            if isinstance(a, StartSnapshot) and self.defer_snapshot:
                self.snapshot_wanted = True  # e.g. another child is running: next step
            elif isinstance(a, StartSnapshot):
                self.snapshot_wanted = False
                records = [
                    r
                    for r in self.src.engine.keyspace.records()
                    if S.in_ranges(key_slot(r.key), job.ranges)
                ]
                self.src_actions(job.begin_snapshot(self.now, records))
            elif isinstance(a, PauseWrites):
                if self.paused_at is None:
                    self.paused_at = self.now
                    self.pause_tail = job.pending_bytes + len(self.s2t)
                self.src.paused[a.job] = (a.ranges, a.until_ms)
            elif isinstance(a, ResumeWrites):
                self.src.paused.pop(a.job, None)
                self.resumed_at = self.now
            elif isinstance(a, DeleteSlots):
                self.src.delete_slots(a.ranges)
                self.src.deleted_slots = True
            elif isinstance(a, CloseLink):
                self.s_closed = True
            elif isinstance(a, Finished):
                self.src.finished.append((a.state, a.message))
            else:
                raise AssertionError(a)
        self.flush()

    def tgt_actions(self, actions: list[Action]) -> None:
        job = self.tjob
        assert job is not None
        for a in actions:
            if isinstance(a, Apply):
                reply, effects = self.tgt.engine.execute(self.tgt.client, a.argv)
                self.tgt.aof.extend(x for _, x in effects)
                if isinstance(reply, Error):
                    self.tgt_actions(job.apply_failed(self.now))
            elif isinstance(a, Propagate):
                self.tgt.aof.append(a.argv)
            elif isinstance(a, HideSlots):
                self.tgt.hidden += a.ranges
            elif isinstance(a, UnhideSlots):
                for r in a.ranges:
                    self.tgt.hidden.remove(r)
            elif isinstance(a, DropSlots):
                mine = tuple(r for r in a.ranges if self.owner(r[0]) != TGT)
                self.tgt.delete_slots(mine)
            elif isinstance(a, TakeOwnership):
                for s, e in a.ranges:
                    for slot in range(s, e + 1):
                        self.owners[slot] = TGT
                self.gossip_at = self.now + self.gossip_ms
            elif isinstance(a, CloseLink):
                self.t_closed = True
            elif isinstance(a, Finished):
                self.tgt.finished.append((a.state, a.message))
            else:
                raise AssertionError(a)
        self.flush()

    def deliver(self) -> None:
        n = self.bandwidth
        if self.s2t and not self.target_dead:
            chunk = bytes(self.s2t[:n])
            del self.s2t[:n]
            self._tparser.feed(chunk)
            for argv in self._tparser.commands():
                if self.tjob is None:
                    job, actions = self.tgt.mig.establish(
                        argv, self.now, owner_of=self.owner, known=self.known
                    )
                    self.tjob = job
                    self.t2s += ok()  # the command's reply; replies are off from now on
                    self.trace.append(("t", [b"+OK"]))
                    self.tgt_actions(actions)
                elif not self.t_closed:
                    self.tgt_actions(self.tjob.receive_command(argv, self.now))
        if self.t2s and self.sjob is not None and not self.s_closed:
            chunk = bytes(self.t2s[:n])
            del self.t2s[:n]
            self.src_actions(self.sjob.receive_data(chunk, self.now, unsent=len(self.s2t)))
        # a closed side's peer sees EOF once the bytes already sent have arrived
        if self.s_closed and not self.s2t and self.tjob is not None and not self.t_closed:
            self.tgt_actions(self.tjob.link_lost(self.now))
        if self.t_closed and not self.t2s and self.sjob is not None and not self.s_closed:
            self.src_actions(self.sjob.link_lost(self.now))

    def step(self, ms: int = 10) -> None:
        self.clock.ms += ms
        job = self.sjob
        if job is not None and self.snapshot_wanted and job.state is J.WAITING_TO_SNAPSHOT:
            self.defer_snapshot = False
            self.src_actions([StartSnapshot()])
            self.defer_snapshot = True
        if self.gossip_at is not None and self.now >= self.gossip_at:
            self.gossip_at = None
            lost = [s for s, o in self.owners.items() if o != SRC and self.src_owner(s) == SRC]
            self.src_view.update(self.owners)
            if lost:  # src/cluster_legacy.c: keys of slots lost to another node are deleted
                self.src.delete_slots(tuple((s, s) for s in lost))
            out = self.src.mig.topology(self.now, self.src_owner)
            for _, actions in out:
                self.src_actions(actions)
        self.deliver()
        job = self.sjob
        if job is not None and job.snapshotting:
            self.src_actions(job.pump_snapshot(self.now))
        if job is not None:
            job.transport_backlog = len(self.s2t)
        for _, actions in self.src.mig.tick(self.now):
            self.src_actions(actions)
        if self.tjob is not None and not self.target_dead:
            for _, actions in self.tgt.mig.tick(self.now):
                self.tgt_actions(actions)
        self.flush()

    def until(self, pred: Any, ms: int = 10, max_steps: int = 10_000) -> None:
        for _ in range(max_steps):
            if pred():
                return
            self.step(ms)
        raise AssertionError("condition never reached")

    def settled(self) -> bool:
        s = self.sjob is None or self.sjob.finished
        t = self.tjob is None or self.tjob.finished or self.target_dead
        return s and t and self.gossip_at is None

    def run(self, max_steps: int = 10_000, ms: int = 10) -> None:
        for _ in range(max_steps):
            if self.settled():
                return
            self.step(ms)
        raise AssertionError("migration did not settle")

    def cut(self) -> None:
        """The TCP connection breaks: in-flight bytes are lost, both sides see EOF."""
        self.s2t.clear()
        self.t2s.clear()
        if self.sjob is not None and not self.s_closed:
            self.s_closed = True
            self.src_actions(self.sjob.link_lost(self.now))
        if self.tjob is not None and not self.t_closed:
            self.t_closed = True
            self.tgt_actions(self.tjob.link_lost(self.now))

    def kinds(self, side: str) -> list[str]:
        """Message kinds one side sent, ACKs left out, consecutive data commands as one."""
        out: list[str] = []
        for who, argv in self.trace:
            if who != side:
                continue
            kind = kind_of(argv)
            if kind == "ACK" or (kind == "data" and out and out[-1] == "data"):
                continue
            out.append(kind)
        return out

    def data_sent(self) -> list[bytes]:
        return [b" ".join(a) for who, a in self.trace if who == "s" and kind_of(a) == "data"]


def kind_of(argv: list[bytes]) -> str:
    if argv == [b"+OK"]:
        return "+OK"
    if S.is_syncslots(argv):
        return argv[2].decode().upper()
    return "data"


def populate(w: World, keys_per_slot: int = 3, dbs: tuple[int, ...] = (0, 3)) -> None:
    for db in dbs:
        for slot in (100, 101, 102, 103, 5000):
            t = TAGS[slot]
            for i in range(keys_per_slot):
                assert w.write(db, [b"SET", t + b":s%d" % i, b"v%d" % i])
            assert w.write(db, [b"RPUSH", t + b":l", b"a", b"b"])
            assert w.write(db, [b"HSET", t + b":h", b"f", b"v"])
            assert w.write(db, [b"PEXPIREAT", t + b":s0", b"4102444800000"])


def check_all_or_nothing(w: World) -> bool:
    """Never split: the slots' keys are all on the node that owns them and none elsewhere.
    Returns True for a successful move."""
    expected = w.shadow.slot_data()
    moved = w.owner(100) == TGT
    if moved:
        assert w.tjob is not None and w.tjob.state is J.SUCCESS
        assert w.tgt.slot_data() == expected
        assert w.src.slot_data() == {}
        assert not w.tgt.hidden
    else:
        assert w.tgt.slot_data() == {}, "a failed import must leave nothing behind"
        assert w.src.slot_data() == expected
        assert not w.src.deleted_slots
        if w.tjob is not None and not w.target_dead:
            assert w.tjob.state is J.FAILED and not w.tgt.hidden
    # writes to other slots never moved
    others = ((103, 103), (5000, 5000))
    assert w.src.slot_data(others) == w.shadow.slot_data(others)
    assert w.tgt.slot_data(others) == {}
    assert not w.src.paused, "the source must never stay paused"
    return moved
