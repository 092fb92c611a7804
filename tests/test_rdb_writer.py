"""The RDB writer and DUMP payloads: byte-level encodings, and loading in a real valkey-server."""

from __future__ import annotations

import io
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import REAL
from realserver import free_port, real_server, valkey_tool

from persistence.crc import crc64, key_slot
from persistence.errors import ChecksumError, FormatError
from persistence.format import d2string as format_double
from persistence.rdb import lzf
from persistence.rdb.dump import DUMP_PAYLOAD_ERROR, dump_payload, load_payload, verify_payload
from persistence.rdb.encode import (
    canonical_int,
    encode_intset,
    encode_length,
    encode_listpack,
    encode_stream_nodes,
    encode_string,
    lp_backlen,
    zset_score_item,
)
from persistence.rdb.writer import (
    RdbWriteOptions,
    RdbWriter,
    UnsupportedForVersion,
    encode_value,
    list_nodes,
    object_encoding,
    write_rdb,
)
from persistence.records import (
    HashValue,
    KeyRecord,
    ListValue,
    SetValue,
    StreamConsumer,
    StreamGroup,
    StreamID,
    StreamPending,
    StreamValue,
    StringValue,
    Value,
    ZSetValue,
)

FAR = 4102444800000  # 2100-01-01
NOCOMP = REAL / "rdb_all_nocomp" / "dump.rdb"

# ---- primitives ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "hexbytes"),
    [
        (0, "00"),
        (63, "3f"),
        (64, "4040"),
        (16383, "7fff"),
        (16384, "8000004000"),
        (2**32 - 1, "80ffffffff"),
        (2**32, "810000000100000000"),
        (-1, "81ffffffffffffffff"),
    ],
)
def test_encode_length(n: int, hexbytes: str) -> None:
    assert encode_length(n).hex() == hexbytes


@pytest.mark.parametrize(
    ("s", "hexbytes"),
    [
        (b"0", "c000"),
        (b"-128", "c080"),
        (b"127", "c07f"),
        (b"128", "c18000"),
        (b"-32768", "c10080"),
        (b"2147483647", "c2ffffff7f"),
        (b"-2147483648", "c200000080"),
        (b"2147483648", "0a" + b"2147483648".hex()),  # out of INT32: raw
        (b"012", "03" + b"012".hex()),  # not canonical: raw
        (b"-0", "02" + b"-0".hex()),
        (b"+1", "02" + b"+1".hex()),
        (b"", "00"),
    ],
)
def test_encode_string_integer_forms(s: bytes, hexbytes: str) -> None:
    assert encode_string(s).hex() == hexbytes


def test_encode_string_lzf() -> None:
    s = b"abc" * 20
    enc = encode_string(s)
    assert enc[0] == 0xC3
    clen, ulen = enc[1], enc[2]
    assert ulen == len(s) and len(enc) == 3 + clen
    assert lzf.decompress(enc[3:], ulen) == s
    assert encode_string(s, compress=False) == bytes((len(s),)) + s
    # 20 bytes are never compressed, and incompressible data stays raw
    assert encode_string(b"a" * 20)[0] == 20
    rnd = bytes(range(97, 97 + 26))
    assert encode_string(rnd) == bytes((26,)) + rnd


def test_canonical_int() -> None:
    assert canonical_int(b"9223372036854775807") == 2**63 - 1
    assert canonical_int(b"-9223372036854775808") == -(2**63)
    for bad in (b"9223372036854775808", b"00", b"1 ", b" 1", b"-", b"", b"1.0", b"0x1"):
        assert canonical_int(bad) is None


def test_backlen_bounds() -> None:
    assert lp_backlen(127) == b"\x7f"
    assert lp_backlen(128) == b"\x01\x80"
    assert lp_backlen(16382) == bytes((127, 0xFE))
    assert len(lp_backlen(16383)) == 3  # lpEncodeBacklen uses `< 16383`


