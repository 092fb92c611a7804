"""The sans-IO atomic slot migration machines (engine/cluster/migration*.py, syncslots.py).

A source and a target node are driven against each other in memory (tests/migration_world.py)
and checked against fixtures/valkey-9.1.2/slot_migration/: the decoded TCP stream of a real
migration, the GETSLOTMIGRATIONS entries, the target AOFs and the wrong-database bug.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from migration_world import (
    FIX,
    JOB,
    OTHER,
    RANGES,
    SRC,
    T0,
    TAGS,
    TGT,
    J,
    World,
    check_all_or_nothing,
    kind_of,
    populate,
)

from engine import errors as E
from engine.cluster import syncslots as S
from engine.cluster.migration import (
    Action,
    Apply,
    CloseLink,
    DropSlots,
    Finished,
    HideSlots,
    JobState,
    MigrationConfig,
    Propagate,
    SlotMigrations,
    SourceJob,
    TargetJob,
    UnhideSlots,
    encode_snapshot,
)
from engine.errors import CommandError
from persistence.records import KeyRecord, StringValue
from persistence.resp import RequestParser

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
    _, actions = m.establish([*base, JOB, b"SLOTSRANGE", b"1", b"9"], T0, **kw)
    assert actions[0] == HideSlots(((1, 9),))
    assert actions[1] == Propagate([*base, JOB, b"SLOTSRANGE", b"1", b"9"])
    with pytest.raises(CommandError) as e:
        m.establish([*base, b"b" * 40, b"SLOTSRANGE", b"9", b"12"], T0, **kw)
    assert e.value.message == E.ERR_ALREADY_IMPORTING
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
        kind = kind_of(argv)
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
    w.until(lambda: w.sjob.snapshotting)
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
    ]
    assert w.kinds("t") == ["+OK", "REQUEST-PAUSE", "REQUEST-FAILOVER"]
    first = next(a for who, a in w.trace if who == "s")
    assert first == [b"CLUSTER", b"SYNCSLOTS", b"ESTABLISH", b"SOURCE", SRC, b"NAME", JOB,
                     b"SLOTSRANGE", b"100", b"102"]  # fmt: skip
    assert [a for who, a in w.trace if who == "s"][1] == [b"CLUSTER", b"SYNCSLOTS", b"ACK"]
    # the snapshot is byte for byte the real one; the live tail has our extra SELECT 0
    real = [b" ".join(a) for who, a in _fixture_stream() if who == "s" and kind_of(a) == "data"]
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
    w.until(lambda: w.sjob.snapshotting)
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
    w.until(lambda: w.sjob.state is J.STREAMING)
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
    for _ in range(10_000):
        if w.sjob.state is when:
            break
        w.step(1)
    assert w.sjob.state is when
    w.cut()
    w.run()
    assert w.sjob.state is J.FAILED and w.sjob.message == S.MSG_LINK_LOST_EXPORT
    assert w.tjob is not None and w.tjob.state is J.FAILED
    assert w.tjob.message == S.MSG_LINK_LOST_IMPORT
    assert not check_all_or_nothing(w)


@pytest.mark.parametrize("grant_arrives", [True, False])
def test_link_loss_after_grant_waits_for_topology(grant_arrives: bool) -> None:
    w = World(gossip_ms=500)
    populate(w)
    w.start()
    w.until(lambda: w.sjob.state is J.EXPORT_FAILOVER_GRANTED, 1)
    if grant_arrives:
        w.deliver()
    w.cut()  # the source cannot know whether the target took over: it keeps waiting, paused
    assert w.sjob.state is J.EXPORT_FAILOVER_GRANTED and w.src.paused
    w.run()
    if grant_arrives:
        assert w.sjob.state is J.SUCCESS and check_all_or_nothing(w)
    else:
        assert w.sjob.message == S.MSG_UNPAUSED_BEFORE_DONE
        assert w.tjob is not None and w.tjob.message == S.MSG_LINK_LOST_IMPORT
        assert not check_all_or_nothing(w)


def test_pause_expiry_after_grant_is_reported_as_write_loss_risk() -> None:
    w = World(gossip_ms=60_000)
    populate(w)
    w.start()
    w.until(lambda: w.sjob.state is J.EXPORT_FAILOVER_GRANTED, 1)
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
    w.until(lambda: w.sjob.state is J.STREAMING)
    w.target_dead = True  # a hung target: no bytes either way, no EOF
    w.s2t.clear()
    for _ in range(100):
        w.step(1000)
        if w.sjob.finished:
            break
    assert (
        w.sjob.state is J.FAILED
        and w.sjob.message == "Timed out after too long with no interaction"
    )
    # and the target alone, never hearing from the source
    w2 = World()
    w2.start()
    w2.step()
    assert w2.tjob is not None
    w2.src.mig.jobs.clear()  # the source hangs silently: no bytes, no EOF
    w2.sjob = None
    for _ in range(100):
        w2.step(1000)
    assert w2.tjob.state is J.FAILED and w2.tjob.message == S.MSG_TIMEOUT


def test_killed_target_leaves_establish_without_finish_then_restart_drops_keys() -> None:
    notes = json.loads((FIX / "notes.json").read_text())
    w = World(chunk=64, bandwidth=256)
    populate(w, keys_per_slot=30)
    w.start()
    w.until(lambda: w.tjob is not None and w.tjob.applied_commands >= 10)
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
    finish = S.Finish(JOB, False, b"Process restarted")
    assert S.message_argv(finish)[3:] == [b"STATE", b"FAILED", b"NAME", JOB, b"MESSAGE",
                                          b"Process restarted"]  # fmt: skip
    assert actions == [
        DropSlots(RANGES),
        UnhideSlots(RANGES),
        Propagate(S.message_argv(finish)),
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
    w.until(lambda: w.sjob.snapshotting)
    for _ in range(5):
        assert w.write(0, [b"INCR", t + b":x"])
    assert w.write(0, [b"SET", t + b":written_during", b"db0 write during snapshot"])
    w.run()
    db0, db3 = (w.tgt.engine.keyspace.dbs[i].data for i in (0, 3))
    assert db0[t + b":x"] == b"5" and db0[t + b":written_during"] == b"db0 write during snapshot"
    assert set(db3) == {t + b":only_db3"}
    assert check_all_or_nothing(w)


def _pause_figures(nkeys: int) -> tuple[int, int, int, int]:
    """(bytes to flush once paused, pause length in ms, bytes sent in all, writes accepted)
    for a migration of ``nkeys`` keys with a steady writer on the migrating slots."""
    w = World(chunk=2048, bandwidth=8192)
    for i in range(nkeys):
        assert w.write(i % 2, [b"SET", TAGS[100 + i % 3] + b":k%d" % i, b"x" * 50])
    w.start()
    writes = 0
    while not w.settled():
        assert w.sjob is not None
        if w.sjob.state in (J.SNAPSHOTTING, J.STREAMING, J.WAITING_TO_PAUSE):
            for j in range(3):
                writes += w.write(0, [b"INCR", TAGS[101] + b":ctr%d" % j])
        w.step()
    assert w.sjob is not None and w.sjob.state is J.SUCCESS and check_all_or_nothing(w)
    assert w.paused_at is not None and w.resumed_at is not None and w.pause_tail is not None
    return w.pause_tail, w.resumed_at - w.paused_at, w.sjob.sent_bytes, writes


def test_pause_covers_only_the_streamed_tail() -> None:
    """What the source must flush while writes are paused, and how long the pause lasts, do
    not depend on how much data the slots hold."""
    small, large = _pause_figures(10), _pause_figures(3000)
    assert small[0] == large[0] == len(S.encode(S.Paused()))  # only the PAUSED marker
    assert small[1] == large[1] <= 100  # a few 10 ms steps: PAUSED, REQUEST-FAILOVER, gossip
    assert large[2] > 50 * small[2]  # while the snapshot was far bigger
    assert large[3] > small[3] > 0  # and writes kept coming during it


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
    w.until(lambda: w.sjob.state is J.STREAMING)
    for _, actions in w.tgt.mig.flushed(w.now):
        w.tgt_actions(actions)
    w.run()
    assert w.tjob is not None and w.tjob.message == "Data was flushed"
    assert not check_all_or_nothing(w)


# ---- random interleavings ------------------------------------------------------------------

_dbs = st.sampled_from([0, 1, 3])
_slots = st.sampled_from([100, 101, 102, 103, 5000])
_kinds = st.sampled_from(["set", "incr", "rpush", "del", "hset", "expire"])
_ops = st.one_of(
    st.tuples(st.just("write"), _dbs, _slots, _kinds, st.integers(0, 4)),
    st.tuples(st.just("step"), st.integers(1, 50)),
    st.tuples(st.just("jump"), st.sampled_from([1_000, 9_000, 61_000])),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("cut")),
)


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


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
    moved = check_all_or_nothing(w)
    assert w.sjob is not None and w.sjob.finished
    event(f"moved={moved} source={w.sjob.state.text}: {w.sjob.message[:40]}")
    if w.tjob is not None:
        assert w.tjob.finished
        assert (w.sjob.state is J.SUCCESS) == (w.tjob.state is J.SUCCESS)
