"""Scale on one machine: a 10-node engine cluster on loopback forms from MEETs (node 0 meets
the others; the rest is gossip), converges (every node agrees on every slot's owner, all links
up, cluster_state ok), carries a topology change to every node, survives concurrent atomic
slot migrations between different node pairs, and ``redis-cli --cluster check`` (Debian
redis-tools) finds it consistent afterwards. ``CLUSTER_SCALE_NODES`` changes the size."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from clusterutil import (
    EngineCluster,
    form,
    parse_nodes,
    split_slots,
    start_nodes,
    stop_node,
    wait_converged,
    wait_for,
)
from migrationutil import migrate, wait_job

pytestmark = pytest.mark.slow

NODES = int(os.environ.get("CLUSTER_SCALE_NODES", "10"))


def _check(cl: EngineCluster) -> None:
    cli = shutil.which("redis-cli")
    if cli is None:  # the consistency check redis-cli does, by hand
        views = [parse_nodes(str(cl.cmd(i, "CLUSTER", "NODES"), "utf-8")) for i in range(NODES)]
        sigs = [sorted((k, tuple(v["slots"])) for k, v in w.items() if v["slots"]) for w in views]
        assert all(s == sigs[0] for s in sigs)
        return
    r = subprocess.run([cli, "--cluster", "check", f"127.0.0.1:{cl.nodes[0].port}"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[OK] All nodes agree about slots configuration." in r.stdout
    assert "[OK] All 16384 slots covered." in r.stdout
    assert f"{NODES} masters" in r.stdout


def _counters(cl: EngineCluster) -> tuple[int, int]:
    info = dict(
        line.split(":", 1)
        for line in str(cl.cmd(0, "CLUSTER", "INFO"), "utf-8").split("\r\n")
        if ":" in line
    )
    return int(info["cluster_stats_messages_sent"]), int(info["cluster_stats_bytes_sent"])


def test_ten_nodes_form_converge_and_stay_consistent(tmp_path: Path) -> None:
    nodes = start_nodes(tmp_path, NODES)
    cl = EngineCluster(nodes)
    try:
        agreed, ok = form(cl, timeout=60)
        print(f"{NODES} nodes after the MEETs: all agree on nodes and slots in {agreed:.1f} s, "
              f"cluster_state:ok everywhere in {ok:.1f} s")  # fmt: skip
        before = _counters(cl)
        time.sleep(1)
        after = _counters(cl)
        msgs, nbytes = after[0] - before[0], after[1] - before[1]
        print(f"node 0 bus traffic: {msgs} messages/s sent, {nbytes / 1024:.1f} KiB/s sent, "
              f"{nbytes / max(1, msgs):.0f} B/message")  # fmt: skip

        def epochs() -> set[int]:
            text = str(cl.cmd(0, "CLUSTER", "NODES"), "utf-8")
            return {v["epoch"] for v in parse_nodes(text).values()}

        # all config epochs differ once collisions are resolved (clusterHandleConfigEpochCollision)
        wait_for(lambda: len(epochs()) == NODES, timeout=30)
        rc = cl.cluster_client()
        try:
            for i in range(300):
                rc.set(f"scale:{i}", i)
            assert rc.get("scale:299") == b"299"
        finally:
            rc.close()
        assert sum(cl.client(i).dbsize() for i in range(NODES)) == 300
        # a topology change: the last node takes an empty slot of node 0 (legacy SETSLOT)
        slot = 0
        while cl.cmd(0, "CLUSTER", "COUNTKEYSINSLOT", slot):
            slot += 1
        last = NODES - 1
        cl.cmd(last, "CLUSTER", "SETSLOT", slot, "IMPORTING", cl.ids[0])
        cl.cmd(0, "CLUSTER", "SETSLOT", slot, "MIGRATING", cl.ids[last])
        t0 = time.monotonic()
        cl.cmd(last, "CLUSTER", "SETSLOT", slot, "NODE", cl.ids[last])

        def everywhere() -> bool:
            for i in range(NODES):
                slots = cl.cmd(i, "CLUSTER", "SLOTS")
                owner = [r for r in slots if r[0] <= slot <= r[1]]
                if not owner or owner[0][2][1] != cl.nodes[last].port:
                    return False
            return True

        wait_for(everywhere, timeout=30)
        print(f"SETSLOT NODE reached all {NODES} nodes in {time.monotonic() - t0:.2f} s")
        # concurrent atomic migrations between different node pairs: i -> i+1 for i = 1, 3, 5
        pairs = [(i, i + 1) for i in range(1, NODES - 1, 2)][:3]
        t0 = time.monotonic()
        for src, dst in pairs:
            start = split_slots(NODES)[src][0]
            migrate(cl.client(src), cl.ids[dst], (start, start + 99))
        for src, _ in pairs:
            assert wait_job(cl.client(src), timeout=60)[b"state"] == b"success"
        wait_converged(cl, timeout=30)
        print(f"{len(pairs)} concurrent migrations of 100 slots done and agreed on by every "
              f"node in {time.monotonic() - t0:.2f} s")  # fmt: skip
        for src, dst in pairs:
            owner = [
                r
                for r in cl.cmd(0, "CLUSTER", "SLOTS")
                if r[0] <= split_slots(NODES)[src][0] <= r[1]
            ]
            assert owner[0][2][1] == cl.nodes[dst].port
        rc = cl.cluster_client()
        try:
            assert [rc.get(f"scale:{i}") for i in range(300)] == [b"%d" % i for i in range(300)]
        finally:
            rc.close()
        assert sum(cl.client(i).dbsize() for i in range(NODES)) == 300
        _check(cl)
    finally:
        for s in cl.nodes:
            stop_node(s)
