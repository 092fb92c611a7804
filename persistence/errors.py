"""Typed errors of the format layer. Every one names the file and the byte offset."""

from __future__ import annotations


class PersistenceError(Exception):
    """Base class: something in a file is not as its format says.

    ``file`` is the path as given (or a label like ``<dump payload>``), ``offset`` the byte
    offset inside that file where the problem starts (None when it does not apply).
    """

    def __init__(self, message: str, *, file: str | None = None, offset: int | None = None):
        self.message = message
        self.file = file
        self.offset = offset
        super().__init__(self.describe())

    def describe(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        return f"{': '.join([', '.join(where), self.message]) if where else self.message}"


class FormatError(PersistenceError):
    """Corrupt or unsupported content (not a short read)."""


class TruncatedError(FormatError):
    """The file ends in the middle of a record. ``offset`` is the end of the last valid record."""


class ChecksumError(FormatError):
    """An RDB (or DUMP payload) whose CRC64 does not match."""

    def __init__(
        self,
        message: str,
        *,
        expected: int,
        stored: int,
        file: str | None = None,
        offset: int | None = None,
    ):
        self.expected = expected
        self.stored = stored
        super().__init__(message, file=file, offset=offset)


class ManifestError(FormatError):
    """A bad AOF manifest (Valkey's own messages, src/aof.c aofLoadManifestFromFile)."""


class MissingFileError(FormatError):
    """A manifest names a file that does not exist."""
