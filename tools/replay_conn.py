"""One pipelined RESP connection of ``valkey-aof replay`` (plain sockets, no redis-py).

How this works: commands go out in :class:`Piece` objects (the RESP bytes of one or more
commands, written by the one encoder or copied from the input file). A connection never waits
for a reply before sending more: it writes without blocking, and whenever the socket is full or
readable it reads replies. Replies are only *counted* on the fast path: a chunk made of simple
lines (``+OK``, ``:1``, ``-ERR ...``) is counted with a few C-speed ``bytes.count`` calls, and
error lines are picked out; anything else (bulk or array replies, EXEC) goes through
``hiredis.Reader``, the same C parser the project's RESP codec uses for its fast path, until
its buffer is empty again. A piece is acknowledged when all its replies arrived; acknowledged
pieces pile up in :attr:`Conn.acked` for the replayer. The control path (handshake, CLUSTER
SLOTS, COMMAND LIST) uses the project's typed :class:`persistence.resp.ReplyParser`.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from urllib.parse import unquote, urlsplit

import hiredis

from persistence.aof.encoder import encode_command
from persistence.resp import NEED_MORE, Error, Frame, ReplyParser

# a non-blocking TLS socket says "try again" with its own exceptions (ssl module docs)
WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
READ_SIZE = 1 << 20
FLUSH_AT = 256 * 1024  # queued bytes written in one go
MAX_INFLIGHT = 200_000  # replies outstanding before the sender waits


class ReplayConnError(Exception):
    """A connection failed, or the target refused a control command."""


class Cmd(Protocol):
    """What a piece needs of a command: its argv and where it came from."""

    argv: list[bytes]
    file: str
    offset: int
    size: int


@dataclass(frozen=True)
class TlsOptions:
    """TLS settings of a ``rediss://`` target (stdlib ssl; names as valkey-cli's options)."""

    ca_cert: str | None = None  # None: the system's trust store
    cert: str | None = None  # client certificate (tls-auth-clients)
    key: str | None = None
    insecure: bool = False  # no certificate or host name check
    sni: str | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_cert)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    db: int | None = None
    username: str | None = None
    password: str | None = None
    tls: TlsOptions | None = None  # set for rediss:// / valkeys://

    def describe(self) -> str:
        db = f"/{self.db}" if self.db is not None else ""
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}{db}"

    def ssl_context(self) -> ssl.SSLContext | None:
        return self.tls.context() if self.tls is not None else None


TLS_SCHEMES = ("rediss", "valkeys")


def parse_target(url: str, tls: TlsOptions | None = None) -> Target:
    """``redis://[user:pass@]host:port[/db]`` (``valkey://`` too; ``rediss://`` and
    ``valkeys://`` for TLS, with ``tls`` or default options); raises ValueError."""
    parts = urlsplit(url if "://" in url else f"redis://{url}")
    if parts.scheme not in ("redis", "valkey", *TLS_SCHEMES):
        raise ValueError(
            f"unsupported target scheme {parts.scheme!r} (use redis://host:port, or "
            "rediss://host:port for TLS)"
        )
    if tls is not None and parts.scheme not in TLS_SCHEMES:
        raise ValueError(f"TLS options given for {url!r}: use a rediss:// URL")
    if not parts.hostname:
        raise ValueError(f"no host in target {url!r}")
    try:
        port = parts.port or 6379
    except ValueError as e:
        raise ValueError(f"bad port in target {url!r}") from e
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"bad database {path!r} in target {url!r} (a number)")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if user is not None and password is None:  # redis://secret@host: a password alone
        user, password = None, user
    if parts.scheme in TLS_SCHEMES and tls is None:
        tls = TlsOptions()
    return Target(parts.hostname, port, int(path) if path else None, user, password, tls)


