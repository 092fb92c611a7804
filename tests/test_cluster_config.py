"""nodes.conf in the server: loaded at start-up, locked, saved when the cluster state changes."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import redis
from enginesrv import engine_server

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "valkey-9.1.2" / "cluster_node"
CLUSTER = ("--cluster-enabled", "yes", "--cluster-databases", "16")


def test_fresh_node_writes_nodes_conf_and_keeps_its_id(tmp_path: Path) -> None:
    with engine_server(tmp_path, *CLUSTER) as srv:
        c = srv.client()
        myid = c.execute_command("CLUSTER", "MYID")
        conf = (tmp_path / "nodes.conf").read_text()
        assert conf.startswith(myid.decode() + " ")
        assert "myself,master" in conf
        assert c.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "99") == b"OK"
        # saved before the reply left (clusterBeforeSleep)
        assert " connected 0-99\n" in (tmp_path / "nodes.conf").read_text()
        c.close()
    with engine_server(tmp_path, *CLUSTER) as srv:
        c = srv.client()
        assert c.execute_command("CLUSTER", "MYID") == myid
        assert c.execute_command("CLUSTER", "COUNTKEYSINSLOT", "5") == 0
        slots = c.execute_command("CLUSTER", "SLOTS")
        assert [s[:2] for s in slots] == [[0, 99]]
        assert slots[0][2][1] == srv.port  # myself's port follows the server, not the file
        c.close()


def test_loads_the_real_nodes_conf_and_its_data(tmp_path: Path) -> None:
    shutil.copy(FIXTURE / "nodes.conf", tmp_path / "nodes.conf")
    shutil.copytree(FIXTURE / "appendonlydir", tmp_path / "appendonlydir")
    with engine_server(tmp_path, *CLUSTER) as srv:
        c = srv.client()
        assert c.execute_command("CLUSTER", "MYID") == b"7a8400952f693ff7595c65d59ae77bf7774a387c"
        info = c.execute_command("CLUSTER", "INFO").decode()
        assert "cluster_slots_assigned:16384" in info
        assert c.dbsize() > 0
        c.close()
    # rewritten with our port, same node
    conf = (tmp_path / "nodes.conf").read_text()
    assert conf.startswith(f"7a8400952f693ff7595c65d59ae77bf7774a387c :{srv.port}@")


def test_corrupt_nodes_conf_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "nodes.conf").write_text("this is not a nodes.conf\n")
    with (
        pytest.raises(RuntimeError, match="corrupted cluster config file"),
        engine_server(tmp_path, *CLUSTER),
    ):
        pass


def test_two_nodes_cannot_share_one_nodes_conf(tmp_path: Path) -> None:
    with engine_server(tmp_path / "a", *CLUSTER):
        conf = str(tmp_path / "a" / "nodes.conf")
        with (
            pytest.raises(RuntimeError, match="already used by a different Cluster node"),
            engine_server(tmp_path / "b", *CLUSTER, "--cluster-config-file", conf),
        ):
            pass


def test_three_nodes_from_nodes_conf_route_to_each_other(tmp_path: Path) -> None:
    """A cluster can be written down in nodes.conf files and started (how the migration tests
    and operators restore a cluster)."""
    from realserver import free_port

    ports = [free_port() for _ in range(3)]
    ids = [f"{i + 1:040x}" for i in range(3)]
    ranges = ["0-5460", "5461-10922", "10923-16383"]
    for i in range(3):
        lines = []
        for j in range(3):
            flags = "myself,master" if i == j else "master"
            lines.append(
                f"{ids[j]} 127.0.0.1:{ports[j]}@{ports[j] + 10000},,shard-id={ids[j][::-1]} "
                f"{flags} - 0 0 {j + 1} connected {ranges[j]}"
            )
        lines.append("vars currentEpoch 3 lastVoteEpoch 0")
        d = tmp_path / f"n{i}"
        d.mkdir()
        (d / "nodes.conf").write_text("\n".join(lines) + "\n")
    with (
        engine_server(tmp_path / "n0", *CLUSTER, port=ports[0]) as a,
        engine_server(tmp_path / "n1", *CLUSTER, port=ports[1]),
        engine_server(tmp_path / "n2", *CLUSTER, port=ports[2]),
    ):
        c = a.client()
        # a restarted primary turns ok after Valkey's writable and rejoin delays
        deadline = time.monotonic() + 30
        while b"cluster_state:ok" not in c.execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert c.execute_command("CLUSTER", "KEYSLOT", "foo") == 12182
        with pytest.raises(redis.exceptions.MovedError, match=f"12182 127.0.0.1:{ports[2]}"):
            c.set("foo", "1")
        assert c.set("bar", "1")  # slot 5061: node 0's own
        c.close()
