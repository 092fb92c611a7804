"""Low-level streaming scanner of the RESP part of an AOF file: commands with byte offsets.

How it works: the file is read in chunks of :data:`CHUNK` bytes into one linear buffer, and
three paths parse it, fastest first; each gives exactly what the next would, or declines:

- *Segments*: about :data:`SEG_CMDS` commands (at most :data:`SEG` bytes) ending where a
  ``\\r\\n*`` starts the next command, and holding none of the bytes ``#+(=~|%>``
  (annotations and every RESP type that is not ``*`` or ``$``: memchr finds them) nor a ``*``
  with six digits (hiredis would allocate the announced array), are parsed by ONE hiredis call
  as the array ``*<K>\\r\\n`` + segment, K = the number of ``*`` bytes (of ``\\r\\n*`` when
  an argument holds a ``*``). The result is taken only when hiredis consumed the whole segment
  into K non-empty lists of bytes (``list.extend`` and ``b"".join`` type-check every argument
  in C and count them); then the segment is canonical RESP and its commands come out as one
  :class:`CommandRun`, without an object per command (when K was the ``*`` count, splitting
  the segment at its ``*`` bytes gives each command's size; when the ``*`` bytes are equally
  spaced, as in an AOF of fixed-width keys and values, two strided slices show it: every
  command has that size, and no big header can be there). With ``shaped`` on (``inspect``),
  such a segment whose commands share the first one's layout is proved by strided slices
  instead of hiredis and comes as a shaped run, its argument lists built only when read, and
  the next segments of that layout, :data:`SHAPED_SCALE` times longer, need no count of the
  ``*`` bytes (persistence/aof/shapes.py). A run is cut after each ``special``
  command; a segment that misses a letter of every special word (a few memchr scans) cannot
  hold one, and no command name is looked up.
- *Per command*: ``hiredis.Reader.gets`` one reply at a time, each command's size computed from
  its argv (Valkey writes canonical RESP, and hiredis rejects non-canonical lengths, so
  ``size = len("*<argc>\\r\\n") + sum(len("$<len>\\r\\n") + len + 2)``); every computed start
  is checked to hold a ``*``.
- *Exact*: whenever hiredis objects (a ``#`` annotation line, garbage, a non-array reply), a
  check fails, or the file ends inside a command, the pure-Python scanner takes over for a few
  items: it follows src/aof.c ``loadSingleAppendOnlyFile`` byte by byte and reports precise
  errors.

Memory stays at about one chunk plus the largest command. A plain file is refilled by reading
the unconsumed tail again with the next chunk (no concatenation copy).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from operator import itemgetter
from typing import BinaryIO

import hiredis

from persistence.aof.scan_items import (
    ARG_SIZE,
    ARGC_SIZE,
    Annotation,
    AofCommand,
    CommandRun,
    canonical_size,
    command_sizes,
    run_size,
)
from persistence.aof.shapes import Shape, shape_of
from persistence.aof.shapes import parse_segment as _parse_segment
from persistence.aof.shapes import step_of as _step
from persistence.errors import FormatError, TruncatedError

# the scanner's API: the items it yields are defined in scan_items.py and re-exported here
__all__ = [
    "CHUNK",
    "SEG",
    "Annotation",
    "AofCommand",
    "CommandRun",
    "RespScanner",
    "ScanItem",
    "TornError",
    "canonical_size",
    "command_sizes",
    "run_size",
]

CHUNK = 1 << 20
FEED = 1 << 14  # bytes handed to hiredis at a time
# commands per batch: small batches die young, so the cyclic GC never sees (and promotes) a
# whole chunk's worth of command objects; a 1 MB batch cost a third of the read time in GC
BATCH = 256
AOF_ANNOTATION_LINE_MAX_LEN = 1024  # src/server.h

# one hiredis call on the segment path parses at most SEG bytes and about SEG_CMDS commands (the
# length follows the command size seen so far). Each command's list is an object the cyclic GC
# tracks, and a segment's lists all live until its run is consumed: under the GC's threshold of
# 700 net allocations, a reader that makes each command object as it is consumed (``read_aof``)
# runs almost no collection, while 1150 live lists (64 KB of SETs) cost a sixth of its time
SEG = 1 << 16
SEG_CMDS = 400
# shaped segments (no list per command, see _shaped_run) are this many times longer
SHAPED_SCALE = 4
# bytes that end a segment: '#' starts an annotation line, the others start RESP types that
# hiredis returns as bytes or lists but whose size is not the canonical bulk/array size
_HAZARDS = tuple(b"#+(=~|%>")
_BIG_ARRAY = re.compile(rb"\*[0-9]{6}")
_first = itemgetter(0)

BAD_FORMAT = "Bad file format reading the append only file"  # src/aof.c fmterr
UNEXPECTED_EOF = "Unexpected end of file reading the append only file"  # src/aof.c uxeof
# hiredis allocates an aggregate of the announced size as soon as it reads the header (a damaged
# ``*2147483647`` costs 16 GB): it is never fed one of 100000 or more; the exact scanner reads
# those (same guard as persistence/resp/parser.py)
_BIG_AGGREGATE = re.compile(rb"[*%~>|][0-9]{6}")


class TornError(TruncatedError):
    """EOF inside a command or an annotation line; ``offset`` = where the torn item starts."""


ScanItem = AofCommand | Annotation

_MORE, _EXACT, _AGAIN = 0, 1, 2


def _last_start(buf: bytes, pos: int, at: int) -> int:
    """Index of the last ``*`` in buf[pos+1:at+1] that follows a CRLF, else -1."""
    i = buf.rfind(b"\r\n*", pos, at + 1)
    return i + 2 if i >= pos else -1


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
        self._letters_of: frozenset[bytes] | None = None  # the special set _letters is for
        self._letters: list[list[tuple[bytes, bytes]]] = []  # per special word: its letters
        self._seg_after = -1  # file offset before which the segment path is not tried again
        self._seg_len = SEG_CMDS * 64  # bytes of the next segment, at most SEG
        # equal-size segments of one layout come as shaped runs, without hiredis (argvs built
        # when asked for: persistence/aof/shapes.py); _shape: the last layout seen
        self.shaped = False
        self._shape: Shape | None = None
        self._memo = [(0, 0, -1)] * len(_HAZARDS)
        # a plain file positioned just past the buffer: _fill may seek back in it
        self._reread = isinstance(f, io.BufferedReader) and f.tell() == base_offset + len(initial)

    # -- buffer ---------------------------------------------------------------------------
    def _fill(self) -> bool:
        """Append one chunk to the buffer (dropping consumed bytes). False at EOF."""
        if self.eof:
            return False
        if self.pos and self._reread:
            # a plain file: read the unconsumed tail again with the next chunk, in one piece,
            # rather than concatenating (a 1 MB copy per chunk)
            keep = len(self.buf) - self.pos
            self.f.seek(-keep, 1)
            data = self.f.read(keep + self.chunk)
            if len(data) <= keep:
                self.eof = True
                return False
            self.base += self.pos
            self.buf = data
            self.pos = 0
            return True
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
                if isinstance(seg, CommandRun):
                    yield seg
                    continue
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
    def _segment(
        self,
    ) -> tuple[list[list[bytes]], int, int, bool, list[bytes], int] | CommandRun | None:
        """(commands, start, end, stars, all arguments, step) of a segment at pos parsed in
        one hiredis call, or the segment as a shaped run, or None."""
        limit = SEG if self._shape is None else SEG * SHAPED_SCALE
        if len(self.buf) - self.pos < limit and not self.eof:
            self._fill()
        buf = self.buf
        pos = self.pos
        end = len(buf)
        if self.base + pos < self._seg_after:
            return None
        stop = pos + min(limit, self._seg_len)
        if stop >= end and self.eof and buf.endswith(b"\r\n"):
            stop = end
        else:
            stop = _last_start(buf, pos, stop)
            if stop < 0:
                return None
        cut = self._hazard(pos, stop)
        if cut != stop:
            stop = _last_start(buf, pos, cut)
            if stop < 0:
                return None
        shape = self._shape  # (set only when shaped)
        if shape is not None:  # the last layout again: no count of the '*' bytes needed
            k, rest = divmod(stop - pos, shape.size)
            if not rest and shape.holds(buf, pos, k) and shape.name not in self.special:
                return self._shaped_run(shape, pos, stop, k)
        k = buf.count(b"*", pos, stop)
        step = _step(buf, pos, stop, k)
        if step and self.shaped:
            shape = shape_of(buf, pos, step)
            if shape is not None and shape.holds(buf, pos, k) and shape.name not in self.special:
                return self._shaped_run(shape, pos, stop, k)
        if not step:
            # (a big header cannot straddle ``stop``: a CRLF precedes the '*' there)
            big = _BIG_ARRAY.search(buf, pos, stop)
            if big is not None:
                stop = _last_start(buf, pos, big.start())
                if stop < 0:
                    return None
                k = buf.count(b"*", pos, stop)
        parsed = _parse_segment(buf, pos, stop, k)
        stars = parsed is not None  # every '*' of the segment starts a command
        if parsed is None:
            k2 = buf.count(b"\r\n*", pos, stop) + 1  # '*' bytes inside arguments
            if k2 == k:
                return None
            parsed = _parse_segment(buf, pos, stop, k2)
            if parsed is None:
                # not plain commands: the other paths take this stretch (and say why)
                self._seg_after = self.base + stop
                return None
        self._seg_len = max(256, (stop - pos) * SEG_CMDS // len(parsed[0]))
        return parsed[0], pos, stop, stars, parsed[1], step if stars else 0

    def _shaped_run(self, shape: Shape, pos: int, stop: int, k: int) -> CommandRun:
        """The ``k`` commands of ``shape`` in buf[pos:stop] (proved by ``shape.holds``)."""
        self._shape = shape
        self._seg_len = max(256, (stop - pos) * SEG_CMDS * SHAPED_SCALE // k)
        self.pos = stop
        return CommandRun.shaped(shape, self.file, self.base + pos, k, self.timestamp, self.db,
                                 self.buf, pos)  # fmt: skip

    def _may_hold(self, pos: int, stop: int) -> bool:
        """False when no ``special`` word can be in buf[pos:stop]: each word misses a letter
        (in either case) there. A few memchr scans instead of hashing every command name."""
        if self._letters_of is not self.special:
            self._letters_of = self.special
            words = {w.upper() for w in self.special}
            self._letters = [sorted({(bytes([c]).lower(), bytes([c]).upper()) for c in w})
                             for w in words]  # fmt: skip
        find = self.buf.find
        for letters in self._letters:
            for lower, upper in letters:
                if find(lower, pos, stop) < 0 and find(upper, pos, stop) < 0:
                    break  # this word cannot be here
            else:
                return True
        return False

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
        self,
        cmds: list[list[bytes]],
        pos: int,
        stop: int,
        stars: bool,
        flat: list[bytes],
        step: int,
    ) -> Iterator[CommandRun]:
        buf = self.buf if stars else None
        start = self.base + pos
        self.pos = stop
        special = self.special
        if not special or not self._may_hold(pos, stop) or special.isdisjoint(map(_first, cmds)):
            yield CommandRun(cmds, self.file, start, stop - pos, self.timestamp, self.db,
                             raw=buf, raw_at=pos, nargs=len(flat), step=step,
                             flat=flat)  # fmt: skip
            return
        end = start + stop - pos
        a = 0
        for i, argv in enumerate(cmds):
            if argv[0] in special:
                part = cmds[a : i + 1]
                size = run_size(part)
                # the db is read as each run is made: the reader changes it after a SELECT
                yield CommandRun(part, self.file, start, size, self.timestamp, self.db,
                                 raw=buf, raw_at=pos, step=step)  # fmt: skip
                start += size
                pos += size
                a = i + 1
        if a < len(cmds):
            yield CommandRun(cmds[a:], self.file, start, end - start, self.timestamp, self.db,
                             raw=buf, raw_at=pos, step=step)  # fmt: skip

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
        sizes = ARG_SIZE
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
                    size = ARGC_SIZE[n] + sum(map(arg_size, map(len, reply)))
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
