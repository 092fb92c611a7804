"""The plain-string fast paths (persistence/rdb/runs.py) give exactly what the general paths give:
``RdbReader(string_runs=True)`` vs one KeyRecord per key (contents, errors at every cut),
``Database.load_strings`` vs ``load_record`` one by one, ``RdbWriter.write_items`` vs
``write_record`` (same bytes), and a real valkey-server loads what the fast writer wrote."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pytest
from realserver import real_server

from engine.config import Config
from engine.engine import Engine
from engine.keyspace import Keyspace
from engine.server import snapshot as snap
from engine.types.base import type_info
from persistence.errors import PersistenceError
from persistence.rdb.reader import RdbFilter, RdbReader, read_rdb
from persistence.rdb.writer import RdbWriteOptions, RdbWriter
from persistence.records import (
    HashValue,
    KeyRecord,
    ListValue,
    RdbEvent,
    StringRecords,
    StringValue,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "valkey-9.1.2"
FILES = [
    FIXTURES / "rdb_all_comp" / "dump.rdb",
    FIXTURES / "rdb_all_nocomp" / "dump.rdb",
    FIXTURES / "rdb_lzf" / "dump.rdb",
    FIXTURES / "cluster_node" / "dump.rdb",
]


def _strings(rng: random.Random, n: int) -> list[KeyRecord]:
    """String keys in every form the writer uses: int encodings, 6/14/32-bit lengths, LZF."""
    forms = [
        lambda i: b"%d" % i,
        lambda i: b"-%d" % (i * 7919),
        lambda i: b"%d" % (i * 10**8),
        lambda i: b"v%d" % i,
        lambda i: b"x" * rng.randint(50, 90),
        lambda i: bytes(rng.randrange(256) for _ in range(rng.randint(64, 300))),
        lambda i: b"ab" * rng.randint(10, 9000),
        lambda i: b"",
        lambda i: b"007",
    ]
    recs = []
    for i in range(n):
        key = rng.choice([b"k%d" % i, b"%d" % i, b"key:" + b"z" * rng.randint(0, 80) + b"%d" % i])
        value = rng.choice(forms)(i)
        ttl = rng.choice([None, None, 1_900_000_000_000 + i])
        recs.append(KeyRecord(i % 3, key, StringValue(value), ttl))
    return recs


def _rdb_bytes(records: list[KeyRecord], *, compression: bool = True) -> bytes:
    buf = io.BytesIO()
    w = RdbWriter(buf, RdbWriteOptions(compression=compression, ctime=1))
    for db in sorted({r.db for r in records}):
        w.begin_db(db, keys=0, expires=0)
        for r in records:
            if r.db == db:
                w.write_record(r)
                if r.key.endswith(b"5"):  # break runs with another type
                    w.write_record(KeyRecord(db, r.key + b":l", ListValue([b"a", b"1"])))
    w.finish()
    return buf.getvalue()


def _flat(events: list[RdbEvent]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for ev in events:
        if isinstance(ev, StringRecords):
            ttl = dict(ev.expires)
            for i, (k, v) in enumerate(zip(ev.keys, ev.values)):
                out.append((ev.db, k, StringValue(v), ttl.get(i)))
        elif isinstance(ev, KeyRecord):
            out.append((ev.db, ev.key, ev.value, ev.expire_at_ms))
        else:
            out.append((ev,))
    return out


def _read(data: bytes, mode: str) -> tuple[list[RdbEvent], str | None]:
    """``general``: the per-record loop (a filter that takes every key turns the scan off);
    ``records``: scanned runs as KeyRecords; ``runs``: StringRecords events."""
    events: list[RdbEvent] = []
    flt = RdbFilter() if mode == "general" else None
    try:
        for ev in RdbReader(io.BytesIO(data), string_runs=mode == "runs", filter=flt):
            events.append(ev)
    except PersistenceError as e:
        return events, f"{type(e).__name__} {e}"
    return events, None


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.parent.name)
def test_runs_give_the_same_contents_on_real_files(path: Path) -> None:
    general = list(read_rdb(path, filter=RdbFilter()))
    records = list(read_rdb(path))
    runs = list(read_rdb(path, string_runs=True))
    assert records == general
    assert _flat(runs) == _flat(general)


@pytest.mark.parametrize("compression", [True, False])
def test_runs_give_the_same_contents_on_every_string_form(compression: bool) -> None:
    data = _rdb_bytes(_strings(random.Random(7), 600), compression=compression)
    general, err = _read(data, "general")
    records, err2 = _read(data, "records")
    runs, err3 = _read(data, "runs")
    assert err is None and err2 is None and err3 is None
    assert any(isinstance(e, StringRecords) and len(e.keys) > 1 for e in runs)
    assert records == general
    assert _flat(runs) == _flat(general)


def test_runs_report_the_same_error_at_every_cut_and_corruption() -> None:
    data = _rdb_bytes(_strings(random.Random(3), 40))
    rng = random.Random(5)
    cases = [data[:cut] for cut in range(9, len(data))]
    for _ in range(300):
        bad = bytearray(data)
        bad[rng.randrange(9, len(bad) - 8)] = rng.randrange(256)
        cases.append(bytes(bad))
    for case in cases:
        a, ea = _read(case, "general")
        b, eb = _read(case, "records")
        c, ec = _read(case, "runs")
        assert ea == eb == ec
        assert b == a and _flat(c) == _flat(a)


def _items(data: dict[bytes, Any]) -> list[tuple[bytes, Any]]:
    """Key order and values; engine collections compared through their records."""
    return [(k, v if type(v) is bytes else type_info(v).to_record(v)) for k, v in data.items()]


def _state(ks: Keyspace) -> list[tuple[Any, ...]]:
    return [
        (
            db.id,
            _items(db.data),
            dict(db.expires),
            sorted(db.volatile_keys),
            None if db.slot_keys is None else {s: list(k) for s, k in db.slot_keys.items()},
        )
        for db in ks.dbs
    ]


@pytest.mark.parametrize("cluster", [False, True])
def test_load_strings_is_load_record_in_order(cluster: bool) -> None:
    rng = random.Random(11)
    pre = [
        KeyRecord(0, b"old", StringValue(b"1"), 1_800_000_000_000),
        KeyRecord(0, b"h", HashValue([(b"f", b"v")], {b"f": 1_800_000_000_000})),
        KeyRecord(0, b"l", ListValue([b"a"])),
    ]
    for dups in (False, True):
        keys = [b"k%d" % i for i in range(200)]
        if dups:
            keys += [b"old", b"h", b"l", b"k3", b"k3", b"k4"]
        rng.shuffle(keys)
        values = [b"v%d" % rng.randrange(5) for _ in keys]
        expires = [(i, 1_900_000_000_000 + i) for i in range(len(keys)) if rng.random() < 0.4]
        a, b = Keyspace(), Keyspace()
        if cluster:
            a.enable_slot_index()
            b.enable_slot_index()
        for rec in pre:
            a.load_record(rec)
            b.load_record(rec)
        ttl = dict(expires)
        for i, (k, v) in enumerate(zip(keys, values)):
            a.load_record(KeyRecord(0, k, StringValue(v), ttl.get(i)))
        b.load_strings(StringRecords(0, keys, values, expires))
        assert _state(b) == _state(a)


def _engine(records: list[KeyRecord]) -> Engine:
    e = Engine(Config())
    for r in records:
        e.keyspace.load_record(r)
    return e


def _mixed() -> list[KeyRecord]:
    recs = _strings(random.Random(9), 400)
    recs += [r for r in read_rdb(FILES[0]) if isinstance(r, KeyRecord)]
    return recs


def test_write_items_writes_what_write_record_writes() -> None:
    e = _engine(_mixed())
    for compression in (True, False):
        opts = RdbWriteOptions(compression=compression, ctime=1)
        fast, slow = io.BytesIO(), io.BytesIO()
        wf, ws = RdbWriter(fast, opts), RdbWriter(slow, opts)
        for db in e.keyspace.dbs:
            if not db.data:
                continue
            for w in (wf, ws):
                w.begin_db(db.id, keys=len(db.data), expires=len(db.expires))
            wf.write_items(db.id, db.data.items(), db.expires, snap._to_value)
            for key, value in db.data.items():
                rec = type_info(value).to_record(value)
                ws.write_record(KeyRecord(db.id, key, rec, db.expires.get(key)))
            assert wf.offset == ws.offset
        wf.finish()
        ws.finish()
        assert fast.getvalue() == slow.getvalue()


def _keys(path: Path) -> list[tuple[Any, ...]]:
    """Strings in full (db, key, value, TTL); other keys as (db, key, type, TTL)."""
    out = []
    for x in _flat(list(read_rdb(path))):
        if len(x) > 1:
            value = x[2].value if isinstance(x[2], StringValue) else x[2].type_name
            out.append((x[0], x[1], value, x[3]))
    return sorted(out)


@pytest.mark.real
def test_valkey_loads_the_fast_writers_rdb(tmp_path: Path) -> None:
    records = _mixed()
    e = _engine(records)
    snap.write_rdb_base(e, tmp_path / "dump.rdb")
    ours = _keys(tmp_path / "dump.rdb")
    with real_server(tmp_path) as srv:
        c = srv.client()
        assert c.dbsize() == len(e.keyspace.dbs[0].data)
        c.save()
    assert _keys(tmp_path / "dump.rdb") == ours
    # and our loader reads it back into the same keyspace
    back = Engine(Config())
    for ev in read_rdb(tmp_path / "dump.rdb", string_runs=True):
        if isinstance(ev, StringRecords):
            back.keyspace.load_strings(ev)
        elif isinstance(ev, KeyRecord):
            back.keyspace.load_record(ev)

    def strings(ks: Keyspace) -> list[tuple[Any, ...]]:
        # (collections come back in the real server's hashtable order: compared above by type)
        return [(db.id, {k: v for k, v in db.data.items() if type(v) is bytes}, db.expires)
                for db in ks.dbs]  # fmt: skip

    assert strings(back.keyspace) == strings(e.keyspace)
