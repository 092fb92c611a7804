"""The RDB reader against real Valkey 9.1.2 files, hand-built legacy payloads, and bad input."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import math
import re
import struct
from pathlib import Path
from typing import Any

import lz4.frame
import pytest
from conftest import REAL

from persistence.crc import crc64, key_slot
from persistence.errors import ChecksumError, FormatError, TruncatedError
from persistence.rdb import reader as reader_mod
from persistence.rdb.decode import (
    BlobError,
    intset_members,
    lp_items,
    lp_strings,
    ziplist_items,
    zipmap_pairs,
)
from persistence.rdb.glob import glob_match
from persistence.rdb.lzf import compress
from persistence.rdb.reader import RdbFilter, RdbReader, decode_value, read_rdb
from persistence.rdb.values import module_type_name
from persistence.records import (
    AuxField,
    DbResize,
    FunctionLibrary,
    HashValue,
    KeyRecord,
    ListValue,
    ModuleAux,
    SetValue,
    SlotImport,
    SlotInfo,
    StreamID,
    StreamValue,
    StringValue,
    ZSetValue,
)

DATASETS = ["rdb_all_nocomp", "rdb_all_comp", "rdb_lzf", "cluster_node"]
ALL_RDBS = sorted(REAL.glob("**/*.rdb"))


def keys_of(path: Path, **kw: Any) -> list[KeyRecord]:
    return [e for e in read_rdb(path, **kw) if isinstance(e, KeyRecord)]


# ---- comparison with expected.json ------------------------------------------------------------


def untext(v: Any) -> bytes:
    if isinstance(v, dict):
        return base64.b64decode(v["base64"])
    return str(v).encode()


def score(text: str) -> float:
    return float(text)  # "inf", "-inf", "2.5" all parse


# encodings that legitimately change on reload (src/object.c, src/t_list.c conversions)
RELOAD_ENCODING = {("string", "raw"), ("list", "quicklist"), ("hash", "hashtable")}


def check_record(rec: KeyRecord, exp: dict[str, Any]) -> None:
    assert rec.type_name == exp["type"], exp["key"]
    if (exp["type"], exp["encoding"]) not in RELOAD_ENCODING:
        assert rec.encoding == exp["encoding"], exp["key"]
    assert rec.expire_at_ms == exp["expire_at_ms"], exp["key"]
    v = rec.value
    if isinstance(v, StringValue):
        if "value_len" in exp:
            assert len(v.value) == exp["value_len"]
            assert hashlib.sha256(v.value).hexdigest() == exp["value_sha256"]
        else:
            assert v.value == untext(exp["value"])
    elif isinstance(v, ListValue):
        assert v.items == [untext(x) for x in exp["value"]]
    elif isinstance(v, SetValue):
        assert sorted(v.members) == sorted(untext(x) for x in exp["value"])
        assert len(set(v.members)) == len(v.members)
    elif isinstance(v, ZSetValue):
        got = {m: s for m, s in v.items}
        want = {untext(m): score(s) for m, s in exp["value"]}
        assert got == want
    elif isinstance(v, HashValue):
        assert dict(v.items) == {untext(f): untext(x) for f, x in exp["value"]}
        assert len(v.items) == len(exp["value"])
        assert v.expires == {untext(f): ms for f, ms in exp["field_expire_at_ms"]}
    elif isinstance(v, StreamValue):
        check_stream(v, exp)
    else:  # pragma: no cover
        raise AssertionError(type(v))


def check_stream(v: StreamValue, exp: dict[str, Any]) -> None:
    assert [(str(i), [(f, x) for f, x in fs]) for i, fs in v.entries] == [
        (i, [(untext(f), untext(x)) for f, x in fs]) for i, fs in exp["value"]
    ]
    meta = exp["stream_meta"]
    assert v.length == meta["length"]
    assert str(v.last_id) == meta["last-generated-id"]
    assert str(v.max_deleted_id) == meta["max-deleted-entry-id"]
    assert v.entries_added == meta["entries-added"]
    assert str(v.first_id) == meta["recorded-first-entry-id"]
    assert len(v.groups) == len(exp["stream_groups"])
    for g, eg in zip(v.groups, exp["stream_groups"]):
        assert g.name == untext(eg["name"])
        assert str(g.last_id) == eg["last_delivered_id"]
        assert g.entries_read == (-1 if eg["entries_read"] is None else eg["entries_read"])
        assert [[str(p.id), p.consumer, p.delivery_time_ms, p.delivery_count] for p in g.pel] == [
            [i, untext(c), t, n] for i, c, t, n in eg["pel"]
        ]
        pel = {str(p.id): p for p in g.pel}
        assert len(g.consumers) == len(eg["consumers"])
        for c, ec in zip(g.consumers, eg["consumers"]):
            assert c.name == untext(ec["name"])
            assert c.seen_time_ms == ec["seen_time_ms"]
            assert c.active_time_ms == ec["active_time_ms"]
            got = [
                [str(i), pel[str(i)].delivery_time_ms, pel[str(i)].delivery_count] for i in c.pel
            ]
            assert got == ec["pel"]


def expected_keys(dataset: str) -> dict[tuple[int, bytes], dict[str, Any]]:
    data = json.loads((REAL / dataset / "expected.json").read_text())
    out = {}
    for k in data["keys"]:
        if dataset == "cluster_node" and "after_rewrite" in k["key"]:
            continue  # written after the SAVE (see its expected.json notes)
        out[(k["db"], untext(k["key"]))] = k
    return out


@pytest.mark.parametrize("path", ALL_RDBS, ids=lambda p: str(p.relative_to(REAL)))
def test_every_fixture_rdb_reads(path: Path) -> None:
    with open(path, "rb") as f:
        r = RdbReader(f, file=str(path))
        events = list(r)
        assert r.header.magic == "VALKEY" and r.header.version == 80
        assert r.checksum is not None and r.checksum[0] == r.checksum[1] != 0
        assert r.end_offset == path.stat().st_size
        assert f.tell() == r.end_offset
    assert any(isinstance(e, AuxField) and e.key == b"valkey-ver" for e in events)


@pytest.mark.parametrize("dataset", DATASETS)
def test_values_match_expected(dataset: str) -> None:
    recs = keys_of(REAL / dataset / "dump.rdb")
    exp = expected_keys(dataset)
    got = {(r.db, r.key): r for r in recs}
    assert len(got) == len(recs)
    assert set(got) == set(exp)
    for k, rec in got.items():
        check_record(rec, exp[k])


def _walk_offsets(walk: Path) -> list[tuple[int, int, bytes]]:
    out = []
    for line in walk.read_text().splitlines():
        m = re.match(r"@0x([0-9a-f]+) db=(\d+) type=\d+\(\w+\) key=(b'.*'|b\".*\") ", line)
        if m:
            out.append((int(m.group(1), 16), int(m.group(2)), eval(m.group(3))))
    return out


@pytest.mark.parametrize(
    ("rdb", "walk"),
    [(REAL / d / "dump.rdb", REAL / d / "rdb_walk.txt") for d in DATASETS]
    + [
        (
            REAL / "aof_preamble/appendonlydir/appendonly.aof.2.base.rdb",
            REAL / "aof_preamble/base_rdb_walk.txt",
        )
    ],
    ids=lambda p: str(p.relative_to(REAL)),
)
def test_offsets_match_rdb_walk(rdb: Path, walk: Path) -> None:
    recs = keys_of(rdb)
    assert [(r.offset, r.db, r.key) for r in recs] == _walk_offsets(walk)


def test_metadata_events() -> None:
    events = list(read_rdb(REAL / "cluster_node/dump.rdb"))
    infos = [e for e in events if isinstance(e, SlotInfo)]
    assert infos and all(i.volatile_items is not None for i in infos)
    assert SlotInfo(8106, 2, 0, 1, 0x55) in infos
    assert not any(isinstance(e, AuxField) and e.key == b"slot-info" for e in events)
    resizes = [e for e in events if isinstance(e, DbResize)]
    assert resizes[0] == DbResize(0, 5, 1, 0x52)
    aux = {e.key: e.value for e in events if isinstance(e, AuxField)}
    assert aux[b"aof-base"] == b"0"


# ---- checksum, truncation, garbage ------------------------------------------------------------


def _bytes(name: str = "rdb_all_nocomp") -> bytes:
    return (REAL / name / "dump.rdb").read_bytes()


def _read(data: bytes, **kw: Any) -> list[Any]:
    return list(RdbReader(io.BytesIO(data), **kw))


def test_checksum_flip_byte() -> None:
    data = bytearray(_bytes())
    data[0x70 + 4] ^= 0x01  # inside a key name: still parses, CRC differs
    with pytest.raises(ChecksumError) as ei:
        _read(bytes(data), file="x.rdb")
    assert ei.value.stored != ei.value.expected
    assert ei.value.offset == len(data) - 8 and ei.value.file == "x.rdb"
    # not verified when asked not to
    assert len(_read(bytes(data), verify_checksum=False)) == 83


def test_zero_checksum_accepted() -> None:
    data = _bytes()[:-8] + b"\0" * 8
    r = RdbReader(io.BytesIO(data))
    assert len(list(r)) == 83
    assert r.checksum is not None and r.checksum[0] == 0


@pytest.mark.parametrize("name", ["rdb_all_nocomp", "rdb_all_comp", "rdb_lzf", "cluster_node"])
def test_truncation_never_leaks(name: str) -> None:
    data = _bytes(name)
    step = max(1, len(data) // 250)
    cuts = sorted({*range(0, len(data), step), *range(len(data) - 12, len(data))})
    for cut in cuts:
        with pytest.raises(FormatError) as ei:
            _read(data[:cut])
        assert ei.value.offset is not None and ei.value.offset <= cut
        if cut >= 9:
            assert isinstance(ei.value, TruncatedError), (cut, ei.value)


def test_truncation_offset_is_record_start() -> None:
    data = _bytes()
    recs = keys_of(REAL / "rdb_all_nocomp/dump.rdb")
    big = next(r for r in recs if r.key == b"str:big")
    assert big.offset is not None
    with pytest.raises(TruncatedError) as ei:
        _read(data[: big.offset + 1000])
    assert ei.value.offset == big.offset
    # a key with an EXPIRETIME_MS prefix: the offset names the prefix (9 bytes before)
    ttl = next(r for r in recs if r.key == b"str2:exat")
    assert ttl.offset is not None
    with pytest.raises(TruncatedError) as ei:
        _read(data[: ttl.offset + 3])
    assert ei.value.offset == ttl.offset - 9


def test_garbage_and_flips_never_leak() -> None:
    data = _bytes("rdb_all_nocomp")
    for i in range(9, len(data) - 8, max(1, len(data) // 400)):
        for x in (0xFF, 0x80, 0x01):
            bad = bytearray(data)
            bad[i] ^= x
            with contextlib.suppress(FormatError):
                _read(bytes(bad), verify_checksum=False)


def test_bad_headers() -> None:
    with pytest.raises(FormatError, match="Wrong signature"):
        _read(b"RUBBISH01" + b"\xff")
    with pytest.raises(FormatError, match="version 81"):
        _read(b"VALKEY081\xff")
    with pytest.raises(FormatError, match="version 13"):
        _read(b"REDIS0013\xff")
    with pytest.raises(TruncatedError):
        _read(b"VALK")


# ---- filters ----------------------------------------------------------------------------------


def test_filters() -> None:
    path = REAL / "rdb_all_nocomp/dump.rdb"
    allk = keys_of(path)
    assert {r.db for r in keys_of(path, filter=RdbFilter(dbs={1}))} == {1}
    m = keys_of(path, filter=RdbFilter(match=b"hfe*"))
    assert sorted(r.key for r in m) == sorted(r.key for r in allk if r.key.startswith(b"hfe"))
    z = keys_of(path, filter=RdbFilter(types={"zset", "stream"}))
    assert {r.type_name for r in z} == {"zset", "stream"}
    assert len(z) == sum(r.type_name in ("zset", "stream") for r in allk)
    s = keys_of(path, filter=RdbFilter(slots={key_slot(b"list:big")}))
    assert b"list:big" in {r.key for r in s}
    assert all(key_slot(r.key) == key_slot(b"list:big") for r in s)


def test_filtered_values_are_not_decoded() -> None:
    data = bytearray(_bytes())
    recs = keys_of(REAL / "rdb_all_nocomp/dump.rdb")
    victim = next(r for r in recs if r.key == b"hash:small")  # a listpack blob
    # break the listpack terminator (last byte of the blob, just before the next record)
    nxt = min(r.offset for r in recs if r.offset is not None and r.offset > victim.offset)  # type: ignore[operator]
    assert data[nxt - 1] == 0xFF
    data[nxt - 1] = 0x00
    with pytest.raises(FormatError, match="integrity"):
        _read(bytes(data), verify_checksum=False)
    got = _read(bytes(data), verify_checksum=False, filter=RdbFilter(types={"string"}))
    assert len([e for e in got if isinstance(e, KeyRecord)]) == sum(
        r.type_name == "string" for r in recs
    )


GLOB_CASES = [
    (b"*", b"", True),
    (b"h?llo", b"hello", True),
    (b"h?llo", b"hllo", False),
    (b"h*llo", b"heeeello", True),
    (b"h[ae]llo", b"hallo", True),
    (b"h[ae]llo", b"hillo", False),
    (b"h[^e]llo", b"hallo", True),
    (b"h[^e]llo", b"hello", False),
    (b"h[a-b]llo", b"hbllo", True),
    (b"h[b-a]llo", b"hbllo", True),  # reversed range is swapped
    (b"h\\*llo", b"h*llo", True),
    (b"h\\*llo", b"hallo", False),
    (b"a*b*c", b"axxbyyc", True),
    (b"a*b*c", b"axxbyy", False),
    (b"[abc", b"a", True),  # unterminated class ends at the pattern end
    (b"foo", b"foo", True),
    (b"*:*", b"user:1", True),
    (b"a\\", b"a\\", True),
    (b"**x", b"abx", True),
]


@pytest.mark.parametrize(("pat", "s", "want"), GLOB_CASES)
def test_glob_match(pat: bytes, s: bytes, want: bool) -> None:
    assert glob_match(pat, s) is want


def test_glob_nocase() -> None:
    assert glob_match(b"HE[L-L]LO*", b"hello world", nocase=True)
    assert not glob_match(b"HELLO", b"hello")


# ---- chunked reading (big files and LZ4 streams) ----------------------------------------------


def test_chunked_stream_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_mod, "CHUNK", 64)
    src = REAL / "rdb_all_comp/dump.rdb"
    lz = tmp_path / "dump.rdb.lz4"
    lz.write_bytes(lz4.frame.compress(src.read_bytes() + b"TRAILER"))
    whole = list(read_rdb(src))
    with open(lz, "rb") as raw:
        assert raw.read(4) == b"\x04\x22\x4d\x18"
    chunked = list(read_rdb(lz))
    assert chunked == whole
    with lz4.frame.open(lz, "rb") as f:
        r = RdbReader(f)
        list(r)
        assert r.end_offset == src.stat().st_size
        assert r.trailing.startswith(b"TRAILER") or r.trailing == b""
    data = src.read_bytes()
    lz.write_bytes(lz4.frame.compress(data[: len(data) // 2]))
    with pytest.raises(TruncatedError):
        list(read_rdb(lz))
    bad = bytearray(data)
    bad[100] ^= 1
    lz.write_bytes(lz4.frame.compress(bytes(bad)))
    with pytest.raises(FormatError):
        list(read_rdb(lz))


def test_chunked_truncation_and_flips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_mod, "CHUNK", 16)
    data = _bytes("rdb_all_nocomp")
    want = _read(data)

    def read_stream(b: bytes) -> list[Any]:
        return list(RdbReader(io.BufferedReader(io.BytesIO(b))))  # type: ignore[arg-type]

    assert read_stream(data) == want
    for cut in range(0, len(data), len(data) // 60):
        with pytest.raises(TruncatedError if cut >= 9 else FormatError):
            read_stream(data[:cut])
    for i in range(9, len(data) - 8, len(data) // 60):
        bad = bytearray(data)
        bad[i] ^= 0x5A
        with pytest.raises(FormatError):
            read_stream(bytes(bad))


def test_base_offset_and_preamble_tail() -> None:
    data = _bytes("rdb_lzf") + b"*1\r\n$4\r\nPING\r\n"
    f = io.BytesIO(b"XXXX" + data)
    f.seek(4)
    r = RdbReader(f, base_offset=4)
    recs = [e for e in r if isinstance(e, KeyRecord)]
    assert recs[0].offset == 4 + _walk_offsets(REAL / "rdb_lzf/rdb_walk.txt")[0][0]
    assert r.end_offset == 4 + len(data) - 14
    assert f.read() == b"*1\r\n$4\r\nPING\r\n"


# ---- hand-built RDBs: legacy and foreign encodings -------------------------------------------


def enc_len(n: int) -> bytes:
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    if n < 2**32:
        return b"\x80" + struct.pack(">I", n)
    return b"\x81" + struct.pack(">Q", n)


def enc_str(s: bytes) -> bytes:
    return enc_len(len(s)) + s


def rdb_file(body: bytes, *, magic: bytes = b"REDIS0011", crc: bool = True) -> bytes:
    data = magic + body + b"\xff"
    version = int(magic[6:] if magic.startswith(b"VALKEY") else magic[5:])
    if version < 5:
        return data
    return data + struct.pack("<Q", crc64(data) if crc else 0)


def one_key(t: int, key: bytes, payload: bytes, *, magic: bytes = b"REDIS0011") -> KeyRecord:
    evs = _read(rdb_file(b"\xfe\x00" + bytes([t]) + enc_str(key) + payload, magic=magic))
    recs = [e for e in evs if isinstance(e, KeyRecord)]
    assert len(recs) == 1
    return recs[0]


def lp_build(items: list[bytes | int]) -> bytes:
    body = b""
    for it in items:
        if isinstance(it, int):
            if 0 <= it < 128:
                e = bytes([it])
            elif -4096 <= it < 4096:
                v = it & 0x1FFF
                e = bytes([0xC0 | (v >> 8), v & 0xFF])
            else:
                e = b"\xf4" + struct.pack("<q", it)
        else:
            assert len(it) < 64
            e = bytes([0x80 | len(it)]) + it
        body += e + bytes([len(e)])  # all entries here are < 128 bytes
    total = 6 + len(body) + 1
    return struct.pack("<IH", total, len(items)) + body + b"\xff"


def zl_build(items: list[bytes | int]) -> bytes:
    body = b""
    prev = 0
    for it in items:
        if isinstance(it, int):
            if 0 <= it <= 12:
                e = bytes([0xF1 + it])
            elif -128 <= it < 128:
                e = b"\xfe" + struct.pack("<b", it)
            else:
                e = b"\xc0" + struct.pack("<h", it)
        else:
            e = bytes([len(it)]) + it
        entry = bytes([prev]) + e
        body += entry
        prev = len(entry)
    total = 10 + len(body) + 1
    return struct.pack("<IIH", total, 10, len(items)) + body + b"\xff"


def test_ziplist_types() -> None:
    zl = zl_build([b"a", 5, b"bc", -100, 300])
    assert ziplist_items(zl, False) == [b"a", 5, b"bc", -100, 300]
    rec = one_key(10, b"l", enc_str(zl))
    assert rec.value == ListValue([b"a", b"5", b"bc", b"-100", b"300"])
    rec = one_key(12, b"z", enc_str(zl_build([b"m1", 1, b"m2", b"2.5", b"m3", b"inf"])))
    assert rec.value == ZSetValue([(b"m1", 1.0), (b"m2", 2.5), (b"m3", math.inf)])
    assert rec.encoding == "listpack"
    rec = one_key(13, b"h", enc_str(zl_build([b"f", b"v", b"n", 12])))
    assert rec.value == HashValue([(b"f", b"v"), (b"n", b"12")])
    # quicklist 1: len + ziplist nodes
    rec = one_key(14, b"q", enc_len(2) + enc_str(zl_build([b"x", b"y"])) + enc_str(zl_build([7])))
    assert rec.value == ListValue([b"x", b"y", b"7"]) and rec.encoding == "quicklist"


def test_zipmap_hash() -> None:
    # <zmlen> <len>"foo" <len><free>"bar" ... 0xff (src/zipmap.c)
    zm = b"\x02" + b"\x03foo\x03\x00bar" + b"\x05hello\x05\x02world!!" + b"\xff"
    assert zipmap_pairs(zm) == [(b"foo", b"bar"), (b"hello", b"world")]
    rec = one_key(9, b"h", enc_str(zm), magic=b"REDIS0003")
    assert rec.value == HashValue([(b"foo", b"bar"), (b"hello", b"world")])
    with pytest.raises(BlobError):
        zipmap_pairs(zm[:-3])


def test_intset_and_listpacks() -> None:
    iset = struct.pack("<II", 4, 3) + struct.pack("<3i", -5, 7, 70000)
    assert intset_members(iset) == [b"-5", b"7", b"70000"]
    assert one_key(11, b"s", enc_str(iset)).value == SetValue([b"-5", b"7", b"70000"])
    with pytest.raises(BlobError):
        intset_members(iset[:-1])
    lp = lp_build([b"a", 1, -2000, 2**40])
    assert lp_items(lp) == [b"a", 1, -2000, 2**40]
    assert lp_strings(lp) == [b"a", b"1", b"-2000", b"1099511627776"]
    with pytest.raises(BlobError):
        lp_items(lp[:-1])


def test_old_list_set_zset_hash_and_expiries() -> None:
    body = (
        b"\xfe\x00"
        + b"\xfd"
        + struct.pack("<i", 2_000_000_000)  # old EXPIRETIME, seconds
        + b"\x01"
        + enc_str(b"l")
        + enc_len(2)
        + enc_str(b"a")
        + b"\xc0\x7f"  # INT8 string
        + b"\xf8"
        + enc_len(10)
        + b"\xf9\x05"  # IDLE, FREQ prefixes
        + b"\x02"
        + enc_str(b"s")
        + enc_len(1)
        + b"\xc1"
        + struct.pack("<h", -300)
        + b"\x03"
        + enc_str(b"z")
        + enc_len(4)
        + enc_str(b"a")
        + b"\x031.5"
        + enc_str(b"b")
        + b"\xfe"
        + enc_str(b"c")
        + b"\xff"
        + enc_str(b"d")
        + b"\xfd"
        + b"\x04"
        + enc_str(b"h")
        + enc_len(1)
        + enc_str(b"f")
        + b"\xc2"
        + struct.pack("<i", 1 << 20)
        + b"\x05"
        + enc_str(b"z2")
        + enc_len(1)
        + enc_str(b"m")
        + struct.pack("<d", -0.5)
        + b"\x01"
        + enc_str(b"empty")
        + enc_len(0)  # empty collections are skipped
    )
    recs = [e for e in _read(rdb_file(body, magic=b"REDIS0006")) if isinstance(e, KeyRecord)]
    byk = {r.key: r for r in recs}
    assert list(byk) == [b"l", b"s", b"z", b"h", b"z2"]
    assert byk[b"l"].expire_at_ms == 2_000_000_000_000
    assert byk[b"l"].value == ListValue([b"a", b"127"])
    assert byk[b"s"].expire_at_ms is None and byk[b"s"].value == SetValue([b"-300"])
    zs = dict(byk[b"z"].value.items)  # type: ignore[union-attr]
    assert zs[b"a"] == 1.5 and zs[b"b"] == math.inf and zs[b"c"] == -math.inf
    assert math.isnan(zs[b"d"])
    assert byk[b"h"].value == HashValue([(b"f", b"1048576")])
    assert byk[b"z2"].value == ZSetValue([(b"m", -0.5)])


def test_rdb_without_checksum_and_lzf_string() -> None:
    val = b"abcabcabcabcabcabcabcabcabcabcabc"
    c = compress(val)
    assert c is not None
    payload = b"\xc3" + enc_len(len(c)) + enc_len(len(val)) + c
    evs = _read(rdb_file(b"\x00" + enc_str(b"k") + payload, magic=b"REDIS0004"))
    assert evs == [KeyRecord(0, b"k", StringValue(val), None, "embstr", 9)]
    bad = b"\xc3" + enc_len(len(c)) + enc_len(len(val) + 1) + c
    with pytest.raises(FormatError, match="LZF"):
        _read(rdb_file(b"\x00" + enc_str(b"k") + bad, magic=b"REDIS0004"))


def test_quicklist2_plain_and_packed() -> None:
    payload = (
        enc_len(2) + enc_len(2) + enc_str(lp_build([b"a", 1])) + enc_len(1) + enc_str(b"P" * 70)
    )
    rec = one_key(18, b"q", payload)
    assert rec.value == ListValue([b"a", b"1", b"P" * 70]) and rec.encoding == "quicklist"
    rec = one_key(18, b"q", enc_len(1) + enc_len(2) + enc_str(lp_build([b"x"])))
    assert rec.encoding == "listpack"
    with pytest.raises(FormatError, match="Quicklist"):
        one_key(18, b"q", enc_len(1) + enc_len(3) + enc_str(b"x"))


def _stream_node(master: tuple[int, int], lp: list[bytes | int]) -> bytes:
    return enc_str(struct.pack(">QQ", *master)) + enc_str(lp_build(lp))


STREAM_LP: list[bytes | int] = [
    2,
    1,
    2,
    b"f1",
    b"f2",
    0,  # master entry: 2 live, 1 deleted, fields f1 f2
    2,
    0,
    0,
    b"a",
    5,
    5,  # 5-1: SAMEFIELDS
    3,
    0,
    1,
    b"x",
    b"y",
    5,  # 5-2: SAMEFIELDS + DELETED
    0,
    1,
    -1,
    1,
    b"g",
    b"h",
    6,  # 6-0: own fields
]


def test_stream_v1_v2_v3() -> None:
    nodes = enc_len(1) + _stream_node((5, 1), STREAM_LP)
    tail_v1 = enc_len(2) + enc_len(6) + enc_len(0)  # length, last id
    group_v1 = (
        enc_len(1)
        + enc_str(b"g")
        + enc_len(5)
        + enc_len(1)
        + enc_len(1)
        + struct.pack(">QQ", 5, 1)
        + struct.pack("<q", 1234)
        + enc_len(2)
        + enc_len(1)
        + enc_str(b"alice")
        + struct.pack("<q", 999)
        + enc_len(1)
        + struct.pack(">QQ", 5, 1)
    )
    v1 = one_key(15, b"st", nodes + tail_v1 + group_v1).value
    assert isinstance(v1, StreamValue)
    assert v1.entries == [
        (StreamID(5, 1), [(b"f1", b"a"), (b"f2", b"5")]),
        (StreamID(6, 0), [(b"g", b"h")]),
    ]
    assert v1.first_id == StreamID(5, 1) and v1.entries_added == 2
    assert v1.max_deleted_id == StreamID(0, 0)
    g = v1.groups[0]
    assert g.entries_read == -1 and g.last_id == StreamID(5, 1)
    assert g.pel[0].consumer == b"alice" and g.pel[0].delivery_count == 2
    assert g.consumers[0].active_time_ms == -1 and g.consumers[0].seen_time_ms == 999
    assert g.consumers[0].pel == [StreamID(5, 1)]

    meta_v2 = enc_len(5) + enc_len(1) + enc_len(5) + enc_len(2) + enc_len(3)
    group_v2 = (
        enc_len(1)
        + enc_str(b"g")
        + enc_len(5)
        + enc_len(1)
        + b"\x81"
        + b"\xff" * 8
        + enc_len(0)
        + enc_len(1)
        + enc_str(b"bob")
        + struct.pack("<q", 7)
        + enc_len(0)
    )
    v2 = one_key(19, b"st", nodes + tail_v1 + meta_v2 + group_v2).value
    assert isinstance(v2, StreamValue)
    assert v2.max_deleted_id == StreamID(5, 2) and v2.entries_added == 3
    assert v2.groups[0].entries_read == -1 and v2.groups[0].consumers[0].active_time_ms == -1
    group_v3 = (
        enc_len(1)
        + enc_str(b"g")
        + enc_len(5)
        + enc_len(1)
        + enc_len(1)
        + enc_len(0)
        + enc_len(1)
        + enc_str(b"bob")
        + struct.pack("<qq", 7, 8)
        + enc_len(0)
    )
    v3 = one_key(21, b"st", nodes + tail_v1 + meta_v2 + group_v3).value
    assert isinstance(v3, StreamValue)
    assert v3.groups[0].entries_read == 1 and v3.groups[0].consumers[0].active_time_ms == 8
    # a consumer PEL entry missing from the group PEL is corrupt
    bad_group = group_v1.replace(struct.pack(">QQ", 5, 1) + b"", struct.pack(">QQ", 5, 1), 1)
    bad_group = bad_group[:-16] + struct.pack(">QQ", 9, 9)
    with pytest.raises(FormatError, match="global PEL"):
        one_key(15, b"st", nodes + tail_v1 + bad_group)
    # filtered out: skipped without decoding, for each version
    for t, body in (
        (15, nodes + tail_v1 + group_v1),
        (19, nodes + tail_v1 + meta_v2 + group_v2),
        (21, nodes + tail_v1 + meta_v2 + group_v3),
    ):
        data = rdb_file(b"\xfe\x00" + bytes([t]) + enc_str(b"st") + body + b"\x00\x01k\x01v")
        got = _read(data, filter=RdbFilter(types={"string"}))
        assert [e.key for e in got if isinstance(e, KeyRecord)] == [b"k"]


def test_valkey_hash_2() -> None:
    payload = (
        enc_len(2)
        + enc_str(b"f")
        + enc_str(b"v")
        + struct.pack("<q", 1234)
        + enc_str(b"g")
        + enc_str(b"w")
        + struct.pack("<q", -1)
    )
    rec = one_key(22, b"h", payload, magic=b"VALKEY080")
    assert rec.value == HashValue([(b"f", b"v"), (b"g", b"w")], {b"f": 1234})
    with pytest.raises(FormatError, match="expiry"):
        one_key(
            22,
            b"h",
            enc_len(1) + enc_str(b"f") + enc_str(b"v") + struct.pack("<q", -5),
            magic=b"VALKEY080",
        )


def test_redis_74_field_ttl_hashes() -> None:
    # HASH_METADATA (24): minExpire u64 LE, len, (len ttl-relative, field, value)
    md = struct.pack("<q", 1000) + enc_len(2) + enc_len(6) + enc_str(b"a") + enc_str(b"1")
    md += enc_len(0) + enc_str(b"b") + enc_str(b"2")
    rec = one_key(24, b"h", md, magic=b"REDIS0012")
    assert rec.value == HashValue([(b"a", b"1"), (b"b", b"2")], {b"a": 1005})
    # HASH_METADATA_PRE_GA (22 in a REDIS file): absolute TTLs, no minExpire
    pre = enc_len(1) + enc_len(4242) + enc_str(b"a") + enc_str(b"1")
    assert one_key(22, b"h", pre, magic=b"REDIS0012").value == HashValue(
        [(b"a", b"1")], {b"a": 4242}
    )
    # HASH_LISTPACK_EX (25): minExpire + listpack of field, value, ttl (0 = none)
    lpx = lp_build([b"a", b"1", 2**40, b"b", 7, 0])
    rec = one_key(25, b"h", struct.pack("<q", 5) + enc_str(lpx), magic=b"REDIS0012")
    assert rec.value == HashValue([(b"a", b"1"), (b"b", b"7")], {b"a": 2**40})
    rec = one_key(23, b"h", enc_str(lpx), magic=b"REDIS0012")
    assert rec.value == HashValue([(b"a", b"1"), (b"b", b"7")], {b"a": 2**40})
    # filtered: skipped
    for t, body in (
        (24, md),
        (22, pre),
        (25, struct.pack("<q", 5) + enc_str(lpx)),
        (23, enc_str(lpx)),
    ):
        data = rdb_file(b"\xfe\x00" + bytes([t]) + enc_str(b"h") + body, magic=b"REDIS0012")
        assert _read(data, filter=RdbFilter(types={"string"})) == []
    # other foreign types in a REDIS file are refused; VALKEY rejects 23-25
    with pytest.raises(FormatError, match="foreign type"):
        _read(rdb_file(b"\xfe\x00\x1a" + enc_str(b"h") + b"\x00", magic=b"REDIS0012"))
    with pytest.raises(FormatError, match="Unknown RDB encoding type 24"):
        _read(rdb_file(b"\xfe\x00\x18" + enc_str(b"h") + md, magic=b"VALKEY080"))


def _module_id(name: str, encver: int) -> int:
    cset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    mid = 0
    for ch in name:
        mid = (mid << 6) | cset.index(ch)
    return (mid << 10) | encver


def test_module_values_and_aux() -> None:
    mid = _module_id("MyModType", 3)
    assert module_type_name(mid) == "MyModType"
    # MODULE_2: id, then (opcode, value)* and EOF
    mod_val = enc_len(mid) + enc_len(2) + enc_len(7) + enc_len(5) + enc_str(b"xyz") + enc_len(4)
    mod_val += struct.pack("<d", 1.5) + enc_len(0)
    body = b"\xfe\x00\x07" + enc_str(b"mk") + mod_val + b"\x00" + enc_str(b"k") + enc_str(b"v")
    with pytest.raises(FormatError, match="MyModType") as ei:
        _read(rdb_file(body))
    assert ei.value.offset == 11
    got = _read(rdb_file(body), filter=RdbFilter(match=b"k"))
    assert [e.key for e in got if isinstance(e, KeyRecord)] == [b"k"]
    aux_data = enc_len(2) + enc_len(9) + enc_len(0)
    aux = b"\xf7" + enc_len(mid) + enc_len(2) + enc_len(1) + aux_data
    evs = _read(rdb_file(aux))
    assert evs == [ModuleAux(mid, 1, aux_data, 9)]


def test_other_opcodes() -> None:
    body = (
        b"\xf5"
        + enc_str(b"#!lua name=lib\nredis.register_function('f', function() end)")
        + b"\xf3"
        + enc_str(b"j" * 40)
        + enc_len(2)
        + enc_len(0)
        + enc_len(99)
        + enc_len(16000)
        + enc_len(16383)
        + b"\xfe\x02\xfb"
        + enc_len(3)
        + enc_len(1)
        + b"\xf4"
        + enc_len(7)
        + enc_len(3)
        + enc_len(1)
        + b"\xfa"
        + enc_str(b"slot-info")
        + enc_str(b"bogus")
        + b"\xfc"
        + struct.pack("<q", 1700000000000)
        + b"\x00"
        + enc_str(b"k")
        + enc_str(b"v")
    )
    evs = _read(rdb_file(body, magic=b"VALKEY080"))
    assert isinstance(evs[0], FunctionLibrary) and evs[0].code.startswith(b"#!lua")
    assert evs[1] == SlotImport(b"j" * 40, [(0, 99), (16000, 16383)], evs[1].offset)
    assert evs[2] == DbResize(2, 3, 1, evs[2].offset)
    assert evs[3] == SlotInfo(7, 3, 1, None, evs[3].offset)
    assert evs[4] == AuxField(b"slot-info", b"bogus", evs[4].offset)
    assert evs[5] == KeyRecord(2, b"k", StringValue(b"v"), 1700000000000, "embstr", evs[5].offset)
    with pytest.raises(FormatError, match="Pre-release function"):
        _read(rdb_file(b"\xf6" + enc_str(b"x")))
    with pytest.raises(FormatError, match="foreign"):  # 243 is foreign in a REDIS file
        _read(rdb_file(b"\xf3" + enc_str(b"x")))


def test_decode_value() -> None:
    v, enc = decode_value(0, enc_str(b"hello"))
    assert v == StringValue(b"hello") and enc == "embstr"
    v, enc = decode_value(20, enc_str(lp_build([b"a", b"b"])))
    assert v == SetValue([b"a", b"b"]) and enc == "listpack"
    with pytest.raises(FormatError, match="left over"):
        decode_value(0, enc_str(b"hello") + b"x")
    with pytest.raises(TruncatedError):
        decode_value(0, enc_str(b"hello")[:-1])
    with pytest.raises(FormatError, match="MyModType"):
        decode_value(7, enc_len(_module_id("MyModType", 0)) + b"\x00")


# ---- a real server: every type, written with compression on ---------------------------------


def _server_state(srv: Any) -> dict[tuple[int, bytes], Any]:
    state: dict[tuple[int, bytes], Any] = {}
    for db in (0, 2):
        c = srv.client(db=db)
        for k in c.scan_iter(count=1000):
            t = c.type(k).decode()
            if t == "string":
                v: Any = c.get(k)
            elif t == "list":
                v = c.lrange(k, 0, -1)
            elif t == "set":
                v = sorted(c.smembers(k))
            elif t == "zset":
                v = dict(c.zrange(k, 0, -1, withscores=True))
            elif t == "hash":
                v = c.hgetall(k)
            else:
                v = [(i.decode(), dict(f)) for i, f in c.xrange(k)]
            pttl = c.pexpiretime(k)
            state[(db, k)] = (t, v, None if pttl < 0 else pttl)
    return state


def _rec_state(r: KeyRecord) -> Any:
    v = r.value
    if isinstance(v, StringValue):
        return (r.type_name, v.value, r.expire_at_ms)
    if isinstance(v, ListValue):
        return (r.type_name, v.items, r.expire_at_ms)
    if isinstance(v, SetValue):
        return (r.type_name, sorted(v.members), r.expire_at_ms)
    if isinstance(v, ZSetValue):
        return (r.type_name, dict(v.items), r.expire_at_ms)
    if isinstance(v, HashValue):
        return (r.type_name, dict(v.items), r.expire_at_ms)
    assert isinstance(v, StreamValue)
    return (r.type_name, [(str(i), dict(f)) for i, f in v.entries], r.expire_at_ms)


@pytest.mark.real
def test_real_server_rdb_every_type(tmp_path: Path) -> None:
    from realserver import real_server

    with real_server(tmp_path, "--rdbcompression", "yes", "--list-max-listpack-size", "4") as srv:
        c = srv.client()
        c.set("s:int", 12345)
        c.set("s:neg", -7)
        c.set("s:big", "ab" * 3000)
        c.set("s:ttl", "v", px=10_000_000)
        c.rpush("l:small", "a", "b", 1, 2)
        c.rpush("l:quick", *[f"item-{i:04d}-{'x' * 30}" for i in range(300)])
        c.rpush("l:plain", "p" * 10_000, "q")
        c.sadd("set:int", 1, -5, 70000, 5_000_000_000)
        c.sadd("set:str", "a", "b", "c")
        c.sadd("set:big", *[f"m-{i}" for i in range(1000)])
        c.zadd("z:small", {"a": 1, "b": 2.5, "c": float("inf"), "d": -3})
        c.zadd("z:big", {f"m{i}-{'y' * 40}": i * 0.5 for i in range(300)})
        c.hset("h:small", mapping={"f": "v", "n": 5})
        c.hset("h:big", mapping={f"f{i}": "z" * 100 for i in range(300)})
        c.hset("h:ttl", mapping={"a": 1, "b": 2})
        c.hpexpire("h:ttl", 10_000_000, "a")
        for i in range(200):
            c.xadd("st", {"k": i, "other": "x" * (i % 3)}, id=f"{1000 + i // 3}-{i % 3}")
        c.xdel("st", "1001-1")
        c.xgroup_create("st", "grp", id="0")
        c.xreadgroup("grp", "alice", {"st": ">"}, count=3)
        srv.client(db=2).set("db2:k", "v")
        state = _server_state(srv)
        c.save()
        info = c.xinfo_stream("st", full=True)
    recs = keys_of(tmp_path / "dump.rdb")
    got = {(r.db, r.key): _rec_state(r) for r in recs}
    assert got == state
    encs = {r.key: r.encoding for r in recs}
    assert encs[b"set:int"] == "intset" and encs[b"l:plain"] == "quicklist"
    st = next(r.value for r in recs if r.key == b"st")
    assert isinstance(st, StreamValue)
    assert st.length == info["length"] and st.entries_added == info["entries-added"]
    grp = st.groups[0]
    assert [p.consumer for p in grp.pel] == [b"alice"] * 3
    want_read = info["groups"][0]["entries-read"]
    assert grp.entries_read == (-1 if want_read is None else want_read)


@pytest.mark.real
def test_real_server_dump_payloads(tmp_path: Path) -> None:
    from realserver import real_server

    with real_server(tmp_path) as srv:
        c = srv.client()
        c.rpush("l", "a", "b")
        c.zadd("z", {"m": 2.0})
        c.hset("h", mapping={"f": "v"})
        c.hpexpire("h", 10_000_000, "f")
        for key, want in ((b"l", ListValue([b"a", b"b"])), (b"z", ZSetValue([(b"m", 2.0)]))):
            payload = c.dump(key)
            assert payload is not None
            v, _ = decode_value(payload[0], payload[1:-10])
            assert v == want
        payload = c.dump("h")
        assert payload is not None and payload[0] == 22
        v, enc = decode_value(payload[0], payload[1:-10])
        assert isinstance(v, HashValue) and v.items == [(b"f", b"v")] and b"f" in v.expires
        assert enc == "hashtable"
