from __future__ import annotations

import re
from collections import Counter

import pytest
from conftest import REAL

from persistence.aof.encoder import (
    encode_command,
    record_commands,
    rewrite_commands,
    select_command,
    timestamp_annotation,
)
from persistence.aof.reader import AofCommand, read_aof
from persistence.format import fpconv_dtoa
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
    ZSetValue,
)


def test_encode_command_bytes() -> None:
    assert encode_command([b"SET", b"k", b"v"]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
    assert encode_command([b"SELECT", 12]) == b"*2\r\n$6\r\nSELECT\r\n$2\r\n12\r\n"
    assert encode_command([b"SET", b"", "é"]) == b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$2\r\n\xc3\xa9\r\n"
    big = b"x" * 5000
    assert encode_command([big]) == b"*1\r\n$5000\r\n" + big + b"\r\n"
    many = [b"a"] * 2000
    assert encode_command(many).startswith(b"*2000\r\n$1\r\na\r\n")
    assert timestamp_annotation(1795694363) == b"#TS:1795694363\r\n"
    assert select_command(3) == [b"SELECT", b"3"]


@pytest.mark.parametrize(
    ("score", "text"),
    [
        (3.0, b"3"),
        (-3.0, b"-3"),
        (2.5, b"2.5"),
        (0.0, b"0"),
        (-0.0, b"-0"),
        (float("inf"), b"inf"),
        (float("-inf"), b"-inf"),
        (1e20, b"1e+20"),
        (1e7, b"10000000"),
        (1e8, b"1e+8"),
        (0.001, b"0.001"),
        (1e-5, b"0.00001"),
        (1.5e-7, b"1.5e-7"),
        (202.5, b"202.5"),
        (1 / 3, b"0.3333333333333333"),
        (1e300, b"1e+300"),
    ],
)
def test_format_score(score: float, text: bytes) -> None:
    assert fpconv_dtoa(score) == text


def test_chunks_of_64_and_ttl() -> None:
    items = [b"%d" % i for i in range(130)]
    cmds = list(record_commands(KeyRecord(0, b"l", ListValue(items), expire_at_ms=123)))
    assert [len(c) for c in cmds] == [66, 66, 4, 3]
    assert cmds[0][:3] == [b"RPUSH", b"l", b"0"]
    assert cmds[-1] == [b"PEXPIREAT", b"l", b"123"]
    cmds = list(record_commands(KeyRecord(0, b"s", SetValue(items[:64]))))
    assert len(cmds) == 1 and len(cmds[0]) == 66 and cmds[0][0] == b"SADD"
    z = ZSetValue([(b"m%d" % i, float(i)) for i in range(65)])
    cmds = list(record_commands(KeyRecord(0, b"z", z)))
    assert [len(c) for c in cmds] == [2 + 128, 4]
    assert cmds[1] == [b"ZADD", b"z", b"64", b"m64"]


def test_hash_with_field_ttls() -> None:
    h = HashValue([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")], expires={b"c": 500, b"a": 900})
    cmds = list(record_commands(KeyRecord(0, b"h", h, expire_at_ms=1000)))
    assert cmds == [
        [b"HSETEX", b"h", b"PXAT", b"500", b"FIELDS", b"1", b"c", b"3"],
        [b"HSETEX", b"h", b"PXAT", b"900", b"FIELDS", b"1", b"a", b"1"],
        [b"HMSET", b"h", b"b", b"2"],
        [b"PEXPIREAT", b"h", b"1000"],
    ]


def _stream() -> StreamValue:
    e1, e2 = StreamID(1, 1), StreamID(1, 2)
    g1 = StreamGroup(
        b"g1",
        e2,
        2,
        pel=[StreamPending(e1, b"alice", 77, 3)],
        consumers=[StreamConsumer(b"alice", 1, 1, [e1]), StreamConsumer(b"bob", 1, 1, [])],
    )
    g2 = StreamGroup(b"g2", StreamID(0, 0), -1)
    return StreamValue(
        entries=[(e1, [(b"f", b"v")]), (e2, [(b"a", b"b"), (b"c", b"d")])],
        length=2,
        last_id=StreamID(1, 5),
        first_id=e1,
        max_deleted_id=StreamID(1, 4),
        entries_added=5,
        groups=[g1, g2],
    )


def test_stream_commands() -> None:
    cmds = list(record_commands(KeyRecord(0, b"s", _stream())))
    assert cmds == [
        [b"XADD", b"s", b"1-1", b"f", b"v"],
        [b"XADD", b"s", b"1-2", b"a", b"b", b"c", b"d"],
        [b"XSETID", b"s", b"1-5", b"ENTRIESADDED", b"5", b"MAXDELETEDID", b"1-4"],
        [b"XGROUP", b"CREATE", b"s", b"g1", b"1-2", b"ENTRIESREAD", b"2"],
        [b"XCLAIM", b"s", b"g1", b"alice", b"0", b"1-1", b"TIME", b"77", b"RETRYCOUNT", b"3",
         b"JUSTID", b"FORCE"],
        [b"XGROUP", b"CREATECONSUMER", b"s", b"g1", b"bob"],
        [b"XGROUP", b"CREATE", b"s", b"g2", b"0-0", b"ENTRIESREAD", b"-1"],
    ]  # fmt: skip
    empty = StreamValue([], 0, StreamID(3, 0), StreamID(0, 0), StreamID(0, 0), 1)
    cmds = list(record_commands(KeyRecord(0, b"e", empty)))
    assert cmds[0] == [b"XADD", b"e", b"MAXLEN", b"0", b"0-1", b"x", b"y"]
    assert cmds[1] == [b"XSETID", b"e", b"3-0", b"ENTRIESADDED", b"1", b"MAXDELETEDID", b"0-0"]


def test_rewrite_commands_layout() -> None:
    recs = [
        KeyRecord(0, b"a", StringValue(b"1")),
        KeyRecord(0, b"b", StringValue(b"2")),
        KeyRecord(3, b"c", StringValue(b"3")),
    ]
    out = b"".join(rewrite_commands(recs, functions=[b"#!lua name=x"], timestamp=7))
    expected = b"".join(
        [
            b"#TS:7\r\n",
            encode_command([b"FUNCTION", b"LOAD", b"#!lua name=x"]),
            encode_command([b"SELECT", b"0"]),
            encode_command([b"SET", b"a", b"1"]),
            encode_command([b"SET", b"b", b"2"]),
            encode_command([b"SELECT", b"3"]),
            encode_command([b"SET", b"c", b"3"]),
        ]
    )
    assert out == expected


# ---- against Valkey's own RESP base ---------------------------------------------------------

_MS = re.compile(rb"^17\d{11}$")  # wall-clock dependent ms (TTLs, delivery times) differ per run
_UNORDERED = {b"SADD": 1, b"HMSET": 2, b"ZADD": 2}


def _normalise(cmds: list[list[bytes]]) -> Counter[tuple[bytes, ...]]:
    """Commands as a multiset; wall-clock ms masked; SADD/HMSET/ZADD chunks (whose split depends
    on the server's hash-table order) merged per key into one sorted item list + chunk count."""
    out: Counter[tuple[bytes, ...]] = Counter()
    merged: dict[tuple[bytes, bytes], list[tuple[bytes, ...]]] = {}
    chunks: Counter[tuple[bytes, bytes]] = Counter()
    for cmd in cmds:
        cmd = [b"<ms>" if _MS.match(a) else a for a in cmd]
        per = _UNORDERED.get(cmd[0].upper())
        if per is None:
            out[tuple(cmd)] += 1
            continue
        key = (cmd[0].upper(), cmd[1])
        args = cmd[2:]
        merged.setdefault(key, []).extend(
            tuple(args[i : i + per]) for i in range(0, len(args), per)
        )
        chunks[key] += 1
    for key, items in merged.items():
        out[(*key, b"chunks=%d" % chunks[key], *(b"|".join(i) for i in sorted(items)))] += 1
    return out


def test_nopreamble_base_equals_records_of_rdb_twin() -> None:
    # the RESP base of aof_nopreamble and the RDB base of aof_preamble were written by two runs of
    # the same workload at the same stage (generation_notes.json: stage 2_after_rewrite1)
    from persistence.rdb.reader import read_rdb

    resp_base = REAL / "aof_nopreamble/appendonlydir/appendonly.aof.2.base.aof"
    valkey_cmds = [it.argv for it in read_aof(resp_base) if isinstance(it, AofCommand)]
    rdb_base = REAL / "aof_preamble/appendonlydir/appendonly.aof.2.base.rdb"
    ours: list[list[bytes]] = []
    db = None
    for ev in read_rdb(rdb_base):
        if isinstance(ev, KeyRecord):
            if ev.db != db:
                ours.append(select_command(ev.db))
                db = ev.db
            ours.extend(record_commands(ev))
    assert len(ours) == len(valkey_cmds)
    assert _normalise(ours) == _normalise(valkey_cmds)
    # and the bytes of each command are what encode_command writes
    data = resp_base.read_bytes()
    for it in read_aof(resp_base):
        if isinstance(it, AofCommand):
            assert data[it.offset : it.offset + it.size] == encode_command(it.argv)
