"""The connections of slot migration jobs: the source's :class:`ExportLink` (an asyncio client
connection to the target, fed by the snapshot child's pipe with back-pressure, then by the job's
own bytes) and the target's :class:`ImportLink` (an ordinary client connection whose bytes go to
the job after ``CLUSTER SYNCSLOTS ESTABLISH``). See migration_io.py for the whole picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import os
import socket
import struct
import termios
import time
from typing import TYPE_CHECKING, Any

from engine.cluster.migration import SourceJob, TargetJob
from engine.server.migration_snapshot import fork_snapshot

if TYPE_CHECKING:
    from engine.server.connection import Connection
    from engine.server.migration_io import MigrationIO

log = logging.getLogger("valkey-engine")

HIGH_WATER = 1 << 20  # bytes queued on an export socket before the snapshot pipe waits
PIPE_READ = 256 * 1024
# the kernel buffers of a migration link are kept small: the source pauses writes once its own
# buffer is empty, and what is still in flight then (at most about these bytes on each side)
# is what the target must apply during the pause
LINK_SOCKET_BUFFER = 16 * 1024


def _small_buffer(transport: Any, option: int) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, LINK_SOCKET_BUFFER)


class ExportLink(asyncio.Protocol):
    """The source's connection to the target of one export job."""

    def __init__(self, io: MigrationIO, job: SourceJob) -> None:
        self.io = io
        self.job = job
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.child_pid = -1
        self.pipe_fd = -1
        self.reading = False
        self.writing_paused = False
        self.pause_retry: asyncio.TimerHandle | None = None
        self.fd = -1  # the socket, for its send queue

    # -- asyncio callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t: Any = transport
        self.transport = t
        t.set_write_buffer_limits(high=HIGH_WATER)
        _small_buffer(t, socket.SO_SNDBUF)
        sock = t.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1
        if self.job.finished:  # cancelled while connecting
            t.close()
            return
        self.io.run(self.job, self.job.connected(self.io.now()))

    def data_received(self, data: bytes) -> None:
        job = self.job
        self.io.run(job, job.receive_data(data, self.io.now(), unsent=self.unsent()))

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_pipe(kill=True)
        if not self.closed:
            self.closed = True
            self.io.run(self.job, self.job.link_lost(self.io.now()))

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._update_reader()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._update_reader()

    # -- output -----------------------------------------------------------------------------
    def unsent(self) -> int:
        """Bytes the target has not received yet: our write buffer plus the socket's send
        queue (SIOCOUTQ: not yet taken by the target's kernel), so the pause starts only when
        at most the target's small receive buffer is left to apply."""
        t = self.transport
        if t is None or self.closed:
            return 0
        n = t.get_write_buffer_size()
        if self.fd >= 0:
            try:
                n += struct.unpack("i", fcntl.ioctl(self.fd, termios.TIOCOUTQ, b"\0" * 4))[0]
            except OSError:
                self.fd = -1
        return n

    @property
    def forwarding(self) -> bool:
        """The snapshot pipe still has to be copied: the job's bytes must wait behind it."""
        return self.pipe_fd >= 0 and self.job.snapshotting

    def flush(self) -> None:
        t = self.transport
        if t is None or self.closed or self.forwarding:
            return
        data = self.job.data_to_send()
        if data:
            t.write(data)
            hard = self.io.server.output_limits().get("replica", (0, 0, 0))[0]
            if hard and t.get_write_buffer_size() > hard:
                # client-output-buffer-limit replica: the export client is freed, as Valkey
                # frees it (src/networking.c); the job then fails as on any link loss
                name = self.job.name.decode()
                log.warning("Slot migration %s: the stream to the target passed the replica "
                            "output buffer limit; closing the link", name)  # fmt: skip
                t.abort()

    def close(self) -> None:
        """CloseLink: write what is left, then close."""
        self.stop_pipe(kill=True)
        if self.closed:
            return
        self.flush()
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- the snapshot pipe ------------------------------------------------------------------
    def start_snapshot(self) -> None:
        io, job = self.io, self.job
        if self.transport is None or self.closed:
            return
        self.flush()  # the ACK sent after ESTABLISH goes before the snapshot
        t0 = time.perf_counter()
        try:
            pid, fd = fork_snapshot(io.engine, job.ranges)
        except OSError as e:
            log.warning("Slot migration %s: can't fork the snapshot: %s", job.name.decode(), e)
            io.run(job, job.snapshot_not_started(io.now()))
            return
        self.child_pid, self.pipe_fd = pid, fd
        log.info("Slot migration %s: snapshot child %d started (fork: %.1f ms)",
                 job.name.decode(), pid, (time.perf_counter() - t0) * 1000)  # fmt: skip
        io.run(job, job.begin_snapshot(io.now()))
        self._update_reader()

    def _update_reader(self) -> None:
        loop = self.io.loop
        want = self.pipe_fd >= 0 and not self.writing_paused and not self.closed
        if want and not self.reading:
            loop.add_reader(self.pipe_fd, self._pipe_readable)
            self.reading = True
        elif not want and self.reading:
            loop.remove_reader(self.pipe_fd)
            self.reading = False

    def _pipe_readable(self) -> None:
        try:
            data = os.read(self.pipe_fd, PIPE_READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            if self.transport is not None and not self.closed:
                self.transport.write(data)
            return
        ok = self._reap()
        self.stop_pipe(kill=False)
        job = self.job
        if job.snapshotting:  # else REQUEST-PAUSE already moved it on: the EOF got through
            self.io.run(job, job.snapshot_done(self.io.now(), ok))
        else:
            self.flush()

    def _reap(self) -> bool:
        pid, self.child_pid = self.child_pid, -1
        if pid <= 0:
            return False
        _, status = os.waitpid(pid, 0)
        if self.io.server.durability.child_pid <= 0:
            gc.unfreeze()
        return os.waitstatus_to_exitcode(status) == 0

    def stop_pipe(self, *, kill: bool) -> None:
        if self.reading:
            self.io.loop.remove_reader(self.pipe_fd)
            self.reading = False
        if self.pipe_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.pipe_fd)
            self.pipe_fd = -1
        if kill and self.child_pid > 0:
            with contextlib.suppress(OSError):
                os.kill(self.child_pid, 9)
            self._reap()


class ImportLink:
    """The target's side: a client connection turned into the job's byte stream."""

    def __init__(self, io: MigrationIO, job: TargetJob, conn: Connection) -> None:
        self.io = io
        self.job = job
        self.conn = conn
        self.closed = False
        if conn.transport is not None:
            _small_buffer(conn.transport, socket.SO_RCVBUF)

    def receive(self, data: bytes) -> None:
        if not self.closed:
            self.io.run(self.job, self.job.receive_data(data, self.io.now()))

    @property
    def lost(self) -> bool:
        t = self.conn.transport
        return self.conn.client is None or t is None or t.is_closing()

    def flush(self) -> None:
        if self.closed or self.lost:
            return
        data = self.job.data_to_send()
        if data:
            self.conn.send(data)  # written despite reply-off (spec 3.3 step 4)

    def close(self) -> None:
        if self.closed:
            return
        self.flush()
        self.closed = True
        self.conn.raw_sink = _discard
        self.conn.closing = True
        self.io.server.schedule_flush()


def _discard(data: bytes) -> None:
    pass
