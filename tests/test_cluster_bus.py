"""The cluster bus: the messages and merge rules (pure, engine/cluster/gossip.py) and engine
nodes forming a cluster over RESP links on their client ports (engine/server/cluster_bus.py):
MEET handshake, gossip discovery, slot/epoch propagation, FORGET, restart from nodes.conf,
redis-py RedisCluster, ``redis-cli -c`` and ``redis-cli --cluster check``."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from clusterutil import (
    EngineCluster,
    engine_cluster,
    meet,
    parse_nodes,
    start_node,
    start_nodes,
    stop_node,
    wait_converged,
    wait_for,
    wait_ready,
)
from realserver import free_port

from engine.cluster import gossip
from engine.cluster.slots import ClusterState, NodeRecord
from engine.commands.table import TABLE
from engine.config import Config
from engine.engine import Engine
from persistence.resp.frames import Bulk, SimpleString

OK = SimpleString(b"OK")

RNG = random.Random(7)
PASSWORD = "bus-secret"


def _state(port: int, ranges: Sequence[tuple[int, int]] = (), epoch: int = 0) -> ClusterState:
    s = ClusterState.fresh(port)
    for a, b in ranges:
        for slot in range(a, b + 1):
            s.add_slot(s.myself, slot)
    s.myself.config_epoch = epoch
    s.current_epoch = epoch
    return s


def _know(a: ClusterState, b: ClusterState) -> NodeRecord:
    """``a`` learns ``b`` as a plain primary (as after a handshake)."""
    n = NodeRecord(b.myself.name, ip="127.0.0.1", port=b.myself.port, cport=b.myself.cport,
                   flags={"master"}, shard_id=b.myself.shard_id)  # fmt: skip
    a.add_node(n)
    return n


# -- the messages ------------------------------------------------------------------------------
def test_messages_round_trip_and_reject_garbage() -> None:
    a, b = _state(7000, [(0, 99), (200, 200)], epoch=3), _state(7001)
    _know(a, b).link = True
    ping = gossip.make_ping(a, "ping", None, RNG)
    fields = gossip.encode(ping)
    assert fields[:9] == [b"ping", a.myself.name.encode(), b"3", b"3", b"7000", b"17000",
                          b"master", a.myself.shard_id.encode(), b"0-99,200"]  # fmt: skip
    assert gossip.decode(fields) == ping
    upd = gossip.make_update(a, a.myself)
    assert gossip.decode(gossip.encode(upd)) == upd
    assert gossip.expand_slots(b"0-2,7") == [0, 1, 2, 7]
    for bad in (
        [b"ping"],
        [b"nope", *fields[1:]],
        [*fields[:9], b"2"],
        [*fields[:2], b"x", *fields[3:]],
    ):
        with pytest.raises(gossip.GossipError):
            gossip.decode(bad)
    with pytest.raises(gossip.GossipError):
        gossip.expand_slots(b"5-16384")


def test_gossip_section_size_follows_valkey() -> None:
    """max(3, N/10) healthy nodes besides the sender and the receiver (clusterSendPing)."""
    a = _state(7000)
    others = [_know(a, _state(7001 + i)) for i in range(40)]
    for n in others:
        n.link = True
    msg = gossip.make_ping(a, "ping", others[0], RNG)
    assert len(msg.gossip) == 4
    assert others[0].name not in {g.name for g in msg.gossip}
    others[5].flags.add("fail?")  # PFAIL nodes always travel
    msg = gossip.make_ping(a, "ping", others[0], RNG)
    assert others[5].name in {g.name for g in msg.gossip}


# -- the merge rules ---------------------------------------------------------------------------
def test_meet_handshake_then_pong_gives_the_real_name() -> None:
    a, b = _state(7000, [(0, 10)], epoch=1), _state(7001)
    hs = NodeRecord("f" * 40, ip="127.0.0.1", port=7001, cport=17001, flags={"handshake", "meet"})
    a.add_node(hs)
    meet_msg = gossip.make_ping(a, "meet", hs, RNG)
    out = gossip.receive(b, meet_msg, 1000, RNG, peer_ip="127.0.0.1", local_ip="127.0.0.1")
    # b records a in handshake (random name) and learns its own address from the MEET
    assert b.myself.ip == "127.0.0.1"
    assert [n.flags for n in b.nodes.values() if n is not b.myself] == [{"handshake"}]
    assert [m.type for m in out.replies] == ["pong"]
    out = gossip.receive(a, out.replies[0], 1001, RNG, link_node=hs)
    assert hs.name == b.myself.name and hs.flags == {"master"} and a.lookup(hs.name) is hs
    assert hs.pong_received == 1001 and out.nodes_changed
    # b's PING to its handshake record of a: a answers, b renames it
    b_hs = next(n for n in b.nodes.values() if n is not b.myself)
    out = gossip.receive(a, gossip.make_ping(b, "ping", b_hs, RNG), 1002, RNG, peer_ip="127.0.0.1")
    gossip.receive(b, out.replies[0], 1003, RNG, link_node=b_hs)
    assert b_hs.name == a.myself.name
    assert [b.slots[s] for s in (0, 10, 11)] == [b_hs, b_hs, None]  # slots came with the PONG
    assert a.messages_received == {"pong": 1, "ping": 1} and b.messages_received["meet"] == 1


def test_higher_config_epoch_wins_a_slot_and_stale_claims_get_an_update() -> None:
    a, b, c = _state(7000, [(0, 99)], epoch=1), _state(7001, epoch=5), _state(7002)
    a_b, c_a, c_b = _know(a, b), _know(c, a), _know(c, b)
    c_a.config_epoch = 1
    for s in range(100):
        c.add_slot(c_a, s)
    # b claims 50-60 with epoch 5: c and a move them to b
    for slot in range(50, 61):
        b.add_slot(b.myself, slot)
    b_ping = gossip.make_ping(b, "ping", None, RNG)
    out = gossip.receive(c, b_ping, 1, RNG, peer_ip="127.0.0.1")
    assert out.topology and c.slots[55] is c_b and c.slots[49] is c_a and c_b.config_epoch == 5
    out = gossip.receive(a, b_ping, 1, RNG, peer_ip="127.0.0.1", has_keys=lambda s: s == 52)
    assert a.slots[55] is a_b and out.lost_slots == [52] and a.myself.numslots == 89
    # a claims 0-99 again with its older epoch 1: c keeps b's slots and answers an UPDATE
    stale = gossip.make_ping(a, "ping", None, RNG)
    stale.slots = b"0-99"
    out = gossip.receive(c, stale, 2, RNG, peer_ip="127.0.0.1")
    assert c.slots[55] is c_b
    assert [m.type for m in out.replies] == ["pong", "update"]
    update = out.replies[1]
    assert update.node == b.myself.name and update.node_epoch == 5
    # a node that still has the old view applies the UPDATE (its sender must be known)
    x = _state(7003)
    _know(x, c)
    x_b = _know(x, b)
    out = gossip.receive(x, update, 3, RNG)
    assert out.topology and x.slots[55] is x_b and x_b.config_epoch == 5


def test_importing_slot_is_not_taken_by_gossip() -> None:
    a, b = _state(7000), _state(7001, [(5, 5)], epoch=2)
    a_b = _know(a, b)
    a.importing[5] = a_b
    gossip.receive(a, gossip.make_ping(b, "ping", None, RNG), 1, RNG, peer_ip="127.0.0.1")
    assert a.slots[5] is None


def test_config_epoch_collision_smaller_id_takes_a_new_epoch() -> None:
    """clusterHandleConfigEpochCollision."""
    a, b = _state(7000, epoch=4), _state(7001, epoch=4)
    small, big = sorted([a, b], key=lambda s: s.myself.name)
    _know(small, big)
    _know(big, small)
    out = gossip.receive(
        big, gossip.make_ping(small, "ping", None, RNG), 1, RNG, peer_ip="127.0.0.1"
    )
    assert not out.announce and big.myself.config_epoch == 4
    out = gossip.receive(
        small, gossip.make_ping(big, "ping", None, RNG), 1, RNG, peer_ip="127.0.0.1"
    )
    assert out.announce and small.myself.config_epoch == 5 and small.current_epoch == 5


def test_gossip_discovers_nodes_but_not_forgotten_ones() -> None:
    a, b, c, d = (_state(7000 + i) for i in range(4))
    _know(a, b)
    for other in (c, d):
        _know(b, other).link = True
    a.blacklist_add(d.myself.name, 0)
    ping = gossip.make_ping(b, "ping", None, RNG)
    ping.gossip = [gossip.Gossip(n.myself.name, "127.0.0.1", n.myself.port, n.myself.cport,
                                 "master", 0, 0) for n in (c, d)]  # fmt: skip
    gossip.receive(a, ping, 1000, RNG, peer_ip="127.0.0.1")
    assert a.lookup(c.myself.name) is not None  # learned with its exact id
    assert a.lookup(d.myself.name) is None  # FORGET keeps it out for 60 s
    # a sender we do not know is not trusted
    e = _state(7010)
    _know(e, _state(7011)).link = True
    gossip.receive(a, gossip.make_ping(e, "ping", None, RNG), 1000, RNG, peer_ip="127.0.0.1")
    assert len(a.nodes) == 3


def test_bus_subcommand_is_hidden_from_command_introspection() -> None:
    cfg = Config()
    cfg.set("cluster-enabled", "yes", startup=True)
    e = Engine(cfg)
    c = e.new_client()
    info, _ = e.execute(c, [b"COMMAND", b"INFO", b"cluster"])
    subs = [sub.items[0].value for sub in info.items[0].items[9].items]
    assert b"cluster|meet" in subs and b"cluster|bus" not in subs
    listed, _ = e.execute(c, [b"COMMAND", b"LIST"])
    flat = [x.value if isinstance(x, Bulk) else x for x in getattr(listed, "items", listed)]
    assert b"cluster|bus" not in flat and b"cluster|meet" in flat
    assert b"bus" in TABLE[b"cluster"].subcommands  # dispatch still finds it
    reply, _ = e.execute(c, [b"CLUSTER", b"BUS", *([b"x"] * 10)])
    assert b"Invalid cluster bus message" in bytes(getattr(reply, "message", b""))
    assert not isinstance(reply, Bulk)


def test_meet_through_the_command_handler_counts_messages() -> None:
    """The receiving side is the CLUSTER BUS handler: reply = [PONG], CLUSTER INFO counters."""
    engines = []
    for port in (7100, 7101):
        cfg = Config()
        for name, value in (("cluster-enabled", "yes"), ("port", str(port))):
            cfg.set(name, value, startup=True)
        engines.append(Engine(cfg))
    a, b = engines
    ca, cb = a.new_client(), b.new_client("127.0.0.1:50000", "127.0.0.1:7101")
    assert a.execute(ca, [b"CLUSTER", b"MEET", b"127.0.0.1", b"7101"])[0] == OK
    assert a.cluster is not None and b.cluster is not None
    hs = next(n for n in a.cluster.nodes.values() if "handshake" in n.flags)
    meet_msg = gossip.make_ping(a.cluster, "meet", hs, RNG)
    reply, _ = b.execute(cb, [b"CLUSTER", b"BUS", *gossip.encode(meet_msg)])
    pong = gossip.decode(reply[0])  # plain Python values: a list of lists of bytes
    assert pong.type == "pong" and pong.sender == b.cluster.myself.name
    gossip.receive(a.cluster, pong, 1, RNG, link_node=hs)
    assert hs.name == b.cluster.myself.name and "handshake" not in hs.flags
    info = b.execute(cb, [b"CLUSTER", b"INFO"])[0].data.decode()
    assert "cluster_stats_messages_meet_received:1" in info
    assert "cluster_stats_messages_pong_sent:1" in info
    assert b.cluster.myself.ip == "127.0.0.1"  # learned from the MEET's connection
    nodes = b.execute(cb, [b"CLUSTER", b"NODES"])[0].data.decode()
    assert "127.0.0.1:7100@17100 handshake - 0 0 0 disconnected" in nodes


# -- engine nodes ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineCluster]:
    """Three nodes with requirepass (the bus links AUTH first), formed by ``redis-cli
    --cluster create`` (ADDSLOTS, SET-CONFIG-EPOCH, MEET to the first node, wait for the join,
    its own check) when Debian's redis-cli is there, else by tests/clusterutil.py."""
    workdir = tmp_path_factory.mktemp("bus")
    cli = shutil.which("redis-cli")
    if cli is None:
        with engine_cluster(workdir, 3, password=PASSWORD) as c:
            yield c
        return
    c = EngineCluster(start_nodes(workdir, 3, "--requirepass", PASSWORD), password=PASSWORD)
    try:
        addrs = [f"127.0.0.1:{n.port}" for n in c.nodes]
        r = subprocess.run([cli, "-a", PASSWORD, "--no-auth-warning", "--cluster", "create",
                            *addrs, "--cluster-yes"], capture_output=True, text=True,
                           timeout=120)  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert "[OK] All nodes agree about slots configuration." in r.stdout
        assert "[OK] All 16384 slots covered." in r.stdout
        c.ids = [c.node_id(i) for i in range(3)]
        wait_converged(c)
        yield c
    finally:
        for s in c.nodes:
            stop_node(s)


