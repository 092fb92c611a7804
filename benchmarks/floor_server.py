"""The least a Python RESP server can do: the floor under our server's redis-benchmark figures.

    python benchmarks/floor_server.py --port 7000 [--dir DIR]

Not a server anyone should run: it exists so ``benchmarks/server.py`` can show, in the same run,
how fast Python itself goes on this machine with the same libraries as ours (uvloop's transport,
hiredis' Reader, a dict). It answers exactly what redis-benchmark ``-t set,get,hset,lpush`` sends
(plus PING and the CONFIG GET redis-benchmark asks first) and nothing else: no command table, no
argument checks, no stats, no expiry, no keyspace events, no client state, no protocol checks
beyond hiredis'. Like ours with ``appendonly yes``, ``appendfsync everysec``, it appends every
write's request bytes to ``appendonly.aof`` once per event-loop turn, before the replies of that
turn leave, and fsyncs once a second.

If this server is only a little faster than valkey-server's target ratio, no Python server with
Valkey's semantics on top can reach the target: the gap between this floor and our server is
the price of those semantics; the gap between the floor and valkey-server is Python's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections import deque
from typing import Any

import hiredis
import uvloop

OK = b"+OK\r\n"
NIL = b"$-1\r\n"
WRONGTYPE = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
DB: dict[bytes, Any] = {}


class Floor:
    def __init__(self, aof_fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self.aof_fd = aof_fd
        self.aof: list[bytes] = []
        self.pending: list[tuple[asyncio.Transport, list[bytes]]] = []
        self.scheduled = False
        self.loop = loop
        self.loop.call_later(1.0, self.fsync)

    def flush(self) -> None:
        """The event-loop turn's end: the AOF first, then the replies."""
        self.scheduled = False
        if self.aof:
            os.write(self.aof_fd, b"".join(self.aof))
            self.aof.clear()
        pending, self.pending = self.pending, []
        for t, out in pending:
            t.write(b"".join(out))

    def fsync(self) -> None:
        os.fsync(self.aof_fd)
        self.loop.call_later(1.0, self.fsync)


class Conn(asyncio.Protocol):
    def __init__(self, floor: Floor) -> None:
        self.floor = floor
        self.reader = hiredis.Reader()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: Any = transport

    def data_received(self, data: bytes) -> None:
        r = self.reader
        r.feed(data)
        out: list[bytes] = []
        ap = out.append
        floor = self.floor
        aof = floor.aof
        db = DB
        wrote = False
        while (argv := r.gets()) is not False:
            name = argv[0]
            if name == b"GET":
                v = db.get(argv[1])
                if v is None:
                    ap(NIL)
                elif type(v) is bytes:
                    ap(b"$%d\r\n%b\r\n" % (len(v), v))
                else:
                    ap(WRONGTYPE)
                continue
            if name == b"SET":
                db[argv[1]] = argv[2]
                ap(OK)
            elif name == b"HSET":
                h = db.get(argv[1])
                if h is None:
                    h = db[argv[1]] = {}
                n = len(h)
                h.update(zip(argv[2::2], argv[3::2]))
                ap(b":%d\r\n" % (len(h) - n))
            elif name == b"LPUSH":
                lst = db.get(argv[1])
                if lst is None:
                    lst = db[argv[1]] = deque()
                lst.extendleft(argv[2:])
                ap(b":%d\r\n" % len(lst))
            elif name == b"PING":
                ap(b"+PONG\r\n")
                continue
            elif name == b"FLUSHALL":  # benchmarks/server.py between runs
                db.clear()
                ap(OK)
            else:  # CONFIG GET save / appendonly: redis-benchmark's first question
                ap(b"*0\r\n")
                continue
            wrote = True
        if wrote:  # writes go to the AOF as the bytes they came in (a read may hold a few)
            aof.append(data)
        floor.pending.append((self.t, out))
        if not floor.scheduled:
            floor.scheduled = True
            floor.loop.call_soon(floor.flush)


async def serve(port: int, directory: str) -> None:
    fd = os.open(os.path.join(directory, "appendonly.aof"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    floor = Floor(fd, asyncio.get_running_loop())
    server = await asyncio.get_running_loop().create_server(lambda: Conn(floor), "127.0.0.1", port)
    await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", default=".")
    args = ap.parse_args()
    uvloop.run(serve(args.port, args.dir))


if __name__ == "__main__":
    main()
