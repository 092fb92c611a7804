"""The input side of ``valkey-aof replay``: an AOF (file, manifest, appendonlydir) or RDB as a
stream of :class:`Segment` objects, each a run of commands with their RESP bytes.

How this works: the input's files are taken one by one. A RESP file goes through the fast
scanner (tools/replay_fastscan.py), which hands runs of plain commands over as the file's own
bytes with a lazily built command view, and everything else as commands; where it is not sure,
it stops at an exact boundary and ``persistence.aof.reader`` reads the rest of that file (an
RDB or RDB-preamble file is read by the reader from the start). From the reader, runs of
commands that need no change and lie back to back in the file are sent as the file's own bytes,
read once more through a forward-only :class:`RangeReader` (plain or LZ4 input alike).
Everything else is written by the one encoder: RDB-base records (``record_commands``), SELECTs
(the sender emits them per connection from ``Segment.db``), transactions with a SELECT inside.
``CLUSTER SYNCSLOTS`` records are skipped (the source cluster's internals): commands of an
import are held back until its ``FINISH STATE SUCCESS`` and dropped on ``FAILED`` or when the
file ends with the import open, as a loading valkey-server does (src/cluster_migrateslots.c,
spec 3.11). Commands the target does not know are skipped and counted. When databases are
merged (``--flatten-db``, ``--map-db``, a URL db), FLUSHDB/SWAPDB/MOVE in a merged database are
warned about. Every command sent gets an index in emission order; ``skip`` (for ``--resume``)
drops the first ``skip`` of them.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from engine.commands.table import lookup
from persistence.aof.encoder import encode_command, record_commands
from persistence.aof.reader import (
    NOT_LAST_FILE,
    AofItem,
    AofRecord,
    TornTail,
    parse_syncslots,
    read_aof_batches,
)
from persistence.aof.resp_scan import AofCommand
from persistence.crc import key_slot
from persistence.errors import TruncatedError
from persistence.fileio import open_input
from persistence.records import FunctionLibrary, KeyRecord, SlotImport
from tools.replay_fastscan import (
    EXEC,
    MULTI,
    OTHER,
    PLAIN,
    SELECT,
    Bail,
    InputFile,
    RawCmds,
    Run,
    input_files,
    scan,
    split_run,
)

SEGMENT_MAX = 256
GC_THRESHOLD = 200_000

_OK, _CLUSTER, _UNKNOWN, _SELECT, _MULTI, _DBARG = 0, 1, 2, 3, 4, 5
# commands naming a db in their arguments, and FLUSHDB (checked against merged databases)
_DB_ARG_COMMANDS = (b"MOVE", b"COPY", b"SWAPDB", b"FLUSHDB")
_MERGE_HAZARDS = (b"FLUSHDB", b"SWAPDB", b"MOVE")


@dataclass(slots=True)
class GenCmd:
    """A command written by the encoder (not copied from the input)."""

    argv: list[bytes]
    file: str
    offset: int
    size: int


Cmd = AofCommand | GenCmd


@dataclass(slots=True)
class Segment:
    cmds: Sequence[Cmd]  # a list, or a RawCmds view (built on first use)
    data: bytes
    db: int  # target db (mapping applied)
    first_index: int
    txn: bool = False
    db_after: int | None = None  # a transaction with a SELECT inside leaves this db selected


@dataclass
class SourceStats:
    commands: int = 0  # commands emitted (including skipped-for-resume ones)
    skipped_syncslots: int = 0
    fast_bails: list[str] = field(default_factory=list)  # where the fast scanner stopped
    unknown: Counter[str] = field(default_factory=Counter)
    dropped_import_commands: int = 0
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dbs: Counter[int] = field(default_factory=Counter)  # commands per target db
    files: list[str] = field(default_factory=list)


class RangeReader:
    """Read byte ranges of one input file, moving forward only."""

    def __init__(self, path: str) -> None:
        self.f: BinaryIO = open_input(path)
        self.pos = 0
        self.seekable = self.f.seekable() and not path.endswith(".lz4")

    def read(self, offset: int, size: int) -> bytes:
        if offset != self.pos:
            if self.seekable or offset < self.pos:
                self.f.seek(offset)
            else:
                self.f.read(offset - self.pos)
        data = self.f.read(size)
        self.pos = offset + len(data)
        return data

    def close(self) -> None:
        self.f.close()


def _classify(name: bytes, known: Callable[[bytes], bool], remaps: bool) -> int:
    upper = name.upper()
    if remaps and upper in _DB_ARG_COMMANDS:
        return _DBARG
    if upper == b"SELECT":
        return _SELECT
    if upper == b"MULTI":
        return _MULTI
    if upper == b"CLUSTER":
        return _CLUSTER
    return _OK if known(name) else _UNKNOWN


class Source:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        map_db: Callable[[int], int] = lambda db: db,
        known: Callable[[bytes], bool] = lambda name: True,
        verify_checksum: bool = True,
        skip: int = 0,
        remaps: bool = False,
        fast: bool = True,
        max_run: int = 1 << 30,
    ) -> None:
        self.path = path
        self.max_run = max(1, max_run)  # commands per raw segment (checkpoint/rate granularity)
        self._merged: dict[int, set[int]] = {}  # target db -> source dbs written into it
        self._hazards: dict[str, list[str]] = {}  # FLUSHDB/SWAPDB/MOVE on merged dbs
        self.fast = fast  # RESP files through tools.replay_fastscan
        self.remaps = remaps  # map_db is not the identity: db arguments are mapped too
        self.map_db = map_db
        self.known = known
        self.verify_checksum = verify_checksum
        self.skip = skip
        self.stats = SourceStats()
        self._codes: dict[bytes, int] = {}
        self._raw: RangeReader | None = None
        self._imports: dict[bytes, tuple[list[tuple[int, int]], list[tuple[int, Cmd]]]] = {}
        self._index = 0
        self._file_size = 0
        self.at_skip: Cmd | None = None  # the last command --resume skipped
        self.input_done = 0  # input bytes consumed (finished files + offset in the current one)
        self._file_base = 0

    # -- public ------------------------------------------------------------------------------
    def segments(self) -> Iterator[Segment]:
        # the argv lists of a run live until it is sent: with the default threshold the cyclic
        # GC scans (and promotes) them over and over, a fifth of the fast path's time
        threshold = gc.get_threshold()
        gc.set_threshold(max(threshold[0], GC_THRESHOLD), *threshold[1:])
        try:
            yield from self._segments()
        finally:
            gc.set_threshold(*threshold)
            if self._raw is not None:
                self._raw.close()

    # -- internals ---------------------------------------------------------------------------
    def _segments(self) -> Iterator[Segment]:
        files = input_files(self.path)
        gen: list[Cmd] = []
        gen_db = [0]
        for i, f in enumerate(files):
            last = i == len(files) - 1
            name = str(f.path) if f.kind == "single" else f.name
            with open_input(f.path) as fh:
                head = fh.read(9)
                fmt = "empty" if not head else "resp"
                if head.startswith((b"REDIS", b"VALKEY")):
                    fmt = "rdb"
                self._start_file(f, fmt, name)
                if fmt == "resp" and self.fast:
                    fh.seek(0)
                    bail = yield from self._fast_file(fh, name)
                    if bail is None:
                        continue
                    self.stats.fast_bails.append(f"{name} offset {bail.offset}: {bail.reason}")
                    skip_before: int = bail.offset
                elif fmt == "empty":
                    continue
                else:
                    skip_before = 0
            batches = read_aof_batches(
                f.path, verify_checksum=self.verify_checksum, allow_torn_tail=True
            )
            yield from self._batches(batches, gen, gen_db, name, last, skip_before)
            if gen:  # an RDB base's commands go before the next file's
                yield from self._emit_generated(list(gen), gen_db[0])
                gen.clear()
        if gen:
            yield from self._emit_generated(list(gen), gen_db[0])
        for name, where in self._hazards.items():
            self.stats.warnings.append(
                f"{name} ran {len(where)} time(s) in a database that --flatten-db/--map-db "
                f"merged with others (first: {where[0]}): on the target it acts on the merged "
                "keys of every source database, not only its own"
            )
        for job, (_, held) in self._imports.items():
            self.stats.dropped_import_commands += len(held)
            self.stats.notes.append(
                f"slot import {job.decode(errors='replace')} never finished: its "
                f"{len(held)} command(s) were not replayed (a restarted valkey-server drops them)"
            )

    def _start_file(self, f: InputFile, fmt: str, name: str) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        self.stats.files.append(f.name)
        self._file_base = self.input_done = self._file_base + (
            self._file_size if self.stats.files[:-1] else 0
        )
        self._file_size = f.path.stat().st_size
        if fmt != "empty":
            self._raw = RangeReader(str(f.path))

    def _scan_code(self, name: bytes) -> int:
        code = self._code(name)
        if code == _OK:
            return EXEC if name.upper() == b"EXEC" else PLAIN
        return {_SELECT: SELECT, _MULTI: MULTI}.get(code, OTHER)

    def _fast_file(self, fh: BinaryIO, name: str) -> Generator[Segment, None, Bail | None]:
        """A RESP file through the fast scanner; returns its Bail, if any."""
        map_db = self.map_db
        for out in scan(fh, name, self._scan_code, self._imports):
            if type(out) is Run:
                runs = [out] if len(out.cmds) <= self.max_run else split_run(out, self.max_run)
                for r in runs:
                    cmds = r.cmds
                    db = map_db(cmds.db)
                    if self.remaps:
                        self._fed(cmds.db, db)
                    yield from self._finish(Segment(cmds, r.data, db, self._index))
            elif type(out) is Bail:
                return out
            else:
                assert isinstance(out, list)
                yield from self._commands(out)
        return None

    def _batches(
        self, batches: Iterator[list[AofItem]], gen: list[Cmd], gen_db: list[int], name: str,
        last: bool, skip_before: int,
    ) -> Iterator[Segment]:  # fmt: skip
        """One file through the exact reader (``skip_before``: the fast scanner's part)."""
        for batch in batches:
            first = batch[0]
            if type(first) is AofCommand:
                if gen:
                    yield from self._emit_generated(list(gen), gen_db[0])
                    gen.clear()
                cmds: list[AofCommand] = batch  # type: ignore[assignment]
                if skip_before:
                    if first.offset < skip_before:
                        cmds = [c for c in cmds if c.offset >= skip_before]
                        if not cmds:
                            continue
                    else:
                        skip_before = 0
                for c in cmds:
                    c.file = name
                yield from self._commands(cmds)
            elif isinstance(first, AofRecord):
                for item in batch:
                    assert isinstance(item, AofRecord)
                    ev = item.event
                    if isinstance(ev, KeyRecord):
                        db = self.map_db(ev.db)
                        if self.remaps:
                            self._fed(ev.db, db)
                        if gen and db != gen_db[0]:
                            yield from self._emit_generated(list(gen), gen_db[0])
                            gen.clear()
                        gen_db[0] = db
                        for argv in record_commands(ev):
                            gen.append(GenCmd(argv, name, ev.offset or 0, 0))
                    elif isinstance(ev, FunctionLibrary):
                        gen.append(GenCmd([b"FUNCTION", b"LOAD", ev.code], name, 0, 0))
                    elif isinstance(ev, SlotImport):
                        self._imports[ev.job_name] = (list(ev.ranges), [])
                    if len(gen) >= SEGMENT_MAX:
                        yield from self._emit_generated(list(gen), gen_db[0])
                        gen.clear()
            elif isinstance(first, TornTail):
                t = first
                what = "incomplete MULTI/EXEC" if t.kind == "multi" else "truncated command"
                if not last:
                    raise TruncatedError(
                        f"Fatal error: {NOT_LAST_FILE} ({t.detail})", file=name, offset=t.offset
                    )
                self.stats.warnings.append(
                    f"{name}: {what} at offset {t.offset} not replayed, as valkey-server "
                    f"(aof-load-truncated yes) would not load it ({t.detail})"
                )

    def _code(self, name: bytes) -> int:
        code = self._codes.get(name)
        if code is None:
            code = self._codes[name] = _classify(name, self.known, self.remaps)
        return code

    def _commands(self, batch: list[AofCommand]) -> Iterator[Segment]:
        first = batch[0]
        code = self._code(first.argv[0])
        if code == _SELECT:
            return  # later commands carry their db
        if code == _MULTI:
            yield from self._transaction(batch)
            return
        db = self.map_db(first.db)
        if self.remaps:
            self._fed(first.db, db)
        run: list[Cmd] = []
        expect = -1
        codes = self._codes
        importing = bool(self._imports)
        for c in batch:
            found = codes.get(c.argv[0])
            code = self._code(c.argv[0]) if found is None else found
            if code == _OK and not (importing and self._hold(c, db)):
                if c.offset != expect and run:
                    yield from self._emit_raw(run, db)
                    run = []
                run.append(c)
                expect = c.offset + c.size
                continue
            if run:
                yield from self._emit_raw(run, db)
                run = []
            if code == _CLUSTER:
                yield from self._cluster(c)
                importing = bool(self._imports)
            elif code == _UNKNOWN:
                self.stats.unknown[c.argv[0].decode(errors="replace").lower()] += 1
            elif code == _DBARG:
                self._hazard(c, first.db, db)
                argv = self._map_db_args(c.argv, db)
                if argv is not None:
                    g = GenCmd(argv, c.file, c.offset, c.size)
                    yield from self._emit_generated([g], db)
            elif code == _SELECT:  # pragma: no cover - the reader ends batches at SELECT
                pass
        if run:
            yield from self._emit_raw(run, db)

    def _fed(self, src: int, db: int) -> None:
        merged = self._merged.get(db)
        if merged is None:
            self._merged[db] = {src}
        elif src not in merged:
            merged.add(src)

    def _hazard(self, c: Cmd, src: int, db: int) -> None:
        """FLUSHDB/SWAPDB/MOVE in a target db holding keys of other source dbs: warn."""
        name = c.argv[0].upper()
        if name not in _MERGE_HAZARDS:
            return
        dbs = {db}
        if name == b"SWAPDB" and len(c.argv) == 3:
            with contextlib.suppress(ValueError):
                dbs |= {self.map_db(int(c.argv[1])), self.map_db(int(c.argv[2]))}
        others = sorted({s for d in dbs for s in self._merged.get(d, ())} - {src})
        if others:
            self._hazards.setdefault(name.decode(), []).append(
                f"{c.file} offset {c.offset}, source db {src} into db {db}, which holds "
                f"keys of source db(s) {', '.join(map(str, others))}"
            )

    def _map_db_args(self, argv: list[bytes], db: int) -> list[bytes] | None:
        """MOVE/COPY ... DB/SWAPDB with their db arguments mapped; None when the command
        became a no-op (a MOVE into the db it runs in, after --flatten-db or --map-db)."""
        out = list(argv)
        name = argv[0].upper()
        try:
            if name == b"MOVE" and len(argv) == 3:
                out[2] = b"%d" % self.map_db(int(argv[2]))
                if int(out[2]) == db:
                    self.stats.notes.append(
                        f"MOVE {argv[1].decode(errors='replace')} {argv[2].decode()} became a "
                        "no-op after the database mapping and was not sent"
                    )
                    return None
            elif name == b"SWAPDB" and len(argv) == 3:
                out[1] = b"%d" % self.map_db(int(argv[1]))
                out[2] = b"%d" % self.map_db(int(argv[2]))
            elif name == b"COPY":
                for i in range(3, len(argv) - 1):
                    if argv[i].upper() == b"DB":
                        out[i + 1] = b"%d" % self.map_db(int(argv[i + 1]))
        except ValueError:
            return out
        return out

    def _hold(self, c: AofCommand, db: int) -> bool:
        """Hold back a command of an open slot import; True when held."""
        cmd = lookup(c.argv)
        if cmd is None:
            return False
        keys = cmd.key_positions(c.argv)
        if not keys:
            return False
        slot = key_slot(c.argv[keys[0]])
        for ranges, held in self._imports.values():
            if any(a <= slot <= b for a, b in ranges):
                held.append((db, c))
                return True
        return False

    def _cluster(self, c: AofCommand) -> Iterator[Segment]:
        argv = c.argv
        if len(argv) < 2 or argv[1].upper() != b"SYNCSLOTS":
            yield from self._emit_raw([c], self.map_db(c.db))
            return
        self.stats.skipped_syncslots += 1
        mark = parse_syncslots(argv)
        if mark is None:
            return
        if mark.kind == "establish":
            self._imports[mark.job] = (list(mark.ranges or []), [])
            return
        _, held = self._imports.pop(mark.job, ([], []))
        if mark.state == b"SUCCESS":
            by_db: dict[int, list[Cmd]] = {}
            for db, cmd in held:
                by_db.setdefault(db, []).append(cmd)
            for db, cmds in by_db.items():
                for i in range(0, len(cmds), SEGMENT_MAX):
                    yield from self._emit_generated(cmds[i : i + SEGMENT_MAX], db, reencode=False)
        else:
            self.stats.dropped_import_commands += len(held)
            self.stats.notes.append(
                f"{c.file}: slot import {mark.job.decode(errors='replace')} failed: its "
                f"{len(held)} command(s) were not replayed"
            )

    def _transaction(self, batch: list[AofCommand]) -> Iterator[Segment]:
        """A MULTI ... EXEC block from the reader: one segment, sent as one unit."""
        db = self.map_db(batch[0].db)
        inner: list[Cmd] = []
        parts: list[bytes] = [encode_command([b"MULTI"])]
        cur = db
        for c in batch[1:-1]:
            code = self._code(c.argv[0])
            if code == _UNKNOWN:
                self.stats.unknown[c.argv[0].decode(errors="replace").lower()] += 1
                continue
            if code == _CLUSTER and len(c.argv) > 1 and c.argv[1].upper() == b"SYNCSLOTS":
                self.stats.skipped_syncslots += 1
                continue
            if code == _SELECT:
                cur = self.map_db(c.db)
                g = GenCmd([b"SELECT", b"%d" % cur], c.file, c.offset, c.size)
                parts.append(encode_command(g.argv))
                inner.append(g)
                continue
            if self.remaps:
                self._fed(c.db, cur)
            if code == _DBARG:
                self._hazard(c, c.db, cur)
                argv = self._map_db_args(c.argv, cur)
                if argv is None:
                    continue
                g = GenCmd(argv, c.file, c.offset, c.size)
                parts.append(encode_command(argv))
                inner.append(g)
                continue
            parts.append(encode_command(c.argv))
            inner.append(c)
        parts.append(encode_command([b"EXEC"]))
        if not inner:
            return
        seg = Segment(inner, b"".join(parts), db, self._index, txn=True)
        if cur != db:
            seg.db_after = cur
        yield from self._finish(seg)

    def _emit_raw(self, run: list[Cmd], db: int) -> Iterator[Segment]:
        assert self._raw is not None
        first = run[0]
        last = run[-1]
        data = self._raw.read(first.offset, last.offset + last.size - first.offset)
        yield from self._finish(Segment(run, data, db, self._index))

    def _emit_generated(
        self, cmds: list[Cmd], db: int, *, reencode: bool = True
    ) -> Iterator[Segment]:
        parts = []
        for c in cmds:
            enc = encode_command(c.argv)
            if reencode:
                c.size = len(enc)
            parts.append(enc)
        yield from self._finish(Segment(cmds, b"".join(parts), db, self._index))

    def _finish(self, seg: Segment) -> Iterator[Segment]:
        n = len(seg.cmds)
        cmds = seg.cmds
        if type(cmds) is RawCmds:
            self.input_done = self._file_base + cmds.end
        else:
            last = cmds[-1]
            self.input_done = self._file_base + last.offset + last.size
        if seg.first_index < self.skip <= seg.first_index + n:
            self.at_skip = seg.cmds[self.skip - seg.first_index - 1]
        self._index += n
        self.stats.commands += n
        self.stats.dbs[seg.db] += n
        if self._index <= self.skip:
            return
        if seg.first_index < self.skip:  # cut the part --resume already replayed
            if seg.txn:  # pragma: no cover - a checkpoint never falls inside a transaction
                raise AssertionError("checkpoint inside a transaction")
            cut = self.skip - seg.first_index
            drop = sum(c.size for c in seg.cmds[:cut])
            seg = Segment(list(seg.cmds[cut:]), seg.data[drop:], seg.db, self.skip)
        yield seg
