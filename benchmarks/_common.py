"""Shared helpers of the benchmark scripts: the real valkey-server, timing, table printing.

Every script exposes a function returning ``Figure`` objects (raw samples of ours and of the
reference, measured in the same run); ``benchmarks/run.py`` attaches the targets and prints them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from realserver import free_port, valkey_server_binary


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports: all are held open while they are chosen, so the kernel cannot
    hand one out twice (as ``free_port()`` called n times can)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@contextmanager
def valkey(
    workdir: Path, *args: str, port: int | None = None
) -> Iterator[tuple[redis.Redis, subprocess.Popen[bytes]]]:
    workdir.mkdir(parents=True, exist_ok=True)
    if port is None:
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
    proc = subprocess.Popen(pin(SERVER_CORE) + cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
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
    return server_load_seconds_rss(workdir, *args)[0]


def server_load_seconds_rss(workdir: Path, *args: str) -> tuple[float, int]:
    """(load seconds its log reports, VmRSS bytes once loaded) of valkey-server on ``workdir``."""
    log = workdir / "valkey.log"
    if log.exists():
        log.unlink()
    t0 = time.perf_counter()
    with valkey(workdir, *args) as (_, proc):
        wall = time.perf_counter() - t0
        mem = rss(proc.pid)
    text = log.read_text(errors="replace")
    found = re.findall(
        r"(?:DB loaded from (?:append only file|disk)|Done loading RDB).*?([0-9.]+) seconds", text
    )
    return (float(found[-1]) if found else wall), mem


def rss(pid: int) -> int:
    """VmRSS of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# servers on one core, clients (redis-benchmark, redis-cli, our tools, this process) on another
SERVER_CORE, CLIENT_CORE = 0, 1


def compile_packages() -> None:
    """Write our modules' bytecode, as ``pip install`` does for a user. This machine sets
    PYTHONDONTWRITEBYTECODE=1, so an editable checkout would otherwise compile every module from
    source in every tool process (30-50 ms of a check or inspect run). Python still reads .pyc
    files under that setting; compileall writes them regardless."""
    root = Path(__file__).resolve().parent.parent
    pkgs = [str(root / p) for p in ("engine", "persistence", "tools")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *pkgs], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def pinning() -> bool:
    return cpu_count() >= 2 and shutil.which("taskset") is not None


def pin(core: int) -> list[str]:
    """``taskset -c core`` prefix for a command, when the machine has two or more cores."""
    return ["taskset", "-c", str(core)] if pinning() else []


def pin_self_to_client_core() -> None:
    """Pin this process (and the clients it starts without ``pin``) to the client core."""
    if pinning() and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {CLIENT_CORE})


def samples(runs: int, fn: Callable[[], object]) -> list[float]:
    """Wall seconds of ``runs`` calls of ``fn``."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


@dataclass
class Figure:
    """One measured metric: raw samples of ours and of the reference, same run, same machine.

    ``metric`` is a stable id (the key of ``run.TARGETS``); ``unit`` is one of ``s`` (time, lower
    is better), ``ms`` (latency, lower is better), ``MB`` (memory, lower is better) or a rate
    such as ``req/s`` / ``cmd/s`` (higher is better). ``reference`` may be empty.
    """

    metric: str
    label: str
    unit: str
    ours: list[float]
    reference: list[float] = field(default_factory=list)
    reference_name: str = ""
    note: str = ""

    @property
    def higher_is_better(self) -> bool:
        return self.unit.endswith("/s")

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours)

    @property
    def reference_median(self) -> float | None:
        return statistics.median(self.reference) if self.reference else None

    @property
    def ratio(self) -> float | None:
        """ours / reference (medians): a time ratio for times, a speed ratio for rates."""
        ref = self.reference_median
        return self.ours_median / ref if ref else None

    def fmt(self, values: list[float]) -> str:
        if not values:
            return ""
        med, lo, hi = statistics.median(values), min(values), max(values)
        if len(values) == 1:
            return fmt_value(med, self.unit)
        lo_hi = f"{fmt_number(lo, self.unit)}-{fmt_number(hi, self.unit)}"
        return f"{fmt_value(med, self.unit)} [{lo_hi}]"


def fmt_number(v: float, unit: str) -> str:
    if unit.endswith("/s"):
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if unit == "MB":
        return f"{v:.1f}"
    if unit == "ms" or v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_value(v: float, unit: str) -> str:
    return f"{fmt_number(v, unit)} {unit}" if unit else fmt_number(v, unit)


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
