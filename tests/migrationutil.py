"""Helpers for the live slot-migration tests and benchmark: filling slots with every type in
several dbs, reading them back in a comparable form, writers that go through redis-py's
RedisCluster into a numbered db, and polling CLUSTER GETSLOTMIGRATIONS."""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from clusterutil import EngineCluster
from redis.cluster import ClusterNode, RedisCluster

from persistence.crc import key_slot

TERMINAL = (b"success", b"failed", b"cancelled")
FAR = 4102444800000  # 2100-01-01 in ms: a TTL that never fires during a test


def tag_for(slot: int) -> bytes:
    """A hash tag whose keys land in ``slot``."""
    for i in range(1_000_000):
        t = b"t%d" % i
        if key_slot(t) == slot:
            return b"{" + t + b"}"
    raise AssertionError(slot)


class DbCluster(RedisCluster):
    """RedisCluster whose connections SELECT ``db`` (redis-py refuses ``db=`` in cluster
    mode; Valkey 9 cluster mode has numbered databases)."""

    def __init__(self, *args: Any, db: int = 0, **kw: Any) -> None:
        self.select_db = db
        super().__init__(*args, **kw)

    def on_connect(self, connection: Any) -> None:
        super().on_connect(connection)
        if self.select_db:
            connection.send_command("SELECT", self.select_db)
            if connection.read_response() != b"OK":
                raise redis.ConnectionError("SELECT failed")


def cluster_client(cl: EngineCluster, db: int = 0, **kw: Any) -> RedisCluster:
    startup = [ClusterNode("127.0.0.1", n.port) for n in cl.nodes]
    return DbCluster(startup_nodes=startup, db=db, **kw)


def fill(c: redis.Redis, tag: bytes, n: int = 5, value_size: int = 8) -> None:
    """Every type under ``tag`` in the connection's db, with key TTLs and hash-field TTLs."""
    v = b"x" * value_size
    p = c.pipeline(transaction=False)
    for i in range(n):
        p.set(tag + b":s%d" % i, v + b"%d" % i)
    p.set(tag + b":ttl", b"t", pxat=FAR)
    p.rpush(tag + b":l", *[b"a", b"b", b"c"])
    p.sadd(tag + b":set", *[b"m1", b"m2", b"7"])
    p.zadd(tag + b":z", {b"a": 1.5, b"b": 2})
    p.hset(tag + b":h", mapping={b"f1": b"v1", b"f2": b"v2", b"f3": b"v3"})
    p.execute_command("HPEXPIREAT", tag + b":h", FAR - 1000, "FIELDS", 2, "f1", "f2")
    p.pexpireat(tag + b":h", FAR)
    p.xadd(tag + b":x", {b"k": b"v"}, id=b"1-1")
    p.xadd(tag + b":x", {b"k": b"w"}, id=b"2-1")
    p.execute_command("XGROUP", "CREATE", tag + b":x", "g", "0")
    p.execute()


def contents(c: redis.Redis, match: bytes) -> dict[bytes, Any]:
    """key -> (type, value, absolute TTL, field TTLs) for the keys matching ``match``."""
    out: dict[bytes, Any] = {}
    for key in sorted(c.scan_iter(match=match, count=1000)):
        t = c.type(key)
        if t == b"string":
            val: Any = c.get(key)
        elif t == b"list":
            val = c.lrange(key, 0, -1)
        elif t == b"set":
            val = sorted(c.smembers(key))
        elif t == b"zset":
            val = c.zrange(key, 0, -1, withscores=True)
        elif t == b"hash":
            h = c.hgetall(key)
            fields = sorted(h)
            ttls = c.execute_command("HPEXPIRETIME", key, "FIELDS", len(fields), *fields)
            val = (sorted(h.items()), list(ttls))
        elif t == b"stream":
            val = (c.xrange(key), [g["name"] for g in c.xinfo_groups(key)])
        else:
            val = None
        out[key] = (t, val, c.pexpiretime(key))
    return out


def migrations(c: redis.Redis) -> list[dict[bytes, Any]]:
    return [dict(zip(e[::2], e[1::2])) for e in c.execute_command("CLUSTER", "GETSLOTMIGRATIONS")]


def wait_job(c: redis.Redis, states: tuple[bytes, ...] = TERMINAL, timeout: float = 20) -> dict:
    """The newest job once its state is one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = migrations(c)
        if jobs and jobs[0][b"state"] in states:
            return jobs[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"job state {jobs[0] if jobs else None} not in {states}")
        time.sleep(0.02)


def migrate(c: redis.Redis, node_id: str, *ranges: tuple[int, int]) -> None:
    args: list[Any] = ["CLUSTER", "MIGRATESLOTS", "SLOTSRANGE"]
    for s, e in ranges:
        args += [s, e]
    assert c.execute_command(*args, "NODE", node_id) == b"OK"


class Writer(threading.Thread):
    """RPUSHes 0, 1, 2 ... to one list through RedisCluster in one db, timing each call:
    afterwards the list must hold exactly the acknowledged numbers, in order."""

    def __init__(self, cl: EngineCluster, db: int, key: bytes, pace: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.rc = cluster_client(cl, db)
        self.key = key
        self.db = db
        self.pace = pace
        self.acked = 0
        self.errors: list[BaseException] = []
        self.longest = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                self.rc.rpush(self.key, self.acked)
                self.longest = max(self.longest, time.perf_counter() - t0)
                self.acked += 1
                if self.pace:
                    time.sleep(self.pace)
        except BaseException as e:  # any error but a handled MOVED/ASK fails the test
            self.errors.append(e)
        finally:
            self.rc.close()

    def finish(self) -> None:
        self.stop.set()
        self.join(30)
