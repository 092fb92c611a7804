"""What the RESP scanner (:mod:`persistence.aof.resp_scan`) yields, and canonical sizes.

:class:`AofCommand` is one command with its file offset and size, :class:`Annotation` one ``#``
line, :class:`CommandRun` consecutive commands in one object (the fast paths make runs without an
object per command). Valkey writes canonical RESP, so a command's size follows from its argv
(:func:`canonical_size`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate, chain, repeat
from operator import add, itemgetter
from typing import TYPE_CHECKING

from persistence.aof.shapes import Shape

# per-argument canonical size: len("$<n>\r\n") + n + 2, cached for small n; built from ranges
# of equal digit counts (a list comprehension over str(n) costs 4 ms of every start-up)
ARG_SIZE_CACHE = 10_000
_DECADES = ((0, 10, 1), (10, 100, 2), (100, 1000, 3), (1000, ARG_SIZE_CACHE, 4))
ARG_SIZE = list(chain.from_iterable(range(lo + 5 + d, hi + 5 + d) for lo, hi, d in _DECADES))
ARGC_SIZE = list(chain.from_iterable(repeat(3 + d, hi - lo) for lo, hi, d in _DECADES))


def canonical_size(argv: list[bytes]) -> int:
    """Bytes taken by ``argv`` written canonically (as :func:`encode_command` writes it)."""
    n = len(argv)
    try:
        return ARGC_SIZE[n] + sum(map(ARG_SIZE.__getitem__, map(len, argv)))
    except IndexError:
        return 3 + len(str(n)) + sum(len(a) + 5 + len(str(len(a))) for a in argv)


def run_size(argvs: list[list[bytes]]) -> int:
    """Bytes taken by the commands ``argvs`` written canonically."""
    try:
        return sum(map(ARGC_SIZE.__getitem__, map(len, argvs))) + sum(
            map(ARG_SIZE.__getitem__, map(len, chain.from_iterable(argvs)))
        )
    except IndexError:
        return sum(map(canonical_size, argvs))


def command_sizes(argvs: list[list[bytes]]) -> list[int]:
    """The canonical size of each command of ``argvs`` (column-wise in C when every command
    has the same argument count, as in a run of SETs)."""
    n = len(argvs[0]) if argvs else 0
    if 0 < n <= 8 and len(set(map(len, argvs))) == 1:
        size = ARG_SIZE.__getitem__
        try:
            total: Iterator[int] = repeat(ARGC_SIZE[n])
            for j in range(n):
                total = map(add, total, map(size, map(len, map(itemgetter(j), argvs))))
            return list(total)
        except IndexError:
            pass
    return list(map(canonical_size, argvs))


@dataclass(slots=True)
class AofCommand:
    """One command: argv, file, byte offset, size, last ``#TS:`` seconds seen, db it runs in."""

    argv: list[bytes]
    file: str
    offset: int
    size: int
    timestamp: int | None = None
    db: int = 0


@dataclass(slots=True)
class Annotation:
    """A ``#`` line; ``timestamp`` is set for a valid ``#TS:<n>`` annotation."""

    offset: int
    size: int
    text: bytes
    timestamp: int | None


_LAZY: list[list[bytes]] = []


