"""Atomic slot migration: how long moving N keys takes, and the longest write pause a live
writer sees (issue 6: target <= 50 ms, not growing from 10 k to 100 k keys).

Two engine nodes on loopback; N string keys (64-byte values) spread over slots 0-99 of node 0
in db 0; one RedisCluster writer SETs keys of those slots in a loop and times every call; then
``CLUSTER MIGRATESLOTS SLOTSRANGE 0 99 NODE <node 1>``. Total time is from the command until
the source's job says ``success``; the write pause is the writer's longest call (it includes the
MOVED redirection and the reconnection to the new owner, and any scheduling delay of a busy
machine); the source's own measure of its write pause (from its log) is printed beside it.

``python benchmarks/migration.py [--keys 10000 100000]``; ``run(quick)`` returns the figures
for ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from clusterutil import engine_cluster
from migrationutil import cluster_client, migrate, wait_job

from persistence.crc import key_slot

RANGE = (0, 99)
VALUE = b"x" * 64
EXTRA: tuple[str, ...] = ()


def _tags() -> list[bytes]:
    """One hash tag per slot of RANGE."""
    found: dict[int, bytes] = {}
    i = 0
    while len(found) < RANGE[1] - RANGE[0] + 1:
        t = b"b%d" % i
        s = key_slot(t)
        if RANGE[0] <= s <= RANGE[1] and s not in found:
            found[s] = b"{" + t + b"}"
        i += 1
    return [found[s] for s in sorted(found)]


class _Writer(threading.Thread):
    def __init__(self, rc: Any, tags: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.rc, self.tags = rc, tags
        self.stop = threading.Event()
        self.longest = 0.0
        self.longest_at = 0.0
        self.calls = 0
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                tag = self.tags[self.calls % len(self.tags)]
                t0 = time.perf_counter()
                self.rc.set(tag + b":live", b"%d" % self.calls)
                took = time.perf_counter() - t0
                if took > self.longest:
                    self.longest, self.longest_at = took, t0
                self.calls += 1
        except BaseException as e:
            self.errors.append(e)


def measure(keys: int, work: Path) -> dict[str, float]:
    tags = _tags()
    with engine_cluster(work, 2, "--appendonly", "no", "--save", "", *EXTRA) as cl:
        c = cl.client(0)
        p = c.pipeline(transaction=False)
        for i in range(keys):
            p.set(tags[i % len(tags)] + b"k%d" % i, VALUE)
            if i % 5000 == 4999:
                p.execute()
        p.execute()
        rc = cluster_client(cl)
        w = _Writer(rc, tags)
        w.start()
        time.sleep(0.5)
        before = w.longest  # the writer's worst call without a migration
        w.longest = 0.0
        t0 = time.perf_counter()
        migrate(c, cl.ids[1], RANGE)
        job = wait_job(c, timeout=600)
        total = time.perf_counter() - t0
        time.sleep(0.3)
        w.stop.set()
        w.join(30)
        rc.close()
        if job[b"state"] != b"success" or w.errors:
            raise RuntimeError(f"migration {job[b'state']!r}, writer errors {w.errors}")
        moved = sum(
            int(cl.cmd(1, "CLUSTER", "COUNTKEYSINSLOT", s)) for s in range(RANGE[0], RANGE[1] + 1)
        )
        pauses = re.findall(r"paused for ([0-9.]+) ms", cl.nodes[0].log)
        return {
            "keys": keys,
            "server_pause_ms": float(pauses[-1]) if pauses else float("nan"),
            "moved": moved,
            "total_s": total,
            "keys_per_s": keys / total,
            "longest_write_ms": w.longest * 1000,
            "longest_write_before_ms": before * 1000,
            "writes": w.calls,
            "longest_at_s": w.longest_at - t0,
        }


def run(quick: bool) -> dict[str, Any]:
    sizes = (10_000, 30_000) if quick else (10_000, 100_000)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mig-bench-") as d:
        for n in sizes:
            out[f"{n // 1000}k"] = measure(n, Path(d) / f"n{n}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, nargs="+", default=[10_000, 100_000])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mig-bench-") as d:
        print(f"{'keys':>8} {'total s':>8} {'keys/s':>9} {'longest write ms':>17} {'(idle)':>7} "
              f"{'pause ms':>9}")  # fmt: skip
        for i, n in enumerate(args.keys):
            r = measure(n, Path(d) / f"run{i}")
            print(f"{n:>8} {r['total_s']:>8.2f} {r['keys_per_s']:>9.0f} "
                  f"{r['longest_write_ms']:>17.1f} {r['longest_write_before_ms']:>7.1f} "
                  f"{r['server_pause_ms']:>9.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