# listpacks and an intset exactly as Valkey 9.1.2 wrote them in fixtures/.../rdb_all_nocomp
FIXTURE_BLOBS: list[tuple[str, bytes, list[bytes | int]]] = [
    (
        "list:small",
        bytes.fromhex(
            "1c 00 00 00 07 00 82 7a 30 03 81 41 02 81 62 02 82 62 63 03 81 63 02 01 01 02 01 ff"
        ),
        [b"z0", b"A", b"b", b"bc", b"c", b"1", b"2"],
    ),
    (
        "hash:small",
        bytes.fromhex(
            "2800000008008266320382763203836e756d043201826633038276330383666c740483322e3504ff"
        ),
        [b"f2", b"v2", b"num", b"50", b"f3", b"v3", b"flt", b"2.5"],
    ),
    (
        "zset:small",
        bytes.fromhex(
            "21 00 00 00 08 00 81 61 02 03 01 81 62 02 83 33 2e 35 04 81 65 02 0a 01 81 64 02 83"
            " 69 6e 66 04 ff"
        ),
        [b"a", 3, b"b", b"3.5", b"e", 10, b"d", b"inf"],
    ),
]


@pytest.fixture(scope="module")
def nocomp_bytes() -> bytes:
    return NOCOMP.read_bytes()


@pytest.mark.parametrize(
    ("name", "blob", "items"), FIXTURE_BLOBS, ids=[b[0] for b in FIXTURE_BLOBS]
)
def test_listpack_matches_valkey(
    name: str, blob: bytes, items: list[bytes | int], nocomp_bytes: bytes
) -> None:
    assert blob in nocomp_bytes  # really the fixture's bytes
    assert encode_listpack(items) == blob
    # strings spelling integers are stored as integers, like lpAppend
    assert encode_listpack([x if isinstance(x, bytes) else str(x).encode() for x in items]) == blob


def test_listpack_integer_encodings_round_trip() -> None:
    from persistence.rdb.decode import lp_items  # the reader's decoder

    values = [
        0,
        127,
        128,
        -1,
        -4096,
        4095,
        4096,
        -4097,
        32767,
        -32768,
        32768,
        8388607,
        -8388608,
        8388608,
        2**31 - 1,
        -(2**31),
        2**31,
        2**63 - 1,
        -(2**63),
    ]
    strings = [b"", b"x" * 63, b"y" * 64, b"z" * 4095, b"w" * 4096, b"007", b"-0"]
    items: list[bytes | int] = [*values, *strings]
    decoded = lp_items(encode_listpack(items))
    assert [d if isinstance(d, int) else bytes(d) for d in decoded] == items


def test_intset_matches_valkey(nocomp_bytes: bytes) -> None:
    blob = encode_intset([-5, 1, 100, 3, 5000000000, 70000])
    assert blob[:4] == b"\x08\x00\x00\x00"  # int64 encoding for 5000000000
    assert blob in nocomp_bytes
    assert encode_intset([1, 2])[:8] == struct.pack("<II", 2, 2)
    assert encode_intset([1, 70000])[:4] == struct.pack("<I", 4)


def test_stream_node_matches_valkey(nocomp_bytes: bytes) -> None:
    nodes = encode_stream_nodes([(StreamID(1795694425267, 0), [(b"k", b"auto-id")])])
    assert len(nodes) == 1
    master, lp = nodes[0]
    assert master == StreamID(1795694425267, 0)
    assert struct.pack(">QQ", 1795694425267, 0) in nocomp_bytes
    assert lp in nocomp_bytes


def test_stream_nodes_split_and_samefields() -> None:
    from persistence.rdb.decode import lp_items

    entries = [(StreamID(1, i), [(b"f", b"v%d" % i)]) for i in range(250)]
    nodes = encode_stream_nodes(entries)
    assert [m for m, _ in nodes] == [StreamID(1, 0), StreamID(1, 100), StreamID(1, 200)]
    items = lp_items(nodes[1][1])
    # master: count 100, deleted 0, 1 field "f", 0; first entry: SAMEFIELDS, diffs 0 0, value, 4
    assert items[:5] == [100, 0, 1, b"f", 0]
    assert items[5:10] == [2, 0, 0, b"v100", 4]
    # different fields: flags 0, num-fields, field/value pairs, lp-count = 2*n + 4
    nodes = encode_stream_nodes(
        [(StreamID(5, 5), [(b"a", b"1")]), (StreamID(6, 0), [(b"b", b"2")])]
    )
    items = lp_items(nodes[0][1])
    assert items[10:] == [0, 1, -5, 1, b"b", 2, 6]
    # byte limit: values of 2000 bytes start a new node every 2 entries
    big = [(StreamID(1, i), [(b"f", b"x" * 2000)]) for i in range(5)]
    assert len(encode_stream_nodes(big)) == 3


