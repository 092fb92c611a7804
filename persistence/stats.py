"""Streaming statistics over the readers: the data behind ``valkey-aof inspect``.

How it works: one pass over :func:`persistence.aof.reader.read_aof_runs` (or the RDB reader,
persistence/stats_rdb.py) feeds fixed-size structures, so memory stays constant whatever the
input size: counters per command name, db and slot (at most 16384), and the summaries of
``persistence/sketches.py``: a Misra-Gries summary for the top keys by writes and by bytes
(counts are lower bounds, exact while fewer than ``capacity`` keys were seen), an exact set of
keys touched up to a limit and adaptive sampling beyond it, and a timeline of ``#TS`` minutes
whose bucket width doubles when it grows too long. Where the keys of a command are is not known
here (persistence imports nothing of ours): the caller passes ``key_positions`` and
``single_key``; ``valkey-aof inspect`` passes tools/keyspecs.py (the command table's key specs).

Fast paths, each giving exactly what the command-by-command path gives (tests/test_inspect_fast):
a :class:`CommandRun` of commands whose only key is argv[1] is counted column-wise (slots, keys,
top keys: one C-level pass each); its raw RESP tells whether every command has the same size
(:func:`one_size`: one strided slice) and then the same name and argc (:func:`same_head`: a
strided slice per byte of the first command's head, else one C scan), and then the keys are
one strided slice of the run's flattened arguments (``CommandRun.flat``), or, in a shaped run
(one layout, proved by persistence/aof/shapes.py), one struct unpack of its bytes without any
argument list (``CommandRun.column``, :meth:`AofStats._add_shaped`); while every command so
far had one size, the top keys by bytes are those by writes times that size (kept as the factor
``_bytes_factor``, made real at the first other size, and kept so again once a prune empties
both sketches at one check place, as in a load of new keys whose sizes grow: ``_tie``). The
slots are counted by CRC16, in batches of :data:`CRC_BATCH` keys (the counter stays in the CPU
caches), and folded into slots once, at the end (:func:`slot_counts`).
"""

from __future__ import annotations

import os
from array import array
from binascii import crc_hqx
from collections import Counter
from collections.abc import Callable
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

from persistence.aof.manifest import find_manifest, read_manifest
from persistence.aof.reader import (
    AofFileInfo,
    AofRecord,
    TornTail,
    parse_syncslots,
    read_aof_runs,
)
from persistence.aof.resp_scan import AofCommand, CommandRun
from persistence.errors import PersistenceError
from persistence.sketches import (
    EXACT_KEYS,
    TIMELINE_BUCKETS,
    DistinctCounter,
    HeavyHitters,
    Timeline,
)
from persistence.stats_rdb import TOP_N, RdbStats, inspect_rdb, is_plain_rdb, text_of
from persistence.stats_runs import one_size, same_head, slot_counts

KeyPositions = Callable[[list[bytes]], list[int]]
Progress = Callable[[int], None]

__all__ = [
    "EXACT_KEYS",
    "TIMELINE_BUCKETS",
    "AofStats",
    "DistinctCounter",
    "HeavyHitters",
    "RdbStats",
    "Timeline",
    "inspect_path",
]

SCHEMA = "valkey-aof.inspect/1"
MAX_NAMES = 1000  # command names kept apart; the rest count as "(other)"
CRC_BATCH = 1 << 17  # CRC16s of keys counted at a time (512 KB waiting)
# the per-key statistics, each countable apart (AofStats ``parts``): persistence/stats_split.py
ALL_PARTS = frozenset({"slots", "distinct", "top"})
TTL_FORMS = ("PEXPIREAT", "SET PXAT", "HPEXPIREAT", "HSETEX PXAT", "HPERSIST", "HDEL", "UNLINK")


def default_key_positions(argv: list[bytes]) -> list[int]:
    """Without a command table: the first argument, if any."""
    return [1] if len(argv) > 1 else []


