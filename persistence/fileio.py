"""Opening files for reading: plain, or an LZ4 frame (how operators archive logs).

An LZ4 frame starts with the magic 0x184D2204 (little-endian bytes ``04 22 4D 18``). Readers call
:func:`open_input` and never care which one they got; offsets they report are offsets in the
decompressed stream.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

import lz4.frame

LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"


def is_lz4(path: str | os.PathLike[str]) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == LZ4_FRAME_MAGIC


def open_input(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for binary reading, decompressing an LZ4 frame transparently."""
    f = open(path, "rb")  # noqa: SIM115 - returned to the caller
    head = f.read(4)
    f.seek(0)
    if head == LZ4_FRAME_MAGIC:
        f.close()
        return lz4.frame.open(path, "rb")  # type: ignore[no-any-return]
    return f


def read_all(path: str | os.PathLike[str]) -> bytes:
    with open_input(path) as f:
        return f.read()


def open_output(path: str | os.PathLike[str], *, compress: str | None = None) -> BinaryIO:
    """Open ``path`` for writing; ``compress="lz4"`` writes an LZ4 frame."""
    if compress == "lz4":
        return lz4.frame.open(path, "wb")  # type: ignore[no-any-return]
    if compress not in (None, "", "none"):
        raise ValueError(f"unknown compression {compress!r}")
    return open(path, "wb")


def file_size(f: BinaryIO) -> int | None:
    """Size of a plain file object, None for a decompressing stream."""
    if isinstance(f, io.BufferedReader):
        return os.fstat(f.fileno()).st_size
    return None
