"""The sans-IO atomic slot migration machines (engine/cluster/migration*.py, syncslots.py).

A source and a target node (each an in-process Engine + SlotMigrations) are driven against each
other in memory: every byte one job sends goes through a bandwidth-limited "link" and is parsed
by ``persistence.resp`` on the other side; actions (snapshot, pause, takeover, cleanup) are
carried out by the small ``World`` below, the way engine/server/ will. Checked against
fixtures/valkey-9.1.2/slot_migration/ (the decoded TCP stream of a real migration, the
GETSLOTMIGRATIONS entries, the wrong-database bug).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    encode_snapshot,
)
from engine.engine import Engine
from engine.errors import CommandError
from persistence.crc import key_slot
from persistence.records import KeyRecord, StreamValue, StringValue
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
            if isinstance(a, StartSnapshot):
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
        if self.gossip_at is not None and self.now >= self.gossip_at:
            self.gossip_at = None
            lost = [s for s, o in self.owners.items() if o != SRC and self.src_owner(s) == SRC]
            self.src_view.update(self.owners)
            if lost and not self.src.deleted_slots:  # cluster_legacy dirty-slot cleanup
                pass  # the job's DeleteSlots does it on success (checked by the tests)
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
            kind = _kind(argv)
            if kind == "ACK" or (kind == "data" and out and out[-1] == "data"):
                continue
            out.append(kind)
        return out

    def data_sent(self) -> list[bytes]:
        return [b" ".join(a) for who, a in self.trace if who == "s" and _kind(a) == "data"]


def _kind(argv: list[bytes]) -> str:
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


# ---- messages --------------------------------------------------------------------------------


def test_establish_bytes_are_valkeys() -> None:
    # src/cluster_migrateslots.c generateSyncSlotsEstablishCommand, spelled out
    want = (
        b"*10\r\n$7\r\nCLUSTER\r\n$9\r\nSYNCSLOTS\r\n$9\r\nESTABLISH\r\n$6\r\nSOURCE\r\n$40\r\n"
        + SRC
        + b"\r\n$4\r\nNAME\r\n$40\r\n"
        + JOB
        + b"\r\n$10\r\nSLOTSRANGE\r\n$3\r\n100\r\n$3\r\n102\r\n"
    )
    assert S.encode(S.Establish(JOB, RANGES, SRC)) == want
    assert S.encode(S.Ack()) == b"*3\r\n$7\r\nCLUSTER\r\n$9\r\nSYNCSLOTS\r\n$3\r\nACK\r\n"


@pytest.mark.parametrize(
    "msg",
    [
        S.Establish(JOB, ((1, 2), (7, 7)), SRC),
        S.Ack(),
        S.SnapshotEof(),
        S.RequestPause(),
        S.Paused(),
        S.RequestFailover(),
        S.FailoverGranted(),
        S.Finish(JOB, True, b""),
        S.Finish(JOB, False, b"Data was flushed"),
        S.Capa((b"x",)),
    ],
)
def test_messages_round_trip(msg: S.Message) -> None:
    p = RequestParser()
    p.feed(S.encode(msg))
    [argv] = list(p.commands())
    assert S.is_syncslots(argv) and S.parse(argv) == msg


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([b"NAME", JOB, b"SLOTSRANGE", b"1", b"2"], "ERR syntax error"),  # no SOURCE
        ([b"SOURCE", SRC, b"SLOTSRANGE", b"1", b"2"], "ERR syntax error"),
        ([b"SOURCE", SRC, b"NAME", b"short", b"SLOTSRANGE", b"1", b"2"], "ERR syntax error"),
        ([b"SOURCE", SRC, b"NAME", JOB, b"SLOTSRANGE", b"1"], "ERR No end slot for final slot range"),  # noqa: E501
        ([b"SOURCE", SRC, b"NAME", JOB, b"SLOTSRANGE", b"16384", b"1"], "ERR Invalid or out of range slot"),  # noqa: E501
        ([b"SOURCE", SRC, b"NAME", JOB, b"SLOTSRANGE", b"5", b"1"], "ERR Start slot number 5 is greater than end slot number 1."),  # noqa: E501
        ([b"SOURCE", SRC, b"NAME", JOB, b"SLOTSRANGE", b"1", b"5", b"3", b"9"], "ERR Slot range 3-9 overlaps with previous range 1-5."),  # noqa: E501
        ([b"SOURCE", SRC, b"NAME", JOB, b"SLOTSRANGE", b"X"], "ERR No slot ranges specified"),
        ([b"SOURCE", SRC, b"NAME", JOB, b"SLOTSRANGE", b"1", b"2", b"BOGUS", b"x"], "ERR syntax error"),  # noqa: E501
        ([b"SOURCE", OTHER + b"", b"NAME", JOB, b"SLOTSRANGE", b"1", b"2"], "ERR Target node does not agree about current slot ownership"),  # noqa: E501
        ([b"SOURCE", b"f" * 40, b"NAME", JOB, b"SLOTSRANGE", b"1", b"2"], "ERR Target node does not know the source node"),  # noqa: E501
        ([b"SOURCE", TGT, b"NAME", JOB, b"SLOTSRANGE", b"1", b"2"], "ERR Source node is target node itself"),  # noqa: E501
    ],
)  # fmt: skip
def test_establish_validation(args: list[bytes], error: str) -> None:
    m = SlotMigrations(TGT)
    with pytest.raises(CommandError) as e:
        m.establish(
            [b"CLUSTER", b"SYNCSLOTS", b"ESTABLISH", *args], T0,
            owner_of=lambda s: SRC, known=lambda n: n in (SRC, TGT, OTHER),
        )  # fmt: skip
    assert e.value.message == error
    assert m.jobs == []


def test_establish_refuses_a_slot_already_imported() -> None:
    m = SlotMigrations(TGT)
    kw: dict[str, Any] = {"owner_of": lambda s: SRC, "known": lambda n: True}
    base = [b"CLUSTER", b"SYNCSLOTS", b"ESTABLISH", b"SOURCE", SRC, b"NAME"]
    job, actions = m.establish([*base, JOB, b"SLOTSRANGE", b"1", b"9"], T0, **kw)
    assert actions[0] == HideSlots(((1, 9),))
    assert actions[1] == Propagate([*base, JOB, b"SLOTSRANGE", b"1", b"9"])
    with pytest.raises(CommandError) as e:
        m.establish([*base, b"b" * 40, b"SLOTSRANGE", b"9", b"12"], T0, **kw)
    assert e.value.message == S.ERR_ALREADY_IMPORTING
    assert m.is_importing(5) and not m.is_importing(10)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([b"SLOTSRANGE", b"1", b"2"], "ERR syntax error"),
        ([b"SLOTS", b"1", b"2", b"NODE", TGT], "ERR syntax error"),
        ([b"SLOTSRANGE", b"1", b"2", b"NODE", b"abc"], "ERR Invalid node name: abc"),
        ([b"SLOTSRANGE", b"1", b"2", b"NODE", b"f" * 40], "ERR Unknown node name: " + "f" * 40),
        ([b"SLOTSRANGE", b"1", b"2", b"NODE", SRC], "ERR Target node can not be this node."),
        ([b"SLOTSRANGE", b"9000", b"9001", b"NODE", TGT], "ERR Slots are not served by this node."),
        ([b"SLOTSRANGE", b"8000", b"8001", b"NODE", TGT], "ERR Requested slots span multiple shards"),  # noqa: E501
        ([b"SLOTSRANGE", b"16000", b"16001", b"NODE", TGT], "ERR Slot 16000 has no node served."),
        ([b"SLOTSRANGE", b"1", b"5", b"NODE", TGT, b"SLOTSRANGE", b"5", b"6", b"NODE", OTHER], "ERR Slot ranges in migrations overlap"),  # noqa: E501
    ],
)  # fmt: skip
def test_migrateslots_validation(args: list[bytes], error: str) -> None:
    m = SlotMigrations(SRC)

    def owner_of(slot: int) -> bytes | None:
        return None if slot >= 16000 else SRC if slot <= 8000 else TGT

    with pytest.raises(CommandError) as e:
        m.migrate_slots([b"CLUSTER", b"MIGRATESLOTS", *args], T0, owner_of=owner_of,
                        known=lambda n: n in (SRC, TGT, OTHER))  # fmt: skip
    assert e.value.message == error
    assert m.jobs == []


def test_migrateslots_groups_and_replica_and_cancel_errors() -> None:
    names = iter([b"1" * 40, b"2" * 40])
    m = SlotMigrations(SRC, new_name=lambda: next(names))
    kw: dict[str, Any] = {"owner_of": lambda s: SRC, "known": lambda n: True}
    with pytest.raises(CommandError) as e:
        m.cancel(T0)
    assert e.value.message == "ERR No migrations ongoing"
    argv = [b"CLUSTER", b"MIGRATESLOTS", b"SLOTSRANGE", b"1", b"5", b"7", b"7", b"NODE", TGT,
            b"SLOTSRANGE", b"10", b"10", b"NODE", OTHER]  # fmt: skip
    with pytest.raises(CommandError) as e:
        m.migrate_slots(argv, T0, primary=False, **kw)
    assert e.value.message == "ERR Slot migration can only be used on primary nodes."
    jobs = m.migrate_slots(argv, T0, **kw)
    assert [j.ranges for j in jobs] == [((1, 5), (7, 7)), ((10, 10),)]
    assert [e[b"slot_ranges"] for e in m.entries()] == [b"1-5 7-7", b"10-10"]
    assert all(e[b"state"] == b"connecting" for e in m.entries())
    with pytest.raises(CommandError) as e:
        m.migrate_slots(argv, T0, **kw)
    assert e.value.message == "ERR I am already migrating slot 1."
    out = m.cancel(T0 + 5)
    assert [j.state for j, _ in out] == [J.CANCELLED, J.CANCELLED]
    assert all(CloseLink() in acts for _, acts in out)


# ---- whole migrations against the real stream -----------------------------------------------


def _fixture_stream() -> list[tuple[str, list[bytes]]]:
    out = []
    for line in (FIX / "success_migration_syncslots_stream.txt").read_bytes().splitlines():
        head, _, body = line.partition(b": ")
        side = "t" if head.split()[-1].startswith(b"7132") else "s"
        out.append((side, body.split(b" ")))
    return out


def _fixture_kinds(side: str) -> list[str]:
    out: list[str] = []
    for who, argv in _fixture_stream():
        kind = _kind(argv)
        if who != side or kind == "ACK" or (kind == "data" and out and out[-1] == "data"):
            continue
        out.append(kind)
    return out


def _fixture_world(**kw: Any) -> World:
    """A source holding exactly the keys of the fixture's snapshot, in its order."""
    w = World(**kw)
    db = 0
    stream = _fixture_stream()
    start = next(i for i, (_, a) in enumerate(stream) if a[0] == b"SELECT")
    for _, argv in stream[start:]:
        if S.is_syncslots(argv):
            break
        if argv[0] == b"SELECT":
            db = int(argv[1])
        else:
            assert w.write(db, argv), argv
    return w