@dataclass(slots=True)
class CommandRun:
    """Consecutive commands of one file with the same last ``#TS`` and db: ``argvs`` start at
    byte ``offset`` and take ``size`` bytes. A scanner's special command always ends a run."""

    argvs: list[list[bytes]]
    file: str
    offset: int
    size: int
    timestamp: int | None = None
    db: int = 0
    cmds: list[AofCommand] | None = None  # the per-command objects, when already made
    # the scanner's buffer, when every '*' in raw[raw_at:raw_at+size] starts a command (or
    # when every command has ``step`` bytes: a shaped run's data may hold a '*')
    raw: bytes | None = None
    raw_at: int = 0
    nargs: int = -1  # the number of arguments of all argvs, when known (-1: count them)
    step: int = 0  # the size of every command, when all have the same (0: unknown)
    # every argument of argvs in order (the segment path flattens them anyway), when kept:
    # with one argc n for all commands, argument j of each is flat[j::n] (one C slice)
    flat: list[bytes] | None = field(default=None, compare=False, repr=False)
    # every command has this layout (persistence/aof/shapes.py): ``argvs`` is built from
    # ``raw`` only when first read (a shaped run is made without it, see :meth:`shaped`)
    shape: Shape | None = field(default=None, compare=False, repr=False)

    @classmethod
    def shaped(cls, shape: Shape, file: str, offset: int, k: int, timestamp: int | None,
               db: int, raw: bytes, raw_at: int) -> CommandRun:  # fmt: skip
        """``k`` commands of ``shape`` at ``raw[raw_at]``, their argument lists not built yet."""
        run = cls(_LAZY, file, offset, shape.size * k, timestamp, db, raw=raw, raw_at=raw_at,
                  nargs=shape.argc * k, step=shape.size, shape=shape)  # fmt: skip
        del run.argvs  # built by __getattr__ when first read
        return run

    if not TYPE_CHECKING:  # (mypy would take any unknown attribute for argvs)

        def __getattr__(self, name: str) -> list[list[bytes]]:
            """``argvs`` of a shaped run, built at its first read (the only unset slot)."""
            if name != "argvs" or self.shape is None or self.raw is None:
                raise AttributeError(name)
            argvs, self.flat = self.shape.argvs(self.raw, self.raw_at, self.size // self.step)
            self.argvs = argvs
            return argvs

    def column(self, j: int) -> list[bytes]:
        """Argument ``j`` of every command, when all have one argc greater than ``j`` (a
        shaped run: one struct unpack of its bytes, without building ``argvs``)."""
        if self.shape is not None and self.raw is not None:
            return self.shape.column(self.raw, self.raw_at, self.size // self.step, j)
        if self.flat is not None:
            return self.flat[j :: len(self.argvs[0])]
        return list(map(itemgetter(j), self.argvs))

    @classmethod
    def of(cls, cmds: list[AofCommand]) -> CommandRun:
        first, last = cmds[0], cmds[-1]
        size = last.offset + last.size - first.offset
        argvs = [c.argv for c in cmds]
        return cls(argvs, first.file, first.offset, size, first.timestamp, first.db, cmds)

    def sizes(self) -> list[int]:
        """The size of each command."""
        if self.cmds is not None:
            return [c.size for c in self.cmds]
        if self.step:
            return [self.step] * len(self.argvs)
        if self.raw is not None:  # split at the '*'s: each piece is a command but its '*'
            pieces = self.raw[self.raw_at : self.raw_at + self.size].split(b"*")
            return list(map(add, map(len, pieces[1:]), repeat(1)))
        return command_sizes(self.argvs)

    def iter_commands(self) -> Iterator[AofCommand]:
        """The commands of :meth:`commands`, each made only as it is asked for: a consumer that
        drops each one keeps a single command object alive, not a whole run's worth (which
        the cyclic GC would traverse, promote and traverse again)."""
        if self.cmds is not None:
            return iter(self.cmds)
        sizes, offsets = self._sizes_offsets()
        if self.timestamp is None and self.db == 0:  # the defaults: two arguments fewer
            return map(AofCommand, self.argvs, repeat(self.file), offsets, sizes)
        return map(AofCommand, self.argvs, repeat(self.file), offsets, sizes,
                   repeat(self.timestamp), repeat(self.db))  # fmt: skip

    def commands(self) -> list[AofCommand]:
        """The run as :class:`AofCommand` objects (offsets and sizes of each command)."""
        if self.cmds is None:
            self.cmds = list(self.iter_commands())
        return self.cmds

    def _sizes_offsets(self) -> tuple[Iterable[int], Iterable[int]]:
        if self.step:  # equal sizes: no per-command arithmetic
            step = self.step
            return repeat(step), range(self.offset, self.offset + self.size, step)
        sizes = self.sizes()
        return sizes, accumulate(sizes, initial=self.offset)

    def split_last(self) -> tuple[CommandRun | None, AofCommand]:
        """(the run without its last command or None, that last command)."""
        if self.cmds is not None:
            last = self.cmds[-1]
            rest = CommandRun.of(self.cmds[:-1]) if len(self.cmds) > 1 else None
            return rest, last
        argv = self.argvs[-1]
        size = canonical_size(argv)
        at = self.offset + self.size - size
        last = AofCommand(argv, self.file, at, size, self.timestamp, self.db)
        if len(self.argvs) == 1:
            return None, last
        rest = CommandRun(self.argvs[:-1], self.file, self.offset, self.size - size,
                          self.timestamp, self.db, raw=self.raw, raw_at=self.raw_at,
                          step=self.step)  # fmt: skip
        return rest, last
