"""The RDB side of ``valkey-aof inspect`` (a plain RDB file, or an AOF's RDB preamble): keys and
bytes per db and type, the biggest keys, expiries, volatile hash fields, AUX fields."""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import TYPE_CHECKING, Any

from persistence.fileio import open_input

if TYPE_CHECKING:
    from persistence.records import AuxField, FunctionLibrary, HashValue, KeyRecord, SlotImport

    Kinds = tuple[
        type[KeyRecord], type[AuxField], type[FunctionLibrary], type[SlotImport], type[HashValue]
    ]

TOP_N = 10


def text_of(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


_text = text_of


def _kinds() -> Kinds:
    """The record types, imported at the first RDB event: an all-RESP AOF never needs them
    (persistence.records costs ~10 ms of every start-up)."""
    from persistence.records import AuxField, FunctionLibrary, HashValue, KeyRecord, SlotImport

    return KeyRecord, AuxField, FunctionLibrary, SlotImport, HashValue


class RdbStats:
    """Keys and bytes per db and type, biggest keys, expiries, volatile hash fields, AUX."""

    def __init__(self, top_n: int = TOP_N) -> None:
        self.top_n = top_n
        self.keys = 0
        self.per: dict[tuple[int, str], list[int]] = {}
        self.biggest: list[tuple[int, int, bytes, int, str]] = []  # min-heap of top_n
        self.expires = 0
        self.expire_min: int | None = None
        self.expire_max: int | None = None
        self.volatile_fields = 0
        self.volatile_hashes = 0
        self.aux: dict[str, str] = {}
        self.functions = 0
        self.slot_imports: list[dict[str, Any]] = []
        self._prev: KeyRecord | None = None
        self._n = 0
        self._kinds: Kinds | None = None

    def add(self, ev: object) -> None:
        kinds = self._kinds
        if kinds is None:
            kinds = self._kinds = _kinds()
        off = getattr(ev, "offset", None)
        if self._prev is not None and off is not None:
            self._close(off)
        if isinstance(ev, kinds[0]):
            self._prev = ev
        elif isinstance(ev, kinds[1]):
            self.aux[_text(ev.key)] = _text(ev.value)
        elif isinstance(ev, kinds[2]):
            self.functions += 1
        elif isinstance(ev, kinds[3]):
            self.slot_imports.append({"job": _text(ev.job_name), "slot_ranges": ev.ranges})

    def finish(self, end: int) -> None:
        if self._prev is not None:
            self._close(end)

    def _close(self, end: int) -> None:
        r = self._prev
        assert r is not None and r.offset is not None and self._kinds is not None
        self._prev = None
        size = end - r.offset
        self.keys += 1
        t = r.type_name
        e = self.per.get((r.db, t))
        if e is None:
            e = self.per[(r.db, t)] = [0, 0]
        e[0] += 1
        e[1] += size
        if r.expire_at_ms is not None:
            self.expires += 1
            ms = r.expire_at_ms
            self.expire_min = ms if self.expire_min is None else min(self.expire_min, ms)
            self.expire_max = ms if self.expire_max is None else max(self.expire_max, ms)
        v = r.value
        if isinstance(v, self._kinds[4]) and v.expires:
            self.volatile_hashes += 1
            self.volatile_fields += len(v.expires)
        self._n += 1
        item = (size, -self._n, r.key, r.db, t)
        if len(self.biggest) < self.top_n:
            heapq.heappush(self.biggest, item)
        elif item > self.biggest[0]:
            heapq.heapreplace(self.biggest, item)

    def result(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "per_db_type": [
                {"db": db, "type": t, "keys": n, "bytes": b}
                for (db, t), (n, b) in sorted(self.per.items())
            ],
            "biggest_keys": [
                {"key": _text(k), "db": db, "type": t, "bytes": s}
                for s, _, k, db, t in sorted(self.biggest, reverse=True)
            ],
            "expires": {
                "keys": self.expires,
                "first_ms": self.expire_min,
                "last_ms": self.expire_max,
            },
            "volatile_hash_fields": {
                "hashes": self.volatile_hashes,
                "fields": self.volatile_fields,
            },
            "aux": self.aux,
            "functions": self.functions,
            "slot_imports": self.slot_imports,
        }


def is_plain_rdb(p: Path) -> bool:
    with open_input(p) as f:
        head = f.read(9)
    return head.startswith((b"REDIS", b"VALKEY")) and not p.name.endswith(".aof")


def inspect_rdb(p: Path, rdb: RdbStats, files: list[dict[str, Any]]) -> None:
    from persistence.rdb.reader import RdbReader  # only for a plain RDB file

    size = p.stat().st_size
    with open_input(p) as f:
        reader = RdbReader(f, file=p.name)
        files.append(
            {"name": p.name, "kind": "rdb", "format": "rdb", "size": size, "seq": None,
             "rdb_version": reader.header.version}
        )  # fmt: skip
        for ev in reader:
            rdb.add(ev)
        rdb.finish(reader.end_offset - 9)