def test_success_matches_the_real_stream() -> None:
    w = _fixture_world(chunk=512)
    w.start()
    while w.sjob is not None and not w.sjob.snapshotting:
        w.step()
    t = b"{t10648}"
    assert w.write(0, [b"INCR", t + b":written_during_snapshot_db0"])
    assert w.write(3, [b"INCR", t + b":written_during_snapshot_db3"])
    w.run()
    # same message kinds, same order, each direction (ACK timing is the only freedom)
    assert w.kinds("s") == _fixture_kinds("s")
    assert w.kinds("t") == _fixture_kinds("t")
    assert w.kinds("s") == [
        "ESTABLISH",
        "data",
        "SNAPSHOT-EOF",
        "data",
        "PAUSED",
        "FAILOVER-GRANTED",
    ]  # noqa: E501
    assert w.kinds("t") == ["+OK", "REQUEST-PAUSE", "REQUEST-FAILOVER"]
    first = [a for who, a in w.trace if who == "s"][0]
    assert first == [b"CLUSTER", b"SYNCSLOTS", b"ESTABLISH", b"SOURCE", SRC, b"NAME", JOB,
                     b"SLOTSRANGE", b"100", b"102"]  # fmt: skip
    assert [a for who, a in w.trace if who == "s"][1] == [b"CLUSTER", b"SYNCSLOTS", b"ACK"]
    # the snapshot is byte for byte the real one; the live tail has our extra SELECT 0
    real = [b" ".join(a) for who, a in _fixture_stream() if who == "s" and _kind(a) == "data"]
    ours = w.data_sent()
    snap = len(real) - 3
    assert ours[:snap] == real[:snap]
    assert real[snap:] == [b"INCR {t10648}:written_during_snapshot_db0", b"SELECT 3",
                           b"INCR {t10648}:written_during_snapshot_db3"]  # fmt: skip
    assert ours[snap:] == [b"SELECT 0", *real[snap:]]
    # outcome
    assert w.sjob is not None and w.tjob is not None
    assert w.sjob.state is J.SUCCESS and w.tjob.state is J.SUCCESS
    assert check_all_or_nothing(w)
    assert w.tgt.engine.keyspace.dbs[0].data[t + b":written_during_snapshot_db0"] == b"1"
    # the target's AOF: ESTABLISH, imported writes, FINISH STATE SUCCESS ... MESSAGE ""
    assert w.tgt.aof[0] == first
    assert w.tgt.aof[-1] == [b"CLUSTER", b"SYNCSLOTS", b"FINISH", b"STATE", b"SUCCESS",
                             b"NAME", JOB, b"MESSAGE", b""]  # fmt: skip
    # the source's AOF ends with one UNLINK per moved key
    assert len([a for a in w.src.aof if a[0] == b"UNLINK"]) == len(w.shadow.slot_data())


