"""Crash safety: our server SIGKILLed at random moments while a writer sends acknowledged writes.

With ``appendfsync always`` every acknowledged write survives every kill (20 cycles); with
``everysec`` at most about two seconds of writes may go; a kill during BGREWRITEAOF or BGSAVE
leaves a directory that loads with everything acknowledged before.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from pathlib import Path

import redis
from enginesrv import EngineServer, engine_server
from redis.backoff import NoBackoff
from redis.retry import Retry
from test_durability import children, cmd, fill

CYCLES = 20


def write_until_killed(srv: EngineServer, start: int, kill_after: float) -> list[tuple[int, float]]:
    """Pipelines of SETs until the server dies; returns (index, ack time) of acknowledged ones."""
    acked: list[tuple[int, float]] = []
    killer = threading.Timer(kill_after, lambda: srv.proc.send_signal(signal.SIGKILL))
    c = srv.client(socket_timeout=5, retry=Retry(NoBackoff(), 0))  # no reconnect attempts
    killer.start()
    i = start
    try:
        while True:
            p = c.pipeline(transaction=False)
            for j in range(i, i + 10):
                p.set(f"k{j}", j)
            p.execute()
            now = time.monotonic()
            acked += [(j, now) for j in range(i, i + 10)]
            i += 10
    except (redis.ConnectionError, redis.TimeoutError):
        pass
    finally:
        killer.join()
        srv.proc.wait(10)
    return acked


def present(c: redis.Redis, keys: list[int]) -> set[int]:
    got: set[int] = set()
    for n in range(0, len(keys), 1000):
        chunk = keys[n : n + 1000]
        vals = c.mget([f"k{j}" for j in chunk])
        got |= {j for j, v in zip(chunk, vals, strict=True) if v == str(j).encode()}
    return got


def test_always_loses_no_acknowledged_write(tmp_path: Path) -> None:
    rnd = random.Random(4)
    acked: list[int] = []
    for _ in range(CYCLES):
        with engine_server(tmp_path, "--appendfsync", "always", "--save", "") as srv:
            c = srv.client()
            assert present(c, acked) == set(acked)
            acked += [j for j, _ in write_until_killed(srv, len(acked) * 2, rnd.uniform(0.05, 0.4))]
    with engine_server(tmp_path, "--save", "") as srv:
        assert present(srv.client(), acked) == set(acked)
    assert len(acked) > CYCLES * 10


def test_everysec_loses_at_most_two_seconds(tmp_path: Path) -> None:
    rnd = random.Random(5)
    for cycle in range(3):
        with engine_server(tmp_path, "--appendfsync", "everysec", "--save", "") as srv:
            kill_after = rnd.uniform(0.5, 1.5)
            killed = time.monotonic() + kill_after
            acked = write_until_killed(srv, cycle * 10_000_000, kill_after)
        with engine_server(tmp_path, "--save", "") as srv:
            got = present(srv.client(), [j for j, _ in acked])
        lost = [t for j, t in acked if j not in got]
        assert all(t > killed - 2.0 for t in lost), (len(lost), len(acked))


def _kill_tree(srv: EngineServer, kids: list[int]) -> None:
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    for pid in kids:  # the orphaned child would finish on its own; do not leave it running
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.01)


def test_kill_during_bgrewriteaof_leaves_a_loadable_dir(tmp_path: Path) -> None:
    rnd = random.Random(6)
    with engine_server(tmp_path, "--appendfsync", "always", "--save", "") as srv:
        c = srv.client()
        fill(c, 100_000)
    for cycle in range(3):
        with engine_server(tmp_path, "--appendfsync", "always", "--save", "") as srv:
            c = srv.client()
            assert c.dbsize() == 100_000 + cycle
            assert cmd(c, "BGREWRITEAOF").startswith("Background append only file rewriting")
            c.set(f"during{cycle}", "1")
            kids = children(srv.proc.pid)
            time.sleep(rnd.uniform(0.0, 0.5))
            _kill_tree(srv, kids)
    with engine_server(tmp_path, "--save", "") as srv:
        c = srv.client()
        assert c.dbsize() == 100_003
        assert all(c.get(f"during{i}") == b"1" for i in range(3))


def test_kill_during_bgsave_leaves_a_loadable_dump(tmp_path: Path) -> None:
    args = ("--appendonly", "no", "--save", "")
    with engine_server(tmp_path, *args) as srv:
        c = srv.client()
        fill(c, 100_000)
        assert cmd(c, "SAVE") == "OK"
        fill(c, 1000, prefix="extra")
        assert cmd(c, "BGSAVE") == "Background saving started"
        kids = children(srv.proc.pid)
        time.sleep(0.2)
        _kill_tree(srv, kids)
    with engine_server(tmp_path, *args) as srv:
        assert srv.client().dbsize() in (100_000, 101_000)  # the old dump, or the new one


def test_kill_during_save_leaves_a_loadable_dump(tmp_path: Path) -> None:
    """SAVE runs in the server process (src/rdb.c rdbSave: temp file, fsync, rename): a SIGKILL
    while it writes leaves the previous dump.rdb, or the new one, never a torn file."""
    args = ("--appendonly", "no", "--save", "")
    with engine_server(tmp_path, *args) as srv:
        c = srv.client()
        fill(c, 100_000)
        assert cmd(c, "SAVE") == "OK"
        fill(c, 50_000, prefix="extra")
        killer = threading.Timer(0.15, lambda: srv.proc.send_signal(signal.SIGKILL))
        killer.start()
        with contextlib.suppress(redis.ConnectionError):  # killed while saving (usually)
            cmd(srv.client(socket_timeout=10), "SAVE")
        killer.join()
        srv.proc.wait(10)
    with engine_server(tmp_path, *args) as srv:
        assert srv.client().dbsize() in (100_000, 150_000)  # the old dump, or the new one