@pytest.mark.parametrize(
    ("d", "text"),
    [
        (1.5, b"1.5"),
        (3.0, b"3"),
        (-2.0, b"-2"),
        (0.1, b"0.1"),
        (1e22, b"1e+22"),
        (1e-7, b"1e-7"),
        (2.5e-5, b"0.000025"),
        (1e17, b"100000000000000000"),
        (4.7e18, b"4.7e+18"),
        (float("inf"), b"inf"),
        (float("-inf"), b"-inf"),
    ],
)
def test_format_double(d: float, text: bytes) -> None:
    assert format_double(d) == text


def test_zset_scores_integers_when_exact() -> None:
    assert zset_score_item(3.0) == 3
    assert zset_score_item(-0.0) == 0
    assert zset_score_item(2.0**62) == 2**62  # double2ll's bound is inclusive
    assert zset_score_item(2.0**63) == b"9223372036854776000"  # fpconv: plain digits
    assert zset_score_item(0.5) == b"0.5"


def test_list_nodes_match_valkey_layout() -> None:
    # list:quicklist of the fixture: 3000 x "qitem-NNNNN" -> 3 x 629 + 113 entries (8184 bytes)
    items = [b"qitem-%05d" % i for i in range(2000)]
    nodes = list_nodes(items)
    assert [struct.unpack_from("<IH", b)[1] for _, b in nodes] == [629, 629, 629, 113]
    assert [len(b) for _, b in nodes] == [8184, 8184, 8184, 1476]
    nodes = list_nodes([b"x" * 9000, b"q"])
    assert [(c, len(b)) for c, b in nodes] == [(1, 9000), (2, 10)]
    assert [c for c, _ in list_nodes([b"a", b"x" * 8193, b"b"])] == [2, 1, 2]
    assert len(list_nodes([b"x" * 8000])) == 1


def test_unsupported_for_version_names_the_key() -> None:
    h = HashValue([(b"f", b"v")], {b"f": FAR})
    with pytest.raises(UnsupportedForVersion, match="hfe:key"):
        encode_value(h, version=11, key=b"hfe:key")
    with pytest.raises(UnsupportedForVersion):
        dump_payload(h, version=11)
    buf = io.BytesIO()
    w = RdbWriter(buf, RdbWriteOptions(version=11))
    w.begin_db(0, keys=1, expires=0)
    with pytest.raises(UnsupportedForVersion, match="my-hash"):
        w.write_record(KeyRecord(0, b"my-hash", h))
    # a hash whose TTLs are all gone is a plain hash and fine in RDB 11
    assert encode_value(HashValue([(b"f", b"v")]), version=11)[0] == 16


def test_file_layout_and_checksum() -> None:
    buf = io.BytesIO()
    opts = RdbWriteOptions(ctime=1700000000, aof_base=True, aux={b"extra": b"1"})
    w = RdbWriter(buf, opts)
    w.write_function(b"#!lua name=lib\nserver.register_function('f', function() return 1 end)")
    w.write_db(3, [KeyRecord(3, b"k", StringValue(b"v"), expire_at_ms=FAR)])
    w.finish()
    data = buf.getvalue()
    assert data.startswith(b"VALKEY080\xfa\x0avalkey-ver\x059.1.2")
    assert b"\xfa\x08aof-base\xc0\x01\xfa\x05extra\xc0\x01\xf5" in data
    assert b"\xfe\x03\xfb\x01\x01\xfc" + struct.pack("<q", FAR) + b"\x00\x01k\x01v\xff" in data
    assert struct.unpack("<Q", data[-8:])[0] == crc64(data[:-8])
    buf = io.BytesIO()
    w = RdbWriter(buf, RdbWriteOptions(version=11, checksum=False))
    w.finish()
    assert buf.getvalue().startswith(b"REDIS0011") and buf.getvalue().endswith(b"\xff" + bytes(8))


