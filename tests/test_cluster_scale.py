"""Scale on one machine: a 10-node engine cluster on loopback forms from MEETs (node 0 meets
the others; the rest is gossip), converges (every node agrees on every slot's owner, all links
up, cluster_state ok), carries a topology change to every node, and ``redis-cli --cluster
check`` (Debian redis-tools) finds it consistent. ``CLUSTER_SCALE_NODES`` changes the size."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from clusterutil import EngineCluster, form, parse_nodes, start_nodes, stop_node, wait_for

pytestmark = pytest.mark.slow

NODES = int(os.environ.get("CLUSTER_SCALE_NODES", "10"))


def _check(cl: EngineCluster) -> None:
    cli = shutil.which("redis-cli")
    if cli is None:  # the consistency check redis-cli does, by hand
        views = [parse_nodes(str(cl.cmd(i, "CLUSTER", "NODES"), "utf-8")) for i in range(NODES)]
        sigs = [sorted((k, tuple(v["slots"])) for k, v in w.items() if v["slots"]) for w in views]  # type: ignore[arg-type]
        assert all(s == sigs[0] for s in sigs)
        return
    r = subprocess.run([cli, "--cluster", "check", f"127.0.0.1:{cl.nodes[0].port}"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[OK] All nodes agree about slots configuration." in r.stdout
    assert "[OK] All 16384 slots covered." in r.stdout
    assert f"{NODES} masters" in r.stdout


def test_ten_nodes_form_converge_and_stay_consistent(tmp_path: Path) -> None:
    nodes = start_nodes(tmp_path, NODES)
    cl = EngineCluster(nodes)
    try:
        t0 = time.monotonic()
        form(cl, timeout=60)
        print(f"{NODES} nodes converged {time.monotonic() - t0:.1f} s after the MEETs")
        _check(cl)
        # every config epoch differs once the collisions are resolved (clusterHandleConfigEpochCollision)
        wait_for(
            lambda: len({v["epoch"] for v in parse_nodes(str(cl.cmd(0, "CLUSTER", "NODES"), "utf-8")).values()}) == NODES,
            timeout=30,
        )  # fmt: skip
        rc = cl.cluster_client()
        try:
            for i in range(1000):
                rc.set(f"scale:{i}", i)
            assert rc.get("scale:999") == b"999"
        finally:
            rc.close()
        assert sum(cl.client(i).dbsize() for i in range(NODES)) == 1000
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
                owner = [r for r in slots if r[0] <= slot <= r[1]]  # type: ignore[union-attr]
                if not owner or owner[0][2][1] != cl.nodes[last].port:
                    return False
            return True

        wait_for(everywhere, timeout=30)
        print(f"SETSLOT NODE reached all {NODES} nodes in {time.monotonic() - t0:.2f} s")
        _check(cl)
    finally:
        for s in cl.nodes:
            stop_node(s)
