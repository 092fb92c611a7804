"""Cluster mode in the engine (no server): routing (MOVED/ASK/CROSSSLOT/TRYAGAIN/CLUSTERDOWN),
ASKING, MULTI/EXEC, numbered databases, the per-slot key index, CLUSTER subcommands and
nodes.conf rendering/parsing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.clock import ManualClock
from engine.cluster import nodes_conf
from engine.cluster.slots import ClusterState, NodeRecord
from engine.config import Config
from engine.engine import Engine
from persistence.crc import key_slot
from persistence.resp.frames import Error, SimpleString, Verbatim

FIXTURE = Path(__file__).parent.parent / "fixtures" / "valkey-9.1.2" / "cluster_node" / "nodes.conf"
OTHER = "b" * 40
FOO = key_slot(b"foo")  # 12182
A = key_slot(b"a")  # 15495
HELLO = key_slot(b"hello")  # 866


class Node:
    """An engine in cluster mode with a ManualClock and one client."""

    def __init__(self, dbs: int = 16) -> None:
        cfg = Config()
        cfg.set("cluster-enabled", "yes", startup=True)
        cfg.set("cluster-databases", str(dbs), startup=True)
        cfg.set("port", "7000", startup=True)
        self.clock = ManualClock()
        self.engine = Engine(cfg, self.clock)
        cluster = self.engine.cluster
        assert cluster is not None
        self.cluster: ClusterState = cluster
        self.client = self.engine.new_client()

    def __call__(self, *args: Any) -> Any:
        argv = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        return self.engine.execute(self.client, argv)[0]

    def other(self, *ranges: tuple[int, int]) -> NodeRecord:
        """A second primary at 127.0.0.1:7001 owning ``ranges`` (as gossip would report)."""
        n = NodeRecord(OTHER, ip="127.0.0.1", port=7001, cport=17001, flags={"master"},
                       shard_id="c" * 40, link=True)  # fmt: skip
        self.cluster.add_node(n)
        for lo, hi in ranges:
            for s in range(lo, hi + 1):
                self.cluster.add_slot(n, s)
        return n


def ok_node(mine: tuple[int, int] = (0, 8000), theirs: tuple[int, int] = (8001, 16383)) -> Node:
    n = Node()
    assert n("CLUSTER", "ADDSLOTSRANGE", *mine) == SimpleString(b"OK")
    n.other(theirs)
    n.clock.advance(2500)  # CLUSTER_WRITABLE_DELAY
    return n


def err(text: str) -> Error:
    return Error(text.encode())


CROSS = err("CROSSSLOT Keys in request don't hash to the same slot")
TRYAGAIN = err("TRYAGAIN Multiple keys request during rehashing of slot")


# -- routing ----------------------------------------------------------------------------------
def test_unassigned_and_down() -> None:
    n = Node()
    assert n("GET", "foo") == err("CLUSTERDOWN Hash slot not served")
    assert n("PING") == SimpleString(b"PONG")  # no keys: always served
    n("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    assert n("SET", "foo", "1") == err("CLUSTERDOWN The cluster is down")  # writable delay
    n.clock.advance(2000)
    assert n("SET", "foo", "1") == SimpleString(b"OK")
    n("CLUSTER", "DELSLOTS", 0)
    assert n("GET", "foo") == err("CLUSTERDOWN The cluster is down")  # not full coverage
    n.engine.config.set("cluster-require-full-coverage", "no")
    assert n("GET", "foo") == b"1"
    n.engine.config.set("cluster-require-full-coverage", "yes")
    n.engine.config.set("cluster-allow-reads-when-down", "yes")
    n("CLUSTER", "INFO")  # the state is re-evaluated (clusterCron)
    assert n("GET", "foo") == b"1"
    assert n("SET", "foo", "2") == err(
        "CLUSTERDOWN The cluster is down and only accepts read commands"
    )


def test_key_patterns() -> None:
    n = ok_node()
    assert n("SET", "a", "1") == err(f"MOVED {A} 127.0.0.1:7001")
    assert n("SET", "hello", "1") == SimpleString(b"OK")
    assert n("MSET", "{hello}1", "x", "{hello}2", "y") == SimpleString(b"OK")
    assert n("MGET", "hello", "{hello}1") == [b"1", b"x"]
    assert n("MGET", "hello", "a") == CROSS
    assert n("MGET", "a", "{a}x") == err(f"MOVED {A} 127.0.0.1:7001")
    # hash tags: first '{', next '}', empty tag hashes the whole key
    assert key_slot(b"x{}y") == key_slot(b"x{}y")
    assert n("MSET", "{}a", "1", "{}b", "2") == CROSS
    assert n("RPOPLPUSH", "hello", "hello") == err("WRONGTYPE Operation against a key holding "
                                                   "the wrong kind of value")  # fmt: skip
    assert n("DBSIZE") == 3
    assert n("ZUNIONSTORE", "{hello}d", 2, "{hello}1", "a") == CROSS  # numkeys key spec
    assert n("CLUSTER", "KEYSLOT", "foo{hash_tag}") == 2515
    assert n("CLUSTER", "KEYSLOT", "somekey") == 11058


def test_multi_exec() -> None:
    n = ok_node()
    n("MULTI")
    assert n("SET", "a", "1") == err(f"MOVED {A} 127.0.0.1:7001")
    assert n("SET", "hello", "1") == SimpleString(b"QUEUED")
    assert n("EXEC") == err("EXECABORT Transaction discarded because of previous errors.")
    n("MULTI")
    n("SET", "hello", "1")
    n("PING")
    assert n("SET", "{hello}x", "2") == SimpleString(b"QUEUED")
    assert n("EXEC") == [SimpleString(b"OK"), SimpleString(b"PONG"), SimpleString(b"OK")]
    m = Node()
    m("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    m.clock.advance(2500)
    m("MULTI")
    m("SET", "hello", "1")
    m("SET", "a", "1")
    assert m("EXEC") == CROSS  # the transaction is discarded, the error is EXEC's reply
    assert m("EXEC") == err("ERR EXEC without MULTI")
    assert m("EXISTS", "hello") == 0


def test_migrating_ask_tryagain() -> None:
    n = ok_node()
    assert n("CLUSTER", "SETSLOT", HELLO, "MIGRATING", OTHER) == SimpleString(b"OK")
    assert n("GET", "hello") == err(f"ASK {HELLO} 127.0.0.1:7001")
    n.cluster.migrating.pop(HELLO)
    n("SET", "hello", "1")
    n("CLUSTER", "SETSLOT", HELLO, "MIGRATING", OTHER)
    assert n("GET", "hello") == b"1"  # the key is still here
    assert n("MGET", "hello", "{hello}zz") == TRYAGAIN  # some keys here, some gone
    assert n("MGET", "{hello}a", "{hello}zz") == err(f"ASK {HELLO} 127.0.0.1:7001")
    assert n("MOVE", "hello", 3) == TRYAGAIN
    assert n("COPY", "hello", "{hello}c", "DB", 3) == TRYAGAIN
    assert n("COPY", "hello", "{hello}c", "DB", 0) == TRYAGAIN  # same db, but {hello}c is gone
    # inside MULTI keys are counted at EXEC, following queued SELECTs
    n("MULTI")
    n("SELECT", 5)
    assert n("GET", "hello") == SimpleString(b"QUEUED")
    assert n("EXEC") == err(f"ASK {HELLO} 127.0.0.1:7001")
    n("CLUSTER", "SETSLOT", HELLO, "STABLE")
    assert n("CLUSTER", "NODES").data.split(b"\n")[0].endswith(b"0-8000")


def test_importing_asking() -> None:
    n = ok_node()
    assert n("CLUSTER", "SETSLOT", A, "IMPORTING", OTHER) == SimpleString(b"OK")
    assert n("GET", "a") == err(f"MOVED {A} 127.0.0.1:7001")
    assert n("ASKING") == SimpleString(b"OK")
    assert n("GET", "a") is None
    assert n("GET", "a") == err(f"MOVED {A} 127.0.0.1:7001")  # one command only
    n("ASKING")
    assert n("MGET", "a", "{a}b") == TRYAGAIN
    n("ASKING")
    assert n("SET", "a", "1") == SimpleString(b"OK")
    n("ASKING")
    n("PING")
    assert n("GET", "a") == err(f"MOVED {A} 127.0.0.1:7001")
    n("ASKING")
    n("MULTI")
    n("GET", "a")
    assert n("EXEC") == [b"1"]  # ASKING lasts the whole transaction
    assert n("CLUSTER", "COUNTKEYSINSLOT", A) == 1
    assert "[15495-<-" + OTHER + "]" in n("CLUSTER", "NODES").data.decode()
    assert n("READONLY") == SimpleString(b"OK")
    assert "readonly" in n.client.flags
    assert n("READWRITE") == SimpleString(b"OK")
    assert "readonly" not in n.client.flags


def test_loading_is_not_routed() -> None:
    n = Node()
    n.engine.loading = True
    assert n("SET", "foo", "1") == SimpleString(b"OK")
    n.engine.loading = False
    assert n("GET", "foo") == err("CLUSTERDOWN Hash slot not served")


# -- numbered databases (spec 2) ----------------------------------------------------------------
def test_databases() -> None:
    n = ok_node((0, 16383), (0, -1))
    assert len(n.engine.keyspace.dbs) == 16
    assert n("SELECT", 3) == SimpleString(b"OK")
    assert n("SET", "hello", "3") == SimpleString(b"OK")
    assert n("SELECT", 16) == err("ERR DB index is out of range")
    assert n("SWAPDB", 0, 1) == err("ERR SWAPDB is not allowed in cluster mode")
    assert n("CLUSTER", "COUNTKEYSINSLOT", HELLO) == 1
    n("SELECT", 0)
    assert n("CLUSTER", "COUNTKEYSINSLOT", HELLO) == 0
    assert Node(dbs=1).engine.keyspace.dbs.__len__() == 1


def test_slot_index() -> None:
    n = ok_node((0, 16383), (0, -1))
    n("MSET", "{a}1", "x", "{a}2", "y")
    n("RPUSH", "a", "z")
    n("SELECT", 2)
    n("SET", "a", "2")
    n("SELECT", 0)
    assert n("CLUSTER", "GETKEYSINSLOT", A, 10) == [b"{a}1", b"{a}2", b"a"]
    assert n("CLUSTER", "GETKEYSINSLOT", A, 1) == [b"{a}1"]
    n("DEL", "{a}1")
    n("RENAME", "{a}2", "{a}3")
    assert n("CLUSTER", "GETKEYSINSLOT", A, 10) == [b"a", b"{a}3"]
    n("PEXPIRE", "a", 10)
    n.clock.advance(20)
    assert n("GET", "a") is None
    assert n("CLUSTER", "GETKEYSINSLOT", A, 10) == [b"{a}3"]
    assert n.engine.keyspace.count_keys_in_slot(A) == 2
    assert n("CLUSTER", "SETSLOT", A, "NODE", "f" * 40) == err("ERR Unknown node " + "f" * 40)
    n.other()
    assert n("CLUSTER", "SETSLOT", A, "NODE", OTHER) == err(
        f"ERR Can't assign hashslot {A} to a different node while I still hold keys for this "
        "hash slot."
    )
    assert n("CLUSTER", "FLUSHSLOT", A) == SimpleString(b"OK")
    assert n.engine.keyspace.count_keys_in_slot(A) == 0
    assert n("CLUSTER", "SETSLOT", A, "NODE", OTHER) == SimpleString(b"OK")
    assert n("GET", "a") == err(f"MOVED {A} 127.0.0.1:7001")
    n("FLUSHALL")
    assert n.engine.keyspace.count_keys_in_slot(HELLO) == 0
    assert n("CLUSTER", "COUNTKEYSINSLOT", 16384) == err("ERR Invalid slot")
    assert n("CLUSTER", "GETKEYSINSLOT", 1, -1) == err("ERR Invalid slot or number of keys")


def test_standalone_untouched() -> None:
    e = Engine(clock=ManualClock())
    c = e.new_client()
    assert e.cluster is None
    assert all(db.slot_keys is None for db in e.keyspace.dbs)
    assert e.execute(c, [b"CLUSTER", b"INFO"])[0] == err(
        "ERR This instance has cluster support disabled"
    )
    assert e.execute(c, [b"ASKING"])[0] == err("ERR This instance has cluster support disabled")
    assert e.execute(c, [b"READONLY"])[0] == SimpleString(b"OK")


# -- CLUSTER subcommands ------------------------------------------------------------------------
def test_slot_assignment_errors() -> None:
    n = Node()
    n("CLUSTER", "ADDSLOTSRANGE", 0, 5000)
    assert n("CLUSTER", "ADDSLOTS", 0) == err("ERR Slot 0 is already busy")
    assert n("CLUSTER", "ADDSLOTS", 5002, 5002) == err("ERR Slot 5002 specified multiple times")
    assert n("CLUSTER", "ADDSLOTS", 16384) == err("ERR Invalid or out of range slot")
    assert n("CLUSTER", "ADDSLOTSRANGE", 5, 3) == err(
        "ERR start slot number 5 is greater than end slot number 3"
    )
    assert n("CLUSTER", "ADDSLOTSRANGE", 1) == err(
        "ERR wrong number of arguments for 'cluster|addslotsrange' command"
    )
    assert n("CLUSTER", "DELSLOTS", 6000) == err("ERR Slot 6000 is already unassigned")
    assert n("CLUSTER", "DELSLOTSRANGE", 4000, 4010) == SimpleString(b"OK")
    line = n("CLUSTER", "NODES").data.decode()
    assert line.endswith(" myself,master - 0 0 0 connected 0-3999 4011-5000\n")
    assert n("CLUSTER", "SETSLOT", 100, "FOO") == err(
        "ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP"
    )
    assert n("CLUSTER", "SETSLOT", 9000, "MIGRATING", OTHER) == err(
        "ERR I'm not the owner of hash slot 9000"
    )
    assert n("CLUSTER", "SETSLOT", 100, "IMPORTING", OTHER) == err(
        "ERR I'm already the owner of hash slot 100"
    )
    assert n("CLUSTER", "SETSLOT", 9000, "IMPORTING", OTHER) == err(
        f"ERR I don't know about node {OTHER}"
    )
    assert n("CLUSTER", "SETSLOT", 100, "STABLE", "TIMEOUT") == err("ERR Missing timeout value")
    assert n("CLUSTER", "FOO") == err("ERR unknown subcommand 'FOO'. Try CLUSTER HELP.")


def test_nodes_forget_reset_epochs() -> None:
    n = ok_node()
    me = n.cluster.myself.name
    assert n("CLUSTER", "FORGET", me) == err("ERR I tried hard but I can't forget myself...")
    assert n("CLUSTER", "FORGET", OTHER) == SimpleString(b"OK")
    assert n("CLUSTER", "FORGET", OTHER) == SimpleString(b"OK")  # blacklisted: pretend
    assert n("CLUSTER", "FORGET", "x") == err("ERR Unknown node x")
    assert n.cluster.owner(9000) is None
    assert n("CLUSTER", "BUMPEPOCH") == SimpleString(b"BUMPED 1")
    assert n("CLUSTER", "BUMPEPOCH") == SimpleString(b"STILL 1")
    assert n("CLUSTER", "SET-CONFIG-EPOCH", 5) == err("ERR Node config epoch is already non-zero")
    n.engine.config.set("cluster-require-full-coverage", "no")
    n("CLUSTER", "INFO")
    assert n("SET", "hello", "1") == SimpleString(b"OK")
    assert n("CLUSTER", "RESET") == err(
        "ERR CLUSTER RESET can't be called with master nodes containing keys"
    )
    assert n("CLUSTER", "FLUSHSLOTS") == err("ERR DB must be empty to perform CLUSTER FLUSHSLOTS.")
    n("FLUSHALL")
    assert n("CLUSTER", "RESET", "HARD") == SimpleString(b"OK")
    assert n.cluster.myself.name != me and n.cluster.current_epoch == 0
    assert n("CLUSTER", "MEET", "127.0.0.1", "x") == err("ERR Invalid base port specified: x")
    assert n("CLUSTER", "MEET", "127.0.0.1", 0) == err("ERR Port number is out of range")
    assert n("CLUSTER", "MEET", "nohost", 100) == err(
        "ERR Invalid node address specified: nohost:100"
    )
    assert n("CLUSTER", "MEET", "10.0.0.1", 7000) == SimpleString(b"OK")
    text = n("CLUSTER", "NODES").data.decode()
    assert " 10.0.0.1:7000@17000 handshake - 0 0 0 disconnected\n" in text
    assert b"10.0.0.1" not in nodes_conf.render(n.cluster)  # handshake nodes are not saved
    assert isinstance(n("CLUSTER", "INFO"), Verbatim)


# -- nodes.conf ---------------------------------------------------------------------------------
def test_nodes_conf_fixture_round_trip() -> None:
    data = FIXTURE.read_bytes()
    state = nodes_conf.parse(data)
    assert state.myself.name == "7a8400952f693ff7595c65d59ae77bf7774a387c"
    assert state.myself.port == 7110 and state.myself.cport == 7111
    assert state.myself.numslots == 16384
    assert nodes_conf.render(state) == data


def test_nodes_conf_open_slots_and_replicas() -> None:
    n = ok_node()
    r = NodeRecord("d" * 40, ip="127.0.0.1", port=7002, cport=17002, flags={"slave"},
                   hostname="replica.example", human_nodename="r1")  # fmt: skip
    r.primary = n.cluster.lookup(OTHER)
    r.shard_id = "c" * 40
    n.cluster.add_node(r)
    n("CLUSTER", "SETSLOT", 1, "MIGRATING", OTHER)
    n("CLUSTER", "SETSLOT", 9000, "IMPORTING", OTHER)
    n.cluster.current_epoch = 7
    text = nodes_conf.render(n.cluster)
    again = nodes_conf.parse(text)
    assert nodes_conf.render(again) == text
    assert again.migrating[1].name == OTHER and again.importing[9000].name == OTHER
    assert again.current_epoch == 7
    line = next(x for x in text.decode().split("\n") if x.startswith("d" * 40))
    assert line.startswith("d" * 40 + " 127.0.0.1:7002@17002,replica.example,tls-port=0,"
                           "nodename=r1,shard-id=" + "c" * 40 + " slave " + OTHER)  # fmt: skip
    assert n("CLUSTER", "REPLICAS", OTHER) == [
        nodes_conf.node_line(n.cluster, n.cluster.nodes["d" * 40], conf=False).encode()
    ]


@pytest.mark.parametrize(
    "text",
    [
        "abc :1@2 myself,master - 0 0 0 connected\n",  # bad id
        "a" * 40 + " :1@2 myself,master - 0 0 0\n",  # 7 fields
        "a" * 40 + " :1@2 myself,bogus - 0 0 0 connected\n",  # unknown flag
        "a" * 40 + " :1@2,,shard-id=xyz myself,master - 0 0 0 connected\n",  # bad aux
        "a" * 40 + " 1@2 myself,master - 0 0 0 connected\n",  # no port
        "a" * 40 + " :1@2 myself,master - 0 0 0 connected 0-16384\n",  # slot out of range
        "a" * 40 + " :1@2 master - 0 0 0 connected\n",  # no myself
        "vars currentEpoch\n",
    ],
)
def test_nodes_conf_rejects(text: str) -> None:
    with pytest.raises(nodes_conf.NodesConfError, match="corrupted cluster config file"):
        nodes_conf.parse(text)