_text = text_of


def _file_entry(info: AofFileInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "kind": info.kind,
        "format": info.format,
        "rdb_version": info.rdb_version,
        "size": info.size,
        "seq": info.seq,
    }


class AofStats:
    """Accumulates everything ``inspect`` reports about commands (and an RDB part)."""

    def __init__(
        self,
        key_positions: KeyPositions = default_key_positions,
        top_n: int = TOP_N,
        single_key: Callable[[bytes], bool] | None = None,
        parts: frozenset[str] = ALL_PARTS,
        slot_bytes: tuple[int, int] = (-1, 1 << 62),
    ):
        self.key_positions = key_positions
        # which of the per-key statistics to count (ALL_PARTS): all of them, or a share that
        # persistence/stats_split.py merges with another process's share
        self.parts = parts
        self._slots = "slots" in parts
        self._distinct = "distinct" in parts
        self._top = "top" in parts
        # slots are counted for the keys added while lo < self.bytes <= hi (the commands' bytes
        # so far): two processes can each count one stretch of the stream
        self._slot_lo, self._slot_hi = slot_bytes
        self.single_key = single_key  # True when a command's only key is argv[1]
        self.top_n = top_n
        self.commands = 0
        self.bytes = 0
        # argv[0] as written -> [count, bytes, special, upper-case name]
        self.by_name: dict[bytes, list[Any]] = {}
        self.by_db: dict[int, list[int]] = {}
        # CRC16 or slot -> keys written (counted in C); folded to slots (& 0x3FFF) by result().
        # The CRCs wait in _crcs and are counted CRC_BATCH at a time (see _count_slots)
        self.slots: Counter[int] = Counter()
        self._crcs = array("I")  # "I", not "H": unsigned types skip PyArg_Parse per item
        self.keys = DistinctCounter()
        self.top_writes = HeavyHitters()
        self.top_bytes = HeavyHitters()
        self._bytes_factor = 0  # > 0: top_bytes is top_writes times this (see _add_keys)
        # while so: top_bytes.error is _bytes_error + (top_writes.error - _writes_error) * factor
        self._bytes_error = 0
        self._writes_error = 0
        self.ttl: dict[str, int] = dict.fromkeys(TTL_FORMS, 0)
        self.multi_blocks = 0
        self.multi_commands = 0
        self.multi_largest = 0
        self._in_multi = -1
        self.timeline = Timeline()
        self.imports: dict[str, dict[str, Any]] = {}
        self.rdb = RdbStats(top_n)

    def add_batch(self, batch: list[AofCommand]) -> None:
        by_name = self.by_name
        by_db = self.by_db
        kp = self.key_positions
        keys: list[bytes] = []
        sizes: list[int] = []
        kappend = keys.append
        sappend = sizes.append
        ts_prev: int | None = None
        ts_n = 0
        nbytes = 0
        for cmd in batch:
            argv = cmd.argv
            size = cmd.size
            nbytes += size
            entry = by_name.get(argv[0])
            if entry is None:
                entry = self._name_entry(argv[0])
            entry[0] += 1
            entry[1] += size
            d = by_db.get(cmd.db)
            if d is None:
                d = by_db[cmd.db] = [0, 0]
            d[0] += 1
            d[1] += size
            if entry[2]:  # a special form: MULTI/EXEC, TTL, SYNCSLOTS
                self._special(entry[3], argv, cmd)
            if entry[4]:  # the only key is argv[1] (most commands)
                if len(argv) > 1:
                    kappend(argv[1])
                    sappend(size)
            else:
                for i in kp(argv):
                    kappend(argv[i])
                    sappend(size)
            if cmd.timestamp is not None:
                if cmd.timestamp != ts_prev:
                    if ts_n:
                        self.timeline.add(ts_prev, ts_n)  # type: ignore[arg-type]
                    ts_prev, ts_n = cmd.timestamp, 0
                ts_n += 1
            if self._in_multi >= 0:
                self._in_multi += 1
        if ts_n:
            self.timeline.add(ts_prev, ts_n)  # type: ignore[arg-type]
        self.commands += len(batch)
        self.bytes += nbytes
        self._add_keys(keys, sizes)

    def add_run(self, run: CommandRun) -> None:
        """:meth:`add_batch` of a run, counted column-wise in C where the run allows."""
        shape = run.shape
        if shape is not None and self._in_multi < 0:  # one name, argc and size: no argvs
            entry = self.by_name.get(shape.name)
            if entry is None:
                entry = self._name_entry(shape.name)
            # the only key is argv[1], and no TTL form (a SET is one only with options)
            if entry[4] and (not entry[2] or (entry[3] == "SET" and shape.argc <= 3)):
                self._add_shaped(run, shape.argc, entry)
                return
        argvs = run.argvs
        n = len(argvs)
        size = one_size(run)  # > 0: every command has that size
        # every command has argv[0] and argc of the first (a few strided compares, or one scan)
        head = same_head(run, size)
        names = (argvs[0][0],) if head else set(map(_first, argvs))
        by_name = self.by_name
        entries = []
        for name in names:
            entry = by_name.get(name)
            entries.append(entry if entry is not None else self._name_entry(name))
        # MULTI/EXEC, TTL forms and SYNCSLOTS need each command, and so do keys not at argv[1]
        # (a SET is special only with options: PXAT)
        if any((e[2] and e[3] != "SET") or not e[4] for e in entries) or self._in_multi >= 0:
            self.add_batch(run.commands())
            return
        lens = (len(argvs[0]),) if head else set(map(len, argvs))
        sizes: list[int] | int = size if size > 0 else run.sizes()  # an int: all that size
        if len(entries) == 1:
            entries[0][0] += n
            entries[0][1] += run.size
        else:
            if isinstance(sizes, int):
                sizes = [sizes] * n
            for name, count in Counter(map(_first, argvs)).items():
                by_name[name][0] += count
            for name, z in zip(map(_first, argvs), sizes):
                by_name[name][1] += z
        if any(e[2] for e in entries) and max(lens) > 3:  # SETs with PXAT
            ttl = 0
            for argv in argvs:
                if len(argv) > 3 and by_name[argv[0]][2]:
                    ttl += any(a.upper() == b"PXAT" for a in argv[3:])
            self.ttl["SET PXAT"] += ttl
        self._tally(run, n)
        if min(lens) < 2:  # a command without a key
            if isinstance(sizes, int):
                sizes = [sizes] * n
            keys = [a[1] for a in argvs if len(a) > 1]
            sizes = [z for a, z in zip(argvs, sizes) if len(a) > 1]
        elif head and run.flat is not None:  # one argc: argument 1 of each, one C slice
            keys = run.flat[1 :: len(argvs[0])]
        else:
            keys = list(map(_second, argvs))
        self._add_keys(keys, sizes, self._braces(run))

    def _add_shaped(self, run: CommandRun, argc: int, entry: list[Any]) -> None:
        """:meth:`add_run` of a shaped run of single-key commands, without its argvs: counts
        from its size, the keys as one column of its bytes (``CommandRun.column``)."""
        n = run.size // run.step
        entry[0] += n
        entry[1] += run.size
        self._tally(run, n)
        if argc < 2:  # keyless
            return
        self._add_keys(run.column(1), run.step, self._braces(run))

    def _tally(self, run: CommandRun, n: int) -> None:
        """The ``n`` commands of ``run`` in the totals, its db and the timeline."""
        d = self.by_db.get(run.db)
        if d is None:
            d = self.by_db[run.db] = [0, 0]
        d[0] += n
        d[1] += run.size
        if run.timestamp is not None:
            self.timeline.add(run.timestamp, n)
        self.commands += n
        self.bytes += run.size

    def _braces(self, run: CommandRun) -> bool:
        """False when no key of ``run`` can hold a hash tag (no '{' in its bytes)."""
        raw = run.raw
        return self._slots and (
            raw is None or raw.find(b"{", run.raw_at, run.raw_at + run.size) != -1
        )

    def _add_keys(self, keys: list[bytes], sizes: list[int] | int, braces: bool = True) -> None:
        """Slots, keys touched and top keys for one batch, with the loops in C where possible.
        ``sizes``: the size of each key's command, or one size for all; ``braces``: False when
        no key holds a '{' (no hash tag)."""
        if not keys:
            return
        if self._slots and self._slot_lo < self.bytes <= self._slot_hi:
            self._add_slots(keys, braces)
        if self._distinct:
            self.keys.add_many(keys)
        if not self._top:
            return
        # while every key since both top-key sketches were last empty came with one same
        # command size w, the top keys by bytes are those by writes times w (same keys, same
        # prunes, counts times w; the error since then times w): kept as that factor, made
        # real when a batch has other sizes, and kept so again when a prune empties both at
        # one check place (as when the keys are all new) and the keys after it have one size
        tw = self.top_writes
        w = self._bytes_factor
        one = sizes if isinstance(sizes, int) and sizes > 0 else 0  # > 0: all that size
        if one and (w == 0 or w == one):
            tw.add_many(keys)
            self._bytes_factor = one
            return
        if one and w > 0 and not tw.counts:  # both empty: the factor starts again
            self._tie(one)
            tw.add_many(keys)
            return
        if w > 0:
            self.top_bytes = self._top_bytes()
        self._bytes_factor = -1
        start = tw.seen
        tw.add_many(keys)
        self.top_bytes.add_weights(keys, sizes)
        if one and tw.emptied_at == self.top_bytes.emptied_at > start:
            self._tie(one)

    def _tie(self, size: int) -> None:
        """From here on, top_bytes is top_writes times ``size`` (both are empty, or both were
        emptied at one check place and got the same keys since, weighing ``size`` each)."""
        self._bytes_error = self._top_bytes().error
        self._writes_error = self.top_writes.error
        self._bytes_factor = size

    def _add_slots(self, keys: list[bytes], braces: bool) -> None:
        if braces and b"{" in b"".join(keys):
            from persistence.crc import key_slot  # here only: crcmod costs every start-up

            self._crcs.extend(map(key_slot, keys))
        else:  # no hash tags: the slot is CRC16(key) & 0x3FFF (src/cluster.c keyHashSlot);
            # binascii's CRC-CCITT is CRC-16/XMODEM, one C call per key (tests/test_inspect_fast)
            self._crcs.extend(map(crc_hqx, keys, repeat(0)))  # masked in slot_counts
        if len(self._crcs) >= CRC_BATCH:
            self._count_slots()

    def _counted_slots(self) -> Counter[int]:
        self._count_slots()
        return self.slots

    def _count_slots(self) -> None:
        """Count the waiting CRCs into ``slots``. In bulk rather than a run at a time: the
        counter (up to 65,536 entries, a few MB) stays in the CPU caches for the whole batch,
        where the reader's parsing of each run would push it out (~60 ms of 1M keys)."""
        self.slots.update(self._crcs)
        self._crcs = array("I")

    def _top_bytes(self) -> HeavyHitters:
        w = self._bytes_factor
        if w <= 0:
            return self.top_bytes
        out = self.top_writes.scaled(w)
        out.error = self._bytes_error + (self.top_writes.error - self._writes_error) * w
        return out

    def _name_entry(self, name: bytes) -> list[Any]:
        upper = name.upper()
        text = _text(upper) if len(self.by_name) < MAX_NAMES else "(other)"
        special = upper in _SPECIAL_NAMES
        shared = next((v for k, v in self.by_name.items() if v[3] == text), None)
        single = self.single_key is not None and self.single_key(name)
        entry = shared if shared is not None else [0, 0, special, text, single]
        self.by_name[name] = entry
        return entry

    def _special(self, upper: str, argv: list[bytes], cmd: AofCommand) -> None:
        if upper == "MULTI":
            self.multi_blocks += 1
            self._in_multi = 0  # becomes 1 after MULTI itself
        elif upper == "EXEC":
            n = max(0, self._in_multi - 1)
            self.multi_commands += n
            self.multi_largest = max(self.multi_largest, n)
            self._in_multi = -1
        elif upper == "SET":
            if any(a.upper() == b"PXAT" for a in argv[3:]):
                self.ttl["SET PXAT"] += 1
        elif upper == "HSETEX":
            if len(argv) > 2 and argv[2].upper() == b"PXAT":
                self.ttl["HSETEX PXAT"] += 1
        elif upper in ("PEXPIREAT", "HPEXPIREAT", "HPERSIST", "HDEL", "UNLINK"):
            self.ttl[upper] += 1
        elif upper == "CLUSTER":
            mark = parse_syncslots(argv)
            if mark is None:
                return
            job = _text(mark.job)
            imp = self.imports.get(job)
            if imp is None:
                if len(self.imports) >= MAX_NAMES:
                    return
                imp = self.imports[job] = {"job": job, "outcome": "unfinished"}
            if mark.kind == "establish":
                imp["source"] = _text(mark.source or b"")
                imp["slot_ranges"] = mark.ranges or []
                imp["file"], imp["offset"] = cmd.file, cmd.offset
            else:
                imp["outcome"] = _text(mark.state or b"").lower() or "finished"
                imp["message"] = _text(mark.message or b"")

    def result(self) -> dict[str, Any]:
        names = {}
        for entry in self.by_name.values():
            names[entry[3]] = [entry[0], entry[1]]
        by_name = sorted(names.items(), key=lambda kv: (-kv[1][0], kv[0]))
        series = self.timeline.series()
        keys = self.keys.count()
        return {
            "totals": {
                "commands": self.commands,
                "bytes": self.bytes,
                "keys_touched": keys,
                "keys_touched_exact": self.keys.is_exact,
            },
            "commands": [{"name": n, "count": c, "bytes": b} for n, (c, b) in by_name],
            "dbs": [
                {"db": db, "commands": c, "bytes": b} for db, (c, b) in sorted(self.by_db.items())
            ],
            "slots": slot_counts(self._counted_slots()),
            "ttl_records": dict(self.ttl),
            "multi": {
                "blocks": self.multi_blocks,
                "commands": self.multi_commands,
                "largest": self.multi_largest,
            },
            "timeline": {
                "first": self.timeline.first,
                "last": self.timeline.last,
                "bucket_seconds": self.timeline.width,
                "writes": series,
            },
            "imports": list(self.imports.values()),
            "top_keys_by_writes": _top(self.top_writes, self.top_n),
            "top_keys_by_bytes": _top(self._top_bytes(), self.top_n),
            "rewrite_estimate": rewrite_estimate(self.commands, self.bytes, keys),
        }


