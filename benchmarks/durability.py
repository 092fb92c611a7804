"""Durability figures, our server next to valkey-server 9.1.2 in one run.

1. Start-up load time of an N-key AOF directory (an incr file of N SETs after an empty base),
   and of its RDB-preamble form (the same keys in the base), for both servers (their logs).
2. redis-benchmark SET throughput (-c 50 -P 1) with appendfsync always and everysec.
3. p99 latency of one client doing SET/GET while BGREWRITEAOF rewrites the N keys.

``python benchmarks/durability.py [--keys 1000000] [--requests 100000]``

``measure()`` returns, for ``benchmarks/run.py``, the start-up load times (AOF and RDB-preamble),
the RSS growth of the loaded keys (VmRSS after the AOF load minus VmRSS of the same server started
empty) and the p99 latency during BGREWRITEAOF (one server start, ``runs`` rewrites).
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from _common import (
    CLIENT_CORE,
    Figure,
    rss,
    server_load_seconds_rss,
    table,
    valkey,
)
from server import VALKEY, pin, start

from persistence.aof.dirwriter import write_aof_dir
from persistence.aof.encoder import encode_command
from persistence.records import KeyRecord, StringValue

ROOT = Path(__file__).resolve().parent.parent


def make_dirs(work: Path, n: int, varied: bool = False) -> tuple[Path, Path]:
    """(RESP AOF data dir, RDB-preamble data dir) of ``n`` SETs, as valkey-server writes them
    (the one encoder's bytes are Valkey's: tests/test_aof_raw_records.py). The keys are
    ``key:%08d`` and the values ``value-<i>``; ``varied``: keys and values of random lengths
    (3-39 and 1-100 bytes, a fixed seed), so no two neighbours need have one size."""
    resp, pre = work / "aof_resp", work / "aof_preamble"
    if varied:
        rng = random.Random(7)
        pairs = [
            (b"k%d:" % i + b"x" * rng.randrange(0, 32), b"v" * rng.randrange(1, 101))
            for i in range(n)
        ]
    else:
        pairs = [(b"key:%08d" % i, b"value-%d" % i) for i in range(n)]
    write_aof_dir(resp / "appendonlydir", [], base="aof")
    with open(resp / "appendonlydir" / "appendonly.aof.1.incr.aof", "wb") as f:
        f.write(encode_command([b"SELECT", b"0"]))
        for key, value in pairs:
            f.write(encode_command([b"SET", key, value]))
    recs = (KeyRecord(0, key, StringValue(value)) for key, value in pairs)
    write_aof_dir(pre / "appendonlydir", recs, base="rdb")
    return resp, pre


def our_load_seconds(src: Path, work: Path) -> float:
    return our_load(src, work)[0]


def our_load(src: Path, work: Path) -> tuple[float, int]:
    """(load seconds our log reports, VmRSS bytes once loaded) of our server on a copy of src."""
    d = work / "ours_load"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(src, d)
    proc, _ = start("ours", d)
    mem = rss(proc.pid) if proc.poll() is None else 0
    proc.terminate()
    proc.wait(600)
    text = (d / "engine.log").read_text()
    found = re.findall(r"DB loaded from append only file.* in ([0-9.]+) seconds", text)
    if not found:
        raise RuntimeError(f"our server did not load {src}: {text[-1000:]}")
    return float(found[-1]), mem


def valkey_load_seconds(src: Path, work: Path) -> float:
    return valkey_load(src, work)[0]


def valkey_load(src: Path, work: Path) -> tuple[float, int]:
    d = work / "valkey_load"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(src, d)
    return server_load_seconds_rss(d, "--appendonly", "yes")


def empty_rss(kind: str, work: Path) -> int:
    """VmRSS of a server started on an empty directory (the baseline of the RSS growth)."""
    d = work / f"empty_{kind}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    if kind == "valkey":
        with valkey(d, "--appendonly", "yes") as (_, proc):
            return rss(proc.pid)
    proc, _ = start("ours", d)
    try:
        return rss(proc.pid)
    finally:
        proc.terminate()
        proc.wait(600)


def throughput(kind: str, work: Path, policy: str, requests: int) -> float:
    d = work / f"tp_{kind}_{policy}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    proc, port = start(kind, d)
    try:
        redis.Redis(port=port).config_set("appendfsync", policy)
        cmd = [*pin(CLIENT_CORE), "redis-benchmark", "-p", str(port), "-c", "50", "-n",
               str(requests), "-t", "set", "--csv", "-r", "100000"]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800).stdout
        for line in out.splitlines():
            parts = [p.strip('"') for p in line.split(",")]
            if parts and parts[0] == "SET":
                return float(parts[1])
        return 0.0
    finally:
        proc.terminate()
        proc.wait(600)


def rewrite_p99(kind: str, src: Path, work: Path) -> tuple[float, float, int, float]:
    """(p99 ms, max ms, samples, rewrite seconds) of SET/GET round trips during a rewrite."""
    return rewrite_latencies(kind, src, work, 1)[0]


def rewrite_latencies(
    kind: str, src: Path, work: Path, rewrites: int
) -> list[tuple[float, float, int, float]]:
    """``rewrite_p99`` figures of ``rewrites`` BGREWRITEAOFs in a row on one server start."""
    d = work / f"rw_{kind}"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(src, d)
    proc, port = start(kind, d)
    out = []
    try:
        c = redis.Redis(port=port, socket_timeout=600)
        while c.info("persistence").get("loading"):
            time.sleep(0.05)
        for _ in range(rewrites):
            while _rewriting(c):
                time.sleep(0.02)
            lat: list[float] = []
            t0 = time.perf_counter()
            c.execute_command("BGREWRITEAOF")
            i = 0
            while True:
                a = time.perf_counter()
                c.set(f"lat:{i % 1000}", i)
                c.get(f"lat:{i % 1000}")
                lat.append((time.perf_counter() - a) * 500)  # ms per command
                i += 1
                if i % 200 == 0 and not _rewriting(c):
                    break
            secs = time.perf_counter() - t0
            lat.sort()
            out.append((lat[int(len(lat) * 0.99)], lat[-1], len(lat), secs))
        c.close()
        return out
    finally:
        proc.terminate()
        proc.wait(600)


def _rewriting(c: redis.Redis) -> bool:
    info = c.info("persistence")
    return bool(info["aof_rewrite_in_progress"] or info.get("aof_rewrite_scheduled"))


def measure(resp: Path, pre: Path, keys: int, runs: int, work: Path) -> list[Figure]:
    """Load times, RSS growth and rewrite p99 of ours and valkey-server, ``runs`` each."""
    load: dict[tuple[str, str], list[float]] = {}
    mem: dict[str, list[float]] = {}
    empty = {kind: empty_rss(kind, work) for kind in ("valkey", "ours")}
    for _ in range(runs):
        for kind, fn in (("valkey", valkey_load), ("ours", our_load)):
            secs, loaded = fn(resp, work)
            load.setdefault(("aof", kind), []).append(secs)
            mem.setdefault(kind, []).append((loaded - empty[kind]) / 1e6)
            load.setdefault(("rdb", kind), []).append(fn(pre, work)[0])
    lat = {kind: rewrite_latencies(kind, pre, work, runs) for kind in ("valkey", "ours")}
    worst = max(lat["ours"], key=lambda t: t[1])
    return [
        Figure("durability.load_aof", f"start-up load, {keys:,}-SET AOF", "s",
               load[("aof", "ours")], load[("aof", "valkey")], VALKEY),
        Figure("durability.load_preamble", "start-up load, its RDB-preamble form", "s",
               load[("rdb", "ours")], load[("rdb", "valkey")], VALKEY),
        Figure("durability.rss", f"RSS growth, {keys:,} small string keys (loaded)",
               "MB", mem["ours"], mem["valkey"], VALKEY),
        Figure("durability.rewrite_p99",
               f"p99 latency during BGREWRITEAOF, {keys:,} keys", "ms",
               [t[0] for t in lat["ours"]], [t[0] for t in lat["valkey"]], VALKEY,
               note=f"ours: worst max {worst[1]:.1f} ms, {worst[2]} samples in {worst[3]:.1f} s"),
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=100_000)
    args = ap.parse_args()
    if not shutil.which("redis-benchmark"):
        raise SystemExit("redis-benchmark not found: apt-get install redis-tools")
    with tempfile.TemporaryDirectory(prefix="durability-bench-") as tmp:
        work = Path(tmp)
        resp, pre = make_dirs(work, args.keys)
        rows = [("measure", "valkey-server 9.1.2", "ours", "ratio (ours/valkey)")]
        for label, src in ((f"load {args.keys} SETs (RESP incr), s", resp),
                           (f"load {args.keys} keys (RDB preamble), s", pre)):  # fmt: skip
            v, o = valkey_load_seconds(src, work), our_load_seconds(src, work)
            rows.append((label, f"{v:.2f}", f"{o:.2f}", f"{o / v:.2f}x"))
            print(rows[-1], file=sys.stderr)
        for policy in ("always", "everysec"):
            v = throughput("valkey", work, policy, args.requests)
            o = throughput("ours", work, policy, args.requests)
            rows.append((f"SET ops/s, appendfsync {policy}", f"{v:.0f}", f"{o:.0f}",
                         f"{o / v:.2f}"))  # fmt: skip
            print(rows[-1], file=sys.stderr)
        for kind in ("valkey", "ours"):
            p99, mx, n, secs = rewrite_p99(kind, pre, work)
            rows.append((f"{kind}: p99 / max ms during BGREWRITEAOF ({n} samples, {secs:.1f} s)",
                         "", f"{p99:.2f} / {mx:.1f}", ""))  # fmt: skip
            print(rows[-1], file=sys.stderr)
        print(table(rows))


if __name__ == "__main__":
    main()