def test_cluster_slot_info(tmp_path: Path) -> None:
    recs = [
        KeyRecord(0, b"{user1}:name", StringValue(b"x")),
        KeyRecord(0, b"ttlkey", StringValue(b"x"), expire_at_ms=FAR),
        KeyRecord(0, b"{user1}:hfe", HashValue([(b"f", b"v")], {b"f": FAR})),
    ]
    path = tmp_path / "dump.rdb"
    write_rdb(path, recs, RdbWriteOptions(cluster_slot_info=True))
    data = path.read_bytes()
    assert key_slot(b"{user1}:name") == 8106
    assert b"\x09slot-info\x0a8106,2,0,1" in data  # as in fixtures/.../cluster_node
    assert b"\x09slot-info\x0b12710,1,1,0" in data
    assert data.index(b"8106,2,0,1") < data.index(b"12710,1,1,0")


def test_empty_collections_are_skipped() -> None:
    buf = io.BytesIO()
    w = RdbWriter(buf)
    w.write_db(0, [KeyRecord(0, b"e", SetValue([])), KeyRecord(0, b"k", StringValue(b"v"))])
    w.finish()
    assert b"\x01e" not in buf.getvalue() and b"\xfb\x01\x00" in buf.getvalue()


def test_bad_values_are_refused() -> None:
    with pytest.raises(FormatError, match="NaN"):
        encode_value(ZSetValue([(b"a", float("nan"))]), key=b"z")
    with pytest.raises(FormatError, match="duplicate"):
        encode_value(SetValue([b"a", b"a"]), key=b"s")


# ---- DUMP payloads -------------------------------------------------------------------------


def test_dump_payload_layout() -> None:
    p = dump_payload(StringValue(b"hello"))
    assert p[:7] == b"\x00\x05hello" and p[7:9] == b"\x50\x00"
    assert struct.unpack("<Q", p[9:])[0] == crc64(p[:9])
    assert verify_payload(p) == 80
    assert dump_payload(StringValue(b"1"), version=11)[3:5] == b"\x0b\x00"


def test_dump_payload_errors() -> None:
    p = bytearray(dump_payload(StringValue(b"hello")))
    p[3] ^= 1
    with pytest.raises(ChecksumError) as e:
        verify_payload(bytes(p))
    assert e.value.message == DUMP_PAYLOAD_ERROR
    assert verify_payload(bytes(p), verify_checksum=False) == 80
    for ver in (0, 12, 79, 81):
        head = b"\x00\x01x" + struct.pack("<H", ver)
        with pytest.raises(FormatError) as e2:
            verify_payload(head + struct.pack("<Q", crc64(head)))
        assert e2.value.message == DUMP_PAYLOAD_ERROR
    with pytest.raises(FormatError):
        verify_payload(b"short")


def test_dump_round_trip_through_reader() -> None:
    for _key, value in sample_values(int(time.time() * 1000)):
        assert norm(load_payload(dump_payload(value))) == norm(value)


# ---- test data and comparison --------------------------------------------------------------


def sample_stream() -> StreamValue:
    entries = [
        (StreamID(1700000000000, i), [(b"sensor", b"s%d" % i), (b"temp", b"%d" % (20 + i))])
        for i in range(1, 150)
    ]
    entries.append((StreamID(1700000000001, 0), [(b"other", b"field"), (b"n", b"-7")]))
    entries = [e for e in entries if e[0].seq % 7 != 3]  # deleted entries leave gaps
    pel = [
        StreamPending(StreamID(1700000000000, 1), b"alice", 1700000001000, 3),
        StreamPending(StreamID(1700000000000, 2), b"bob", 1700000002000, 1),
        StreamPending(StreamID(1700000000000, 4), b"alice", 1700000003000, 1),
    ]
    consumers = [
        StreamConsumer(b"bob", 1700000002000, 1700000002000, [StreamID(1700000000000, 2)]),
        StreamConsumer(
            b"alice",
            1700000003000,
            1700000003500,
            [StreamID(1700000000000, 1), StreamID(1700000000000, 4)],
        ),
        StreamConsumer(b"idle", 1700000000500, -1, []),
    ]
    groups = [
        StreamGroup(b"g1", StreamID(1700000000000, 4), 4, pel, consumers),
        StreamGroup(b"g0", StreamID(0, 0), 0),
        StreamGroup(b"g-unknown", StreamID(1700000000000, 9), -1),
    ]
    return StreamValue(
        entries=entries,
        length=len(entries),
        last_id=StreamID(1700000000002, 5),
        first_id=entries[0][0],
        max_deleted_id=StreamID(1700000000002, 5),
        entries_added=len(entries) + 30,
        groups=groups,
    )


