"""Low-level streaming scanner of the RESP part of an AOF file: commands with byte offsets.

How it works: the file is read in chunks of :data:`CHUNK` bytes into one linear buffer, and
three paths parse it, fastest first; each gives exactly what the next would, or declines:

- *Segments*: up to :data:`SEG` bytes ending where a ``\\r\\n*`` starts the next command, and
  holding none of the bytes ``#+(=~|%>`` (annotations and every RESP type that is not ``*`` or
  ``$``: memchr finds them) nor a ``*`` with six digits (hiredis would allocate the announced
  array), are parsed by ONE hiredis call as the array ``*<K>\\r\\n`` + segment, K = the number
  of ``*`` bytes (of ``\\r\\n*`` when an argument holds a ``*``). The result is taken only when
  hiredis consumed the whole segment into K non-empty lists of bytes (a ``b"".join``
  type-checks every argument in C); then the segment is canonical RESP and its commands come
  out as one :class:`CommandRun`, without an object per command (when K was the ``*`` count,
  splitting the segment at its ``*`` bytes gives each command's size).
- *Per command*: ``hiredis.Reader.gets`` one reply at a time, each command's size computed from
  its argv (Valkey writes canonical RESP, and hiredis rejects non-canonical lengths, so
  ``size = len("*<argc>\\r\\n") + sum(len("$<len>\\r\\n") + len + 2)``); every computed start
  is checked to hold a ``*``.
- *Exact*: whenever hiredis objects (a ``#`` annotation line, garbage, a non-array reply), a
  check fails, or the file ends inside a command, the pure-Python scanner takes over for a few
  items: it follows src/aof.c ``loadSingleAppendOnlyFile`` byte by byte and reports precise
  errors.

Memory stays at about one chunk plus the largest command.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate, chain, repeat
from operator import add, itemgetter
from typing import BinaryIO

import hiredis

from persistence.errors import FormatError, TruncatedError

CHUNK = 1 << 20
FEED = 1 << 14  # bytes handed to hiredis at a time
# commands per batch: small batches die young, so the cyclic GC never sees (and promotes) a
# whole chunk's worth of command objects; a 1 MB batch cost a third of the read time in GC
BATCH = 256
AOF_ANNOTATION_LINE_MAX_LEN = 1024  # src/server.h

# bytes parsed by one hiredis call on the segment path: larger segments cost more in the cyclic
# GC (every command list is a tracked object) than they save in calls
SEG = 1 << 16
# bytes that end a segment: '#' starts an annotation line, the others start RESP types that
# hiredis returns as bytes or lists but whose size is not the canonical bulk/array size
_HAZARDS = tuple(b"#+(=~|%>")
_BIG_ARRAY = re.compile(rb"\*[0-9]{6}")
_first = itemgetter(0)

# per-argument canonical size: len("$<n>\r\n") + n + 2, cached for small n
_ARG_SIZE_CACHE = 10_000
_ARG_SIZE = [n + 5 + len(str(n)) for n in range(_ARG_SIZE_CACHE)]
_ARGC_SIZE = [3 + len(str(n)) for n in range(_ARG_SIZE_CACHE)]

BAD_FORMAT = "Bad file format reading the append only file"  # src/aof.c fmterr
UNEXPECTED_EOF = "Unexpected end of file reading the append only file"  # src/aof.c uxeof
# hiredis allocates an aggregate of the announced size as soon as it reads the header (a damaged
# ``*2147483647`` costs 16 GB): it is never fed one of 100000 or more; the exact scanner reads
# those (same guard as persistence/resp/parser.py)
_BIG_AGGREGATE = re.compile(rb"[*%~>|][0-9]{6}")


def canonical_size(argv: list[bytes]) -> int:
    """Bytes taken by ``argv`` written canonically (as :func:`encode_command` writes it)."""
    n = len(argv)
    try:
        return _ARGC_SIZE[n] + sum(map(_ARG_SIZE.__getitem__, map(len, argv)))
    except IndexError:
        return 3 + len(str(n)) + sum(len(a) + 5 + len(str(len(a))) for a in argv)


def run_size(argvs: list[list[bytes]]) -> int:
    """Bytes taken by the commands ``argvs`` written canonically."""
    try:
        return sum(map(_ARGC_SIZE.__getitem__, map(len, argvs))) + sum(
            map(_ARG_SIZE.__getitem__, map(len, chain.from_iterable(argvs)))
        )
    except IndexError:
        return sum(map(canonical_size, argvs))


def command_sizes(argvs: list[list[bytes]]) -> list[int]:
    """The canonical size of each command of ``argvs`` (column-wise in C when every command
    has the same argument count, as in a run of SETs)."""
    n = len(argvs[0]) if argvs else 0
    if 0 < n <= 8 and len(set(map(len, argvs))) == 1:
        size = _ARG_SIZE.__getitem__
        try:
            total: Iterator[int] = repeat(_ARGC_SIZE[n])
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
    # the scanner's buffer, when every '*' in raw[raw_at:raw_at+size] starts a command
    raw: bytes | None = None
    raw_at: int = 0

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
        if self.raw is not None:  # split at the '*'s: each piece is a command but its '*'
            pieces = self.raw[self.raw_at : self.raw_at + self.size].split(b"*")
            return list(map(add, map(len, pieces[1:]), repeat(1)))
        return command_sizes(self.argvs)

    def commands(self) -> list[AofCommand]:
        """The run as :class:`AofCommand` objects (offsets and sizes of each command)."""
        if self.cmds is None:
            sizes = self.sizes()
            offsets = accumulate(sizes, initial=self.offset)
            self.cmds = list(
                map(AofCommand, self.argvs, repeat(self.file), offsets, sizes,
                    repeat(self.timestamp), repeat(self.db))
            )  # fmt: skip
        return self.cmds

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
                          self.timestamp, self.db, raw=self.raw, raw_at=self.raw_at)  # fmt: skip
        return rest, last


class TornError(TruncatedError):
    """EOF inside a command or an annotation line; ``offset`` = where the torn item starts."""


ScanItem = AofCommand | Annotation

_MORE, _EXACT, _AGAIN = 0, 1, 2


def _last_start(buf: bytes, pos: int, at: int) -> int:
    """Index of the last ``*`` in buf[pos+1:at+1] that follows a CRLF, else -1."""
    i = buf.rfind(b"\r\n*", pos, at + 1)
    return i + 2 if i >= pos else -1


def _parse_segment(buf: bytes, pos: int, stop: int, k: int) -> list[list[bytes]] | None:
    """buf[pos:stop] as exactly ``k`` non-empty arrays of bulk strings, or None."""
    reader = hiredis.Reader()
    reader.feed(b"*%d\r\n" % k)
    reader.feed(buf, pos, stop - pos)
    try:
        cmds = reader.gets()
    except (hiredis.ProtocolError, TypeError):
        return None
    if type(cmds) is not list or reader.has_data() or not all(cmds):
        return None
    try:
        b"".join(chain.from_iterable(cmds))  # TypeError unless every argument is bytes
    except TypeError:
        return None
    return cmds


class RespScanner:
    """Iterate the commands and annotations of a RESP stream from ``f``.

    ``base_offset`` is the file offset of the first byte ``f`` gives; ``initial`` bytes (already
    read from ``f``) are scanned first. Raises :class:`FormatError` on garbage and
    :class:`TornError` when the stream ends inside an item.
    """

    def __init__(
        self,
        f: BinaryIO,
        *,
        file: str,
        base_offset: int = 0,
        initial: bytes = b"",
        chunk: int = CHUNK,
    ) -> None:
        self.f = f
        self.file = file
        self.chunk = chunk
        self.buf = initial
        self.base = base_offset  # file offset of buf[0]
        self.pos = 0
        self.eof = False
        self.timestamp: int | None = None  # last #TS seen; stamped on each command
        self.db = 0  # stamped on each command; the reader updates it on SELECT
        self.special: frozenset[bytes] = frozenset()  # argv[0] values that end a batch
        self._seg_after = -1  # file offset before which the segment path is not tried again
        self._memo = [(0, 0, -1)] * len(_HAZARDS)

    # -- buffer ---------------------------------------------------------------------------
    def _fill(self) -> bool:
        """Append one chunk to the buffer (dropping consumed bytes). False at EOF."""
        if self.eof:
            return False
        more = self.f.read(self.chunk)
        if not more:
            self.eof = True
            return False
        if self.pos:
            self.base += self.pos
            self.buf = self.buf[self.pos :] + more
            self.pos = 0
        else:
            self.buf = self.buf + more
        return True

    # -- public -----------------------------------------------------------------------------
    def runs(self) -> Iterator[CommandRun]:
        """Runs of commands; a command whose argv[0] is in ``special`` always ends its run."""
        while True:
            if self.pos >= len(self.buf) and not self._fill():
                return
            if self.buf[self.pos] == 42:  # '*'
                seg = self._segment()
                if seg is not None:
                    yield from self._seg_runs(*seg)
                    continue
            for batch in self._slow_round():
                yield CommandRun.of(batch)
            if self.pos >= len(self.buf) and self.eof:
                return

    def batches(self) -> Iterator[list[AofCommand]]:
        """Lists of commands; a command whose argv[0] is in ``special`` always ends its list."""
        for run in self.runs():
            yield run.commands()

    def __iter__(self) -> Iterator[AofCommand]:
        for batch in self.batches():
            yield from batch

    # -- segment path -----------------------------------------------------------------------
    def _segment(self) -> tuple[list[list[bytes]], int, int, bool] | None:
        """(commands, start, end) of a segment at pos parsed in one hiredis call, or None."""
        if len(self.buf) - self.pos < SEG and not self.eof:
            self._fill()
        buf = self.buf
        pos = self.pos
        end = len(buf)
        if self.base + pos < self._seg_after:
            return None
        stop = pos + SEG
        if stop >= end and self.eof and buf.endswith(b"\r\n"):
            stop = end
        else:
            stop = _last_start(buf, pos, stop)
            if stop < 0:
                return None
        cut = self._hazard(pos, stop)
        big = _BIG_ARRAY.search(buf, pos, cut)
        if big is not None:
            cut = big.start()
        if cut != stop:
            stop = _last_start(buf, pos, cut)
            if stop < 0:
                return None
        k = buf.count(b"*", pos, stop)
        cmds = _parse_segment(buf, pos, stop, k)
        stars = cmds is not None  # every '*' of the segment starts a command
        if cmds is None:
            k2 = buf.count(b"\r\n*", pos, stop) + 1  # '*' bytes inside arguments
            if k2 == k:
                return None
            cmds = _parse_segment(buf, pos, stop, k2)
            if cmds is None:
                # not plain commands: the other paths take this stretch (and say why)
                self._seg_after = self.base + stop
                return None
        return cmds, pos, stop, stars

    def _hazard(self, pos: int, stop: int) -> int:
        """Index of the first hazard byte in buf[pos:stop], else ``stop``. Remembers, per byte,
        how far it searched, so a hazard far ahead is not searched for again and again."""
        base = self.base
        cut = stop
        memo = self._memo
        for i, c in enumerate(_HAZARDS):
            lo, hi, at = memo[i]  # searched [lo, hi) in file offsets: first hit at ``at``
            p = base + pos
            if lo <= p and (p <= at < hi or (at == -1 and base + cut <= hi)):
                if at != -1 and at - base < cut:
                    cut = at - base
                continue
            h = self.buf.find(c, pos, stop)
            memo[i] = (p, base + stop, -1 if h == -1 else base + h)
            if h != -1 and h < cut:
                cut = h
        return cut

    def _seg_runs(
        self, cmds: list[list[bytes]], pos: int, stop: int, stars: bool
    ) -> Iterator[CommandRun]:
        buf = self.buf if stars else None
        start = self.base + pos
        self.pos = stop
        special = self.special
        if not special or special.isdisjoint(map(_first, cmds)):
            yield CommandRun(cmds, self.file, start, stop - pos, self.timestamp, self.db,
                             raw=buf, raw_at=pos)  # fmt: skip
            return
        end = start + stop - pos
        a = 0
        for i, argv in enumerate(cmds):
            if argv[0] in special:
                part = cmds[a : i + 1]
                size = run_size(part)
                # the db is read as each run is made: the reader changes it after a SELECT
                yield CommandRun(part, self.file, start, size, self.timestamp, self.db,
                                 raw=buf, raw_at=pos)  # fmt: skip
                start += size
                pos += size
                a = i + 1
        if a < len(cmds):
            yield CommandRun(cmds[a:], self.file, start, end - start, self.timestamp, self.db,
                             raw=buf, raw_at=pos)  # fmt: skip

    # -- per-command path -------------------------------------------------------------------
    def _slow_round(self) -> Iterator[list[AofCommand]]:
        items, state = self._fast()
        if items:
            yield items
        if state == _AGAIN:
            return
        if state == _MORE:
            # the buffer ends inside a command: read more, or let the exact scanner decide
            if self._fill():
                return
            while self.pos < len(self.buf):
                item = self._exact_item()
                if isinstance(item, AofCommand):
                    yield [item]
            return
        # hiredis could not go on here: exact scanner for a few items, then fast again
        for _ in range(16):
            if self.pos >= len(self.buf) and not self._fill():
                return
            item = self._exact_item()
            if isinstance(item, Annotation):
                break
            yield [item]

    # -- fast path --------------------------------------------------------------------------
    def _fast(self) -> tuple[list[AofCommand], int]:
        """Parse complete commands from buf[pos:] with hiredis.

        Returns (items, state): _MORE when parsing stopped only because the buffer ended inside a
        command; _EXACT when hiredis or a check objected at ``self.pos`` (the exact scanner must
        look there); _AGAIN after a command in ``special``.
        """
        buf = self.buf
        end = len(buf)
        pos = self.pos
        reader = hiredis.Reader()
        # feed in small slices: hiredis memmoves its whole buffer every 1 KB consumed
        fed = pos + FEED if pos + FEED < end else end
        big = _BIG_AGGREGATE.search(buf, pos, fed)
        blocked = big is not None  # nothing at or past a big aggregate header is fed
        if big is not None:
            fed = big.start()
        reader.feed(buf, pos, fed - pos)
        gets = reader.gets
        out: list[AofCommand] = []
        append = out.append
        base = self.base
        file = self.file
        ts = self.timestamp
        db = self.db
        special = self.special
        stop_at_special = False
        full = False
        sizes = _ARG_SIZE
        arg_size = sizes.__getitem__
        ok = True
        while True:
            try:
                reply = gets()
            except (hiredis.ProtocolError, TypeError):  # TypeError: a RESP3 map with a list key
                ok = False
                break
            if reply is False:
                if fed < end and not blocked:
                    n = FEED if fed + FEED < end else end - fed
                    big = _BIG_AGGREGATE.search(buf, fed - 6 if fed - 6 > pos else pos, fed + n)
                    if big is not None:
                        blocked = True
                        n = big.start() - fed
                    if n > 0:
                        reader.feed(buf, fed, n)
                        fed += n
                    continue
                if blocked:
                    ok = False  # the exact scanner takes the command at the big header
                break
            if type(reply) is not list or not reply or buf[pos] != 42:  # '*'
                ok = False
                break
            try:
                n = len(reply)
                # every element must be a bulk: a nested array has a len() too
                if n == 3:  # unrolled for the common SET-like shape
                    a0, a1, a2 = reply
                    if type(a0) is not bytes or type(a1) is not bytes or type(a2) is not bytes:
                        raise TypeError
                    size = 4 + sizes[len(a0)] + sizes[len(a1)] + sizes[len(a2)]
                elif n == 2:
                    a0, a1 = reply
                    if type(a0) is not bytes or type(a1) is not bytes:
                        raise TypeError
                    size = 4 + sizes[len(a0)] + sizes[len(a1)]
                else:
                    if not all(map(bytes.__instancecheck__, reply)):
                        raise TypeError
                    size = _ARGC_SIZE[n] + sum(map(arg_size, map(len, reply)))
            except IndexError:
                try:
                    size = canonical_size(reply)
                except TypeError:
                    ok = False
                    break
            except TypeError:  # an integer, nil or error element: not a bulk string
                ok = False
                break
            if pos + size > end:
                ok = False
                break
            append(AofCommand(reply, file, base + pos, size, ts, db))
            pos += size
            if reply[0] in special:
                stop_at_special = True
                break
            if len(out) >= BATCH:
                full = True
                break
        # a full batch goes on where a '*' follows; after a special command '#' may follow too
        follows = pos >= end or buf[pos] == 42 or (stop_at_special and buf[pos] == 35)
        if (full or stop_at_special) and follows:
            state = _AGAIN
        elif stop_at_special or not ok or (pos < end and buf[pos] != 42):
            # hiredis objected, a check failed, or what follows is not a command start: the
            # last command's size may be what went wrong, so the exact scanner redoes it
            state = _EXACT
            if out:
                out.pop()
                pos = out[-1].offset + out[-1].size - base if out else self.pos
        else:
            state = _MORE
        self.pos = pos
        return out, state

    # -- exact path -------------------------------------------------------------------------
    def _line(self, start: int, limit: int) -> int:
        """Index just past the '\\n' of the line at ``start`` (reading more as needed), looking at
        most ``limit`` bytes like fgets; -1 if the line is longer; -2 at EOF without newline."""
        while True:
            nl = self.buf.find(b"\n", start, start + limit)
            if nl != -1:
                return nl + 1
            if len(self.buf) - start >= limit:
                return -1
            shift = self.pos
            if not self._fill():
                return -2
            start -= shift - self.pos

    def _need(self, start: int, n: int) -> bool:
        """Ensure buf[start:start+n] is present; False at EOF. ``start`` is relative to pos."""
        while len(self.buf) - (self.pos + start) < n:
            if not self._fill():
                return False
        return True

    def _format_error(self, detail: str, at: int) -> FormatError:
        return FormatError(f"{BAD_FORMAT}: {detail}", file=self.file, offset=at)

    def _exact_item(self) -> ScanItem:
        """Read one command or annotation at pos, exactly as src/aof.c does."""
        start_abs = self.base + self.pos
        first = self.buf[self.pos]
        if first == 0x23:  # '#': annotation, skipped by the loader
            rel_end = self._line(self.pos, AOF_ANNOTATION_LINE_MAX_LEN - 1)
            if rel_end == -1:
                raise self._format_error(
                    f"annotation line longer than {AOF_ANNOTATION_LINE_MAX_LEN} bytes", start_abs
                )
            if rel_end == -2:
                raise TornError(
                    f"{UNEXPECTED_EOF}: inside an annotation line", file=self.file, offset=start_abs
                )
            text = self.buf[self.pos : rel_end]
            self.pos = rel_end
            ts: int | None = None
            if text.startswith(b"#TS:"):
                body = text[4:].rstrip(b"\r\n")
                if not body.isdigit():
                    # src/valkey-check-aof.c
                    raise FormatError(
                        "Invalid timestamp annotation", file=self.file, offset=start_abs
                    )
                ts = int(body)
                self.timestamp = ts
            return Annotation(start_abs, len(text), text, ts)
        if first != 0x2A:  # '*'
            raise self._format_error(f"expected '*', got {bytes([first])!r}", start_abs)
        argc = self._header(0, b"*", start_abs)
        if argc < 1:
            raise self._format_error(f"invalid argument count {argc}", start_abs)
        rel = self._rel_after_header
        argv: list[bytes] = []
        for _ in range(argc):
            if not self._need(rel, 1):
                raise self._torn(start_abs)
            if self.buf[self.pos + rel] != 0x24:  # '$'
                raise self._format_error(
                    f"expected '$', got {bytes([self.buf[self.pos + rel]])!r}",
                    self.base + self.pos + rel,
                )
            n = self._header(rel, b"$", start_abs)
            if n < 0:
                raise self._format_error(f"invalid bulk length {n}", self.base + self.pos + rel)
            rel = self._rel_after_header
            # the bulk and its CRLF (which Valkey reads without checking: src/aof.c)
            if not self._need(rel, n + 2):
                raise self._torn(start_abs)
            at = self.pos + rel
            argv.append(self.buf[at : at + n])
            rel += n + 2
        self.pos += rel
        return AofCommand(argv, self.file, start_abs, rel, self.timestamp, self.db)

    _rel_after_header = 0

    def _header(self, rel: int, kind: bytes, start_abs: int) -> int:
        """Parse a ``*<n>\\r\\n`` / ``$<n>\\r\\n`` line at pos+rel; sets ``_rel_after_header``."""
        line_start = self.pos + rel
        end = self._line(line_start, AOF_ANNOTATION_LINE_MAX_LEN - 1)
        if end == -2:
            raise self._torn(start_abs)
        line_start = self.pos + rel  # _line may have moved the buffer
        if end == -1:
            raise self._format_error(
                f"{kind.decode()} header line too long", self.base + line_start
            )
        text = self.buf[line_start + 1 : end].rstrip(b"\r\n")
        try:
            value = int(text)
        except ValueError:
            raise self._format_error(
                f"invalid {kind.decode()} header {text[:40]!r}", self.base + line_start
            ) from None
        self._rel_after_header = end - self.pos
        return value

    def _torn(self, start_abs: int) -> TornError:
        return TornError(
            f"{UNEXPECTED_EOF}: EOF inside a command", file=self.file, offset=start_abs
        )