def _view(cl: EngineCluster, i: int) -> dict[str, dict[str, Any]]:
    return parse_nodes(str(cl.cmd(i, "CLUSTER", "NODES"), "utf-8"))


def test_three_nodes_form_from_meets_and_agree(cl: EngineCluster) -> None:
    """The nodes met node 0 only; the others learned each other from gossip sections. The
    config epochs all differ (SET-CONFIG-EPOCH, or the collision handling)."""
    for i in range(3):
        v = _view(cl, i)
        assert set(v) == set(cl.ids)
        assert v[cl.ids[i]]["flags"] == {"myself", "master"}
        assert all(e["link"] == "connected" for e in v.values())
        other = (i + 1) % 3
        assert str(v[cl.ids[other]]["addr"]).startswith(f"127.0.0.1:{cl.nodes[other].port}@")
        assert v[cl.ids[other]]["pong_recv"] > 0 and v[cl.ids[i]]["pong_recv"] == 0
        info = str(cl.cmd(i, "CLUSTER", "INFO"), "utf-8")
        assert "cluster_state:ok" in info and "cluster_known_nodes:3" in info
        for counter in ("ping_sent", "pong_sent", "ping_received", "pong_received"):
            assert f"cluster_stats_messages_{counter}:" in info
        links = cl.client(i, protocol=3).execute_command("CLUSTER", "LINKS")
        others = sorted(set(cl.ids) - {cl.ids[i]})
        to = sorted(lk[b"node"].decode() for lk in links if lk[b"direction"] == b"to")
        wait_for(lambda i=i, others=others: _from_links(cl, i) == others)  # type: ignore[misc]
        assert to == others
    wait_for(lambda: len({e["epoch"] for e in _view(cl, 0).values()}) == 3)


