"""``valkey-aof replay`` into a real 3-node Valkey 9.1.2 cluster (cluster-databases 16)."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from realserver import RealServer, free_port, real_server
from server_snapshot import snapshot
from test_export import normalise
from test_replay import (
    REAL,
    _cli,
    counter_aof,
    expected_now,
    run,
    wait_for_progress,
    write_aof,
)

import tools.replay_cluster as rc
from tools.replay import ReplayOptions, replay

pytestmark = pytest.mark.real

RANGES = [(0, 5460), (5461, 10922), (10923, 16383)]


@contextlib.contextmanager
def cluster(tmp: Path, n: int = 3, *args: str) -> Iterator[list[RealServer]]:
    bus = [free_port() for _ in range(n)]
    with contextlib.ExitStack() as stack:
        nodes = [
            stack.enter_context(
                real_server(
                    tmp / f"n{i}", "--cluster-enabled", "yes", "--cluster-config-file",
                    "nodes.conf", "--cluster-port", str(bus[i]), *args,
                )
            )
            for i in range(n)
        ]  # fmt: skip
        ranges = RANGES if n == 3 else [(0, 16383)]
        for srv, (lo, hi) in zip(nodes, ranges):
            srv.client().execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
        for i, srv in enumerate(nodes[1:], 1):
            nodes[0].client().execute_command("CLUSTER", "MEET", "127.0.0.1", srv.port, bus[i])
        deadline = time.monotonic() + 30
        while True:
            ok = all(
                b"cluster_state:ok" in s.client().execute_command("CLUSTER", "INFO")
                and len(s.client().execute_command("CLUSTER", "SLOTS")) == len(ranges)
                for s in nodes
            )
            if ok:
                break
            assert time.monotonic() < deadline, "cluster did not come up"
            time.sleep(0.05)
        yield nodes


def cluster_contents(nodes: list[RealServer]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for srv in nodes:
        out.extend(snapshot(srv.client()))
    return normalise(out)


@pytest.fixture(scope="module")
def c16(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RealServer]]:
    with cluster(tmp_path_factory.mktemp("c16"), 3, "--cluster-databases", "16") as nodes:
        yield nodes


def flush(nodes: list[RealServer]) -> None:
    for srv in nodes:
        srv.client().flushall()


def target(nodes: list[RealServer]) -> str:
    return f"redis://127.0.0.1:{nodes[0].port}"


@pytest.mark.parametrize(
    "src",
    ["rdb_all_comp/dump.rdb", "rdb_lzf/dump.rdb", "cluster_node/appendonlydir",
     "slot_migration/success_target_appendonlydir"],
)  # fmt: skip
def test_cluster_replay_gives_the_expected_contents(c16: list[RealServer], src: str) -> None:
    flush(c16)
    res = run(str(REAL / src), "--target", target(c16), "--cluster", "--verify", "--quiet")
    assert res.exit_code == 0, res.output
    assert "cluster target" in res.stdout and "no differences" in res.stdout
    assert cluster_contents(c16) == expected_now(REAL / src)
    if src.startswith("rdb_all"):
        assert all(s.client().dbsize() > 0 for s in c16)  # keys landed on every node


def test_multi_db_workload_with_split_commands(c16: list[RealServer], tmp_path: Path) -> None:
    """Several dbs (kept: cluster-databases 16), MSET/DEL across slots split per slot,
    per-slot transactions kept whole."""
    flush(c16)
    cmds: list[list[bytes]] = []
    for db in (0, 3, 15):
        cmds.append([b"SELECT", b"%d" % db])
        for i in range(200):
            cmds.append([b"SET", b"k%d" % i, b"v%d:%d" % (db, i)])
            cmds.append([b"HSET", b"h%d" % (i % 7), b"f%d" % i, b"%d" % i])
        cmds.append([b"MSET", *[x for i in range(20) for x in (b"m%d" % i, b"%d" % db)]])
        cmds.append([b"DEL", *[b"k%d" % i for i in range(0, 200, 3)]])
        cmds += [[b"MULTI"], [b"INCR", b"{t}a"], [b"RPUSH", b"{t}l", b"x"], [b"EXEC"]]
        cmds.append([b"PEXPIREAT", b"k1", b"%d" % (int(time.time() * 1000) + 3_600_000)])
    aof = write_aof(tmp_path / "w.aof", cmds)
    res = run(str(aof), "--target", target(c16), "--verify", "--quiet")
    assert res.exit_code == 0, res.output
    assert cluster_contents(c16) == expected_now(aof)


def test_cross_slot_fixture_replays_as_effects(c16: list[RealServer]) -> None:
    flush(c16)
    src = REAL / "aof_preamble" / "appendonlydir"  # RENAME/COPY/SMOVE across slots
    res = run(str(src), "--target", target(c16), "--quiet", "--verify")
    assert res.exit_code == 0, res.output
    assert "no differences" in res.stdout
    assert "split into one transaction per slot" in res.stderr
    assert cluster_contents(c16) == expected_now(src)


def cross_slot_workload() -> list[list[bytes]]:
    """Every kind of cross-slot command an AOF holds ({a}, {b}, {c} are three slots)."""
    later = b"%d" % (int(time.time() * 1000) + 3_600_000)
    cmds: list[list[bytes]] = []
    for db in (0, 3):
        cmds += [
            [b"SELECT", b"%d" % db],
            [b"SET", b"{a}s", b"v%d" % db], [b"PEXPIREAT", b"{a}s", later],
            [b"RENAME", b"{a}s", b"{b}s"],  # keeps the TTL
            [b"SET", b"{a}n", b"1"], [b"RENAMENX", b"{a}n", b"{c}n"],
            [b"HSET", b"{a}h", b"f", b"1"], [b"COPY", b"{a}h", b"{b}h"],
            [b"COPY", b"{a}h", b"{c}h", b"DB", b"5", b"REPLACE"],
            [b"SADD", b"{a}set", b"m1", b"m2"], [b"SADD", b"{b}set", b"x"],
            [b"SMOVE", b"{a}set", b"{b}set", b"m1"], [b"SMOVE", b"{a}set", b"{c}set", b"m2"],
            [b"RPUSH", b"{a}l", b"1", b"2", b"3", b"4"], [b"RPUSH", b"{b}l", b"z"],
            [b"LMOVE", b"{a}l", b"{b}l", b"LEFT", b"RIGHT"], [b"RPOPLPUSH", b"{a}l", b"{c}l"],
            [b"BLMOVE", b"{a}l", b"{c}l", b"RIGHT", b"RIGHT", b"0"],
            [b"MSETNX", b"{a}x", b"1", b"{b}x", b"2", b"{c}x", b"3"],
            [b"SADD", b"{b}s1", b"a", b"b", b"c"], [b"SADD", b"{c}s2", b"b", b"c", b"d"],
            [b"SINTERSTORE", b"{a}si", b"{b}s1", b"{c}s2"],
            [b"SUNIONSTORE", b"{a}su", b"{b}s1", b"{c}s2", b"{a}none"],
            [b"SDIFFSTORE", b"{b}sd", b"{b}s1", b"{c}s2"],
            [b"ZADD", b"{b}z1", b"1", b"a", b"2", b"b"],
            [b"ZADD", b"{c}z2", b"3", b"b", b"4", b"c"],
            [b"ZUNIONSTORE", b"{a}zu", b"2", b"{b}z1", b"{c}z2", b"WEIGHTS", b"1", b"10",
             b"AGGREGATE", b"MAX"],
            [b"ZINTERSTORE", b"{a}zi", b"2", b"{b}z1", b"{c}z2"],
            [b"ZRANGESTORE", b"{a}zr", b"{c}z2", b"0", b"-1"],
            [b"SET", b"{b}b1", b"\xff\x0f"], [b"SET", b"{c}b2", b"\x0f\xff"],
            [b"BITOP", b"AND", b"{a}bits", b"{b}b1", b"{c}b2"],
            [b"MULTI"], [b"SET", b"{a}t", b"1"], [b"INCR", b"{b}t"],
            [b"RENAME", b"{a}x", b"{c}renamed"], [b"EXEC"],
            [b"MULTI"], [b"SET", b"{a}u", b"1"], [b"SET", b"{b}u", b"2"], [b"SELECT", b"9"],
            [b"SET", b"{c}u", b"3"], [b"EXEC"],
        ]  # fmt: skip
    return cmds


def test_cross_slot_commands_replay_as_their_effects(c16: list[RealServer], tmp_path: Path) -> None:
    flush(c16)
    aof = write_aof(tmp_path / "x.aof", cross_slot_workload())
    res = run(str(aof), "--target", target(c16), "--verify", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["errors"] == 0 and doc["verify"]["clean"], doc
    for name in ("RENAME", "RENAMENX", "COPY", "SMOVE", "LMOVE", "RPOPLPUSH", "BLMOVE",
                 "MSETNX", "SINTERSTORE", "ZUNIONSTORE", "BITOP"):  # fmt: skip
        assert doc["cross_slot"].get(name), name
    assert any("split into one transaction per slot" in w for w in doc["warnings"])
    assert cluster_contents(c16) == expected_now(aof)
    keys = [k for s in c16 for db in (0, 3, 5, 9) for k in s.client(db=db).scan_iter()]
    assert not [k for k in keys if b"valkey-aof-replay" in k]  # no temporary key left


def test_commands_our_engine_lacks_route_by_the_target_key_specs(
    c16: list[RealServer], tmp_path: Path
) -> None:
    """PFADD/PFMERGE, SORT ... STORE, GEO*STORE are not in our command table: they are routed
    by the target's COMMAND key specs, and their cross-slot forms replayed as effects; the
    cluster ends with what a standalone valkey-server holds after the same file (our engine
    cannot load these commands, so --verify is not used here)."""
    flush(c16)
    aof = write_aof(
        tmp_path / "k.aof",
        [[b"PFADD", b"{b}h1", b"x", b"y"], [b"PFADD", b"{c}h2", b"y", b"z"],
         [b"PFMERGE", b"{a}hll", b"{b}h1", b"{c}h2"],
         [b"RPUSH", b"{b}l", b"3", b"1", b"2"], [b"SORT", b"{b}l", b"STORE", b"{c}sorted"],
         [b"GEOADD", b"{b}g", b"13.361389", b"38.115556", b"Palermo", b"15.087269",
          b"37.502669", b"Catania"],
         [b"GEOSEARCHSTORE", b"{a}gs", b"{b}g", b"FROMLONLAT", b"15", b"37", b"BYRADIUS",
          b"200", b"km", b"ASC"],
         [b"SELECT", b"2"], [b"PFADD", b"hll", b"a"], [b"PFADD", b"other", b"b"]],
    )  # fmt: skip
    res = run(str(aof), "--target", target(c16), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["errors"] == 0 and set(doc["cross_slot"]) == {"PFMERGE", "SORT", "GEOSEARCHSTORE"}
    with real_server(tmp_path / "std") as std:
        assert run(str(aof), "--target", f"redis://127.0.0.1:{std.port}").exit_code == 0
        assert cluster_contents(c16) == normalise(snapshot(std.client()))


@pytest.mark.parametrize("tricky", [False, True])
def test_raw_runs_are_split_by_node(c16: list[RealServer], tmp_path: Path, tricky: bool) -> None:
    """Runs of one-key commands are cut per node at C speed (a split at command starts), or
    command by command when a value holds bytes that look like one, or keys have hash tags."""
    flush(c16)
    value = b"v\r\n*3\r\n$3" if tricky else b"v"
    cmds = [[b"SET", b"k%d" % i, value * (i % 4)] for i in range(3000)]
    cmds += [[b"INCR", b"{t}%d" % (i % 7)] for i in range(300)]
    cmds += [[b"RPUSH", b"l%d" % (i % 5), b"%d" % i] for i in range(300)]
    aof = write_aof(tmp_path / "r.aof", cmds)
    res = replay(aof, ReplayOptions(target=target(c16), verify=True))
    assert res.verify.clean, res.verify.details()
    assert sum(s.client().dbsize() for s in c16) == 3000 + 7 + 5


def test_dry_run_routing_plan(c16: list[RealServer]) -> None:
    flush(c16)
    res = run(str(REAL / "aof_preamble" / "appendonlydir"), "--target", target(c16), "--dry-run")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert plan["mode"] == "cluster"
    assert {f"127.0.0.1:{s.port}" for s in c16} <= set(plan["per_node"])
    assert sum(s.client().dbsize() for s in c16) == 0


def test_moved_redirections_are_followed_in_order(
    c16: list[RealServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stale slot map (every slot on the first node) ends in the same contents."""
    flush(c16)
    real_load = rc.ClusterMap._load
    calls = [0]

    def stale(self: rc.ClusterMap, reply: Any, via: Any) -> None:
        real_load(self, reply, via)
        calls[0] += 1
        if calls[0] == 1:
            first = self.primaries[0]
            self.slots = [first] * rc.SLOTS
            self.owner = [0] * rc.SLOTS
            self.owner16 = [0] * rc.SLOTS * 4

    monkeypatch.setattr(rc.ClusterMap, "_load", stale)
    aof = counter_aof(tmp_path / "c.aof", 3000)
    res = replay(aof, ReplayOptions(target=target(c16), verify=True))
    assert calls[0] >= 2
    assert res.verify.clean, res.verify.details()
    c = {k["key"]: k["value"] for k in cluster_contents(c16)}
    assert sum(int(c[f"counter:{i}"]) for i in range(50)) == 3000
    assert c["log"] == [str(i) for i in range(300)]


