"""A launcher for engine clusters on loopback: start N nodes, MEET, assign slots, wait until
every node agrees (the cluster tests, the migration tests and benchmarks use it).

    with engine_cluster(tmp_path, 3) as cl:
        rc = cl.cluster_client()          # redis-py RedisCluster
        cl.client(0).execute_command("CLUSTER", "NODES")

Forming works as ``redis-cli --cluster create`` does without replicas: each node gets an equal
share of the 16384 slots (ADDSLOTSRANGE on that node), then node 0 MEETs every other node and
the nodes learn each other through the gossip sections of their PINGs and PONGs.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from enginesrv import EngineServer
from realserver import free_port
from redis.cluster import ClusterNode, RedisCluster

CLUSTER_ARGS = ("--cluster-enabled", "yes", "--cluster-databases", "16")
SLOTS = 16384


def split_slots(n: int) -> list[tuple[int, int]]:
    """redis-cli's split: n nearly equal consecutive ranges."""
    per = SLOTS / n
    out = []
    first = 0.0
    for i in range(n):
        last = SLOTS - 1 if i == n - 1 else int(first + per - 1)
        out.append((int(first), last))
        first = last + 1
    return out


@dataclass
class EngineCluster:
    nodes: list[EngineServer]
    ids: list[str] = field(default_factory=list)
    password: str | None = None  # requirepass of every node (the bus links AUTH with it)

    def client(self, i: int, **kw: object) -> redis.Redis:
        if self.password is not None:
            kw.setdefault("password", self.password)
        return self.nodes[i].client(**kw)

    def cluster_client(self, **kw: object) -> RedisCluster:
        startup = [ClusterNode("127.0.0.1", n.port) for n in self.nodes]
        if self.password is not None:
            kw.setdefault("password", self.password)
        return RedisCluster(startup_nodes=startup, **kw)  # type: ignore[arg-type]

    def cmd(self, i: int, *args: object) -> Any:
        c = self.client(i, socket_timeout=10)
        try:
            return c.execute_command(*args)
        finally:
            c.close()

    def node_id(self, i: int) -> str:
        return str(self.cmd(i, "CLUSTER", "MYID"), "ascii")


def start_nodes(workdir: Path, n: int, *args: str, ports: Sequence[int] = ()) -> list[EngineServer]:
    """Start ``n`` cluster-enabled engine nodes at once (in parallel) and wait for each."""
    servers = []
    for i in range(n):
        servers.append(start_node(workdir / f"n{i}", *args, port=ports[i] if ports else None))
    try:
        for s in servers:
            wait_ready(s)
    except BaseException:
        for s in servers:
            stop_node(s)
        raise
    return servers


def start_node(workdir: Path, *args: str, port: int | None = None) -> EngineServer:
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    # the bus port is only shown (our bus uses the client port); port + 10000 may not exist
    cport = bus_port(port)
    cmd = [sys.executable, "-m", "engine.server.main", "--port", str(port), "--dir", str(workdir),
           "--logfile", str(workdir / "engine.log"), "--cluster-port", str(cport),
           *CLUSTER_ARGS, *args]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return EngineServer(proc, port, workdir)