def sample_values(now_ms: int) -> list[tuple[bytes, Value]]:
    return [
        (b"str:plain", StringValue(b"hello world")),
        (b"str:bin\xff\x00", StringValue(b"\x00\x01\r\nbinary\xff\xfe")),
        (b"str:empty", StringValue(b"")),
        (b"str:int", StringValue(b"12345")),
        (b"str:neg", StringValue(b"-987654321")),
        (b"str:int64", StringValue(b"9223372036854775807")),
        (b"str:lead0", StringValue(b"007")),
        (b"str:big", StringValue(bytes(range(256)) * 100)),
        (b"str:compressible", StringValue(b"abcd" * 5000)),
        (b"list:small", ListValue([b"z0", b"A", b"1", b"-2", b""])),
        (b"list:big", ListValue([b"qitem-%05d" % i for i in range(3000)])),
        (b"list:plain", ListValue([b"a", b"x" * 9000, b"b", b"1"])),
        (b"set:intset", SetValue([b"-5", b"1", b"100", b"3", b"5000000000", b"70000"])),
        (b"set:listpack", SetValue([b"cherry", b"date", b"1"])),
        (b"set:ht-count", SetValue([b"member-%03d" % i for i in range(200)])),
        (b"set:ht-long", SetValue([b"a", b"x" * 65])),
        (b"set:ints-many", SetValue([b"%d" % i for i in range(600)])),
        (
            b"zset:small",
            ZSetValue(
                [
                    (b"a", 3.0),
                    (b"b", 3.5),
                    (b"e", 10.0),
                    (b"d", float("inf")),
                    (b"n", -2.25),
                    (b"m", float("-inf")),
                    (b"f", 1e-7),
                ]
            ),
        ),
        (b"zset:big", ZSetValue([(b"member-%03d" % i, i * 1.5 - 100) for i in range(200)])),
        (b"zset:long", ZSetValue([(b"y" * 65, 1.0), (b"x", float("inf")), (b"w", -0.5)])),
        (b"hash:small", HashValue([(b"f2", b"v2"), (b"num", b"50"), (b"flt", b"2.5")])),
        (b"hash:big", HashValue([(b"field-%03d" % i, b"value-%d" % i) for i in range(600)])),
        (b"hash:300", HashValue([(b"field-%03d" % i, b"value-%d" % i) for i in range(300)])),
        (b"hash:long", HashValue([(b"f", b"v" * 100)])),
        (
            b"hfe:mixed",
            HashValue(
                [(b"p1", b"v1"), (b"p2", b"v2"), (b"past", b"gone"), (b"plain", b"no-ttl")],
                {b"p1": now_ms + 3_600_000, b"p2": FAR, b"past": now_ms - 60_000},
            ),
        ),
        (b"hfe:far", HashValue([(b"a", b"1")], {b"a": FAR})),
        (b"stream:full", sample_stream()),
        (
            b"stream:empty",
            StreamValue(
                [],
                0,
                StreamID(5, 5),
                StreamID(0, 0),
                StreamID(5, 5),
                3,
                [StreamGroup(b"g", StreamID(5, 5), 3)],
            ),
        ),
    ]


def sample_records(now_ms: int, *, with_field_ttls: bool = True) -> list[KeyRecord]:
    recs: list[KeyRecord] = []
    for i, (key, value) in enumerate(sample_values(now_ms)):
        if not with_field_ttls and isinstance(value, HashValue) and value.expires:
            continue
        recs.append(KeyRecord(0, key, value, expire_at_ms=FAR if i % 4 == 1 else None))
    recs += [
        KeyRecord(1, b"db1:key", StringValue(b"in db1"), expire_at_ms=now_ms + 86_400_000),
        KeyRecord(1, b"db1:list", ListValue([b"x", b"y"])),
        KeyRecord(5, b"db5:set", SetValue([b"a", b"b", b"c"])),
        KeyRecord(15, b"db15:z", ZSetValue([(b"one", 1.0), (b"two", 2.0)])),
        KeyRecord(15, b"db15:expired", StringValue(b"old"), expire_at_ms=now_ms - 1000),
    ]
    if with_field_ttls:
        recs.append(KeyRecord(1, b"db1:hfe", HashValue([(b"f", b"v"), (b"g", b"w")], {b"f": FAR})))
    return recs


