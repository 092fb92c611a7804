"""The fast input path of ``valkey-aof replay``: a RESP AOF file as runs of raw bytes.

How this works: the file is read in 1 MB chunks and handed to ``hiredis.Reader`` in 16 KB slices
(as persistence/aof/resp_scan.py does). For a command whose name is plain (it needs no change:
not SELECT/MULTI/EXEC/CLUSTER, known to the target) nothing is computed but the argv list hiredis
made: runs of such commands are cut at the exact boundary hiredis reports (bytes fed minus
``Reader.len()``) and sent as the file's own bytes, with a :class:`RawCmds` view that builds
per-command offsets only when someone asks (an error reply, a checkpoint inside the run, the
cluster router). Before hiredis, a run of commands all of the first one's shape (same name,
argument count and lengths: an AOF of fixed-width keys and values) is proven canonical by
strided slices of its header bytes (:func:`uniform_run`) and emitted with no parse at all.
Anything else (SELECT, MULTI ... EXEC, other commands) gets exact offsets from
the canonical sizes and is handed to the caller as ``AofCommand`` lists, the shapes
``persistence.aof.reader`` yields. ``#`` annotation lines are skipped.

Whatever this scanner is not sure about (a protocol error that is not an annotation, a computed
offset that does not land on a ``*``, a ``*`` header of 100000+ items, an open MULTI inside MULTI,
EXEC alone, the file ending inside a command or transaction) ends it with a :class:`Bail` at the
last exact boundary; the caller then reads the rest of that file with the exact reader, which
reports the problem (or the torn tail) the way valkey-server would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence, Sized
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO, overload

import hiredis

from persistence.aof.manifest import find_manifest, read_manifest
from persistence.aof.resp_scan import AofCommand
from persistence.errors import MissingFileError

CHUNK = 1 << 20
FEED = 1 << 14  # hiredis memmoves its buffer every 1 KB consumed: small slices
RUN_BYTES = 256 * 1024  # a run is emitted once this big
_BIG = re.compile(rb"[*%~>|][0-9]{6}")  # see persistence/aof/resp_scan.py _BIG_AGGREGATE
_BIG_STAR = re.compile(rb"\*[0-9]{6}")

_TABLE = 100_000
ARG_SIZE = [n + 5 + len(str(n)) for n in range(_TABLE)]  # len("$<n>\r\n") + n + 2
ARGC_SIZE = [3 + len(str(n)) for n in range(_TABLE)]  # len("*<n>\r\n")

PLAIN, SELECT, MULTI, EXEC, OTHER = 0, 1, 2, 3, 4


def csize(argv: list[bytes]) -> int:
    """Bytes of ``argv`` written canonically (what Valkey writes, what hiredis accepts)."""
    try:
        return ARGC_SIZE[len(argv)] + sum(map(ARG_SIZE.__getitem__, map(len, argv)))
    except IndexError:
        n = len(argv)
        return 3 + len(str(n)) + sum(len(a) + 5 + len(str(len(a))) for a in argv)


@dataclass(frozen=True)
class InputFile:
    name: str
    path: Path
    kind: str  # base | incr | single
    seq: int | None


def input_files(path: str | os.PathLike[str]) -> list[InputFile]:
    """The files of an input in load order (as persistence.aof.reader reads them)."""
    p = Path(path)
    manifest_path = find_manifest(p)
    if manifest_path is None:
        if p.is_dir():
            raise MissingFileError("no AOF manifest in the directory", file=str(p))
        return [InputFile(p.name, p, "single", None)]
    manifest = read_manifest(manifest_path)
    folder = manifest_path.parent
    out: list[InputFile] = []
    if manifest.base is not None:
        out.append(InputFile(manifest.base.name, folder / manifest.base.name, "base", None))
    out.extend(InputFile(e.name, folder / e.name, "incr", e.seq) for e in manifest.incrs)
    for f in out:
        if not f.path.is_file():  # src/aof.c: fatal before anything loads
            raise MissingFileError(
                f"The append log file {f.name} doesn't exist (listed in {manifest_path.name})",
                file=str(f.path),
            )
    return out


class RawCmds(Sequence[AofCommand]):
    """The commands of a raw run, as ``AofCommand`` objects built on first use.

    A uniform run (:func:`uniform_run`: ``n`` commands of ``step`` bytes each, proven alike
    without parsing) has no argv lists until someone asks: ``argvs`` then parses ``data``."""

    __slots__ = ("_argvs", "_cmds", "data", "db", "end", "file", "n", "offset", "step")

    def __init__(
        self, argvs: list[list[bytes]] | None, file: str, offset: int, end: int, db: int,
        *, data: bytes = b"", n: int = 0, step: int = 0,
    ) -> None:  # fmt: skip
        self._argvs = argvs
        self.file = file
        self.offset = offset  # file offset of the first command
        self.end = end  # file offset just past the last one
        self.db = db
        self.data = data  # the run's bytes (kept only while argvs is None)
        self.n = len(argvs) if argvs is not None else n
        self.step = step  # every command's size, when known to be equal (0: unknown)
        self._cmds: list[AofCommand] | None = None

    @property
    def argvs(self) -> list[list[bytes]]:
        if self._argvs is None:
            reader = hiredis.Reader()
            reader.feed(b"*%d\r\n" % self.n)
            reader.feed(self.data)
            self._argvs = reader.gets()
            assert type(self._argvs) is list and len(self._argvs) == self.n
            self.data = b""
        return self._argvs

    @property
    def unparsed(self) -> bool:
        """A uniform run known only by its stride: no argv list built yet."""
        return self._argvs is None and self.step > 0

    def __len__(self) -> int:
        return self.n

    def end_of(self, i: int) -> int:
        """File offset just past command ``i``."""
        if self.step:
            return self.offset + (i + 1) * self.step
        if self._cmds is not None:
            c = self._cmds[i]
            return c.offset + c.size
        return self.offset + runsize(self.argvs[: i + 1])

    def _build(self) -> list[AofCommand]:
        if self._cmds is None:
            out = []
            pos = self.offset
            for argv in self.argvs:
                size = csize(argv)
                out.append(AofCommand(argv, self.file, pos, size, None, self.db))
                pos += size
            self._cmds = out
        return self._cmds

    @overload
    def __getitem__(self, i: int) -> AofCommand: ...
    @overload
    def __getitem__(self, i: slice) -> list[AofCommand]: ...
    def __getitem__(self, i: int | slice) -> AofCommand | list[AofCommand]:
        return self._build()[i]

    def __iter__(self) -> Iterator[AofCommand]:
        return iter(self._build())


@dataclass(slots=True)
class Run:
    """Plain commands back to back in the file: their bytes and argvs."""

    data: bytes
    cmds: RawCmds


def split_run(run: Run, n: int) -> list[Run]:
    """``run`` in runs of at most ``n`` commands."""
    out = []
    raw = run.cmds
    pos = 0
    step = raw.step
    if step and raw._argvs is None:
        for i in range(0, raw.n, n):
            k = min(n, raw.n - i)
            at = raw.offset + pos
            data = run.data[pos : pos + k * step]
            sub = RawCmds(None, raw.file, at, at + k * step, raw.db, data=data, n=k, step=step)
            out.append(Run(data, sub))
            pos += k * step
        return out
    for i in range(0, len(raw.argvs), n):
        argvs = raw.argvs[i : i + n]
        size = runsize(argvs)
        at = raw.offset + pos
        out.append(Run(run.data[pos : pos + size], RawCmds(argvs, raw.file, at, at + size, raw.db)))
        pos += size
    return out


@dataclass(slots=True)
class Bail:
    """The fast scanner stops here (file offset of an exact command boundary)."""

    offset: int
    reason: str


ScanOut = Run | list[AofCommand] | Bail


def runsize(run: list[list[bytes]]) -> int:
    """Bytes of the commands of ``run`` (TypeError when an item is not a bulk string)."""
    return sum(map(_ARG, map(len, chain.from_iterable(run)))) + sum(map(_ARGC, map(len, run)))


def _big(buf: bytes, lo: int, hi: int) -> bool:
    """A RESP aggregate header of 100000+ items in buf[lo:hi] (literal searches first: the
    character-class regex is 8 times slower)."""
    if _BIG_STAR.search(buf, lo, hi) is not None:
        return True
    for ch in b"%~>|":
        if buf.find(ch, lo, hi) != -1:
            return _BIG.search(buf, lo, hi) is not None
    return False


_ARG = ARG_SIZE.__getitem__
_FIRST = itemgetter(0)
_LIST = {list}
_ARGC = ARGC_SIZE.__getitem__


UNIFORM_MIN = 64  # commands: a shorter uniform run is left to hiredis
RETRY_BYTES = 1 << 16  # after a failed look for a uniform run, bytes read before the next
MAX_ARGC = 64


def _shape(buf: bytes, pos: int) -> tuple[int, list[int], int, int] | None:
    """The command at ``buf[pos]`` read by hand when canonical: (its size, the offsets of its
    header and CRLF bytes, where its name starts and ends), else None."""
    nl = buf.find(b"\r\n", pos, pos + 6)
    digits = buf[pos + 1 : nl]
    if nl < 0 or buf[pos] != 42 or not digits.isdigit() or digits[:1] == b"0":
        return None
    argc = int(digits)
    if argc > MAX_ARGC:
        return None
    fixed = list(range(pos, nl + 2))
    p = nl + 2
    name = (0, 0)
    for i in range(argc):
        nl = buf.find(b"\r\n", p, p + 8)
        digits = buf[p + 1 : nl]
        if nl < 0 or buf[p] != 36 or not digits.isdigit() or (digits[:1] == b"0" and nl > p + 2):
            return None
        start = nl + 2
        end = start + int(digits)
        if buf[end : end + 2] != b"\r\n":
            return None
        fixed += range(p, start)
        fixed += (end, end + 1)
        if i == 0:
            name = (start, end)
        p = end + 2
    return p - pos, fixed, name[0], name[1]


def uniform_run(
    buf: bytes, pos: int, limit: int, is_plain: Callable[[bytes], bool]
) -> tuple[int, int]:
    """How many commands from ``buf[pos]`` (at most ``limit`` bytes) are copies of the first
    one's shape: the same argument count and lengths (so the same size) and the same name,
    a plain one. Strided slices compare every header and CRLF byte, and the name's bytes,
    across the commands at C speed: each is then canonical RESP, with no parse and no object
    (an AOF of fixed-width keys and values, like the benchmark's). Returns (commands, size of
    each); 0 commands: fewer than UNIFORM_MIN."""
    shape = _shape(buf, pos)
    if shape is None:
        return 0, 0
    size, fixed, lo, hi = shape
    k = min(limit, len(buf) - pos) // size
    if k < UNIFORM_MIN or not is_plain(buf[lo:hi]):
        return 0, 0
    stop = pos + k * size
    for at in (*fixed, *range(lo, hi)):
        if buf[at:stop:size] != buf[at : at + 1] * k:
            # the commands before the first different one are still alike
            row = buf[at:stop:size]
            first = next(i for i in range(k) if row[i] != row[0])
            if first < UNIFORM_MIN:
                return 0, 0
            k = first
            stop = pos + k * size
    return k, size


def scan(f: BinaryIO, name: str, code_of: Callable[[bytes], int], slow: Sized) -> Iterator[ScanOut]:
    """Yield runs, command lists (a single command or a whole MULTI ... EXEC) and at most one
    Bail (always last). ``code_of(argv[0])`` says PLAIN/SELECT/MULTI/EXEC/OTHER; while ``slow``
    is not empty (the open slot imports) every command comes as its own list."""
    st = _Scan(f, name, code_of, slow)
    return st.run()


class _Scan:
    def __init__(
        self, f: BinaryIO, name: str, code_of: Callable[[bytes], int], slow: Sized
    ) -> None:
        self.f = f
        self.name = name
        self.code_of = code_of
        self.slow = slow
        self.buf = b""
        self.base = 0  # file offset of buf[0]
        self.start = 0  # buf index of the first command not handed out (an exact boundary)
        self.run_: list[list[bytes]] = []  # plain commands parsed since `start`
        self.db = 0

    def cut(self, hint: int = -1) -> Run | Bail | None:
        """The parsed plain commands as a Run (None if there are none; Bail if their sizes
        do not land on a command start).

        ``hint``: where hiredis stopped with nothing left over (the bytes were fed up to a
        ``\r\n*``). It is the run's end when the bytes from ``start`` hold exactly one ``$``
        header per argument and one ``*`` header per command: any partly read command, a
        value containing such bytes, or an argument that is not a bulk string breaks the count,
        and the sizes are added up instead (the count is C speed, the sum is not)."""
        run = self.run_
        if not run:
            return None
        start = self.start
        buf = self.buf
        if (
            hint > start
            and buf.count(b"\r\n*", start, hint) == len(run) - 1
            and buf.count(b"\r\n$", start, hint) == sum(map(len, run))
        ):
            end = hint
        else:
            try:
                end = start + runsize(run)
            except (TypeError, IndexError):
                return Bail(self.base + start, "not a command of bulk strings")
        if buf[start] != 42 or end > len(buf) or (end < len(buf) and buf[end] not in b"*#"):
            return Bail(self.base + start, "not canonical RESP")
        self.run_ = []
        self.start = end
        return Run(
            buf[start:end], RawCmds(run, self.name, self.base + start, self.base + end, self.db)
        )

    def _uniform(self, k: int, size: int) -> Run:
        start = self.start
        end = self.start = start + k * size
        data = self.buf[start:end]
        at = self.base + start
        cmds = RawCmds(None, self.name, at, at + k * size, self.db, data=data, n=k, step=size)
        return Run(data, cmds)

    def run(self) -> Iterator[ScanOut]:
        fed = 0  # buf index up to which hiredis was fed
        reader = hiredis.Reader()
        txn: list[AofCommand] | None = None
        txn_offset = 0
        eof = False
        cache: dict[bytes, int] = {}
        plain: set[bytes] = set()  # names whose code is PLAIN
        slow = self.slow
        need_more = False  # an annotation line runs past the buffer
        retry_at = 0  # buf index before which no uniform run is looked for again

        def is_plain(name: bytes) -> bool:
            c = cache.get(name)
            if c is None:
                c = cache[name] = self.code_of(name)
                if c == PLAIN:
                    plain.add(name)
            return c == PLAIN

        while True:
            if fed >= len(self.buf) or need_more:  # refill: keep buf[start:], add a chunk
                if eof:
                    if need_more:
                        yield Bail(self.base + self.start, "the file ends inside an annotation")
                        return
                    break
                need_more = False
                more = self.f.read(CHUNK)
                if not more:
                    eof = True
                    continue
                out = self.cut(-1 if reader.has_data() else fed)
                if out is not None:
                    yield out
                    if type(out) is Bail:
                        return
                s = self.start
                self.base += s
                self.buf = self.buf[s:] + more
                fed -= s
                retry_at -= s
                self.start = 0
                continue
            buf = self.buf
            if txn is None and not slow and not self.run_ and fed >= retry_at:
                k, size = uniform_run(buf, self.start, RUN_BYTES, is_plain)
                if k:  # hiredis held nothing but bytes from `start` on: they are fed again
                    yield self._uniform(k, size)
                    fed = self.start
                    reader = hiredis.Reader()
                    continue
                if not eof and len(buf) - self.start < RUN_BYTES:
                    need_more = True  # the next chunk may go on with a uniform run
                    continue
                retry_at = self.start + RETRY_BYTES
            n = FEED if fed + FEED < len(buf) else len(buf) - fed
            # end the slice just before a command start when one is in sight (cut's hint)
            k = buf.rfind(b"\r\n*", fed, fed + n)
            if k > fed:
                n = k + 2 - fed
            lo = fed - 6 if fed - 6 > self.start else self.start
            if _big(buf, lo, fed + n):
                out = self.cut()
                if out is not None:
                    yield out
                at = txn_offset if txn is not None else self.base + self.start
                if type(out) is not Bail:
                    yield Bail(at, "a header of 100000+ items")
                return
            reader.feed(buf, fed, n)
            fed += n
            # every complete item of the slice at C speed (hiredis until it says False)
            items: list[Any] = []
            failed = False  # hiredis objected after `items` (an annotation, or garbage)
            try:
                items.extend(iter(reader.gets, False))
            except (hiredis.ProtocolError, TypeError):  # TypeError: a RESP3 map with a list key
                failed = True
            run = self.run_
            append = run.append
            fast = txn is None and not slow
            if fast and items and not failed:
                # all lists whose names are plain: the whole slice joins the run, no loop
                try:
                    ok = set(map(type, items)) == _LIST and plain.issuperset(map(_FIRST, items))
                except (TypeError, IndexError):
                    ok = False
                if ok:
                    run += items
                    items = []
            if failed:
                items.append(None)
            for x in items:
                if type(x) is list and x and type(x[0]) is bytes:
                    c = cache.get(x[0])
                    if c is None:
                        c = cache[x[0]] = self.code_of(x[0])
                        if c == PLAIN:
                            plain.add(x[0])
                    if c == PLAIN and fast:
                        append(x)
                        continue
                # -- the exact path: emit the run before this item, then look at it
                out = self.cut()
                run = self.run_
                append = run.append
                if out is not None:
                    yield out
                    if type(out) is Bail:
                        return
                at = self.start
                if x is None or type(x) is not list or not x:
                    # an annotation line, or something only the exact reader can judge
                    if at < len(buf) and buf[at] == 35 and txn is None:  # '#'
                        nl = buf.find(b"\n", at, at + 1024)
                        if nl != -1:
                            line = buf[at : nl + 1]
                            ts = line[4:].rstrip(b"\r\n")
                            if not line.startswith(b"#TS:") or ts.isdigit():
                                self.start = fed = nl + 1
                                reader = hiredis.Reader()
                                break
                        elif len(buf) - at < 1024 and not eof:
                            fed = at
                            need_more = True
                            reader = hiredis.Reader()
                            break
                    yield Bail(txn_offset if txn is not None else self.base + at, "exact reader")
                    return
                try:
                    size = runsize([x])
                except (TypeError, IndexError):
                    size = -1
                if (
                    size < 0
                    or buf[at] != 42
                    or (at + size < len(buf) and buf[at + size] not in b"*#")
                ):
                    yield Bail(txn_offset if txn is not None else self.base + at, "not canonical")
                    return
                self.start = at + size
                c = cache[x[0]]
                cmd = AofCommand(x, self.name, self.base + at, size, None, self.db)
                if c == SELECT and len(x) == 2 and x[1].isdigit():  # reader.py _select_db
                    self.db = cmd.db = int(x[1])
                if txn is not None:
                    if c == MULTI:
                        yield Bail(txn_offset, "MULTI inside MULTI")
                        return
                    txn.append(cmd)
                    if c == EXEC:
                        yield txn
                        txn = None
                    continue
                if c == MULTI:
                    txn = [cmd]
                    txn_offset = self.base + at
                elif c == EXEC:
                    yield Bail(self.base + at, "EXEC without MULTI")
                    return
                elif c != SELECT:
                    yield [cmd]
                fast = txn is None and not slow
            if txn is None and len(self.run_) > 64 and fed - self.start >= RUN_BYTES:
                out = self.cut(-1 if reader.has_data() else fed)
                if out is not None:
                    yield out
                    if type(out) is Bail:
                        return
        out = self.cut(-1 if reader.has_data() else fed)
        if out is not None:
            yield out
            if type(out) is Bail:
                return
        if txn is not None:
            yield Bail(txn_offset, "the file ends inside MULTI")
        elif self.start < len(self.buf):
            yield Bail(self.base + self.start, "the file ends inside a command")
