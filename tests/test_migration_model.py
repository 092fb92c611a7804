"""A Hypothesis state machine across two nodes: random writes in several dbs and slot
migrations back and forth (with cancels and broken links); the union of what the nodes serve
always equals one single-node engine that ran every acknowledged write.

In process (as tests/migration_world.py): two engines with their own SlotMigrations, one link
whose bytes go through a bandwidth-limited buffer and the RESP parser, and every action carried
out the way engine/server/migration_io.py does (imported keys applied with the loading
semantics and hidden until the takeover, the per-slot write pause, the source's deletion of
moved keys when it hears of the takeover a little later). Either node can be the source.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from migration_world import T0, TAGS

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
    Job,
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
from engine.errors import CommandError
from persistence.crc import key_slot
from persistence.resp import RequestParser
from persistence.resp.frames import Error

A, B = b"a" * 40, b"b" * 40
SLOTS = (100, 101, 102, 103)
DBS = (0, 2)
GOSSIP_MS = 30


class Node:
    def __init__(self, node_id: bytes, clock: ManualClock, cfg: MigrationConfig) -> None:
        self.id = node_id
        self.engine = Engine(clock=clock)
        self.client = self.engine.new_client()
        self.mig = SlotMigrations(node_id, cfg)
        self.view = dict.fromkeys(SLOTS, A)  # who owns what, as this node knows it
        self.paused: dict[bytes, tuple[S.Ranges, int]] = {}
        self.hidden: set[int] = set()

    def owns(self, slot: int) -> bool:
        return self.view[slot] == self.id

    def is_paused(self, slot: int, now: int) -> bool:
        return any(S.in_ranges(slot, r) and now <= u for r, u in self.paused.values())

    def run(self, db: int, argv: list[bytes], *, loading: bool = False) -> Any:
        e = self.engine
        e.execute(self.client, [b"SELECT", b"%d" % db])
        e.loading = loading
        try:
            reply, effects = e.execute(self.client, argv)
        finally:
            e.loading = False
        self.mig.feed(effects)
        return reply

    def slot_data(self, slot: int) -> dict[tuple[int, bytes], Any]:
        out = {}
        for db in self.engine.keyspace.dbs:
            for key in db.keys_in_slot(slot) if db.slot_keys is not None else db.data:
                if key_slot(key) == slot:
                    rec = db.record(key)
                    out[(db.id, key)] = (rec.value, rec.expire_at_ms)
        return out

    def delete_slots(self, slots: list[int]) -> None:
        for db in self.engine.keyspace.dbs:
            for key in [k for k in db.data if key_slot(k) in slots]:
                db.delete(key)


class Link:
    """One migration: its jobs, the two byte buffers, the parsers."""

    def __init__(self, src: Node, tgt: Node) -> None:
        self.src, self.tgt = src, tgt
        self.sjob: SourceJob | None = None
        self.tjob: TargetJob | None = None
        self.s2t = bytearray()
        self.t2s = bytearray()
        self.parser = RequestParser()
        self.s_closed = self.t_closed = False
        self.snapshot_wanted = False


class Migrations(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(T0)
        cfg = MigrationConfig(snapshot_chunk_bytes=256)
        self.nodes = {A: Node(A, self.clock, cfg), B: Node(B, self.clock, cfg)}
        self.model = Node(b"m" * 40, self.clock, cfg)
        self.owners = dict.fromkeys(SLOTS, A)  # the truth: who took the slots last
        self.moves = 0
        self.link: Link | None = None
        self.gossip: list[tuple[int, bytes, list[int]]] = []  # (when, to node, slots)
        self.n = 0
        for node in (*self.nodes.values(), self.model):
            node.engine.keyspace.enable_slot_index()

    @property
    def now(self) -> int:
        return self.clock.ms

    # -- rules ---------------------------------------------------------------------------
    @rule(slot=st.sampled_from(SLOTS), db=st.sampled_from(DBS), op=st.integers(0, 5),
          k=st.integers(0, 2))  # fmt: skip
    def write(self, slot: int, db: int, op: int, k: int) -> None:
        """A client write, served by whichever node owns the slot in its own view and is not
        paused (a client would follow MOVED there); not acknowledged otherwise."""
        self.n += 1
        key = TAGS[slot] + b":%d" % k
        argv = [
            [b"SET", key, b"v%d" % self.n],
            [b"RPUSH", key + b"l", b"%d" % self.n],
            [b"HSET", key + b"h", b"f%d" % (self.n % 3), b"%d" % self.n],
            [b"PEXPIREAT", key, b"4102444800000"],
            [b"DEL", key],
            [b"INCR", key + b"n"],
        ][op]
        for node in self.nodes.values():
            if node.owns(slot) and not node.is_paused(slot, self.now):
                reply = node.run(db, argv)
                assert not isinstance(reply, Error), reply
                self.model.run(db, argv)
                self.flush()
                return

    @precondition(lambda self: self.link is None)
    @rule(start=st.sampled_from(SLOTS), width=st.integers(0, 3))
    def migrate(self, start: int, width: int) -> None:
        ranges = ((start, min(start + width, SLOTS[-1])),)
        owner = self.owners[start]
        if any(self.owners[s] != owner for s in range(ranges[0][0], ranges[0][1] + 1)):
            return
        src = self.nodes[owner]
        tgt = self.nodes[B if owner == A else A]
        if any(not src.owns(s) for s in range(ranges[0][0], ranges[0][1] + 1)):
            return  # the source has not heard of its last import yet
        self.link = link = Link(src, tgt)
        argv = [b"CLUSTER", b"MIGRATESLOTS", b"SLOTSRANGE", b"%d" % ranges[0][0],
                b"%d" % ranges[0][1], b"NODE", tgt.id]  # fmt: skip
        [job] = src.mig.migrate_slots(argv, self.now, owner_of=src.view.get, known=_known)
        link.sjob = job
        self.src_actions(job.connected(self.now))

    @precondition(lambda self: self.link is not None)
    @rule(ms=st.integers(1, 40), times=st.integers(1, 5))
    def step(self, ms: int, times: int) -> None:
        for _ in range(times):
            self.tick(ms)

    @precondition(lambda self: self.link is not None and self.link.sjob is not None)
    @rule()
    def cancel(self) -> None:
        link = self.link
        assert link is not None and link.sjob is not None
        if link.sjob.in_progress:
            self.src_actions(link.sjob.cancel(self.now))

    @precondition(lambda self: self.link is not None)
    @rule()
    def cut(self) -> None:
        """The TCP connection breaks: bytes in flight are lost, both sides see EOF."""
        link = self.link
        assert link is not None
        link.s2t.clear()
        link.t2s.clear()
        if link.sjob is not None and not link.s_closed:
            link.s_closed = True
            self.src_actions(link.sjob.link_lost(self.now))
        if link.tjob is not None and not link.t_closed:
            link.t_closed = True
            self.tgt_actions(link.tjob.link_lost(self.now))

    @precondition(lambda self: self.link is not None or self.gossip)
    @rule()
    def settle(self) -> None:
        for _ in range(3000):
            if self.link is None and not self.gossip:
                break
            self.tick(10)
        assert self.link is None and not self.gossip, "the migration never settled"
        for slot in SLOTS:  # settled: the slot's keys are on its owner only
            other = self.nodes[B if self.owners[slot] == A else A]
            assert other.slot_data(slot) == {}, f"stray keys of slot {slot} on {other.id[:1]!r}"
        for node in self.nodes.values():
            assert not node.paused and not node.hidden

    # -- the invariant -------------------------------------------------------------------
    @invariant()
    def union_equals_the_model(self) -> None:
        for slot in SLOTS:
            owner = self.nodes[self.owners[slot]]
            assert owner.slot_data(slot) == self.model.slot_data(slot), f"slot {slot}"

    # -- machinery (what engine/server/migration_io.py does) -----------------------------
    def tick(self, ms: int) -> None:
        self.clock.ms += ms
        for when, to, slots in list(self.gossip):
            if self.now >= when:
                self.gossip.remove((when, to, slots))
                node = self.nodes[to]
                for s in slots:
                    node.view[s] = self.owners[s]
                node.delete_slots([s for s in slots if self.owners[s] != to])
                for job, actions in node.mig.topology(self.now, node.view.get):
                    self.run(job, actions)
        link = self.link
        if link is None:
            return
        if link.snapshot_wanted and link.sjob is not None:
            link.snapshot_wanted = False
            recs = [r for r in link.src.engine.keyspace.records()
                    if S.in_ranges(key_slot(r.key), link.sjob.ranges)]  # fmt: skip
            self.src_actions(link.sjob.begin_snapshot(self.now, recs))
        self.deliver(link)
        if link.sjob is not None and link.sjob.snapshotting:
            self.src_actions(link.sjob.pump_snapshot(self.now, 512))
        for node in self.nodes.values():
            for job, actions in node.mig.tick(self.now):
                self.run(job, actions)
        self.flush()
        done = (link.sjob is None or link.sjob.finished) and (
            link.tjob is None or link.tjob.finished
        )
        if done and link is self.link:
            self.link = None

    def deliver(self, link: Link, n: int = 700) -> None:
        if link.s2t:
            chunk = bytes(link.s2t[:n])
            del link.s2t[:n]
            link.parser.feed(chunk)
            for argv in link.parser.commands():
                if link.tjob is None:
                    tgt = link.tgt
                    try:
                        job, actions = tgt.mig.establish(
                            argv, self.now, owner_of=tgt.view.get, known=_known
                        )
                    except CommandError as e:  # e.g. it has not heard of the last move yet
                        link.t2s += b"-%s\r\n" % e.message.encode()
                        continue
                    link.tjob = job
                    link.t2s += b"+OK\r\n"
                    self.tgt_actions(actions)
                elif not link.t_closed:
                    self.tgt_actions(link.tjob.receive_command(argv, self.now))
        if link.t2s and link.sjob is not None and not link.s_closed:
            chunk = bytes(link.t2s[:n])
            del link.t2s[:n]
            self.src_actions(link.sjob.receive_data(chunk, self.now, unsent=len(link.s2t)))
        if link.s_closed and not link.s2t and link.tjob is not None and not link.t_closed:
            link.t_closed = True
            self.tgt_actions(link.tjob.link_lost(self.now))
        if link.t_closed and not link.t2s and link.sjob is not None and not link.s_closed:
            link.s_closed = True
            self.src_actions(link.sjob.link_lost(self.now))

    def flush(self) -> None:
        link = self.link
        if link is None:
            return
        if link.sjob is not None and not link.s_closed:
            link.s2t += link.sjob.data_to_send()
        if link.tjob is not None and not link.t_closed:
            link.t2s += link.tjob.data_to_send()
        if link.sjob is not None:
            link.sjob.transport_backlog = len(link.s2t)

    def run(self, job: Job, actions: list[Action]) -> None:
        if isinstance(job, SourceJob):
            self.src_actions(actions, job)
        else:
            self.tgt_actions(actions, job)

    def src_actions(self, actions: list[Action], job: Job | None = None) -> None:
        link = self.link
        job = job or (link.sjob if link else None)
        assert job is not None
        node = self.nodes[job.source_id]
        for a in actions:
            if isinstance(a, StartSnapshot) and link is not None:
                link.snapshot_wanted = True
            elif isinstance(a, PauseWrites):
                node.paused[a.job] = (a.ranges, a.until_ms)
            elif isinstance(a, ResumeWrites):
                node.paused.pop(a.job, None)
            elif isinstance(a, DeleteSlots):
                node.delete_slots([x for s, e in a.ranges for x in range(s, e + 1)])
            elif isinstance(a, CloseLink) and link is not None and link.sjob is job:
                link.s_closed = True
        self.flush()

    def tgt_actions(self, actions: list[Action], job: Job | None = None) -> None:
        link = self.link
        job = job or (link.tjob if link else None)
        assert job is not None
        node = self.nodes[job.target_id]
        for a in actions:
            if isinstance(a, Apply):
                reply, _ = _apply(node, a.argv)
                if isinstance(reply, Error):
                    assert isinstance(job, TargetJob)
                    self.tgt_actions(job.apply_failed(self.now), job)
            elif isinstance(a, HideSlots):
                node.hidden.update(x for s, e in a.ranges for x in range(s, e + 1))
            elif isinstance(a, UnhideSlots):
                node.hidden.difference_update(x for s, e in a.ranges for x in range(s, e + 1))
            elif isinstance(a, DropSlots):
                slots = [x for s, e in a.ranges for x in range(s, e + 1)]
                node.delete_slots([x for x in slots if self.owners[x] != node.id])
            elif isinstance(a, TakeOwnership):
                slots = [x for s, e in a.ranges for x in range(s, e + 1)]
                for x in slots:
                    self.owners[x] = node.id
                    node.view[x] = node.id
                other = A if node.id == B else B
                self.moves += 1
                event(f"moves so far: {min(self.moves, 3)}")
                self.gossip.append((self.now + GOSSIP_MS, other, slots))
            elif isinstance(a, CloseLink) and link is not None and link.tjob is job:
                link.t_closed = True
            elif isinstance(a, Finished):
                event(f"import {a.state.text}: {a.message[:30]}")
            elif not isinstance(a, Propagate):
                raise AssertionError(a)
        self.flush()


def _apply(node: Node, argv: list[bytes]) -> tuple[Any, Any]:
    """The import client: the loading semantics (no expiry, past TTLs stored), no routing."""
    e = node.engine
    e.loading = True
    try:
        return e.execute(node.client, argv)
    finally:
        e.loading = False


def _known(node: bytes) -> bool:
    return node in (A, B)


Migrations.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
TestMigrations = Migrations.TestCase