def _entry_like(fields: list[Any]) -> dict[str, Any]:
    return dict(zip(fields[::2], fields[1::2]))


def _decoded(entry: dict[bytes, bytes | int]) -> dict[str, Any]:
    return {k.decode(): v.decode() if isinstance(v, bytes) else v for k, v in entry.items()}


def test_getslotmigrations_entries_match_valkey() -> None:
    notes = json.loads((FIX / "notes.json").read_text())
    w = _fixture_world()
    w.start()
    w.run()
    assert w.sjob is not None and w.tjob is not None
    for ours, real in (
        (w.src.mig.entries()[0], notes["success"]["final_export_entry"]),
        (w.tgt.mig.entries()[0], notes["success"]["target_getslotmigrations"][0]),
    ):
        mine, theirs = _decoded(ours), _entry_like(real)
        assert list(mine) == list(theirs)
        for k in ("name", "operation", "slot_ranges", "target_node", "source_node", "state",
                  "message", "cow_size", "remaining_repl_size"):  # fmt: skip
            assert mine[k] == theirs[k], k
        assert mine["create_time"] == T0 // 1000


def test_cancel_during_snapshot() -> None:
    notes = json.loads((FIX / "notes.json").read_text())
    w = World(chunk=64, bandwidth=256)
    populate(w, keys_per_slot=40)
    w.start()
    while w.sjob is not None and not w.sjob.snapshotting:
        w.step()
    w.step()
    assert w.sjob.snapshotting
    out = w.src.mig.cancel(w.now)
    for _, actions in out:
        w.src_actions(actions)
    w.run()
    assert w.sjob.state is J.CANCELLED and w.sjob.message == ""
    assert w.tjob is not None and w.tjob.state is J.FAILED
    real_target = _entry_like(notes["cancel"]["target_getslotmigrations"][0])
    assert w.tjob.message == real_target["message"]
    assert _decoded(w.src.mig.entries()[0])["state"] == notes["cancel"]["final_export_entry"][17]
    # like cancel_partial_target_appendonlydir: ESTABLISH, some writes, UNLINKs, FINISH FAILED
    aof = w.tgt.aof
    assert S.is_syncslots(aof[0]) and aof[0][2] == b"ESTABLISH"
    assert aof[-1][:5] == [b"CLUSTER", b"SYNCSLOTS", b"FINISH", b"STATE", b"FAILED"]
    assert aof[-1][-1] == real_target["message"].encode()
    sets = sum(1 for a in aof if a[0] in (b"SET", b"RPUSH", b"HMSET"))
    unlinks = sum(1 for a in aof if a[0] == b"UNLINK")
    assert sets > 0 and unlinks > 0
    assert not check_all_or_nothing(w)


