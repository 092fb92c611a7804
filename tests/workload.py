"""A workload touching every type, key TTLs, hash-field TTLs, streams with groups and several dbs.

Used to make files with a real valkey-server in tests (and, later, for differential tests of our
own server). TTLs are an hour or more in the future so contents do not change while a test runs.
"""

from __future__ import annotations

import redis

HOUR_MS = 3_600_000


def run_workload(c: redis.Redis, *, scale: int = 1) -> None:
    x = c.execute_command
    for db in (0, 1, 5, 15):
        x("SELECT", db)
        p = f"db{db}:"
        # strings: plain, integer, binary, empty, big, with TTL
        x("SET", p + "s", "hello")
        x("SET", p + "int", 12345)
        x("SET", p + "neg", -987654321)
        x("SET", p + "bin", b"\x00\x01\r\n\xff\xfe")
        x("SET", p + "empty", "")
        x("SET", p + "big", "x" * (5000 * scale))
        x("SET", p + "ttl", "v", "PX", HOUR_MS)
        x("INCR", p + "counter")
        x("APPEND", p + "s", " world")
        x("SET", b"bin:\xff\x00key" + p.encode(), "binary key name")
        # lists: small, big (several quicklist nodes), one large element
        x("RPUSH", p + "list", "a", "b", "c", 1, 2, 3)
        x("LPUSH", p + "list", "z0")
        x("RPUSH", p + "list:big", *[f"item-{i:05d}" for i in range(1000 * scale)])
        x("RPUSH", p + "list:plain", "y" * 9000, "small")
        x("LTRIM", p + "list:big", 1, -1)
        # sets: intset, listpack, hashtable
        x("SADD", p + "set:int", 1, 2, 3, 100, -5, 70000, 5000000000)
        x("SADD", p + "set:small", "apple", "banana", "cherry")
        x("SADD", p + "set:big", *[f"member-{i:04d}" for i in range(200 * scale)])
        x("SREM", p + "set:small", "apple")
        # sorted sets: listpack, skiplist, odd scores
        x("ZADD", p + "z", 1, "a", 2.5, "b", -3, "c", "inf", "d", "-inf", "e", 0.1, "f")
        x("ZADD", p + "z:big", *[v for i in range(300 * scale) for v in (i * 1.5, f"m-{i:04d}")])
        x("ZINCRBY", p + "z", 10, "a")
        # hashes: listpack, hashtable, field TTLs
        x("HSET", p + "h", "f1", "v1", "f2", "v2", "num", 42)
        x("HSET", p + "h:big", *[v for i in range(200 * scale) for v in (f"field-{i:04d}", i)])
        x("HSETEX", p + "hfe", "PX", HOUR_MS, "FIELDS", 2, "vol1", "x", "vol2", "y")
        x("HSET", p + "hfe", "plain", "p")
        x("HEXPIRE", p + "hfe", 7200, "FIELDS", 1, "vol2")
        x("HSETEX", p + "hfe:gone", "PX", HOUR_MS, "FIELDS", 2, "a", "1", "b", "2")
        x("HEXPIRE", p + "hfe:gone", 0, "FIELDS", 1, "a")
        x("HSETEX", p + "hfe:persist", "EX", 3600, "FIELDS", 1, "k", "v")
        x("HPERSIST", p + "hfe:persist", "FIELDS", 1, "k")
        x("HSETEX", p + "hfe:keyttl", "PX", HOUR_MS, "FIELDS", 1, "k", "v")
        x("PEXPIRE", p + "hfe:keyttl", 2 * HOUR_MS)
        # streams: entries, deletes, groups, PEL, consumers
        s = p + "stream"
        for i in range(1, 8):
            x("XADD", s, f"1700000000000-{i}", "sensor", f"s{i}", "temp", 20 + i)
        x("XDEL", s, "1700000000000-5")
        x("XGROUP", "CREATE", s, "g1", "0")
        x("XREADGROUP", "GROUP", "g1", "alice", "COUNT", 2, "STREAMS", s, ">")
        x("XREADGROUP", "GROUP", "g1", "bob", "COUNT", 1, "STREAMS", s, ">")
        x("XACK", s, "g1", "1700000000000-1")
        x("XGROUP", "CREATECONSUMER", s, "g1", "idle")
        x("XGROUP", "CREATE", s, "g2", "$")
        x("XADD", p + "stream:empty", "MAXLEN", 0, "5-1", "f", "v")
        x("XADD", p + "stream:big", "*", "k", "v")
        for _ in range(150 * scale):
            x("XADD", p + "stream:big", "*", "k", "v", "n", 1)
        # a key with a TTL on a collection, and one removed
        x("RPUSH", p + "list:ttl", "x", "y")
        x("PEXPIRE", p + "list:ttl", HOUR_MS)
        x("SET", p + "deleted", "x")
        x("DEL", p + "deleted")
    x("SELECT", 0)