@dataclass(slots=True, eq=False)
class Piece:
    """Commands sent together on one connection.

    ``cmds[i]`` has global index ``indexes[i]`` (or ``first_index + i`` when ``indexes`` is
    None); with ``index_base`` set, ``indexes`` holds positions (or (position, command) pairs,
    as the cluster router keeps them) relative to it. ``prefix`` control replies (SELECT,
    ASKING) come first; a transaction adds MULTI and EXEC replies around its commands.
    ``errors`` gets (position in cmds, error text). ``groups`` (a batched piece,
    tools/replay_mset.py) holds the position in cmds of the first command each reply answers:
    one reply to an MSET acknowledges (or fails) all the commands it carries.
    """

    data: bytes
    cmds: Sequence[Cmd]
    first_index: int
    indexes: Sequence[Any] | None = None
    txn: bool = False
    prefix: int = 0
    db_after: int | None = None
    db: int = 0  # the db its commands run in (for re-sending after a redirect)
    count: int = 0
    end_reply: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    control_errors: list[str] = field(default_factory=list)
    index_base: int | None = None
    groups: Sequence[int] | None = None

    def __post_init__(self) -> None:
        replies = len(self.cmds) if self.groups is None else len(self.groups)
        self.count = self.prefix + replies + (2 if self.txn else 0)

    def index_of(self, pos: int) -> int:
        if self.indexes is None:
            return self.first_index + pos
        it = self.indexes[pos]
        if self.index_base is None:
            return int(it)
        return self.index_base + (it if type(it) is int else it[0])

    @property
    def min_index(self) -> int:
        return self.index_of(0) if self.indexes else self.first_index


