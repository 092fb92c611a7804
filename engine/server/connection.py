"""One client connection of the RESP server (engine/server/server.py): the asyncio Protocol that
takes the client's reads to its parser and the server, and holds its replies until the flush.

How this works: a read that is all of the shape the client keeps sending goes to the server's
hot paths at once (``Server.join_read`` for one command, ``Server.run_read`` for several; see
engine/server/runs.py); any other read is fed to the parser and processed command by command
(``Server.process``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from engine.blocking import Block
from engine.context import ClientState
from persistence.resp.parser import RequestParser

if TYPE_CHECKING:
    from engine.server.server import Server

MAX_CLIENTS_ERR = b"-ERR max number of clients reached\r\n"
# client-query-buffer-limit is at least 1 MB (src/config.c): smaller buffers skip the check
QUERY_BUFFER_FLOOR = 1024 * 1024
OUTPUT_CHECK = 65536  # unsent reply bytes over which Server.flush checks the output limits
PROTECTED_ERR = (
    b"-DENIED Valkey is running in protected mode because protected mode is enabled and no "
    b"password is set for the default user. In this mode connections are only accepted from "
    b"the loopback interface. If you want to connect from external computers to Valkey you may "
    b"adopt one of the following solutions: 1) Just disable protected mode sending the command "
    b"'CONFIG SET protected-mode no' from the loopback interface by connecting to Valkey from "
    b"the same host the server is running, however MAKE SURE Valkey is not publicly accessible "
    b"from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) "
    b"Alternatively you can just disable the protected mode by editing the Valkey configuration "
    b"file, and setting the protected mode option to 'no', and then restarting the server. 3) If "
    b"you started the server manually just for testing, restart it with the '--protected-mode "
    b"no' option. 4) Set up an authentication password for the default user. NOTE: You only need "
    b"to do one of the above things in order for the server to start accepting connections from "
    b"the outside.\r\n"
)


class Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.client: ClientState | None = None
        self.parser = RequestParser(max_bulk_len=server.engine.config["proto-max-bulk-len"])
        self.out: list[bytes] = []
        self.blocked: Block | None = None
        self.blocked_argv: list[bytes] | None = None
        self.timeout_handle: asyncio.TimerHandle | None = None
        self.closing = False
        self.soft_since = 0.0  # when the output buffer went over the soft limit
        # the transport's write buffer went over its high-water mark (OUTPUT_CHECK) and has
        # not drained to the low one (a quarter): Server.flush checks the output limits
        self.paused = False
        # set when the connection stops being a client: the bytes go to a link handler instead
        # (the SYNCSLOTS stream of a slot import, the cluster bus)
        self.raw_sink: Callable[[bytes], None] | None = None

    # -- asyncio callbacks ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they have its methods
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=OUTPUT_CHECK)  # (see paused)
        srv = self.server
        peer = transport.get_extra_info("peername") or ("?", 0)
        sock = transport.get_extra_info("sockname") or ("?", 0)
        addr, laddr = _fmt_addr(peer), _fmt_addr(sock)
        engine = srv.engine
        if len(srv.connections) >= engine.config["maxclients"]:
            engine.stats.rejected_connections += 1
            self.transport.write(MAX_CLIENTS_ERR)
            self.transport.close()
            return
        if (
            engine.config["protected-mode"]
            and not engine.config["requirepass"]
            and not _is_loopback(peer[0])
        ):
            self.transport.write(PROTECTED_ERR)
            self.transport.close()
            return
        self.client = engine.new_client(addr, laddr)
        srv.connections[self.client.id] = self

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client is not None:
            self.server.drop(self)

    def data_received(self, data: bytes) -> None:
        if self.client is None or self.closing:
            return
        if self.raw_sink is not None:
            self.raw_sink(data)
            return
        srv = self.server
        # the hot paths: a read of the shape the client keeps sending (RequestParser.sole)
        size = self.parser.shape_size  # (-1: none)
        if len(data) == size:
            if self.blocked is None and srv.join_read(self, data):
                return
        elif (
            size > 0 and not len(data) % size and self.blocked is None and srv.run_read(self, data)
        ):
            return
        while self.blocked is not None and srv.group:
            # a command read before this may unblock it: that comes first, then its
            # commands read before this (Server.run_group), then these
            srv.run_group()
        size = self.parser.feed(data)
        if self.blocked is None:
            srv.process(self)
        if size > QUERY_BUFFER_FLOOR and self.parser.buffered > QUERY_BUFFER_FLOOR:
            self.server.check_query_buffer(self)

    def pause_writing(self) -> None:
        # (called inside transport.write when what it could not send is over the mark)
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    # -- helpers --------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if not self.out:
            self.server.pending.append(self)
        self.out.append(data)
        self.server.schedule_flush()


def _fmt_addr(addr: Any) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "localhost") or host.startswith("::ffff:127.")
