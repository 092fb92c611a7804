"""Our server over real sockets, the way users talk to it: redis-py, raw RESP, valkey-cli."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import redis
from enginesrv import engine_server


def _raw(port: int, data: bytes, expect_close: bool = False) -> bytes:
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if not expect_close and out.endswith(b"\r\n"):
                break
    except TimeoutError:
        pass
    s.close()
    return out


def test_get_set_pipeline_and_restart(tmp_path: Path) -> None:
    with engine_server(tmp_path, "--appendfsync", "always") as srv, srv.client() as c:
        assert c.set("a", "1") is True
        assert c.get("a") == b"1"
        p = c.pipeline(transaction=False)
        for i in range(500):
            p.set(f"k{i}", i)
        assert all(p.execute())
        c.set("ttl", "x", ex=3600)
    # a restart loads the AOF directory it wrote
    assert (tmp_path / "appendonlydir" / "appendonly.aof.manifest").exists()
    with engine_server(tmp_path) as srv, srv.client() as c:
        assert c.get("a") == b"1"
        assert c.get("k499") == b"499"
        assert c.get("ttl") == b"x"


def test_pipelined_replies_come_in_order_in_one_write(tmp_path: Path) -> None:
    with engine_server(tmp_path) as srv:
        data = b"".join(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%d\r\n" % (len(str(i)), i)
                        for i in range(100))  # fmt: skip
        data += b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        out = _raw(srv.port, data)
        while out.count(b"\r\n") < 102:
            break
        assert out.startswith(b"+OK\r\n" * 100)


def test_inline_commands_and_protocol_errors(tmp_path: Path) -> None:
    with engine_server(tmp_path) as srv:
        assert _raw(srv.port, b"PING\r\n") == b"+PONG\r\n"
        assert _raw(srv.port, b'SET x "a b"\r\n') == b"+OK\r\n"
        out = _raw(srv.port, b"*1\r\n$-5\r\n", expect_close=True)
        assert out == b"-ERR Protocol error: invalid bulk length\r\n"
        out = _raw(srv.port, b'SET x "unbalanced\r\n', expect_close=True)
        assert out == b"-ERR Protocol error: unbalanced quotes in request\r\n"
        with srv.client() as c:
            assert c.get("x") == b"a b"  # still up


def test_unknown_command_text(tmp_path: Path) -> None:
    with engine_server(tmp_path) as srv, srv.client() as c, pytest.raises(redis.ResponseError) as e:
        c.execute_command("EVAL", "return 1", 0)
    assert str(e.value) == "unknown command 'EVAL', with args beginning with: 'return 1' '0' "


def test_maxclients(tmp_path: Path) -> None:
    with engine_server(tmp_path, "--maxclients", "2") as srv:
        a, b = (
            socket.create_connection(("127.0.0.1", srv.port)),
            socket.create_connection(("127.0.0.1", srv.port)),
        )
        with socket.create_connection(("127.0.0.1", srv.port)) as third:
            third.settimeout(5)
            assert third.recv(1000) == b"-ERR max number of clients reached\r\n"
        a.close()
        b.close()


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="needs redis-tools")
def test_redis_cli(tmp_path: Path) -> None:
    with engine_server(tmp_path) as srv:
        run = subprocess.run(["redis-cli", "-p", str(srv.port), "SET", "cli", "works"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
        assert run.stdout.strip() == "OK"
        run = subprocess.run(["redis-cli", "-p", str(srv.port), "GET", "cli"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
        assert run.stdout.strip() == "works"
