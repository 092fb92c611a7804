"""Shared helpers of the benchmark scripts: the real valkey-server, timing, table printing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from realserver import free_port, valkey_server_binary


@contextmanager
def valkey(workdir: Path, *args: str) -> Iterator[tuple[redis.Redis, subprocess.Popen[bytes]]]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [
        valkey_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(workdir),
        "--logfile",
        "valkey.log",
        "--save",
        "",
        *args,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_timeout=600)
    try:
        wait_ready(client, proc)
        yield client, proc
    finally:
        client.close()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)


def wait_ready(client: redis.Redis, proc: subprocess.Popen[bytes]) -> None:
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"valkey-server exited with {proc.returncode}")
        try:
            if client.info("persistence").get("loading") == 0:
                return
        except (redis.ConnectionError, redis.BusyLoadingError):
            pass
        time.sleep(0.005)


def server_load_seconds(workdir: Path, *args: str) -> float:
    """Start valkey-server on ``workdir`` and return the load time its log reports."""
    log = workdir / "valkey.log"
    if log.exists():
        log.unlink()
    t0 = time.perf_counter()
    with valkey(workdir, *args):
        wall = time.perf_counter() - t0
    text = log.read_text(errors="replace")
    found = re.findall(
        r"(?:DB loaded from (?:append only file|disk)|Done loading RDB).*?([0-9.]+) seconds", text
    )
    return float(found[-1]) if found else wall


def best_of(runs: int, fn: Callable[[], object]) -> tuple[float, float, float]:
    """(median, min, max) seconds of ``runs`` calls."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], times[0], times[-1]


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cpu_count() -> int:
    return os.cpu_count() or 1
