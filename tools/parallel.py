"""Run a function over a few work items in forked processes (the ``pmap`` of
persistence/aof/ranges.py ``run_ranges``; persistence itself never forks).

How it works: the items are dealt in contiguous blocks to ``jobs`` processes; this process
computes the first block itself, each forked child computes one other block, writes its
pickled results to a pipe and leaves with ``os._exit`` (no interpreter teardown, no atexit
handlers, no stdio flush twice). A child that fails sends its exception, which is raised
here. Lighter than ``multiprocessing.Pool`` (no threads, no queues, no worker loop): a pool
costs tens of milliseconds of start-up, which a check of a few hundred milliseconds feels.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

A = TypeVar("A")
B = TypeVar("B")


def _blocks(n: int, parts: int) -> list[range]:
    size, extra = divmod(n, parts)
    out, at = [], 0
    for i in range(parts):
        step = size + (i < extra)
        out.append(range(at, at + step))
        at += step
    return [b for b in out if len(b)]


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        data = os.read(fd, 1 << 20)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _child(fn: Callable[[A], B], items: Sequence[A], block: range, w: int) -> None:
    try:
        payload = pickle.dumps((True, [fn(items[i]) for i in block]), protocol=5)
    except BaseException as e:  # handed to the parent
        try:
            payload = pickle.dumps((False, e), protocol=5)
        except Exception:  # an exception that does not pickle
            payload = pickle.dumps((False, RuntimeError(repr(e))), protocol=5)
    view = memoryview(payload)
    while view:
        view = view[os.write(w, view) :]


def fork_map(fn: Callable[[A], B], items: Sequence[A], jobs: int) -> list[B]:
    """``[fn(x) for x in items]`` computed by up to ``jobs`` processes (module doc)."""
    if jobs <= 1 or len(items) <= 1 or not hasattr(os, "fork"):
        return [fn(x) for x in items]
    blocks = _blocks(len(items), min(jobs, len(items)))
    sys.stdout.flush()
    sys.stderr.flush()
    children: list[tuple[int, int, range]] = []
    try:
        for block in blocks[1:]:
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: compute, send, leave at once whatever happens
                try:
                    os.close(r)
                    _child(fn, items, block, w)
                finally:
                    os._exit(0)
            os.close(w)
            children.append((pid, r, block))
        results: list[B] = [fn(items[i]) for i in blocks[0]]
        while children:
            pid, r, _ = children[0]
            data = _read_all(r)
            os.close(r)
            os.waitpid(pid, 0)
            del children[0]
            if not data:
                raise RuntimeError(f"worker {pid} died without a result")
            ok, value = pickle.loads(data)
            if not ok:
                raise value
            results.extend(value)
        return results
    finally:
        for pid, r, _ in children:  # an error on the way: leave no worker behind
            try:
                os.close(r)
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