def test_cancel_during_streaming() -> None:
    w = World(cfg=MigrationConfig(max_failover_repl_bytes=-1))
    populate(w)
    w.start()
    while w.sjob is not None and w.sjob.state is not J.STREAMING:
        w.step()
    assert w.write(0, [b"SET", TAGS[101] + b":live", b"x"])
    for _, actions in w.src.mig.cancel(w.now):
        w.src_actions(actions)
    w.run()
    assert w.sjob.state is J.CANCELLED
    assert w.tjob is not None and w.tjob.state is J.FAILED
    assert not check_all_or_nothing(w)


@pytest.mark.parametrize("when", [J.WAITING_TO_SNAPSHOT, J.SNAPSHOTTING, J.STREAMING,
                                  J.FAILOVER_PAUSED])  # fmt: skip
def test_link_loss(when: JobState) -> None:
    w = World(chunk=64, bandwidth=200)
    populate(w, keys_per_slot=20)
    w.start()
    while w.sjob is not None and w.sjob.state is not when:
        w.step(1)
    w.cut()
    w.run()
    assert w.sjob.state is J.FAILED and w.sjob.message == S.MSG_LINK_LOST_EXPORT
    assert w.tjob is not None and w.tjob.state is J.FAILED
    assert w.tjob.message == S.MSG_LINK_LOST_IMPORT
    assert not check_all_or_nothing(w)