class Conn:
    def __init__(
        self, host: str, port: int, *, timeout: float = 30.0, tls: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:  # fmt: skip
        self.host = host
        self.port = port
        self.name = f"{host}:{port}"
        self.timeout = timeout
        self.tls = tls
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise ReplayConnError(f"cannot connect to {self.name}: {e}") from e
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            try:  # the handshake in blocking mode, then non-blocking like a plain socket
                sock = tls.wrap_socket(sock, server_hostname=server_name or host)
            except (ssl.SSLError, ssl.CertificateError, OSError) as e:
                sock.close()
                raise ReplayConnError(f"TLS handshake with {self.name} failed: {e}") from e
        self.sock: socket.socket = sock
        self.sock.setblocking(False)
        self.db: int | None = None  # db selected on this connection, None = unknown
        self.pending: deque[Piece] = deque()
        self.acked: list[Piece] = []
        self.sent = 0  # replies expected so far
        self.received = 0
        self.bytes_sent = 0
        self._out: list[bytes] = []
        self._out_size = 0
        self._rest = b""
        self._hr: Any = None  # hiredis.Reader while a non-simple reply is being parsed

    # -- control path ------------------------------------------------------------------------
    def call(self, *argv: bytes | str | int) -> Frame:
        """Send one command and wait for its reply (only when nothing is in flight)."""
        assert not self.pending and not self._out, "control call with a pipeline in flight"
        self._write(encode_command(argv))
        parser = ReplyParser()
        while True:
            frame = parser.next_frame()
            if frame is not NEED_MORE:
                return cast(Frame, frame)
            parser.feed(self._recv_blocking())

    def call_ok(self, *argv: bytes | str | int) -> Frame:
        frame = self.call(*argv)
        if isinstance(frame, Error):
            what = " ".join(a if isinstance(a, str) else repr(a) for a in argv[:2])
            raise ReplayConnError(f"{self.name}: {what}: {frame.message.decode(errors='replace')}")
        return frame

    def _recv_blocking(self) -> bytes:
        # TLS: decrypted bytes may wait inside the SSL object, where select cannot see them
        if not (self.tls is not None and self.sock.pending()):  # type: ignore[attr-defined]
            r, _, _ = select.select([self.sock], [], [], self.timeout)
            if not r:
                raise ReplayConnError(f"{self.name}: no reply within {self.timeout:g} s")
        try:
            data = self.sock.recv(READ_SIZE)
        except WOULD_BLOCK:
            return b""
        except OSError as e:
            raise ReplayConnError(f"{self.name}: {e}") from e
        if not data:
            raise ReplayConnError(f"{self.name}: connection closed by the target")
        return data

    # -- data path ---------------------------------------------------------------------------
    def queue(self, piece: Piece) -> None:
        """Queue a piece; written once enough bytes are queued (or on :meth:`flush`)."""
        self.sent += piece.count
        piece.end_reply = self.sent
        self.pending.append(piece)
        self._out.append(piece.data)
        self._out_size += len(piece.data)
        if self._out_size >= FLUSH_AT:
            self.flush()
        if self.sent - self.received > MAX_INFLIGHT:
            self.wait_below(MAX_INFLIGHT // 2)

    def flush(self) -> None:
        if not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out = []
        self._out_size = 0
        self._write(data)
        self.poll()

    @property
    def inflight(self) -> int:
        return self.sent - self.received

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        sock = self.sock
        while view:
            try:
                n = sock.send(view)
            except WOULD_BLOCK:
                n = 0
            except OSError as e:
                raise ReplayConnError(f"{self.name}: {e}") from e
            view = view[n:]
            self.bytes_sent += n
            if view:
                r, w, _ = select.select([sock], [sock], [], self.timeout)
                if not r and not w:
                    raise ReplayConnError(f"{self.name}: target stalled for {self.timeout:g} s")
                if r:
                    self.poll()

    def poll(self) -> None:
        """Read whatever replies are there, without waiting."""
        plain = self.tls is None
        while True:
            try:
                data = self.sock.recv(READ_SIZE)
            except WOULD_BLOCK:
                return
            except OSError as e:
                raise ReplayConnError(f"{self.name}: {e}") from e
            if not data:
                raise ReplayConnError(f"{self.name}: connection closed by the target")
            self._on_data(data)
            if plain and len(data) < READ_SIZE:  # TLS gives one record per recv: read on
                return

    def wait_below(self, n: int) -> None:
        """Flush, then read until at most ``n`` replies are outstanding."""
        self.flush()
        while self.sent - self.received > n:
            self._on_data(self._recv_blocking())

    def drain(self) -> None:
        self.wait_below(0)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- replies -----------------------------------------------------------------------------
    def _on_data(self, data: bytes) -> None:
        buf = self._rest + data if self._rest else data
        k = buf.rfind(b"\r\n")
        if k < 0:
            self._rest = buf
            return
        end = k + 2
        self._rest = buf[end:]
        if self._hr is None:
            first = buf[0]
            if first in (43, 58, 45):  # '+' ':' '-': maybe all simple lines
                n = buf.count(b"\r\n", 0, end)
                errs = buf.count(b"\r\n-", 0, end)
                starts = buf.count(b"\r\n+", 0, end) + buf.count(b"\r\n:", 0, end) + errs
                if starts == n - 1:  # every line after the first starts a simple reply too
                    if errs or first == 45:
                        lines = buf[:k].split(b"\r\n")
                        self._count(n, [(i, x[1:]) for i, x in enumerate(lines) if x[:1] == b"-"])
                    else:
                        self._count(n, ())
                    return
            self._hr = hiredis.Reader()
        # complete lines only: once hiredis holds nothing, the next chunk starts at a reply
        hr = self._hr
        hr.feed(buf, 0, end)
        n = 0
        errors: list[tuple[int, Any]] = []
        while (reply := hr.gets()) is not False:
            if isinstance(reply, hiredis.ReplyError) or type(reply) is list:
                errors.append((n, reply))
            n += 1
        if not hr.has_data():
            self._hr = None
        self._count(n, errors)

    def _count(self, n: int, errors: Sequence[tuple[int, Any]]) -> None:
        base = self.received
        self.received += n
        if errors:
            self._place_errors(base, errors)
        pending = self.pending
        while pending and pending[0].end_reply <= self.received:
            self.acked.append(pending.popleft())

    def _place_errors(self, base: int, errors: Sequence[tuple[int, Any]]) -> None:
        for ordinal, reply in errors:
            at = base + ordinal
            for piece in self.pending:
                if piece.end_reply > at:
                    _attach(piece, at - (piece.end_reply - piece.count), reply)
                    break


def _text(reply: Any) -> str:
    if isinstance(reply, bytes):
        return reply.decode(errors="replace")
    return str(reply)


def _attach(piece: Piece, r: int, reply: Any) -> None:
    """Record an error reply (or an EXEC array with errors) at reply ``r`` of ``piece``."""
    if type(reply) is list:
        # an EXEC result: errors inside it belong to the transaction's commands
        if piece.txn and r == piece.prefix + len(piece.cmds) + 1:
            for i, item in enumerate(reply):
                if isinstance(item, hiredis.ReplyError):
                    piece.errors.append((i, _text(item.args[0] if item.args else item)))
        return
    msg = _text(reply.args[0] if isinstance(reply, hiredis.ReplyError) and reply.args else reply)
    pos = r - piece.prefix
    if pos < 0:
        piece.control_errors.append(msg)
    elif piece.txn:
        if pos == 0 or pos == len(piece.cmds) + 1:  # MULTI or EXEC itself (EXECABORT)
            if not msg.startswith("EXECABORT") or not piece.errors:
                piece.errors.append((0, msg))
        else:
            piece.errors.append((pos - 1, msg))
    elif piece.groups is not None:  # an MSET error: none of its commands was applied
        groups = piece.groups
        end = groups[pos + 1] if pos + 1 < len(groups) else len(piece.cmds)
        piece.errors.extend((p, msg) for p in range(groups[pos], end))
    else:
        piece.errors.append((pos, msg))
