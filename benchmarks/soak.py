"""Soak test (issue 8): many clients of mixed commands against our server for a long time.

``python benchmarks/soak.py [--minutes 10] [--clients 50] [--rewrite-every 60]``

50 clients (threads with redis-py) run a mix of strings, lists, hashes with short field TTLs
(HSETEX/HEXPIRE, so active field expiry works hard), sets, sorted sets, streams and key TTLs,
with ``appendonly yes``, ``appendfsync everysec`` and a BGREWRITEAOF every ``--rewrite-every``
seconds. Printed every interval: RSS, ops/s, p99 latency of that interval, keys and fields
expired so far. At the end the writers stop, the AOF directory is copied and loaded by a second
instance, and the two states are compared (keys and fields whose deadline falls inside the
comparison window are left out, since they may expire on one side only). The verdicts: RSS
levels off (the last third of the run grows by less than 10 % over the middle third), and the
reloaded state equals the live one.

``run(minutes, clients, ...)`` returns the figures for ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from realserver import free_port  # noqa: E402

KEYS_PER_TYPE = 2000


def start(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "engine.server.main", "--port", str(port), "--dir", str(workdir),
           "--logfile", str(workdir / "engine.log"), "--appendonly", "yes",
           "--appendfsync", "everysec", "--save", ""]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    c = redis.Redis(port=port)
    deadline = time.monotonic() + 60
    while True:
        try:
            c.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"our server did not start: {workdir / 'engine.log'}") from None
            time.sleep(0.05)
    c.close()
    return proc


def rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Worker(threading.Thread):
    def __init__(self, port: int, seed: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.c = redis.Redis(port=port, socket_timeout=30)
        self.rng = random.Random(seed)
        self.stop_event = stop
        self.lat: list[float] = []
        self.ops = 0
        self.errors = 0
        self.lock = threading.Lock()

    def take(self) -> tuple[list[float], int]:
        with self.lock:
            lat, self.lat = self.lat, []
            ops, self.ops = self.ops, 0
        return lat, ops

    def one(self) -> None:
        r, c = self.rng, self.c
        db_key = r.randrange(KEYS_PER_TYPE)
        op = r.randrange(12)
        if op == 0:
            c.set(f"s:{db_key}", r.randbytes(r.randrange(1, 200)))
        elif op == 1:
            c.get(f"s:{db_key}")
        elif op == 2:
            c.set(f"t:{db_key}", "v", px=r.randrange(50, 3000))
        elif op == 3:
            c.rpush(f"l:{db_key % 200}", *[r.randbytes(8) for _ in range(r.randrange(1, 5))])
            c.ltrim(f"l:{db_key % 200}", -100, -1)
        elif op == 4:
            c.lpop(f"l:{db_key % 200}")
        elif op == 5:  # hash fields with short TTLs: the active field-expiry job works hard
            f, g = f"f{r.randrange(50)}", f"g{r.randrange(50)}"
            ttl = r.randrange(20, 2000)
            c.execute_command("HSETEX", f"h:{db_key % 500}", "PX", ttl, "FIELDS", 2, f, "x", g, "y")
        elif op == 6:
            c.hset(f"h:{db_key % 500}", f"p{r.randrange(20)}", r.randrange(1000))
            c.execute_command("HPEXPIRE", f"h:{db_key % 500}", r.randrange(20, 2000),
                              "FIELDS", 1, f"p{r.randrange(20)}")  # fmt: skip
        elif op == 7:  # every structure is bounded, so the data set reaches a steady size
            c.sadd(f"z:{db_key % 300}", r.randrange(100))
            c.srem(f"z:{db_key % 300}", r.randrange(100))
        elif op == 8:
            c.zadd(f"zz:{db_key % 300}", {str(r.randrange(100)): r.random()})
            c.zrem(f"zz:{db_key % 300}", str(r.randrange(100)))
        elif op == 9:
            c.xadd(f"x:{db_key % 50}", {"a": r.randrange(100)}, maxlen=200, approximate=False)
        elif op == 10:
            c.hgetall(f"h:{db_key % 500}")
        else:
            c.delete(f"s:{r.randrange(KEYS_PER_TYPE)}")

    def run(self) -> None:
        while not self.stop_event.is_set():
            t = time.perf_counter()
            try:
                self.one()
            except redis.RedisError:
                self.errors += 1
                continue
            dt = time.perf_counter() - t
            with self.lock:
                self.lat.append(dt)
                self.ops += 1


def p99(values: list[float]) -> float:
    if not values:
        return 0.0
    values.sort()
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def state(c: redis.Redis, cutoff_ms: int) -> dict[bytes, Any]:
    """Every key's type, value and TTL; volatile keys/fields with a deadline before
    ``cutoff_ms`` are left out (they may expire on one side only)."""
    out: dict[bytes, Any] = {}
    for key in c.scan_iter(count=1000):
        t = c.type(key)
        pexp = c.pexpiretime(key)
        if 0 < pexp < cutoff_ms:
            continue
        if t == b"string":
            v: Any = c.get(key)
        elif t == b"list":
            v = c.lrange(key, 0, -1)
        elif t == b"set":
            v = sorted(c.smembers(key))
        elif t == b"zset":
            v = c.zrange(key, 0, -1, withscores=True)
        elif t == b"stream":
            v = c.xrange(key)
        elif t == b"hash":
            h = c.hgetall(key)
            if h:
                fields = list(h)
                deadlines = c.execute_command("HPEXPIRETIME", key, "FIELDS", len(fields), *fields)
                v = {
                    f: (val, d)
                    for (f, val), d in zip(h.items(), deadlines)
                    if not 0 < d < cutoff_ms
                }
            else:
                v = {}
            if not v:
                continue
        else:
            v = t
        out[key] = (t, v, pexp)
    return out


def run(minutes: float = 10.0, clients: int = 50, rewrite_every: float = 60.0,
        interval: float = 60.0, verbose: bool = True) -> dict[str, Any]:  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    port = free_port()
    proc = start(work / "live", port)
    admin = redis.Redis(port=port)
    stop = threading.Event()
    workers = [Worker(port, i, stop) for i in range(clients)]
    for w in workers:
        w.start()
    rows: list[dict[str, Any]] = []
    t0 = time.monotonic()
    next_rewrite = t0 + rewrite_every
    rewrites = 0
    try:
        while (now := time.monotonic()) - t0 < minutes * 60:
            time.sleep(max(0.0, min(interval, t0 + minutes * 60 - now)))
            if time.monotonic() >= next_rewrite:
                try:
                    admin.bgrewriteaof()
                    rewrites += 1
                except redis.ResponseError:
                    pass  # one still running
                next_rewrite += rewrite_every
            lat: list[float] = []
            ops = 0
            for w in workers:
                wl, wo = w.take()
                lat += wl
                ops += wo
            stats = admin.info("stats")
            row = {
                "t_s": round(time.monotonic() - t0),
                "rss_mb": round(rss_of(proc.pid) / 2**20, 1),
                "ops_s": round(ops / interval),
                "p99_ms": round(p99(lat) * 1000, 2),
                "expired_keys": int(stats.get("expired_keys", 0)),
                "expired_fields": int(stats.get("expired_subkeys", stats.get("expired_fields", 0))),
            }
            rows.append(row)
            if verbose:
                print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    errors = sum(w.errors for w in workers)
    # the final check: the AOF, reloaded by a second instance, equals the live state
    while admin.info("persistence").get("aof_rewrite_in_progress"):
        time.sleep(0.1)
    time.sleep(1.5)  # appendfsync everysec
    shutil.copytree(work / "live" / "appendonlydir", work / "reload" / "appendonlydir")
    port2 = free_port()
    proc2 = start(work / "reload", port2)
    other = redis.Redis(port=port2)
    cutoff = int(time.time() * 1000) + 5000
    live_state, reloaded = state(admin, cutoff), state(other, cutoff)
    diff = sorted(
        k for k in set(live_state) | set(reloaded) if live_state.get(k) != reloaded.get(k)
    )
    for p in (proc, proc2):
        p.terminate()
        p.wait(60)
    n = len(rows)
    mid = rows[n // 3 : 2 * n // 3] or rows
    last = rows[2 * n // 3 :] or rows
    mid_rss = max(r["rss_mb"] for r in mid)
    last_rss = max(r["rss_mb"] for r in last)
    result = {
        "minutes": minutes,
        "clients": clients,
        "rewrites": rewrites,
        "client_errors": errors,
        "rows": rows,
        "rss_levels_off": last_rss <= mid_rss * 1.10,
        "keys_compared": len(live_state),
        "state_differences": len(diff),
        "first_differences": [k.decode(errors="replace") for k in diff[:5]],
        "consistent": not diff,
    }
    shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument(
        "--rewrite-every", type=float, default=60.0, help="seconds between BGREWRITEAOFs"
    )
    ap.add_argument("--interval", type=float, default=60.0, help="seconds between report lines")
    a = ap.parse_args()
    r = run(a.minutes, a.clients, a.rewrite_every, a.interval)
    print(
        f"rewrites={r['rewrites']} client_errors={r['client_errors']} "
        f"rss_levels_off={r['rss_levels_off']} keys_compared={r['keys_compared']} "
        f"consistent={r['consistent']} differences={r['first_differences']}"
    )
    sys.exit(0 if r["consistent"] and r["rss_levels_off"] and not r["client_errors"] else 1)


if __name__ == "__main__":
    main()
