"""Resynchronising after damage: the next offset where a valid command (or a ``#TS:`` line)
starts. ``check`` uses it to tell a damaged tail from damage with valid commands after it,
``--salvage`` to skip bad records."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from persistence.aof.check_walk import IsCommand, default_is_command
from persistence.fileio import open_input

RESYNC_MAX_ARGC = 1 << 20
RESYNC_MAX_BULK = 512 << 20  # proto-max-bulk-len default (src/config.c)


def parse_command_at(buf: bytes, i: int) -> tuple[list[bytes], int] | Literal[False] | None:
    """A strict parse of one canonical command at ``buf[i]``: (argv, size), None when it is not
    one, False when ``buf`` ends before it does."""
    nl = buf.find(b"\r\n", i, i + 24)
    if nl < 0:
        return False if len(buf) - i < 24 else None
    digits = buf[i + 1 : nl]
    if not digits.isdigit():
        return None
    argc = int(digits)
    if not 0 < argc <= RESYNC_MAX_ARGC:
        return None
    pos = nl + 2
    argv: list[bytes] = []
    for _ in range(argc):
        if pos >= len(buf):
            return False
        if buf[pos] != 36:  # '$'
            return None
        nl = buf.find(b"\r\n", pos, pos + 24)
        if nl < 0:
            return False if len(buf) - pos < 24 else None
        digits = buf[pos + 1 : nl]
        if not digits.isdigit() or int(digits) > RESYNC_MAX_BULK:
            return None
        n = int(digits)
        end = nl + 2 + n
        if end + 2 > len(buf):
            return False
        if buf[end : end + 2] != b"\r\n":
            return None
        argv.append(buf[nl + 2 : end])
        pos = end + 2
    return argv, pos - i


def find_next_command(
    path: Path, start: int, is_command: IsCommand = default_is_command
) -> int | None:
    """Offset of the first valid command (or ``#TS:`` line) at or after ``start``, else None."""
    with open_input(path) as f:
        f.seek(start)
        buf = f.read(1 << 20)
        base = start
        i = 0
        eof = False
        while True:
            star = buf.find(b"*", i)
            hashm = buf.find(b"#TS:", i)
            cands = [c for c in (star, hashm) if c >= 0]
            if not cands:
                if eof:
                    return None
                more = f.read(1 << 20)
                eof = not more
                base += len(buf) - 16
                buf = buf[-16:] + more
                i = 0
                continue
            c = min(cands)
            if c == hashm:
                nl = buf.find(b"\r\n", c, c + 40)
                if nl > 0 and buf[c + 4 : nl].isdigit():
                    return base + c
                if nl < 0 and not eof and len(buf) - c < 40:
                    res: object = False
                else:
                    i = c + 1
                    continue
            else:
                res = parse_command_at(buf, c)
                if res is not None and res is not False and is_command(res[0]):
                    return base + c
            if res is False and not eof:
                more = f.read(max(1 << 20, len(buf)))
                eof = not more
                buf = buf[c:] + more
                base += c
                i = 0
                continue
            i = c + 1
