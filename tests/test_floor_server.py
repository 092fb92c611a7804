"""benchmarks/floor_server.py, the Python floor benchmarks/server.py measures beside ours, gives
redis-benchmark's commands their replies and writes its AOF (else its figures would mean
nothing)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.realserver import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def floor(tmp_path: Path) -> Iterator[redis.Redis]:
    port = free_port()
    script = ROOT / "benchmarks" / "floor_server.py"
    cmd = [sys.executable, str(script), "--port", str(port), "--dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = redis.Redis(port=port, protocol=2, socket_timeout=10)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                c.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield c
    finally:
        c.close()
        proc.terminate()
        proc.wait(30)


def test_floor_answers_what_redis_benchmark_sends(floor: redis.Redis, tmp_path: Path) -> None:
    assert floor.set(b"k", b"v") is True
    assert floor.get(b"k") == b"v" and floor.get(b"nope") is None
    assert floor.hset(b"h", b"f", b"1") == 1 and floor.hset(b"h", b"f", b"2") == 0
    assert floor.lpush(b"l", b"a", b"b") == 2 and floor.lpush(b"l", b"c") == 3
    assert floor.execute_command("CONFIG", "GET", "save") == []
    p = floor.pipeline(transaction=False)
    for i in range(100):
        p.set(b"p%d" % i, b"x")
    p.get(b"p99")
    assert p.execute() == [True] * 100 + [b"x"]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        floor.get(b"h")
    aof = (tmp_path / "appendonly.aof").read_bytes()
    assert aof.startswith(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n") and b"LPUSH" in aof
    assert floor.flushall() is True and floor.get(b"k") is None