def test_link_loss_after_grant_waits_for_topology() -> None:
    w = World(gossip_ms=500)
    populate(w)
    w.start()
    while w.sjob is not None and w.sjob.state is not J.EXPORT_FAILOVER_GRANTED:
        w.step(1)
    w.cut()  # the target may or may not have taken over: the source must keep waiting
    assert w.sjob.state is J.EXPORT_FAILOVER_GRANTED and w.src.paused
    w.run()
    assert w.sjob.state is J.SUCCESS
    assert check_all_or_nothing(w)


def test_pause_expiry_after_grant_is_reported_as_write_loss_risk() -> None:
    w = World(gossip_ms=60_000)
    populate(w)
    w.start()
    while w.sjob is not None and w.sjob.state is not J.EXPORT_FAILOVER_GRANTED:
        w.step(1)
    for _ in range(2000):
        w.step()
        if w.sjob.finished:
            break
    assert w.sjob.state is J.FAILED and w.sjob.message == S.MSG_UNPAUSED_BEFORE_DONE
    assert not w.src.paused


def test_timeout_without_acks() -> None:
    w = World()
    populate(w)
    w.start()
    while w.sjob is not None and w.sjob.state is not J.STREAMING:
        w.step()
    w.target_dead = True  # a hung target: no bytes either way, no EOF
    w.s2t.clear()
    for _ in range(100):
        w.step(1000)
        if w.sjob.finished:
            break
    assert (
        w.sjob.state is J.FAILED
        and w.sjob.message == "Timed out after too long with no interaction"
    )  # noqa: E501
    # and the target alone, never hearing from the source
    w2 = World()
    w2.start()
    w2.step()
    assert w2.tjob is not None
    w2.s_closed = True  # source hangs silently
    w2.sjob = None
    for _ in range(100):
        w2.step(1000)
    assert w2.tjob.state is J.FAILED and w2.tjob.message == S.MSG_TIMEOUT