def rewrite_estimate(commands: int, nbytes: int, keys: int) -> dict[str, Any]:
    avg = nbytes / commands if commands else 0.0
    estimate = min(nbytes, round(keys * avg))
    return {
        "current_bytes": nbytes,
        "estimated_bytes": estimate,
        "estimated_saving": nbytes - estimate,
        "method": "one command of the average size per key touched",
    }


_first = itemgetter(0)
_second = itemgetter(1)


_SPECIAL_NAMES = frozenset(
    {b"MULTI", b"EXEC", b"SET", b"HSETEX", b"PEXPIREAT", b"HPEXPIREAT", b"HPERSIST", b"HDEL"}
    | {b"UNLINK", b"CLUSTER"}
)


def _top(hh: HeavyHitters, n: int) -> dict[str, Any]:
    return {
        "approximate": hh.error > 0,
        "max_error": hh.error,
        "keys": [{"key": _text(k), "value": v} for k, v in hh.top(n)],
    }


def _history(path: Path) -> list[dict[str, Any]]:
    """History files the manifest still lists and stray temp files in the directory."""
    try:
        mp = find_manifest(path)
        if mp is None:
            return []
        m = read_manifest(mp)
    except PersistenceError:
        return []
    out = [
        {"name": h.name, "seq": h.seq, "kind": "history", "exists": (mp.parent / h.name).exists()}
        for h in m.history
    ]
    listed = {e.name for e in [*m.files(), *m.history]} | {mp.name}
    for c in sorted(mp.parent.iterdir()):
        if c.name not in listed and c.is_file():
            out.append({"name": c.name, "seq": None, "kind": "leftover", "exists": True})
    return out