def norm(value: Value, now_ms: int | None = None) -> tuple[Any, ...]:
    """A comparable form of a value (hash fields already expired at ``now_ms`` dropped)."""
    if isinstance(value, StringValue):
        return ("string", value.value)
    if isinstance(value, ListValue):
        return ("list", list(value.items))
    if isinstance(value, SetValue):
        return ("set", sorted(value.members))
    if isinstance(value, ZSetValue):
        return ("zset", sorted(value.items, key=lambda ms: (ms[1], ms[0])))
    if isinstance(value, HashValue):
        gone = {f for f, t in value.expires.items() if now_ms is not None and t < now_ms}
        items = sorted((f, v) for f, v in value.items if f not in gone)
        ttl = {f: t for f, t in value.expires.items() if f not in gone}
        return ("hash", items, ttl)
    groups = []
    for g in sorted(value.groups, key=lambda g: g.name):
        pel = sorted((p.id, p.consumer, p.delivery_time_ms, p.delivery_count) for p in g.pel)
        cons = sorted(
            (
                c.name,
                c.seen_time_ms,
                c.active_time_ms if c.active_time_ms >= 0 else c.seen_time_ms,
                sorted(p.id for p in g.pel if p.consumer == c.name),
            )
            for c in g.consumers
        )
        groups.append((g.name, g.last_id, g.entries_read, pel, cons))
    meta = (
        len(value.entries),
        value.last_id,
        value.first_id,
        value.max_deleted_id,
        value.entries_added,
    )
    return ("stream", [(i, list(f)) for i, f in value.entries], meta, groups)


def _pairs(flat: list[Any]) -> dict[bytes, Any]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def server_value(c: redis.Redis, key: bytes) -> tuple[Any, ...]:
    """Read one key back through commands into the ``norm`` form."""
    typ = c.execute_command("TYPE", key)
    if typ == b"string":
        return ("string", c.execute_command("GET", key))
    if typ == b"list":
        return ("list", c.execute_command("LRANGE", key, 0, -1))
    if typ == b"set":
        return ("set", sorted(c.execute_command("SMEMBERS", key)))
    if typ == b"zset":
        flat = c.execute_command("ZRANGE", key, 0, -1, "WITHSCORES")
        return ("zset", [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)])
    if typ == b"hash":
        items = sorted(_pairs(c.execute_command("HGETALL", key)).items())
        names = [f for f, _ in items]
        ttls = c.execute_command("HPEXPIRETIME", key, "FIELDS", len(names), *names)
        return ("hash", items, {f: int(t) for f, t in zip(names, ttls) if int(t) >= 0})
    assert typ == b"stream", typ
    entries = [
        (StreamID.parse(i), [(fv[j], fv[j + 1]) for j in range(0, len(fv), 2)])
        for i, fv in c.execute_command("XRANGE", key, "-", "+")
    ]
    info = _pairs(c.execute_command("XINFO", "STREAM", key, "FULL", "COUNT", 0))
    groups = []
    for graw in info[b"groups"]:
        g = _pairs(graw)
        pel = sorted((StreamID.parse(i), cn, int(t), int(n)) for i, cn, t, n in g[b"pending"])
        cons = sorted(
            (
                cc[b"name"],
                int(cc[b"seen-time"]),
                int(cc[b"active-time"]),
                sorted(StreamID.parse(p[0]) for p in cc[b"pending"]),
            )
            for cc in map(_pairs, g[b"consumers"])
        )
        er = g[b"entries-read"]
        groups.append(
            (
                g[b"name"],
                StreamID.parse(g[b"last-delivered-id"]),
                -1 if er is None else int(er),
                pel,
                cons,
            )
        )
    meta = (
        int(info[b"length"]),
        StreamID.parse(info[b"last-generated-id"]),
        StreamID.parse(info[b"recorded-first-entry-id"]),
        StreamID.parse(info[b"max-deleted-entry-id"]),
        int(info[b"entries-added"]),
    )
    return ("stream", entries, meta, groups)