def test_killed_target_leaves_establish_without_finish_then_restart_drops_keys() -> None:
    notes = json.loads((FIX / "notes.json").read_text())
    w = World(chunk=64, bandwidth=256)
    populate(w, keys_per_slot=30)
    w.start()
    while w.tjob is None or w.tjob.applied_commands < 10:
        w.step()
    w.target_dead = True  # SIGKILL: no FINISH, the source sees the connection reset
    w.s2t.clear()
    w.t2s.clear()
    w.src_actions(w.sjob.link_lost(w.now))
    assert w.sjob.state is J.FAILED
    assert w.sjob.message == _entry_like(notes["kill"]["final_export_entry"])["message"]
    assert not any(a[2:3] == [b"FINISH"] for a in w.tgt.aof if S.is_syncslots(a))
    assert w.tgt.slot_data() != {}
    # restart: the AOF gives a tracking job; a primary fails it ("Process restarted")
    m = SlotMigrations(TGT)
    job, actions = m.track(JOB, RANGES, w.now, primary=True)
    assert actions == [HideSlots(RANGES)] and job.entry()[b"state"] == b"occurring-on-primary"
    assert b"target_node" not in job.entry() and len(job.entry()) == 10
    [(_, actions)] = m.after_load(w.now, primary=True)
    assert actions == [
        DropSlots(RANGES),
        UnhideSlots(RANGES),
        Propagate(
            [
                b"CLUSTER",
                b"SYNCSLOTS",
                b"FINISH",
                b"STATE",
                b"FAILED",
                b"NAME",
                JOB,
                b"MESSAGE",
                b"Process restarted",
            ]
        ),  # fmt: skip
        Finished(J.FAILED, "Process restarted"),
    ]


def test_replica_tracking_job_follows_finish() -> None:
    m = SlotMigrations(TGT)
    job, _ = m.track(JOB, RANGES, T0, primary=False)
    assert job.tick(T0 + 10**9) == [] and job.state is J.OCCURRING_ON_PRIMARY
    fin = S.Finish(JOB, True, b"")
    actions = job.finish_received(fin, T0 + 5)
    assert actions == [UnhideSlots(RANGES), Propagate(S.message_argv(fin)),
                       Finished(J.SUCCESS, "")]  # fmt: skip


def test_the_wrong_database_bug_is_fixed() -> None:
    """fixtures dbbug_*: Valkey 9.1.2 applied writes made to db 0 during the snapshot to db 3
    on the target (the snapshot's last SELECT). Ours must land in db 0."""
    real = json.loads((FIX / "dbbug_result.json").read_text())["trial0"]
    assert real["target_db3"]["written_during"] == "db0 write during snapshot"  # the bug
    w = World(chunk=16)
    t = b"{t10648}"
    assert w.write(0, [b"SET", t + b":x", b"0"])
    assert w.write(0, [b"SET", t + b":only_db0", b"a"])
    assert w.write(3, [b"SET", t + b":only_db3", b"b"])
    w.start()
    while w.sjob is not None and not w.sjob.snapshotting:
        w.step()
    for _ in range(5):
        assert w.write(0, [b"INCR", t + b":x"])
    assert w.write(0, [b"SET", t + b":written_during", b"db0 write during snapshot"])
    w.run()
    db0, db3 = (w.tgt.engine.keyspace.dbs[i].data for i in (0, 3))
    assert db0[t + b":x"] == b"5" and db0[t + b":written_during"] == b"db0 write during snapshot"
    assert set(db3) == {t + b":only_db3"}
    assert check_all_or_nothing(w)


@pytest.mark.parametrize("nkeys", [10, 3000])
def test_pause_covers_only_the_streamed_tail(nkeys: int) -> None:
    """What the source must flush while writes are paused, and how long the pause lasts, do
    not depend on how much data the slots hold."""
    w = World(chunk=2048, bandwidth=8192)
    for i in range(nkeys):
        assert w.write(i % 2, [b"SET", TAGS[100 + i % 3] + b":k%d" % i, b"x" * 50])
    w.start()
    writes = 0
    while not w.settled():
        if w.sjob.state in (J.SNAPSHOTTING, J.STREAMING, J.WAITING_TO_PAUSE):
            for j in range(3):  # a steady writer
                writes += w.write(0, [b"INCR", TAGS[101] + b":ctr%d" % j])
        w.step()
    assert w.sjob.state is J.SUCCESS and check_all_or_nothing(w)
    assert w.paused_at is not None and w.resumed_at is not None and w.pause_tail is not None
    tail, length = w.pause_tail, w.resumed_at - w.paused_at
    assert tail == len(S.encode(S.Paused()))  # nothing but the PAUSED marker itself
    assert writes > 0
    assert length <= 4 * 10 + w.gossip_ms  # a few steps: PAUSED, REQUEST-FAILOVER, gossip


