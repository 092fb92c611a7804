"""Crash-safe file replacement: write a temp file in the same directory, fsync it, rename it
over the target, fsync the directory. A crash leaves either the old file or the new one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import BinaryIO


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike[str], *, temp_name: str | None = None
) -> Iterator[BinaryIO]:
    """Open a temp file for writing; on a clean exit it replaces ``path`` durably.

    ``temp_name`` is the temp file's name in the target's directory (Valkey names them, e.g.
    ``temp-appendonly.aof.manifest``); by default ``temp-<pid>-<name>``.
    """
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    tmp = os.path.join(directory, temp_name or f"temp-{os.getpid()}-{os.path.basename(target)}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)
