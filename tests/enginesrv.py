"""Start our server (``valkey-engine``) as a subprocess on a free loopback port, as users run it."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import redis
from realserver import free_port


class EngineServer:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, workdir: Path):
        self.proc = proc
        self.port = port
        self.dir = workdir

    def client(self, **kw: object) -> redis.Redis:
        kw.setdefault("protocol", 2)
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)  # type: ignore[arg-type]

    @property
    def log(self) -> str:
        p = self.dir / "engine.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self, sig: str = "term") -> int:
        if self.proc.poll() is None:
            if sig == "kill":
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(20)
        return int(self.proc.returncode)


@contextlib.contextmanager
def engine_server(workdir: Path, *args: str, port: int | None = None) -> Iterator[EngineServer]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cmd = [sys.executable, "-m", "engine.server.main", "--port", str(port), "--dir", str(workdir),
           "--logfile", str(workdir / "engine.log"), *args]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    srv = EngineServer(proc, port, workdir)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                out = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")
                raise RuntimeError(f"valkey-engine exited {proc.returncode}: {out}\n{srv.log}")
            try:
                c = srv.client(socket_timeout=5)
                c.ping()
                c.close()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield srv
    finally:
        srv.stop()
        for s in (proc.stdout, proc.stderr):
            if s:
                s.close()
