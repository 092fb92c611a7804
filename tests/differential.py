"""Differential testing: the same command against our engine and a real valkey-server 9.1.2.

``Differ.check(argv)`` sends ``argv`` to both, parses both replies into RESP frames and asserts
they are equal; with ``propagation=True`` (the default) it also compares what the command
propagated: our engine's effects against the bytes the real server appended to its AOF
(``appendfsync always``, so they are on disk before the reply). Absolute times may differ by a
few milliseconds between the two servers, so integers that look like Unix ms (> 10^12) compare
within ``tol_ms``, and TTL replies can be given a tolerance.

Our side runs in-process (``Engine.execute``) with the wall clock; the real side over a raw
socket, so neither redis-py's parsing nor its retries get in the way.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from realserver import RealServer

from engine.engine import Engine
from persistence.aof.encoder import encode_command
from persistence.aof.manifest import read_manifest
from persistence.aof.resp_scan import RespScanner
from persistence.resp import NEED_MORE, ReplyParser
from persistence.resp.frames import Array, Double, Integer, Map, Set
from persistence.resp.reply import encode_value

REAL_ARGS = ("--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "yes",
             "--enable-debug-command", "yes")  # fmt: skip


class Differ:
    def __init__(self, real: RealServer, engine: Engine | None = None, *, tol_ms: int = 2000):
        self.real_server = real
        self.engine = engine or Engine()
        self.client = self.engine.new_client()
        self.sock = socket.create_connection(("127.0.0.1", real.port))
        self.sock.settimeout(10)
        self.parser = ReplyParser()
        self.resp = 2
        self.tol_ms = tol_ms
        self.aof_db = -1
        self._aof_file: Path | None = None
        self._aof_pos = 0
        self._sync_aof()

    # -- the two sides --------------------------------------------------------------------
    def real(self, argv: list[bytes | str | int]) -> Any:
        self.sock.sendall(encode_command(argv))
        while True:
            frame = self.parser.next_frame()
            if frame is not NEED_MORE:
                return frame
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("real server closed the connection")
            self.parser.feed(data)

    def ours(self, argv: list[bytes | str | int]) -> tuple[Any, list[list[bytes]]]:
        args = [_b(a) for a in argv]
        reply, effects = self.engine.execute(self.client, args)
        p = ReplyParser()
        p.feed(encode_value(reply, self.client.resp))
        frame = p.next_frame()
        assert frame is not NEED_MORE, reply
        aof: list[list[bytes]] = []
        for db, cmd in effects:
            if db != -1 and db != self.aof_db:
                aof.append([b"SELECT", b"%d" % db])
                self.aof_db = db
            aof.append(cmd)
        return frame, aof

    # -- comparing ------------------------------------------------------------------------
    def check(
        self,
        argv: list[bytes | str | int],
        *,
        propagation: bool = True,
        tol: int | float | None = None,
        unordered: bool = False,
    ) -> Any:
        """Run ``argv`` on both and assert equal replies (and propagation). Returns the frame.

        ``tol``: integers/doubles in the reply may differ by this much (TTLs).
        ``unordered``: arrays compare as multisets (SMEMBERS, HGETALL on hashtables...).
        """
        theirs = self.real(argv)
        ours, effects = self.ours(argv)
        if not same(ours, theirs, tol=tol, tol_ms=self.tol_ms, unordered=unordered):
            raise AssertionError(f"{_show(argv)}:\n  ours   {ours!r}\n  valkey {theirs!r}")
        if propagation:
            real_aof = self.read_aof()
            if not same(effects, real_aof, tol=None, tol_ms=self.tol_ms, unordered=False):
                raise AssertionError(
                    f"{_show(argv)} propagated:\n  ours   {effects!r}\n  valkey {real_aof!r}"
                )
        return theirs

    def both(self, argv: list[bytes | str | int]) -> tuple[Any, Any]:
        """Run on both without comparing (setup, or replies compared by the caller)."""
        theirs = self.real(argv)
        ours, _ = self.ours(argv)
        self.read_aof()
        return ours, theirs

    def hello(self, protocol: int) -> None:
        self.both(["HELLO", protocol])
        self.resp = protocol

    # -- the real server's AOF ------------------------------------------------------------
    def _sync_aof(self) -> None:
        d = self.real_server.dir / "appendonlydir"
        if not d.exists():
            return
        m = read_manifest(d / "appendonly.aof.manifest")
        f = d / m.incrs[-1].name
        if f != self._aof_file:
            self._aof_file = f
            self._aof_pos = 0
            self.aof_db = -1

    def read_aof(self) -> list[list[bytes]]:
        """Commands the real server appended since the last call."""
        self._sync_aof()
        if self._aof_file is None:
            return []
        for _ in range(50):
            data = self._aof_file.read_bytes()[self._aof_pos :]
            if not data or data.endswith(b"\r\n"):
                break
            time.sleep(0.01)
        self._aof_pos += len(data)
        import io

        out = [c.argv for c in RespScanner(io.BytesIO(data), file="aof")]
        return out

    def close(self) -> None:
        self.sock.close()


def _b(a: bytes | str | int) -> bytes:
    if isinstance(a, bytes):
        return a
    if isinstance(a, int):
        return b"%d" % a
    return a.encode()


def _show(argv: list[bytes | str | int]) -> str:
    return " ".join(repr(_b(a))[2:-1] for a in argv)


def _num(x: Any) -> int | float | None:
    if isinstance(x, Integer):
        return x.value
    if isinstance(x, Double):
        return x.value
    if isinstance(x, bytes):
        try:
            return int(x)
        except ValueError:
            return None
    return None


def same(a: Any, b: Any, *, tol: int | float | None, tol_ms: int, unordered: bool) -> bool:
    if a == b:
        return True
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None and type(a) is type(b):
        if tol is not None and abs(na - nb) <= tol:
            return True
        return na > 10**12 and nb > 10**12 and abs(na - nb) <= tol_ms
    if isinstance(a, list) and isinstance(b, list):
        return _same_seq(a, b, tol, tol_ms, unordered)
    if type(a) is not type(b):
        return False
    if isinstance(a, Array | Set) and isinstance(b, Array | Set):
        if a.items is None or b.items is None:
            return a.items is b.items
        return _same_seq(list(a.items), list(b.items), tol, tol_ms, unordered or isinstance(a, Set))
    if isinstance(a, Map) and isinstance(b, Map):
        fa = [x for kv in a.pairs for x in kv]
        fb = [x for kv in b.pairs for x in kv]
        if not unordered:
            return _same_seq(fa, fb, tol, tol_ms, False)
        pa = sorted(map(repr, a.pairs))
        pb = sorted(map(repr, b.pairs))
        return pa == pb
    return False


def _same_seq(a: list[Any], b: list[Any], tol: Any, tol_ms: int, unordered: bool) -> bool:
    if len(a) != len(b):
        return False
    if unordered:
        return sorted(map(repr, a)) == sorted(map(repr, b))
    return all(
        same(x, y, tol=tol, tol_ms=tol_ms, unordered=False) for x, y in zip(a, b, strict=True)
    )