def test_pause_tail_equal_for_small_and_large() -> None:
    out = {}
    for nkeys in (10, 3000):
        w = World(chunk=2048, bandwidth=8192)
        for i in range(nkeys):
            assert w.write(0, [b"SET", TAGS[100 + i % 3] + b":k%d" % i, b"x" * 50])
        w.start()
        while not w.settled():
            if w.sjob.state in (J.SNAPSHOTTING, J.STREAMING, J.WAITING_TO_PAUSE):
                w.write(0, [b"INCR", TAGS[102] + b":ctr"])
            w.step()
        assert w.resumed_at is not None and w.paused_at is not None
        out[nkeys] = (w.pause_tail, w.resumed_at - w.paused_at, w.sjob.sent_bytes)
    assert out[10][:2] == out[3000][:2]
    assert out[3000][2] > 50 * out[10][2]  # while the snapshot was much bigger


def test_target_parses_any_split_of_the_stream() -> None:
    """The target job gives the same actions whether the bytes come whole or one at a time."""
    stream = S.encode(S.Ack()) + encode_snapshot(
        [KeyRecord(0, TAGS[100] + b":a", StringValue(b"1")),
         KeyRecord(2, TAGS[101] + b":b", StringValue(b"2")),
         KeyRecord(0, TAGS[5000] + b":skipped", StringValue(b"3"))], RANGES
    ).__next__() + S.encode(S.SnapshotEof()) + S.encode(S.Paused())  # fmt: skip

    def run(pieces: list[bytes]) -> tuple[list[Action], bytes]:
        job, _ = TargetJob.established(S.Establish(JOB, RANGES, SRC), myself=TGT, now_ms=T0)
        acts: list[Action] = []
        for p in pieces:
            acts += job.receive_data(p, T0)
        return acts, job.data_to_send()

    whole = run([stream])
    assert whole == run([stream[i : i + 1] for i in range(len(stream))])
    assert whole == run([stream[:7], stream[7:100], stream[100:]])
    applied = [a.argv for a in whole[0] if isinstance(a, Apply)]
    assert applied == [[b"SELECT", b"0"], [b"SET", TAGS[100] + b":a", b"1"],
                       [b"SELECT", b"2"], [b"SET", TAGS[101] + b":b", b"2"]]  # fmt: skip
    assert whole[1] == S.encode(S.RequestPause()) + S.encode(S.RequestFailover())


def test_unexpected_and_unknown_messages_fail_the_job() -> None:
    job, _ = TargetJob.established(S.Establish(JOB, RANGES, SRC), myself=TGT, now_ms=T0)
    job.receive_data(S.encode(S.Ack()), T0)
    acts = job.receive_data(S.encode(S.Paused()), T0)  # PAUSED before SNAPSHOT-EOF
    assert job.state is J.FAILED and job.message == S.MSG_UNEXPECTED
    assert DropSlots(RANGES) in acts
    job2, _ = TargetJob.established(S.Establish(JOB, RANGES, SRC), myself=TGT, now_ms=T0)
    job2.receive_data(S.encode(S.Capa((b"x",))), T0)
    assert job2.in_progress
    job2.receive_data(b"*3\r\n$7\r\nCLUSTER\r\n$9\r\nSYNCSLOTS\r\n$5\r\nBOGUS\r\n", T0)
    assert job2.state is J.FAILED and job2.message == S.MSG_UNKNOWN_SUB