def _from_links(cl: EngineCluster, i: int) -> list[str]:
    links = cl.client(i, protocol=3).execute_command("CLUSTER", "LINKS")
    return sorted(lk[b"node"].decode() for lk in links if lk[b"direction"] == b"from")


def test_meet_shows_a_handshake_node_until_it_answers(cl: EngineCluster) -> None:
    port = free_port()  # nobody listens there: the handshake never completes
    assert cl.cmd(0, "CLUSTER", "MEET", "127.0.0.1", port, port - 1 if port > 1 else 1) == b"OK"
    hs = [e for e in _view(cl, 0).values() if "handshake" in e["flags"]]
    assert len(hs) == 1 and hs[0]["addr"] == f"127.0.0.1:{port}@{port - 1}"
    assert hs[0]["link"] == "disconnected"
    # dropped after the handshake timeout, max(cluster-node-timeout, 1 s)... 15 s by default
    cl.cmd(0, "CONFIG", "SET", "cluster-node-timeout", "1000")
    try:
        wait_for(lambda: not [e for e in _view(cl, 0).values() if "handshake" in e["flags"]])
    finally:
        cl.cmd(0, "CONFIG", "SET", "cluster-node-timeout", "15000")


def test_redis_py_cluster_client_1000_keys(cl: EngineCluster) -> None:
    rc = cl.cluster_client()
    try:
        for i in range(1000):
            assert rc.set(f"key:{i}", i)
        assert [rc.get(f"key:{i}") for i in range(1000)] == [str(i).encode() for i in range(1000)]
        sizes = [cl.client(i).dbsize() for i in range(3)]
        assert sum(sizes) == 1000 and min(sizes) > 250
    finally:
        rc.close()