def wait_ready(srv: EngineServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if srv.proc.poll() is not None:
            err = (srv.proc.stderr.read() if srv.proc.stderr else b"").decode(errors="replace")
            raise RuntimeError(f"valkey-engine exited {srv.proc.returncode}: {err}\n{srv.log}")
        try:
            c = srv.client(socket_timeout=5)
            try:
                c.ping()
            except redis.AuthenticationError:
                pass  # up, with requirepass
            finally:
                c.close()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def stop_node(srv: EngineServer, sig: str = "term") -> None:
    srv.stop(sig)
    if srv.proc.stderr:
        srv.proc.stderr.close()


def form(cl: EngineCluster, *, assign: bool = True, timeout: float = 30) -> tuple[float, float]:
    """ADDSLOTSRANGE an equal share on each node, node 0 MEETs the others, wait to converge.
    Returns the seconds after the MEETs until every node agreed on the nodes and the slots,
    and until every node also said cluster_state:ok."""
    n = len(cl.nodes)
    if assign:
        for i, (start, end) in enumerate(split_slots(n)):
            cl.cmd(i, "CLUSTER", "ADDSLOTSRANGE", start, end)
    for node in cl.nodes[1:]:
        meet(cl, 0, node)
    t0 = time.monotonic()
    cl.ids = [cl.node_id(i) for i in range(n)]
    wait_converged(cl, timeout=timeout, full=False)
    agreed = time.monotonic() - t0
    if assign:
        wait_converged(cl, timeout=timeout, full=True)
    return agreed, time.monotonic() - t0


def bus_port(port: int) -> int:
    return port + 10000 if port + 10000 < 65536 else port - 10000


def meet(cl: EngineCluster, i: int, other: EngineServer) -> None:
    """Node ``i`` MEETs ``other`` (with its bus port: see :func:`start_node`)."""
    cl.cmd(i, "CLUSTER", "MEET", "127.0.0.1", other.port, bus_port(other.port))


def parse_nodes(text: str) -> dict[str, dict[str, Any]]:
    """CLUSTER NODES -> {id: {addr, flags, ping_sent, pong_recv, epoch, link, slots}}."""
    out: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        slots: list[str] = [p for p in parts[8:] if not p.startswith("[")]
        out[parts[0]] = {"addr": parts[1], "flags": set(parts[2].split(",")),
                         "ping_sent": int(parts[4]), "pong_recv": int(parts[5]),
                         "epoch": int(parts[6]), "link": parts[7], "slots": slots}  # fmt: skip
    return out


def views(cl: EngineCluster) -> list[dict[str, dict[str, Any]]]:
    return [parse_nodes(str(cl.cmd(i, "CLUSTER", "NODES"), "utf-8")) for i in range(len(cl.nodes))]


def converged(cl: EngineCluster, *, full: bool = True) -> bool:
    """Every node knows every node (no handshake, all links up), all agree on every slot's
    owner, and (``full``) every node says cluster_state:ok."""
    try:
        vs = views(cl)
    except redis.RedisError:
        return False
    n = len(cl.nodes)
    first = None
    for v in vs:
        if len(v) != n:
            return False
        if any("handshake" in e["flags"] or e["link"] != "connected" for e in v.values()):
            return False
        owners = {name: e["slots"] for name, e in v.items()}
        if first is None:
            first = owners
        elif owners != first:
            return False
    if full:
        for i in range(n):
            info = str(cl.cmd(i, "CLUSTER", "INFO"), "utf-8")
            if "cluster_state:ok" not in info:
                return False
    return True


def wait_converged(cl: EngineCluster, *, timeout: float = 30, full: bool = True) -> float:
    """Seconds it took until :func:`converged`; TimeoutError with the views otherwise."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if converged(cl, full=full):
            return time.monotonic() - t0
        time.sleep(0.1)
    raise TimeoutError(f"no convergence in {timeout} s: {views(cl)}")


def wait_for(pred: Callable[[], object], timeout: float = 10, step: float = 0.05) -> None:
    """Poll ``pred()`` until true (AssertionError after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout} s")
        time.sleep(step)


@contextlib.contextmanager
def engine_cluster(
    workdir: Path,
    n: int = 3,
    *args: str,
    assign: bool = True,
    timeout: float = 30,
    password: str | None = None,
) -> Iterator[EngineCluster]:
    """``n`` engine nodes formed into one cluster (see the module docstring); with
    ``password`` every node runs with that requirepass."""
    if password is not None:
        args = (*args, "--requirepass", password)
    nodes = start_nodes(workdir, n, *args)
    cl = EngineCluster(nodes, password=password)
    try:
        form(cl, assign=assign, timeout=timeout)
        yield cl
    finally:
        for s in cl.nodes:
            stop_node(s)