def inspect_path(
    path: str | os.PathLike[str],
    *,
    key_positions: KeyPositions = default_key_positions,
    top_n: int = TOP_N,
    progress: Progress | None = None,
    single_key: Callable[[bytes], bool] | None = None,
    parts: frozenset[str] = ALL_PARTS,
    slot_bytes: tuple[int, int] = (-1, 1 << 62),
) -> dict[str, Any]:
    """The whole inspect report of ``path`` as plain data (the ``--json`` schema).

    Damaged input is reported in ``problem`` (file, offset, message) with the statistics of
    everything read before it; a torn tail of the last file is listed in ``torn``.
    ``parts`` and ``slot_bytes``: a share of the per-key statistics only (AofStats), for
    persistence/stats_split.py.
    """
    p = Path(path)
    stats = AofStats(key_positions, top_n, single_key, parts, slot_bytes)
    files: list[dict[str, Any]] = []
    out: dict[str, Any] = {"schema": SCHEMA, "path": str(p), "files": files, "problem": None}
    done = 0
    torn: list[dict[str, Any]] = []
    try:
        if p.is_file() and is_plain_rdb(p):
            out["input"] = "rdb"
            inspect_rdb(p, stats.rdb, files)
        else:
            out["input"] = "aof"
            out["history"] = _history(p)
            for batch in read_aof_runs(p, shaped=True):
                kind = type(batch[0])
                if kind is CommandRun or kind is AofCommand:  # commands (a MULTI block)
                    for run in batch:
                        if type(run) is CommandRun:
                            stats.add_run(run)
                        else:
                            stats.add_batch([run])  # type: ignore[list-item]
                    if progress is not None:
                        last = batch[-1]
                        progress(done + last.offset + last.size)  # type: ignore[union-attr]
                    continue
                for item in batch:
                    _other(item, stats, files, torn)
                if batch and isinstance(batch[0], AofFileInfo) and len(files) > 1:
                    done += files[-2]["size"]
            if files and files[-1]["format"] == "rdb":
                stats.rdb.finish(files[-1]["size"] - 9)
    except PersistenceError as e:
        out["problem"] = {"file": e.file, "offset": e.offset, "message": e.message}
    out["torn"] = torn
    out["aof"] = stats.result() if out["input"] == "aof" else None
    out["rdb"] = stats.rdb.result() if stats.rdb.keys or out["input"] == "rdb" else None
    return out


def _other(
    item: object,
    stats: AofStats,
    files: list[dict[str, Any]],
    torn: list[dict[str, Any]],
) -> None:
    if isinstance(item, AofFileInfo):
        if files and files[-1]["format"] == "rdb":
            stats.rdb.finish(files[-1]["size"] - 9)  # EOF opcode + CRC64 close the RDB part
        files.append(_file_entry(item))
    elif isinstance(item, AofRecord):
        stats.rdb.add(item.event)
    elif isinstance(item, TornTail):
        torn.append(
            {"file": item.file, "offset": item.offset, "kind": item.kind, "detail": item.detail}
        )
