"""Our server against valkey-server 9.1.2 with redis-benchmark, side by side in one run.

    python benchmarks/server.py [--requests 100000] [--keys 1000000] [--quick]

Each server is pinned to core 0 and redis-benchmark to core 1 (taskset, when the machine has two
or more cores); both run with ``appendonly yes``, ``appendfsync everysec``. For every test of
``redis-benchmark -c 50 -t set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,
lrange,mset``, without and with ``-P 16``, it prints requests/s of both and the ratio. Then the
memory of 1 M small string keys (VmRSS of each process; valkey's used_memory_rss too).
Targets (issue 3): >= 0.9x unpipelined, >= 0.5x with -P 16, RSS <= 3x.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from _common import free_port, table, valkey_server_binary

TESTS = "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange,mset"
ROOT = Path(__file__).resolve().parent.parent


def pin(core: int) -> list[str]:
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(core)]
    return []


def start(kind: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    common = ["--port", str(port), "--dir", str(workdir), "--save", "", "--appendonly", "yes",
              "--appendfsync", "everysec"]  # fmt: skip
    if kind == "valkey":
        cmd = [valkey_server_binary(), *common, "--logfile", "valkey.log"]
    else:
        cmd = [sys.executable, "-m", "engine.server.main", *common, "--logfile",
               str(workdir / "engine.log")]  # fmt: skip
    proc = subprocess.Popen(pin(0) + cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    c = redis.Redis(port=port, protocol=2)
    for _ in range(300):
        try:
            c.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    c.close()
    return proc, port


def bench(port: int, requests: int, pipeline: int) -> dict[str, float]:
    cmd = [*pin(1), "redis-benchmark", "-p", str(port), "-c", "50", "-n", str(requests),
           "-t", TESTS, "-P", str(pipeline), "--csv", "-r", "100000"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800).stdout
    res: dict[str, float] = {}
    for row in csv.reader(io.StringIO(out)):
        if len(row) >= 2 and row[0] != "test":
            with contextlib.suppress(ValueError):
                res[row[0]] = float(row[1])
    return res


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


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
    if not shutil.which("redis-benchmark"):
        raise SystemExit("redis-benchmark not found: apt-get install redis-tools")
    results: dict[tuple[str, int], dict[str, float]] = {}
    mem: dict[str, tuple[int, int]] = {}
    for kind in ("valkey", "ours"):
        work = Path(tempfile.mkdtemp(prefix=f"vaof-srv-{kind}-"))
        try:
            proc, port = start(kind, work)
            for p in (1, 16):
                results[(kind, p)] = bench(port, args.requests, p)
                redis.Redis(port=port, protocol=2).flushall()
            base = rss(proc.pid)
            fill(port, args.keys)
            time.sleep(0.5)
            mem[kind] = (base, rss(proc.pid))
            proc.terminate()
            proc.wait(60)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    rows = [("test", "pipeline", "ours rps", "valkey rps", "ratio", "target")]
    for p, target in ((1, 0.9), (16, 0.5)):
        for test, theirs in results[("valkey", p)].items():
            ours = results[("ours", p)].get(test, 0.0)
            ratio = ours / theirs if theirs else 0.0
            rows.append((test, str(p), f"{ours:,.0f}", f"{theirs:,.0f}", f"{ratio:.2f}x",
                         f">= {target}x {'ok' if ratio >= target else 'MISS'}"))  # fmt: skip
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