def test_cluster_replay_interrupted_and_resumed(c16: list[RealServer], tmp_path: Path) -> None:
    flush(c16)
    n = 20_000
    aof = counter_aof(tmp_path / "c.aof", n)
    ck = tmp_path / "ck.json"
    p = _cli(
        str(aof), "--target", target(c16), "--checkpoint", str(ck), "--rate", "8000",
        "--checkpoint-every", "500",
    )  # fmt: skip
    wait_for_progress(ck)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    done = json.loads(ck.read_text())["index"]
    assert 0 < done < n
    res = run(str(aof), "--target", target(c16), "--checkpoint", str(ck), "--resume", "--verify")
    assert res.exit_code == 0, res.output
    c = {k["key"]: k["value"] for k in cluster_contents(c16)}
    assert sum(int(c[f"counter:{i}"]) for i in range(50)) == n
    assert len(c["log"]) == n // 10


def test_cluster_without_databases_refuses_other_dbs(tmp_path: Path) -> None:
    src = REAL / "aof_preamble" / "appendonlydir"
    with cluster(tmp_path, 1) as nodes:
        res = run(str(src), "--target", target(nodes), "--quiet")
        assert res.exit_code == 1
        assert "cluster-databases" in res.stderr and "--flatten-db" in res.stderr
        nodes[0].client().flushall()  # what came before the first db-5 command was applied
        multi = write_aof(
            tmp_path / "m.aof",
            [[b"SELECT", b"2"], [b"SET", b"a", b"1"], [b"SELECT", b"5"], [b"SET", b"b", b"2"]],
        )
        res = run(str(multi), "--target", target(nodes), "--flatten-db", "--verify")
        assert res.exit_code == 0, res.output
        assert nodes[0].client().dbsize() == 2