def raw_client(srv: Any) -> redis.Redis:
    """A RESP2 client without redis-py's reply parsing (bytes in, bytes out)."""
    c = srv.client(protocol=2)
    c.response_callbacks.clear()
    return c  # type: ignore[no-any-return]


def expected_state(records: list[KeyRecord], now_ms: int) -> dict[tuple[int, bytes], Any]:
    """What a primary holds after loading: expired keys and expired hash fields dropped."""
    out: dict[tuple[int, bytes], Any] = {}
    for r in records:
        if r.expire_at_ms is not None and r.expire_at_ms < now_ms:
            continue
        n = norm(r.value, now_ms)
        if n[0] == "hash" and not n[1]:
            continue
        out[(r.db, r.key)] = (n, r.expire_at_ms)
    return out


def server_state(c: redis.Redis, dbs: list[int]) -> dict[tuple[int, bytes], Any]:
    out: dict[tuple[int, bytes], Any] = {}
    for db in dbs:
        c.execute_command("SELECT", db)
        for key in c.execute_command("KEYS", "*"):
            pexp = int(c.execute_command("PEXPIRETIME", key))
            out[(db, key)] = (server_value(c, key), pexp if pexp >= 0 else None)
    return out


def server_encodings(c: redis.Redis, dbs: list[int]) -> dict[tuple[int, bytes], str]:
    out = {}
    for db in dbs:
        c.execute_command("SELECT", db)
        for key in c.execute_command("KEYS", "*"):
            out[(db, key)] = c.execute_command("OBJECT", "ENCODING", key).decode()
    return out


def wait_cluster_ok(c: redis.Redis) -> None:
    """Give a lone cluster node every slot it does not own yet, and wait until it serves them."""
    owned: set[int] = set()
    for start, end, *_ in c.execute_command("CLUSTER", "SLOTS"):
        owned.update(range(int(start), int(end) + 1))
    missing = [s for s in range(16384) if s not in owned]
    if missing:
        c.execute_command("CLUSTER", "ADDSLOTS", *missing)
    deadline = time.monotonic() + 10
    while b"cluster_state:ok" not in c.execute_command("CLUSTER", "INFO"):
        assert time.monotonic() < deadline, "cluster state never became ok"
        time.sleep(0.05)


# ---- a real valkey-server 9.1.2 ------------------------------------------------------------

DBS = [0, 1, 5, 15]
SANITIZE = ("--sanitize-dump-payload", "yes")  # deep validation of every listpack/intset we write