def test_redis_cli_follows_moved_and_cluster_check_passes(cl: EngineCluster) -> None:
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli (Debian redis-tools) not installed")
    p0, p1 = cl.nodes[0].port, cl.nodes[1].port
    auth = ["-a", PASSWORD, "--no-auth-warning"]
    r = subprocess.run([cli, *auth, "-c", "-p", str(p0), "SET", "cli:foo", "bar"],
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.stdout.strip() == "OK", r
    r = subprocess.run([cli, *auth, "-c", "-p", str(p1), "GET", "cli:foo"], capture_output=True,
                       text=True, timeout=30)  # fmt: skip
    assert r.stdout.strip() == "bar", r
    r = subprocess.run([cli, *auth, "--cluster", "check", f"127.0.0.1:{p0}"], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "All nodes agree about slots configuration" in r.stdout
    assert "All 16384 slots covered" in r.stdout


def _owner_everywhere(cl: EngineCluster, slot: int, owner: str) -> bool:
    return all(
        any(slot_in(e["slots"], slot) for e in [v[owner]]) for v in (_view(cl, i) for i in range(3))
    )


def slot_in(ranges: list[str], slot: int) -> bool:
    for r in ranges:
        a, _, b = r.partition("-")
        if int(a) <= slot <= int(b or a):
            return True
    return False


def test_setslot_node_and_bumpepoch_reach_every_node(cl: EngineCluster) -> None:
    """SETSLOT ... IMPORTING + SETSLOT ... NODE myself bumps the importer's config epoch; the
    broadcast carries the new owner to every node (docs/cluster.md: within a second)."""
    slot = 100  # node 0's, empty
    ids = cl.ids
    cl.cmd(1, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[0])
    cl.cmd(0, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[1])
    assert cl.cmd(1, "CLUSTER", "SETSLOT", slot, "NODE", ids[1]) == b"OK"
    wait_for(lambda: _owner_everywhere(cl, slot, ids[1]), timeout=10)
    assert "[" not in str(cl.cmd(0, "CLUSTER", "NODES"), "utf-8")  # node 0's migrating closed
    rc = cl.cluster_client()
    try:
        key = "k2136"  # slot 100
        assert rc.keyslot(key) == slot
        rc.set(key, "v")
        assert cl.client(1).get(key) == b"v"
    finally:
        rc.close()
    # BUMPEPOCH on node 2: the others see its new config epoch
    reply = str(cl.cmd(2, "CLUSTER", "BUMPEPOCH"), "ascii")
    epoch = int(reply.split()[1])
    wait_for(lambda: all(_view(cl, i)[ids[2]]["epoch"] == epoch for i in range(3)), timeout=10)
    wait_converged(cl)


def test_forget_keeps_a_node_out_then_restart_rejoins(cl: EngineCluster, tmp_path: Path) -> None:
    extra = start_node(tmp_path / "extra", "--requirepass", PASSWORD)
    try:
        wait_ready(extra)
        meet(cl, 0, extra)
        xid = str(extra.client(password=PASSWORD).execute_command("CLUSTER", "MYID"), "ascii")
        wait_for(lambda: all(xid in _view(cl, i) for i in range(3)), timeout=15)
        # FORGET on node 1 only: nodes 0 and 2 still gossip about it, the blacklist holds
        assert cl.cmd(1, "CLUSTER", "FORGET", xid) == b"OK"
        assert xid not in _view(cl, 1)
        forgotten_for = [xid not in _view(cl, 1) for _ in range(20)]
        assert all(forgotten_for)
        for i in (0, 2):
            cl.cmd(i, "CLUSTER", "FORGET", xid)
        assert cl.cmd(1, "CLUSTER", "FORGET", xid) == b"OK"  # blacklisted: still OK
    finally:
        stop_node(extra)
    # restart node 2 from its nodes.conf: same id, same slots, links come back
    node2 = cl.nodes[2]
    before = _view(cl, 2)
    cl.cmd(0, "CONFIG", "SET", "cluster-node-timeout", "1000")  # PFAIL after 1 s
    try:
        stop_node(node2)
        wait_for(lambda: _view(cl, 0)[cl.ids[2]]["link"] == "disconnected", timeout=15)
        # no PONG for longer than the node timeout: PFAIL, nothing more (no FAIL, no failover)
        wait_for(lambda: "fail?" in _view(cl, 0)[cl.ids[2]]["flags"], timeout=15)
        assert "cluster_nodes_pfail:1" in str(cl.cmd(0, "CLUSTER", "INFO"), "utf-8")
        again = start_node(node2.dir, "--requirepass", PASSWORD, port=node2.port)
        cl.nodes[2] = again
        wait_ready(again)
        assert cl.node_id(2) == cl.ids[2]
        wait_converged(cl)
        wait_for(lambda: "fail?" not in _view(cl, 0)[cl.ids[2]]["flags"], timeout=15)
    finally:
        cl.cmd(0, "CONFIG", "SET", "cluster-node-timeout", "15000")
    after = _view(cl, 2)
    assert {k: v["slots"] for k, v in after.items()} == {k: v["slots"] for k, v in before.items()}
