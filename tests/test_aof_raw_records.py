"""The server writes a command propagated as it came as the request's own bytes
(RequestParser.last_raw) instead of encoding it again: the incr AOF must still be byte for byte
what valkey-server 9.1.2 writes for the same traffic, over pipelines, inline commands, SELECT
changes, rewritten commands (SET EXAT, INCRBYFLOAT), MULTI/EXEC, lower-case names, binary and
big values (the parser's buffer compaction) and requests split across reads."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from enginesrv import engine_server
from realserver import real_server

from persistence.aof.encoder import encode_command

pytestmark = pytest.mark.real


def wire(*args: bytes) -> bytes:
    return encode_command(list(args))


BIG = bytes(range(256)) * 400  # 100 KB: more than the parser's compaction threshold


def traffic() -> list[bytes]:
    """Chunks to send, each one write() (so pipelines and split requests both happen)."""
    pipeline = b"".join(wire(b"SET", b"k%d" % i, b"v%d" % i) for i in range(200))
    chunks = [
        pipeline,
        wire(b"set", b"lower", b"\x00\r\n*1\r\n$4\r\nPING\r\n"),  # RESP inside a value
        b"SET inline-key inline-value\r\n",  # an inline command: encoded again, not raw
        wire(b"SELECT", b"3") + wire(b"LPUSH", b"l", b"a", b"b") + wire(b"HSET", b"h", b"f", b"v"),
        wire(b"SET", b"exat", b"v", b"EXAT", b"4102444800"),  # rewritten: SET ... PXAT
        wire(b"SET", b"n", b"1.5") + wire(b"INCRBYFLOAT", b"n", b"2"),  # rewritten: SET KEEPTTL
        wire(b"MULTI") + wire(b"INCR", b"c") + wire(b"SADD", b"s", b"m") + wire(b"EXEC"),
        wire(b"SELECT", b"0") + wire(b"SET", b"big", BIG) * 3 + wire(b"APPEND", b"big", b"x"),
        wire(b"DEL", b"nokey"),  # not propagated: nothing changed
    ]
    split = wire(b"RPUSH", b"split", b"one", b"two") + wire(b"SET", b"after-split", BIG)
    chunks += [split[:7], split[7:20], split[20:5000], split[5000:]]
    return chunks


def send_all(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        for chunk in traffic():
            s.sendall(chunk)
            time.sleep(0.01)  # separate reads on the server side
        s.sendall(wire(b"PING"))
        s.settimeout(10)
        got = b""
        while not got.endswith(b"+PONG\r\n"):
            data = s.recv(1 << 20)
            assert data, "connection closed"
            got += data
        assert b"-ERR" not in got and b"-Protocol" not in got


def incr_bytes(aof_dir: Path) -> bytes:
    files = sorted(aof_dir.glob("*.incr.aof"))
    assert len(files) == 1
    return files[0].read_bytes()


def test_incr_aof_bytes_as_valkey_writes_them(tmp_path: Path) -> None:
    args = ("--appendonly", "yes", "--appendfsync", "always", "--save", "")
    with engine_server(tmp_path / "ours", *args) as srv:
        send_all(srv.port)
    with real_server(tmp_path / "valkey", *args) as rs:
        send_all(rs.port)
    ours = incr_bytes(tmp_path / "ours" / "appendonlydir")
    theirs = incr_bytes(tmp_path / "valkey" / "appendonlydir")
    assert ours == theirs
