"""Atomic slot migration when things go wrong (issue 6): cancel during the snapshot, SIGKILL of
the target and of the source mid-migration, a target that stops reading. Every time: no key
lost, none duplicated, the source keeps serving its slots, the target keeps no stray key (also
after a restart from its AOF).

The snapshot is made larger than the socket and pipe buffers, and the target is stopped with
SIGSTOP while the source is ``snapshotting``, so the faults land in the middle of the move.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterutil import EngineCluster, engine_cluster, start_node, wait_for, wait_ready
from migrationutil import migrate, migrations, tag_for, wait_job

from persistence.resp.parser import RequestParser

SLOT = 100  # node 0's
DBS = (0, 5)
KEYS = 1200
VALUE = b"v" * 4096  # 2 dbs x 1200 x 4 KB: far more than the buffers between the nodes
TAG = tag_for(SLOT)


@pytest.fixture
def cl(tmp_path: Path) -> Iterator[EngineCluster]:
    with engine_cluster(tmp_path, 2, "--repl-timeout", "2") as cluster:
        for db in DBS:
            c = cluster.client(0, db=db)
            p = c.pipeline(transaction=False)
            for i in range(KEYS):
                p.set(TAG + b"k%d" % i, VALUE)
            p.execute()
        yield cluster
        for n in cluster.nodes:  # never leave a stopped process behind
            if n.proc.poll() is None:
                os.kill(n.proc.pid, signal.SIGCONT)


def _count(c: Any) -> int:
    return int(c.execute_command("CLUSTER", "COUNTKEYSINSLOT", SLOT))


def _stall_target_mid_snapshot(cl: EngineCluster) -> None:
    c = cl.client(0)
    migrate(c, cl.ids[1], (SLOT, SLOT))
    before = (b"connecting", b"sending-establish-command", b"reading-establish-response",
              b"waiting-to-snapshot")  # fmt: skip
    while (state := migrations(c)[0][b"state"]) in before:  # poll without sleeping
        pass
    os.kill(cl.nodes[1].proc.pid, signal.SIGSTOP)
    assert state == b"snapshotting", state


def _writes_still_served(cl: EngineCluster, n: int = 50) -> None:
    c = cl.client(0, db=5)
    for i in range(n):
        assert c.rpush(TAG + b"seq", i) == i + 1


def _source_intact(cl: EngineCluster, n: int = 50) -> None:
    for db in DBS:
        c = cl.client(0, db=db)
        assert _count(c) == KEYS + (db == 5)
        assert c.get(TAG + b"k7") == VALUE
    assert cl.client(0, db=5).lrange(TAG + b"seq", 0, -1) == [b"%d" % i for i in range(n)]


def _target_clean(c: Any) -> None:
    for db in DBS:
        c.execute_command("SELECT", db)
        assert _count(c) == 0, f"stray keys in db {db}"
        assert c.dbsize() == 0
    c.execute_command("SELECT", 0)


def _restart(cl: EngineCluster, i: int) -> Any:
    node = cl.nodes[i]
    node.stop("kill")
    if node.proc.stderr:
        node.proc.stderr.close()
    cl.nodes[i] = start_node(node.dir, port=node.port)
    wait_ready(cl.nodes[i])
    return cl.client(i)


def test_cancel_during_snapshot(cl: EngineCluster) -> None:
    _stall_target_mid_snapshot(cl)
    src = cl.client(0)
    assert migrations(src)[0][b"state"] == b"snapshotting"
    assert src.execute_command("CLUSTER", "CANCELSLOTMIGRATIONS") == b"OK"
    assert wait_job(src)[b"state"] == b"cancelled"
    _writes_still_served(cl)
    os.kill(cl.nodes[1].proc.pid, signal.SIGCONT)
    job = wait_job(cl.client(1))
    assert job[b"state"] == b"failed" and job[b"message"].startswith(b"Connection lost")
    _target_clean(cl.client(1))
    _source_intact(cl)
    _target_clean(_restart(cl, 1))  # its AOF: ESTABLISH, the keys, UNLINKs, FINISH FAILED


def test_sigkill_target_mid_migration(cl: EngineCluster) -> None:
    _stall_target_mid_snapshot(cl)
    _writes_still_served(cl)
    cl.nodes[1].proc.kill()
    job = wait_job(cl.client(0))
    assert job[b"state"] == b"failed" and job[b"message"].startswith(b"Connection lost")
    _source_intact(cl)
    target = _restart(cl, 1)
    _target_clean(target)  # ESTABLISH without FINISH: the keys are dropped
    [job] = migrations(target)  # and the import is closed, as Valkey does
    assert job[b"state"] == b"failed" and job[b"message"] == b"Process restarted"
    wait_for(lambda: _aof_tail(cl.nodes[1].dir)[:5] == [b"CLUSTER", b"SYNCSLOTS", b"FINISH",
                                                        b"STATE", b"FAILED"])  # fmt: skip
    target = _restart(cl, 1)  # the next start finds the import closed
    assert migrations(target) == []
    _target_clean(target)


def _aof_tail(d: Path) -> list[bytes]:
    p = RequestParser()
    for f in sorted((d / "appendonlydir").glob("*.incr.aof")):
        p.feed(f.read_bytes())
    return list(p.commands())[-1]


def test_sigkill_source_mid_migration(cl: EngineCluster) -> None:
    _stall_target_mid_snapshot(cl)
    _writes_still_served(cl)
    cl.nodes[0].proc.kill()  # the target then reads what was sent, and the EOF
    os.kill(cl.nodes[1].proc.pid, signal.SIGCONT)
    job = wait_job(cl.client(1))
    assert job[b"state"] == b"failed" and job[b"message"].startswith(b"Connection lost")
    _target_clean(cl.client(1))
    _restart(cl, 0)
    wait_for(lambda: b"cluster_state:ok" in cl.client(0).execute_command("CLUSTER", "INFO"))
    _source_intact(cl)  # nothing was deleted on the source


def test_target_that_stops_reading_times_out(cl: EngineCluster) -> None:
    _stall_target_mid_snapshot(cl)
    _writes_still_served(cl)  # the source serves its slots while the link is stuck
    job = wait_job(cl.client(0), timeout=15)
    assert job[b"state"] == b"failed"
    assert job[b"message"] == b"Timed out after too long with no interaction"
    os.kill(cl.nodes[1].proc.pid, signal.SIGCONT)
    assert wait_job(cl.client(1))[b"state"] == b"failed"
    _target_clean(cl.client(1))
    _source_intact(cl)
