"""Server features over real sockets: blocking commands, pub/sub, RESP3, transactions, MONITOR,
SHUTDOWN, redis-benchmark and redis-py's own client behaviours."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis
from enginesrv import engine_server


@pytest.fixture
def srv(tmp_path: Path):  # type: ignore[no-untyped-def]
    with engine_server(tmp_path) as s:
        yield s


def test_blpop_wakes_when_another_client_pushes(srv) -> None:  # type: ignore[no-untyped-def]
    got: list[object] = []
    with srv.client() as a, srv.client() as b:

        def waiter() -> None:
            got.append(a.blpop(["q1", "q2"], timeout=5))

        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.2)
        assert not got
        b.rpush("q2", "hello")
        t.join(5)
        assert got == [(b"q2", b"hello")]
        assert b.llen("q2") == 0


def test_blocking_timeout_and_pipeline_after_it(srv) -> None:  # type: ignore[no-untyped-def]
    with srv.client() as c:
        t0 = time.monotonic()
        assert c.blpop(["empty"], timeout=0.3) is None
        assert 0.25 < time.monotonic() - t0 < 3
        p = c.pipeline(transaction=False)
        p.bzpopmin("nothing", timeout=0.2)
        p.set("after", "1")
        assert p.execute() == [None, True]


def test_xread_block_dollar(srv) -> None:  # type: ignore[no-untyped-def]
    out: list[object] = []
    with srv.client() as a, srv.client() as b:
        b.xadd("s", {"old": "1"}, id="1-1")

        def reader() -> None:
            out.append(a.xread({"s": "$"}, block=5000))

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.2)
        b.xadd("s", {"new": "2"}, id="2-1")
        t.join(5)
        assert out == [[[b"s", [(b"2-1", {b"new": b"2"})]]]]


def test_pubsub_messages_and_keyspace_events(srv) -> None:  # type: ignore[no-untyped-def]
    with srv.client() as c:
        c.config_set("notify-keyspace-events", "KEA")
        ps = c.pubsub()
        ps.subscribe("news")
        ps.psubscribe("__keyspace@0__:*")
        for _ in range(2):
            assert ps.get_message(timeout=2)["type"] in ("subscribe", "psubscribe")
        assert c.publish("news", "hi") == 1
        c.set("k", "v")
        msgs = []
        deadline = time.monotonic() + 3
        while len(msgs) < 2 and time.monotonic() < deadline:
            m = ps.get_message(timeout=0.5)
            if m:
                msgs.append((m["type"], m["channel"], m["data"]))
        assert ("message", b"news", b"hi") in msgs
        assert ("pmessage", b"__keyspace@0__:k", b"set") in msgs
        ps.close()


def test_resp3_client(srv) -> None:  # type: ignore[no-untyped-def]
    with srv.client(protocol=3) as c:
        c.hset("h", mapping={"a": "1", "b": "2"})
        assert c.hgetall("h") == {b"a": b"1", b"b": b"2"}
        c.zadd("z", {"m": 1.5})
        assert c.zscore("z", "m") == 1.5
        assert c.execute_command("HELLO", 3)[b"proto"] == 3


def test_transactions_and_watch(srv) -> None:  # type: ignore[no-untyped-def]
    with srv.client() as c, srv.client() as other:
        p = c.pipeline(transaction=True)
        p.incr("n").incr("n").get("n")
        assert p.execute() == [1, 2, b"2"]
        with c.pipeline(transaction=True) as p:
            p.watch("n")
            other.incr("n")
            p.multi()
            p.incr("n")
            with pytest.raises(redis.WatchError):
                p.execute()


def test_monitor_sees_other_clients(srv) -> None:  # type: ignore[no-untyped-def]
    with srv.client() as c:
        m = c.monitor()
        with m as mon:
            with srv.client() as other:
                other.set("watched", "1")
            for _ in range(5):
                cmd = mon.next_command()
                if "watched" in cmd["command"]:
                    assert cmd["command"] == "SET watched 1"
                    break
            else:
                raise AssertionError("MONITOR saw nothing")


def test_shutdown_command_stops_the_server(tmp_path: Path) -> None:
    with engine_server(tmp_path) as s:
        c = s.client()
        c.set("x", "1")
        c.shutdown(nosave=True)  # redis-py expects the connection to drop without a reply
        c.close()
        assert s.proc.wait(10) == 0


@pytest.mark.skipif(shutil.which("redis-benchmark") is None, reason="needs redis-tools")
def test_redis_benchmark_runs_without_errors(srv) -> None:  # type: ignore[no-untyped-def]
    tests = "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange,mset"
    for pipeline in ("1", "16"):
        run = subprocess.run(
            ["redis-benchmark", "-p", str(srv.port), "-c", "10", "-n", "2000", "-t", tests,
             "-P", pipeline, "-q"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert "error" not in (run.stdout + run.stderr).lower(), run.stdout + run.stderr
        assert run.stdout.count("requests per second") >= 14


def test_subscribe_to_several_channels_confirms_in_order(srv) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.settimeout(5)
        s.sendall(b"SUBSCRIBE a b c\r\n")
        want = b"".join(
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\n%b\r\n:%d\r\n" % (ch, i)
            for i, ch in enumerate((b"a", b"b", b"c"), 1)
        )
        got = b""
        while len(got) < len(want):
            got += s.recv(4096)
        assert got == want


def test_a_subscriber_that_never_reads_is_disconnected(tmp_path: Path) -> None:
    import socket

    with engine_server(tmp_path, "--client-output-buffer-limit", "pubsub 1mb 256kb 60") as s:
        with socket.create_connection(("127.0.0.1", s.port)) as sub:
            sub.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sub.sendall(b"SUBSCRIBE flood\r\n")
            time.sleep(0.2)
            with s.client() as c:
                payload = b"x" * 262144
                for _ in range(200):  # 50 MB that the subscriber never reads
                    c.publish("flood", payload)
                time.sleep(0.3)
                clients = c.client_list()
                assert all("flood" not in str(x) and x.get("sub") != "1" for x in clients)
                assert c.ping()  # the server is still up
        assert "output buffer limits" in s.log