@pytest.mark.real
@pytest.mark.parametrize("compression", [True, False], ids=["lzf", "nocomp"])
def test_real_server_loads_every_type(tmp_path: Path, compression: bool) -> None:
    now_ms = int(time.time() * 1000)
    records = sample_records(now_ms)
    write_rdb(tmp_path / "dump.rdb", records, RdbWriteOptions(compression=compression))
    check = subprocess.run(
        [valkey_tool("valkey-check-rdb", tmp_path), str(tmp_path / "dump.rdb")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0 and "RDB looks OK" in check.stdout, check.stdout
    with real_server(tmp_path, "--dbfilename", "dump.rdb", *SANITIZE) as srv:
        c = raw_client(srv)
        assert server_state(c, DBS) == expected_state(records, now_ms)
        encodings = server_encodings(c, DBS)
        for r in records:
            if (r.db, r.key) in encodings and r.type_name != "string":
                assert encodings[(r.db, r.key)] == object_encoding(r.value), r.key


@pytest.mark.real
def test_real_server_loads_redis0011(tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    records = sample_records(now_ms, with_field_ttls=False)
    write_rdb(tmp_path / "dump.rdb", records, RdbWriteOptions(version=11))
    assert (tmp_path / "dump.rdb").read_bytes()[:9] == b"REDIS0011"
    with pytest.raises(UnsupportedForVersion, match="hfe:mixed"):
        write_rdb(tmp_path / "bad.rdb", sample_records(now_ms), RdbWriteOptions(version=11))
    assert not list(tmp_path.glob("temp-*"))  # the failed write left nothing behind
    with real_server(tmp_path, "--dbfilename", "dump.rdb", *SANITIZE) as srv:
        assert server_state(raw_client(srv), DBS) == expected_state(records, now_ms)


@pytest.mark.real
def test_real_dump_restore_both_ways(tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    values = sample_values(now_ms)
    with real_server(tmp_path, *SANITIZE) as srv:
        c = raw_client(srv)
        for key, value in values:
            for version in (80, 11):
                if version == 11 and isinstance(value, HashValue) and value.expires:
                    continue
                if isinstance(value, StreamValue) and not value.entries:
                    continue  # RESTORE of an empty stream is fine, but keep keys comparable
                c.execute_command("DEL", key)
                c.execute_command("RESTORE", key, 0, dump_payload(value, version=version))
                assert server_value(c, key) == norm(value, now_ms), (key, version)
                # and what the real server DUMPs, we decode
                theirs = c.execute_command("DUMP", key)
                assert theirs[-10:-8] == b"\x50\x00"
                assert norm(load_payload(theirs), now_ms) == norm(value, now_ms), key
        with pytest.raises(redis.ResponseError, match="DUMP payload version or checksum"):
            bad = bytearray(dump_payload(StringValue(b"x")))
            bad[1] ^= 0x40
            c.execute_command("RESTORE", b"bad", 0, bytes(bad))


@pytest.mark.real
@pytest.mark.parametrize("name", ["rdb_all_nocomp", "rdb_all_comp", "rdb_lzf", "cluster_node"])
def test_real_fixture_rewritten_loads_identically(tmp_path: Path, name: str) -> None:
    from persistence.rdb.reader import read_rdb

    src = REAL / name / "dump.rdb"
    records = [e for e in read_rdb(src) if isinstance(e, KeyRecord)]
    assert records
    cluster = name == "cluster_node"
    dbs = sorted({r.db for r in records})
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    write_rdb(ours / "dump.rdb", records, RdbWriteOptions(cluster_slot_info=cluster))
    (theirs / "dump.rdb").write_bytes(src.read_bytes())
    args: tuple[str, ...] = ("--dbfilename", "dump.rdb", *SANITIZE)
    if cluster:
        args += (
            "--cluster-enabled",
            "yes",
            "--cluster-databases",
            "16",
            "--cluster-config-file",
            "nodes.conf",
        )
    else:
        args += ("--databases", "16")

    def port() -> tuple[str, ...]:  # the bus port is port + 10000 unless given
        return ("--cluster-port", str(free_port())) if cluster else ()

    with real_server(theirs, *args, *port()) as a, real_server(ours, *args, *port()) as b:
        if cluster:
            for srv in (a, b):
                wait_cluster_ok(raw_client(srv))
        state_a = server_state(raw_client(a), dbs)
        state_b = server_state(raw_client(b), dbs)
        assert state_b == state_a
        assert len(state_a) >= len(records) - 10  # most keys survive (a few TTLs may be past)


def test_file_round_trip_through_reader(tmp_path: Path) -> None:
    from persistence.rdb.reader import read_rdb
    from persistence.records import FunctionLibrary, SlotImport

    now_ms = int(time.time() * 1000)
    records = sample_records(now_ms)
    for compression in (True, False):
        path = tmp_path / f"dump-{compression}.rdb"
        with open(path, "wb") as f:
            w = RdbWriter(f, RdbWriteOptions(compression=compression))
            w.write_function(b"#!lua name=mylib\nreturn 1")
            w.write_slot_import(b"j" * 40, [(0, 100), (200, 300)])
            for db in DBS:
                w.write_db(db, [r for r in records if r.db == db])
            w.finish()
        events = list(read_rdb(path))
        assert [e.code for e in events if isinstance(e, FunctionLibrary)] == [
            b"#!lua name=mylib\nreturn 1"
        ]
        imports = [e for e in events if isinstance(e, SlotImport)]
        assert [(i.job_name, i.ranges) for i in imports] == [(b"j" * 40, [(0, 100), (200, 300)])]
        got = {
            (e.db, e.key): (norm(e.value), e.expire_at_ms)
            for e in events
            if isinstance(e, KeyRecord)
        }
        assert got == {(r.db, r.key): (norm(r.value), r.expire_at_ms) for r in records}