def test_source_handshake_errors_and_auth() -> None:
    cfg = MigrationConfig(auth=(b"user", b"pw"))
    job = SourceJob(JOB, RANGES, source_id=SRC, target_id=TGT, now_ms=T0, config=cfg)
    job.connected(T0)
    assert job.state is J.READ_AUTH_RESPONSE
    assert job.data_to_send() == b"*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$2\r\npw\r\n"
    job.receive_data(b"+OK\r\n", T0)
    assert job.state is J.READ_ESTABLISH_RESPONSE
    assert job.data_to_send() == S.encode(S.Establish(JOB, RANGES, SRC))
    acts = job.receive_data(b"-ERR Target node does not agree about current slot ownership\r\n", T0)
    assert job.state is J.FAILED and CloseLink() in acts
    # Valkey keeps the CRLF of the reply in this message (sdscatfmt of the whole buffer)
    assert job.message == (
        "Received error during handshake to target: "
        "-ERR Target node does not agree about current slot ownership\r\n"
    )
    bad = SourceJob(JOB, RANGES, source_id=SRC, target_id=TGT, now_ms=T0, config=cfg)
    bad.connected(T0)
    bad.receive_data(b"-WRONGPASS invalid username-password pair\r\n", T0)
    assert bad.message == "Failed to AUTH to target node: -WRONGPASS invalid username-password pair"
    nc = SourceJob(JOB, RANGES, source_id=SRC, target_id=TGT, now_ms=T0)
    nc.connect_failed(T0, "Connection refused")
    assert nc.message == "Unable to connect to target node: Connection refused"


def test_flush_fails_everything() -> None:
    w = World()
    populate(w)
    w.start()
    while w.sjob is not None and w.sjob.state is not J.STREAMING:
        w.step()
    for _, actions in w.tgt.mig.flushed(w.now):
        w.tgt_actions(actions)
    w.run()
    assert w.tjob is not None and w.tjob.message == "Data was flushed"
    assert not check_all_or_nothing(w)


# ---- random interleavings ------------------------------------------------------------------

_ops = st.one_of(
    st.tuples(st.just("write"), st.sampled_from([0, 1, 3]), st.sampled_from([100, 101, 102, 103, 5000]),
              st.sampled_from(["set", "incr", "rpush", "del", "hset", "expire"]), st.integers(0, 4)),  # noqa: E501
    st.tuples(st.just("step"), st.integers(1, 50)),
    st.tuples(st.just("jump"), st.sampled_from([1_000, 9_000, 61_000])),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("cut")),
)  # fmt: skip


def _random_write(w: World, db: int, slot: int, kind: str, n: int) -> None:
    key = TAGS[slot] + b":%d" % n
    argv = {
        "set": [b"SET", key, b"v%d" % n],
        "incr": [b"INCR", TAGS[slot] + b":ctr"],
        "rpush": [b"RPUSH", TAGS[slot] + b":list", b"%d" % n],
        "del": [b"DEL", key],
        "hset": [b"HSET", TAGS[slot] + b":hash", b"f%d" % n, b"v"],
        "expire": [b"PEXPIREAT", TAGS[slot] + b":list", b"4102444800000"],
    }[kind]
    w.write(db, argv)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_ops, max_size=40), chunk=st.sampled_from([32, 256, 4096]),
       bandwidth=st.sampled_from([64, 1024, 1 << 16]))  # fmt: skip
def test_random_interleavings_never_split(ops: list[tuple[Any, ...]], chunk: int,
                                          bandwidth: int) -> None:  # fmt: skip
    w = World(chunk=chunk, bandwidth=bandwidth)
    populate(w, keys_per_slot=4, dbs=(0, 1))
    w.start()
    for op in ops:
        if op[0] == "write":
            _random_write(w, *op[1:])
        elif op[0] == "step":
            for _ in range(op[1]):
                w.step(1)
        elif op[0] == "jump":
            w.step(op[1])
        elif op[0] == "cancel":
            if any(not j.finished for j in w.src.mig.exports()):
                for _, actions in w.src.mig.cancel(w.now):
                    w.src_actions(actions)
        elif op[0] == "cut":
            w.cut()
    w.run()
    check_all_or_nothing(w)
    assert w.sjob is not None and w.sjob.finished
    if w.tjob is not None:
        assert w.tjob.finished
        assert (w.sjob.state is J.SUCCESS) == (w.tjob.state is J.SUCCESS)
