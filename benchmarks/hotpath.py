"""The server's per-command cost without sockets: CPU time and instructions per command.

    python benchmarks/hotpath.py [SET GET LPUSH HSET SET~ GET~] [--pipeline 16] [--commands 200000]
    python benchmarks/hotpath.py SET --pipeline 1 --callgrind   # instructions per command
    python benchmarks/hotpath.py --floor --callgrind            # the same for floor_server.py

An in-process ``Server`` with the AOF on (``appendfsync everysec``, a temporary directory) and
50 connections on fake transports gets redis-benchmark's requests (3-byte values) in reads of
``--pipeline`` commands each, all 50 connections of a round sending the same read (so the keys
and HSET's fields number about N / 50: HSET's hash stays a listpack, where redis-benchmark's
grows into a hashtable); ``Server.flush`` (the AOF write, then
the replies) runs after every round of 50 reads, as after an event-loop turn. ``--clients N``
makes that N connections and reads per turn: the real server under redis-benchmark -c 50 -P 1
gets ~6-7 reads per turn (most turns 2-15), so the work done once per turn weighs ~7x more
there than at 50. This is the
Python work of the real server minus the event loop and the system calls, so the figures are
steady on a noisy machine where redis-benchmark's are not. ``--callgrind`` runs this script
under valgrind twice (the same N requests sent once and three times over) and prints the
difference per command: instructions do not depend on the machine's load at all. ``--floor``
measures ``floor_server.py`` (the least a Python server can do) the same way. Not part of
``run.py`` (there is no reference to compare with); the README's Performance section quotes
its figures.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine.engine import Engine
from engine.server import config_file
from engine.server.connection import Connection
from engine.server.durability import AofWriter, load_data
from engine.server.server import Server
from persistence.aof.encoder import encode_command

CLIENTS = 50  # --clients


def set_clients(n: int) -> None:
    global CLIENTS
    CLIENTS = n


def _varied_key(i: int) -> bytes:
    """Keys of 3 to 39 bytes (the ``varied`` benchmark's sizes), a different size each time."""
    return b"k%0*d" % (2 + (i * 7919) % 37, i % 100_000)


REQUESTS: dict[str, Callable[[int], list[bytes]]] = {
    "SET": lambda i: [b"SET", b"key:%012d" % (i % 100_000), b"xxx"],
    "GET": lambda i: [b"GET", b"key:%012d" % (i % 100_000)],
    "LPUSH": lambda i: [b"LPUSH", b"mylist", b"xxx"],
    "HSET": lambda i: [b"HSET", b"myhash", b"element:%012d" % (i % 100_000), b"xxx"],
    # keys of 3-39 bytes and values of 1-100 bytes: no two pipelined commands of one shape
    "SET~": lambda i: [b"SET", _varied_key(i), b"x" * (1 + (i * 104729) % 100)],
    "GET~": lambda i: [b"GET", _varied_key(i)],
}


class FakeTransport:
    """What Server.flush and Connection use of a transport."""

    def __init__(self) -> None:
        self.sent = 0

    def write(self, data: bytes) -> None:
        self.sent += len(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 6379)

    def close(self) -> None:
        pass


def run(name: str, pipeline: int, commands: int, repeat: int = 1) -> float:
    """Seconds of CPU per command (the requests sent ``repeat`` times over)."""
    work = tempfile.mkdtemp(prefix="vaof-hotpath-")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        config, _ = config_file.load(["--appendonly", "yes", "--dir", work, "--save", ""])
        engine = Engine(config)
        load_data(engine)
        aof = AofWriter(engine)
        aof.open()
        srv = Server(engine, aof)
        srv.coalesce = True  # as in the event loop: the reads of a round run after it
        conns = []
        for _ in range(CLIENTS):
            c = Connection(srv)
            c.connection_made(FakeTransport())  # type: ignore[arg-type]
            conns.append(c)
        spent = drive(conns, engine.keyspace.dbs[0].data, srv.flush, name, pipeline, commands,
                      repeat)  # fmt: skip
        aof.close()
        return spent
    finally:
        os.chdir(cwd)


def drive(
    conns: list[Any],
    db: dict[bytes, Any],
    end_of_turn: Callable[[], None],
    name: str,
    pipeline: int,
    commands: int,
    repeat: int,
) -> float:
    """Seconds of CPU per command: rounds of one read of ``pipeline`` requests per connection,
    then ``end_of_turn`` (the AOF write and the replies); the requests sent ``repeat`` times."""
    make = REQUESTS[name]
    if name.startswith("GET"):  # as after redis-benchmark's SET test: the keys GET asks exist
        db.update((make(i)[1], b"xxx") for i in range(100_000))
    reads = [
        b"".join(encode_command(make(j * pipeline + k)) for k in range(pipeline))
        for j in range(commands // pipeline // CLIENTS + 1)
    ]
    t0 = time.process_time()
    n = 0
    for data in reads * repeat:
        for c in conns:
            c.data_received(data)
        n += pipeline * CLIENTS
        end_of_turn()
    return (time.process_time() - t0) / n


class FakeLoop:
    """What floor_server.Floor uses of an event loop; ``ready`` holds the call_soon callbacks."""

    def __init__(self) -> None:
        self.ready: list[Callable[[], None]] = []

    def call_soon(self, fn: Callable[[], None]) -> None:
        self.ready.append(fn)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        pass


def run_floor(name: str, pipeline: int, commands: int, repeat: int = 1) -> float:
    """:func:`run` for benchmarks/floor_server.py (the least a Python server can do)."""
    import floor_server

    work = tempfile.mkdtemp(prefix="vaof-hotpath-floor-")
    fd = os.open(os.path.join(work, "appendonly.aof"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        loop = FakeLoop()
        floor = floor_server.Floor(fd, loop)  # type: ignore[arg-type]
        conns = []
        for _ in range(CLIENTS):
            c = floor_server.Conn(floor)
            c.connection_made(FakeTransport())  # type: ignore[arg-type]
            conns.append(c)

        def end_of_turn() -> None:
            for fn in loop.ready:
                fn()
            loop.ready.clear()

        return drive(conns, floor_server.DB, end_of_turn, name, pipeline, commands, repeat)
    finally:
        os.close(fd)


def callgrind(name: str, pipeline: int, commands: int, floor: bool = False) -> float:
    """Instructions per command: two valgrind runs sending the same N commands once and three
    times over, their difference (so start-up and making the requests do not count)."""
    counts = []
    for repeat in (1, 3):
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
               __file__, name, "--pipeline", str(pipeline), "--commands", str(commands),
               "--repeat", str(repeat), "--clients", str(CLIENTS),
               *(["--floor"] if floor else [])]  # fmt: skip
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts in both runs
        err = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stderr
        m = re.search(r"Collected : ([\d,]+)", err)
        if m is None:
            raise SystemExit(f"no callgrind total in: {err[-500:]}")
        counts.append(int(m.group(1).replace(",", "")))
    sent = (commands // pipeline // CLIENTS + 1) * pipeline * CLIENTS  # as run() makes them
    return (counts[1] - counts[0]) / (2 * sent)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "names",
        nargs="*",
        default=list(REQUESTS)[:4],
        metavar="NAME",
        help=f"of {', '.join(REQUESTS)} (~: varied sizes; default: the first four)",
    )
    ap.add_argument("--pipeline", type=int, default=16)
    ap.add_argument("--commands", type=int, default=None)
    ap.add_argument("--callgrind", action="store_true", help="instructions per command")
    ap.add_argument("--floor", action="store_true", help="benchmarks/floor_server.py instead")
    ap.add_argument("--repeat", type=int, default=1, help="send the requests this many times")
    ap.add_argument(
        "--clients",
        type=int,
        default=CLIENTS,
        help="connections, so reads per event-loop turn (redis-benchmark -c 50 -P 1 against the "
        "real server: ~6-7 per turn)",
    )
    args = ap.parse_args()
    set_clients(args.clients)
    who = "floor_server.py" if args.floor else "ours"
    for name in args.names:
        if args.callgrind:
            ir = callgrind(name, args.pipeline, args.commands or 5000, args.floor)
            print(f"{who}: {name} -P {args.pipeline}: {ir:,.0f} instructions per command")
        else:
            fn = run_floor if args.floor else run
            us = fn(name, args.pipeline, args.commands or 200_000, args.repeat) * 1e6
            print(f"{who}: {name} -P {args.pipeline}: {us:.2f} µs of CPU per command")


if __name__ == "__main__":
    main()
