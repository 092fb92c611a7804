"""``valkey-aof replay`` speed, side by side with ``redis-cli --pipe``.

    python benchmarks/replay.py [--commands 1000000] [--runs 3]

A real valkey-server writes an AOF of N ``SET`` commands (as benchmarks/formats.py does). We time
(median of ``--runs``, min-max in brackets), each into a fresh-flushed target with appendonly off:
- ``cat <aof files> | redis-cli --pipe`` into one valkey-server (the reference);
- ``valkey-aof replay`` (library call) of the appendonlydir into the same server
  (target: >= 1.0x redis-cli's commands/s), by default: runs of plain SETs go as MSET;
- the same with ``--as-is`` (every command as the file has it: the bytes redis-cli sends;
  an info row);
- ``valkey-aof replay`` into a 3-node cluster on loopback (target: >= 0.5x of redis-cli's
  standalone commands/s).
``measure()`` returns these as figures (commands/s per run) for ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis

# benchmarks/tools.py would shadow the tools package: import it before adding this folder
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))
from tools.replay import ReplayOptions, replay  # noqa: E402

sys.path.append(str(HERE))
from _common import Figure, compile_packages, free_ports, table, valkey  # noqa: E402
from formats import make_aof  # noqa: E402

Times = tuple[float, float, float]


@contextlib.contextmanager
def cluster(work: Path) -> Iterator[list[redis.Redis]]:
    ranges = [(0, 5460), (5461, 10922), (10923, 16383)]
    # client and bus ports chosen together: a client port equal to a bus port fails a node
    ports = free_ports(6)
    bus = ports[3:]
    with contextlib.ExitStack() as stack:
        nodes = [
            stack.enter_context(
                valkey(
                    work / f"n{i}", "--appendonly", "no", "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf", "--cluster-port", str(bus[i]),
                    "--cluster-databases", "16", port=ports[i],
                )
            )[0]
            for i in range(3)
        ]  # fmt: skip
        for c, (lo, hi) in zip(nodes, ranges):
            c.execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
        for i, c in enumerate(nodes[1:], 1):
            port = c.connection_pool.connection_kwargs["port"]
            nodes[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus[i])
        while not all(
            b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO")
            and len(c.execute_command("CLUSTER", "SLOTS")) == 3
            for c in nodes
        ):
            time.sleep(0.05)
        yield nodes


def timed(runs: int, prepare: Callable[[], object], fn: Callable[[], object]) -> list[float]:
    """Seconds of ``runs`` calls of ``fn``; ``prepare`` (a FLUSHALL) runs untimed before each."""
    times = []
    for _ in range(runs):
        prepare()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def stats(times: list[float]) -> Times:
    """(median, min, max)."""
    s = sorted(times)
    return s[len(s) // 2], s[0], s[-1]


def port_of(c: redis.Redis) -> int:
    return int(c.connection_pool.connection_kwargs["port"])


def replay_seconds(
    aof_dir: Path, keys: int, runs: int, work: Path, with_cluster: bool = True
) -> tuple[int, list[float], list[float], list[float], list[float]]:
    """(commands, seconds of: redis-cli --pipe, ours standalone, ours standalone --as-is,
    ours into a 3-node cluster (none without ``with_cluster``))."""
    cli = shutil.which("redis-cli") or shutil.which("valkey-cli")
    if cli is None:
        raise SystemExit("redis-cli not found (apt-get install redis-tools)")
    files = sorted(aof_dir.glob("*.base.aof")) + sorted(aof_dir.glob("*.incr.aof"))
    joined = work / "joined.aof"
    with joined.open("wb") as out:
        for f in files:
            out.write(f.read_bytes())
    n = 0
    with valkey(work / "std", "--appendonly", "no") as (c, _):
        port = port_of(c)

        def pipe() -> None:
            with joined.open("rb") as f:
                subprocess.run(
                    [cli, "-p", str(port), "--pipe"], stdin=f, check=True,
                    stdout=subprocess.DEVNULL,
                )  # fmt: skip

        def ours() -> None:
            nonlocal n
            n = replay(aof_dir, ReplayOptions(target=f"redis://127.0.0.1:{port}")).commands

        def as_is() -> None:
            replay(aof_dir, ReplayOptions(target=f"redis://127.0.0.1:{port}", as_is=True))

        t_cli = timed(runs, c.flushall, pipe)
        t_ours = timed(runs, c.flushall, ours)
        assert c.dbsize() == keys, (c.dbsize(), keys)
        t_as_is = timed(runs, c.flushall, as_is)
        assert c.dbsize() == keys, (c.dbsize(), keys)
    if not with_cluster:
        return n, t_cli, t_ours, t_as_is, []
    with cluster(work / "cl") as nodes:

        def flush_all() -> None:
            for node in nodes:
                node.flushall()

        def ours_cluster() -> None:
            target = f"redis://127.0.0.1:{port_of(nodes[0])}"
            replay(aof_dir, ReplayOptions(target=target))

        t_cl = timed(runs, flush_all, ours_cluster)
        assert sum(node.dbsize() for node in nodes) == keys
    return n, t_cli, t_ours, t_as_is, t_cl


def measure(
    aof_dir: Path, keys: int, runs: int, work: Path, with_cluster: bool = True
) -> list[Figure]:
    """Replay commands/s of ours (standalone, 3-node cluster) and of ``redis-cli --pipe``."""
    compile_packages()
    n, t_cli, t_ours, t_as_is, t_cl = replay_seconds(aof_dir, keys, runs, work, with_cluster)
    ref = [n / t for t in t_cli]
    return [
        Figure("replay.standalone", f"valkey-aof replay into valkey-server, {n:,} commands",
               "cmd/s", [n / t for t in t_ours], ref, "redis-cli --pipe"),
        Figure("replay.standalone.as_is",
               f"valkey-aof replay --as-is into valkey-server, {n:,} commands (no MSET)",
               "cmd/s", [n / t for t in t_as_is], ref, "redis-cli --pipe"),
        *([Figure("replay.cluster", f"valkey-aof replay into a 3-node cluster, {n:,} commands",
                  "cmd/s", [n / t for t in t_cl], ref, "redis-cli --pipe, standalone")]
          if with_cluster else []),
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--commands", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vaof-replay-"))
    try:
        resp, _ = make_aof(work, args.commands)
        n, s_cli, s_ours, s_as_is, s_cl = replay_seconds(
            resp / "appendonlydir", args.commands, args.runs, work
        )
        t_cli, t_ours, t_as_is, t_cl = stats(s_cli), stats(s_ours), stats(s_as_is), stats(s_cl)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def fmt(t: Times) -> str:
        med, lo, hi = t
        return f"{med:.3f} s [{lo:.3f}-{hi:.3f}] ({n / med / 1e6:.2f} M cmd/s)"

    ref = n / t_cli[0]
    print(
        table([
            ("metric", "valkey-aof replay", "redis-cli --pipe", "ratio (cmd/s)", "target"),
            (f"standalone, {n:,} SET", fmt(t_ours), fmt(t_cli), f"{n / t_ours[0] / ref:.2f}x",
             ">= 1.0x"),
            (f"standalone --as-is, {n:,} SET", fmt(t_as_is), fmt(t_cli),
             f"{n / t_as_is[0] / ref:.2f}x", "-"),
            (f"3-node cluster, {n:,} SET", fmt(t_cl), "(standalone figure)",
             f"{n / t_cl[0] / ref:.2f}x", ">= 0.5x"),
        ])
    )  # fmt: skip


if __name__ == "__main__":
    main()
