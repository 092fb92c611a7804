"""The minimal AOF applier (tools/applier.py): unit tests per command family, the real
valkey-server 9.1.2 fixtures (AOF dirs and slot-migration targets replayed and compared with the
server's own contents), and a differential test against a live server."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import REAL

from persistence.aof.reader import AofCommand, AofRecord, read_aof
from persistence.crc import key_slot
from persistence.rdb.dump import dump_payload
from persistence.records import (
    HashValue,
    KeyRecord,
    ListValue,
    SetValue,
    SlotImport,
    StreamID,
    StreamValue,
    StringValue,
    ZSetValue,
)
from tools.applier import Applier, ApplyError

NOW = 1_800_000_000_000


def run(*cmds: str | list[bytes], now_ms: int = NOW) -> Applier:
    ap = Applier(now_ms=now_ms)
    for c in cmds:
        ap.apply(c.encode().split() if isinstance(c, str) else c)
    return ap


def contents(ap: Applier, now_ms: int | None = None) -> dict[tuple[int, bytes], Any]:
    """(db, key) -> a plain comparable value (+ TTL)."""
    out: dict[tuple[int, bytes], Any] = {}
    for r in ap.records(now_ms=now_ms):
        v = r.value
        if isinstance(v, StringValue):
            pv: Any = v.value
        elif isinstance(v, ListValue):
            pv = v.items
        elif isinstance(v, SetValue):
            pv = set(v.members)
        elif isinstance(v, ZSetValue):
            pv = v.items
        elif isinstance(v, HashValue):
            pv = (dict(v.items), v.expires) if v.expires else dict(v.items)
        else:
            pv = v
        out[(r.db, r.key)] = (pv, r.expire_at_ms) if r.expire_at_ms is not None else pv
    return out


def value_of(ap: Applier, key: bytes, db: int = 0) -> Any:
    return contents(ap).get((db, key))


def err(ap: Applier, cmd: str) -> ApplyError:
    with pytest.raises(ApplyError) as e:
        ap.apply(cmd.encode().split())
    return e.value


# ---- dispatch, arity, db -------------------------------------------------------------------


def test_unknown_arity_and_wrongtype() -> None:
    ap = run("SET s v")
    e = err(ap, "FOO a b")
    assert e.kind == "unknown" and e.message.startswith("ERR unknown command 'FOO'")
    e = err(ap, "SET k")
    assert (e.kind, e.message) == ("arity", "ERR wrong number of arguments for 'set' command")
    e = err(ap, "RPUSH s x")
    assert e.message.startswith("WRONGTYPE") and e.kind == "runtime"
    assert err(ap, "PFADD h a").kind == "unsupported"
    ap.apply([b"GET", b"s"])  # read-only: no effect
    assert value_of(ap, b"s") == b"v"


def test_select_swapdb_flush_move_copy() -> None:
    ap = run("SET a 1", "SELECT 3", "SET b 2 PXAT 5", "MOVE b 4", "SELECT 4", "COPY b c DB 0")
    assert contents(ap) == {(0, b"a"): b"1", (0, b"c"): (b"2", 5), (4, b"b"): (b"2", 5)}
    ap.apply(b"SWAPDB 0 4".split())
    assert set(contents(ap)) == {(4, b"a"), (4, b"c"), (0, b"b")}
    ap.apply(b"FLUSHDB".split())  # current db is 4
    assert set(contents(ap)) == {(0, b"b")}
    ap.apply(b"FLUSHALL ASYNC".split())
    assert contents(ap) == {}
    assert err(ap, "SELECT 16").message == "ERR DB index is out of range"


def test_rename_copy_replace_and_ttl() -> None:
    ap = run("SET a 1 PXAT 10", "SET b 2", "RENAME a x", "RENAMENX b x", "COPY b x")
    assert contents(ap) == {(0, b"x"): (b"1", 10), (0, b"b"): b"2"}
    ap.apply(b"COPY b x REPLACE".split())
    assert value_of(ap, b"x") == b"2"
    assert err(ap, "RENAME nope y").message == "ERR no such key"


# ---- strings and key TTLs ------------------------------------------------------------------


def test_set_options_and_past_ttl_kept() -> None:
    ap = run(
        "SET a v PXAT 1000",  # in the past: stored, not expired (loading)
        "SET b v EX 10",
        "SET c v PX 5",
        "SET d v EXAT 7",
        "SET b w KEEPTTL",
        "SET a x NX",
        "SET zz y XX",
        "SET e 1 PXAT 99",
        "SET e 2",
    )
    c = contents(ap)
    assert c[(0, b"a")] == (b"v", 1000)
    assert c[(0, b"b")] == (b"w", NOW + 10_000)
    assert c[(0, b"c")] == (b"v", NOW + 5)
    assert c[(0, b"d")] == (b"v", 7000)
    assert c[(0, b"e")] == b"2"
    assert (0, b"zz") not in c
    assert contents(ap, now_ms=1000) == {
        k: v for k, v in c.items() if not (isinstance(v, tuple) and v[1] <= 1000)
    }
    assert err(ap, "SET a v EX 0").message == "ERR invalid expire time in 'set' command"
    assert err(ap, "SET a v NX XX").message == "ERR syntax error"


def test_expire_family() -> None:
    ap = run("SET k v", "EXPIRE k 10", "PEXPIRE k 5 GT", "PEXPIREAT k 3 LT", "SET n v")
    assert value_of(ap, b"k") == (b"v", 3)
    ap.apply(b"EXPIREAT n 5 XX".split())
    assert value_of(ap, b"n") == b"v"
    ap.apply(b"PEXPIREAT n 7 NX".split())
    ap.apply(b"PERSIST k".split())
    assert contents(ap) == {(0, b"k"): b"v", (0, b"n"): (b"v", 7)}
    assert err(ap, "EXPIRE k 1 NX XX").message.startswith("ERR NX and XX")


def test_string_arithmetic() -> None:
    ap = run(
        "SET i 10 PXAT 50",
        "INCR i",
        "INCRBY i 5",
        "DECR i",
        "DECRBY i 2",
        "INCRBYFLOAT f 1.5",
        "INCRBYFLOAT f 0.25",
        "APPEND s ab",
        "APPEND s cd",
        "SETRANGE s 6 X",
        "SETRANGE s 0 Z",
        "MSET m1 a m2 b",
        "MSETNX m2 c m3 d",
        "SET g 1",
        "GETDEL g",
        "SETNX m1 z",
        "GETSET m1 q",
    )
    c = contents(ap)
    assert c[(0, b"i")] == (b"13", 50)
    assert c[(0, b"f")] == b"1.75"
    assert c[(0, b"s")] == b"Zbcd\0\0X"
    assert c[(0, b"m1")] == b"q" and (0, b"m3") not in c and (0, b"g") not in c
    assert err(ap, "INCR s").message == "ERR value is not an integer or out of range"
    ap.apply(b"SET big 9223372036854775807".split())
    assert err(ap, "INCR big").message == "ERR increment or decrement would overflow"


# ---- lists, sets ---------------------------------------------------------------------------


def test_lists() -> None:
    ap = run(
        "RPUSH l a b c d e",
        "LPUSH l z",
        "RPUSHX nope x",
        "LPOP l",
        "RPOP l 2",
        "LSET l -1 C",
        "LINSERT l BEFORE C bc",
        "LINSERT l AFTER a ab",
        "RPUSH l a a",
        "LREM l -1 a",
        "LMOVE l m LEFT RIGHT",
        "RPOPLPUSH l m",
        "LTRIM l 0 1",
    )
    c = contents(ap)
    assert c[(0, b"l")] == [b"ab", b"b"]
    assert c[(0, b"m")] == [b"a", b"a"]
    ap.apply(b"LPOP l 5".split())
    assert (0, b"l") not in contents(ap)
    assert err(ap, "LSET m 5 x").message == "ERR index out of range"


def test_sets() -> None:
    ap = run(
        "SADD s a b c",
        "SADD t b c d",
        "SREM s a",
        "SMOVE t s d",
        "SINTERSTORE i s t",
        "SUNIONSTORE u s t",
        "SDIFFSTORE d s t",
        "SADD e x",
        "SINTERSTORE e s nope",
    )
    c = contents(ap)
    assert c[(0, b"s")] == {b"b", b"c", b"d"}
    assert c[(0, b"i")] == {b"b", b"c"}
    assert c[(0, b"u")] == {b"b", b"c", b"d"}
    assert c[(0, b"d")] == {b"d"}
    assert (0, b"e") not in c


# ---- sorted sets ---------------------------------------------------------------------------


def test_zsets() -> None:
    ap = run(
        "ZADD z 1 a 2 b 3 c 4 d",
        "ZADD z NX 9 a 5 e",
        "ZADD z XX CH 10 b 1 nope",
        "ZADD z GT 0 c",
        "ZADD z LT 0 c",
        "ZADD z INCR 2 a",
        "ZINCRBY z -1 e",
        "ZREM z d",
        "ZPOPMAX z",
        "ZADD y 1 x 2 e",
        "ZUNIONSTORE u 2 z y WEIGHTS 1 10 AGGREGATE MAX",
        "ZINTERSTORE i 2 z y",
        "ZDIFFSTORE df 2 z y",
        "ZRANGESTORE r z 0 +inf BYSCORE LIMIT 0 2",
        "ZADD w 1 a 1 b 1 c 1 d",
        "ZREMRANGEBYLEX w [b (d",
        "ZADD v 1 a 2 b 3 c inf d",
        "ZREMRANGEBYSCORE v (1 3",
        "ZREMRANGEBYRANK v -1 -1",
    )
    c = contents(ap)
    assert c[(0, b"z")] == [(b"c", 0.0), (b"a", 3.0), (b"e", 4.0)]
    assert c[(0, b"u")] == [(b"c", 0.0), (b"a", 3.0), (b"x", 10.0), (b"e", 20.0)]
    assert c[(0, b"i")] == [(b"e", 6.0)]
    assert c[(0, b"df")] == [(b"c", 0.0), (b"a", 3.0)]
    assert c[(0, b"r")] == [(b"c", 0.0), (b"a", 3.0)]
    assert c[(0, b"w")] == [(b"a", 1.0), (b"d", 1.0)]
    assert c[(0, b"v")] == [(b"a", 1.0)]
    ap.apply(b"ZPOPMIN v 3".split())
    assert (0, b"v") not in contents(ap)
    assert err(ap, "ZADD z nan x").message == "ERR value is not a valid float"
    assert err(ap, "ZADD z NX XX 1 x").message.startswith("ERR XX and NX")


# ---- hashes and field TTLs -----------------------------------------------------------------


def test_hash_basic() -> None:
    ap = run(
        "HSET h a 1 b 2",
        "HMSET h c 3",
        "HSETNX h a 9",
        "HDEL h b",
        "HINCRBY h a 5",
        "HINCRBYFLOAT h f 2.5",
    )
    assert value_of(ap, b"h") == {b"a": b"6", b"c": b"3", b"f": b"2.5"}
    assert err(ap, "HINCRBY h f 1").message == "ERR hash value is not an integer"
    ap.apply(b"HDEL h a c f".split())
    assert value_of(ap, b"h") is None


def test_hash_field_ttls() -> None:
    ap = run(
        "HSETEX h PXAT 1000 FIELDS 2 a 1 b 2",  # past: stored while loading
        "HSETEX h KEEPTTL FIELDS 1 a x",
        "HSETEX h FIELDS 1 b y",  # no time option: TTL removed
        "HSETEX h EX 10 FIELDS 1 c 3",
        "HSETEX h FNX PXAT 5 FIELDS 1 c 9",  # c exists: nothing
        "HSETEX h FXX PXAT 5 FIELDS 1 d 9",  # d missing: nothing
        "HSETEX h NX PXAT 5 FIELDS 1 d 9",  # key exists: nothing (9.1 NX)
        "HSET h e 5",
        "HPEXPIREAT h 2000 NX FIELDS 2 e nope",
        "HPEXPIREAT h 3000 GT FIELDS 1 e",
        "HPEXPIREAT h 1 GT FIELDS 1 e",  # not greater: kept
        "HEXPIRE h 1 LT FIELDS 1 b",  # b has no TTL: LT applies
        "HINCRBY h e 1",  # keeps the TTL
        "HSET h a z",  # clears a's TTL
    )
    fields, ttls = value_of(ap, b"h")
    assert fields == {b"a": b"z", b"b": b"y", b"c": b"3", b"e": b"6"}
    assert ttls == {b"c": NOW + 10_000, b"e": 3000, b"b": NOW + 1000}
    ap.apply(b"HPERSIST h FIELDS 2 c nope".split())
    ap.apply(b"HGETEX h PX 7 FIELDS 1 a".split())
    ap.apply(b"HGETDEL h FIELDS 1 b".split())
    fields, ttls = value_of(ap, b"h")
    assert set(fields) == {b"a", b"c", b"e"} and ttls == {b"e": 3000, b"a": NOW + 7}
    # records(now_ms) drops expired fields; a hash left empty disappears
    ap.apply(b"HSETEX g PXAT 10 FIELDS 1 f v".split())
    c = contents(ap, now_ms=3000)
    assert c[(0, b"h")] == ({b"a": b"z", b"c": b"3"}, {b"a": NOW + 7})
    assert (0, b"g") not in c
    bad = "ERR numfields should be greater than 0 and match the provided number of fields"
    assert err(ap, "HSETEX h FIELDS 2 a 1").message == bad
    assert err(ap, "HSETEX h EX 10 PX 5 FIELDS 1 a 1").message == "ERR syntax error"
    assert err(ap, "HPEXPIREAT h -1 FIELDS 1 a").message == (
        "ERR invalid expire time in 'hpexpireat' command"
    )


# ---- streams -------------------------------------------------------------------------------


def stream(ap: Applier, key: bytes = b"s") -> StreamValue:
    for r in ap.records():
        if r.key == key and isinstance(r.value, StreamValue):
            return r.value
    raise AssertionError("no stream")


def sid(s: str) -> StreamID:
    return StreamID.parse(s)


def test_stream_add_trim_del_setid() -> None:
    ap = run("XADD s 1-1 f v", "XADD s 1-* f v", "XADD s 5 f v", "XADD s * f v")
    s = stream(ap)
    assert [str(i) for i, _ in s.entries] == ["1-1", "1-2", "5-0", f"{NOW}-0"]
    ap.apply(b"XDEL s 1-2 9-9".split())
    ap.apply(b"XTRIM s MAXLEN = 2".split())
    s = stream(ap)
    assert [str(i) for i, _ in s.entries] == ["5-0", f"{NOW}-0"]
    assert (s.length, s.entries_added, s.first_id, s.max_deleted_id) == (
        2,
        4,
        sid("5-0"),
        sid("1-2"),
    )
    for c in ("XADD t 1-0 a b", "XADD t 2-0 a b", "XADD t 3-0 a b", "XADD t MINID = 3 4-0 a b"):
        ap.apply(c.encode().split())
    t = stream(ap, b"t")
    assert [str(i) for i, _ in t.entries] == ["3-0", "4-0"] and t.first_id == sid("3-0")
    assert t.max_deleted_id == sid("0-0")  # trimming never moves max-deleted-entry-id
    assert err(ap, "XADD s 1-0 a b").message.startswith("ERR The ID specified in XADD is equal")
    ap.apply(b"XADD e MAXLEN 0 0-1 x y".split())  # the rewrite of an empty stream
    e = stream(ap, b"e")
    assert (e.length, e.last_id, e.first_id, e.entries_added) == (0, sid("0-1"), sid("0-0"), 1)
    ap.apply(b"XSETID e 5-5 ENTRIESADDED 9 MAXDELETEDID 3-0".split())
    e = stream(ap, b"e")
    assert (e.last_id, e.entries_added, e.max_deleted_id) == (sid("5-5"), 9, sid("3-0"))
    assert err(ap, "XSETID e 1-0").message.startswith("ERR The ID specified in XSETID is smaller")
    ap.apply(b"XADD nope NOMKSTREAM * a b".split())
    assert all(r.key != b"nope" for r in ap.records())


def test_stream_groups_like_xreadgroup_propagation() -> None:
    ap = run(
        "XADD s 1-1 a 1",
        "XADD s 1-2 a 2",
        "XADD s 1-3 a 3",
        "XGROUP CREATE s g 0",
        "XCLAIM s g alice 0 1-1 TIME 100 RETRYCOUNT 1 FORCE JUSTID LASTID 1-1",
        "XCLAIM s g alice 0 1-2 TIME 100 RETRYCOUNT 1 FORCE JUSTID LASTID 1-2",
        "XGROUP SETID s g 1-2 ENTRIESREAD 2",
        "XACK s g 1-1",
        "XCLAIM s g bob 0 1-2 TIME 200 RETRYCOUNT 2 FORCE JUSTID LASTID 1-2",
        "XGROUP CREATE s h $",
        "XGROUP CREATECONSUMER s h carol",
        "XGROUP CREATE m g2 $ MKSTREAM ENTRIESREAD 0",
        "XGROUP CREATECONSUMER s g tmp",
        "XGROUP DELCONSUMER s g tmp",
    )
    s = stream(ap)
    g, h = s.groups
    assert (g.name, g.last_id, g.entries_read) == (b"g", sid("1-2"), 2)
    assert [(str(p.id), p.consumer, p.delivery_time_ms, p.delivery_count) for p in g.pel] == [
        ("1-2", b"bob", 200, 2)
    ]
    assert [(c.name, [str(i) for i in c.pel]) for c in g.consumers] == [
        (b"alice", []),
        (b"bob", ["1-2"]),
    ]
    assert (h.last_id, h.entries_read, [c.name for c in h.consumers]) == (
        sid("1-3"),
        -1,
        [b"carol"],
    )
    m = stream(ap, b"m")
    assert (m.length, m.groups[0].entries_read) == (0, 0)
    # XCLAIM of a deleted entry drops the PEL entry
    ap.apply(b"XDEL s 1-2".split())
    ap.apply(b"XCLAIM s g bob 0 1-2 JUSTID".split())
    assert stream(ap).groups[0].pel == []
    assert err(ap, "XGROUP CREATE s g 0").message.startswith("BUSYGROUP")
    assert err(ap, "XGROUP SETID s nog 0").message.startswith("NOGROUP")
    assert err(ap, "XGROUP CREATE nokey g 0").message.startswith("ERR The XGROUP subcommand")
    ap.apply(b"XGROUP DESTROY s h".split())
    assert [g.name for g in stream(ap).groups] == [b"g"]


# ---- RDB base records and slot imports -----------------------------------------------------


def test_load_record_copy_restore_function() -> None:
    ap = Applier(now_ms=NOW)
    ap.load_record(KeyRecord(2, b"h", HashValue([(b"f", b"v")], {b"f": 5}), 7))
    ap.apply(b"SELECT 2".split())
    ap.apply(b"HSET h g w".split())
    assert contents(ap) == {(2, b"h"): (({b"f": b"v", b"g": b"w"}, {b"f": 5}), 7)}
    assert contents(ap, now_ms=7) == {}
    # COPY duplicates a stream deeply (groups included)
    for c in ("XADD s 1-1 a b", "XGROUP CREATE s g 0", "COPY s t", "XGROUP DESTROY s g"):
        ap.apply(c.encode().split())
    assert [g.name for g in stream(ap, b"t").groups] == [b"g"] and stream(ap).groups == []
    # RESTORE of a DUMP payload, TTL relative or ABSTTL (a past time is kept)
    payload = dump_payload(ListValue([b"x", b"y"]))
    ap.apply([b"RESTORE", b"l", b"100", payload])
    ap.apply([b"RESTORE", b"m", b"5", payload, b"ABSTTL"])
    assert value_of(ap, b"l", 2) == ([b"x", b"y"], NOW + 100)
    assert value_of(ap, b"m", 2) == ([b"x", b"y"], 5)
    e = err(ap, "RESTORE l 0 junk")
    assert e.message.startswith("BUSYKEY")
    # FUNCTION LOAD is accepted (libraries kept apart from the keys)
    ap.apply(
        [b"FUNCTION", b"LOAD", b"#!lua name=lib\nserver.register_function('f', function() end)"]
    )
    assert list(ap.functions) == [b"lib"]


def test_errors_change_nothing() -> None:
    ap = run("SET s v", "ZADD z 1 a", "HSET h f v", "XADD x 1-1 a b")
    before = contents(ap)
    for bad in (
        "LPUSH s a",
        "ZADD z 1 a 2",
        "ZADD z 1 a nan b",
        "HSETEX h FNX FXX FIELDS 1 f v",
        "HPEXPIREAT h 5 NX XX FIELDS 1 f",
        "XADD x 1-0 a b",
        "XADD x MAXLEN -1 * a b",
        "XGROUP SETID x nog 0",
        "SETRANGE s -1 x",
        "SINTERSTORE d s z",
        "ZUNIONSTORE d 2 z s",
    ):
        with pytest.raises(ApplyError):
            ap.apply(bad.encode().split())
    assert contents(ap) == before


def _slot_key(slot: int, tag: str) -> bytes:
    for i in range(100000):
        k = f"{{{tag}{i}}}:k".encode()
        if key_slot(k) == slot:
            return k
    raise AssertionError


def test_slot_import_success_failed_and_restart() -> None:
    k100, k5 = _slot_key(100, "a"), _slot_key(5, "b")
    est = [b"CLUSTER", b"SYNCSLOTS", b"ESTABLISH", b"SOURCE", b"x" * 40, b"NAME"]
    fin = [b"CLUSTER", b"SYNCSLOTS", b"FINISH", b"STATE"]
    for state, survives in ((b"SUCCESS", True), (b"FAILED", False), (None, False)):
        ap = Applier(now_ms=NOW)
        ap.apply([b"SET", k5, b"pre"])
        ap.apply([*est, b"job", b"SLOTSRANGE", b"100", b"102"])
        ap.apply([b"SELECT", b"3"])
        ap.apply([b"SET", k100, b"v"])
        if state is not None:
            ap.apply([*fin, state, b"NAME", b"job", b"MESSAGE", b""])
        ap.finish()
        keys = {(r.db, r.key) for r in ap.records()}
        assert keys == ({(0, k5), (3, k100)} if survives else {(0, k5)})
    ap = Applier()
    ap.load_record(KeyRecord(0, k100, StringValue(b"v")))
    ap.load_slot_import(SlotImport(b"job", [(100, 100)]))
    ap.finish()
    assert ap.records() == []


# ---- the real fixtures ---------------------------------------------------------------------


def _b(v: Any) -> bytes:
    return base64.b64decode(v["base64"]) if isinstance(v, dict) else str(v).encode()


def _canon_expected(k: dict[str, Any]) -> Any:
    t = k["type"]
    v = k["value"]
    if t == "string":
        val: Any = ("sha", k["value_sha256"]) if "value_sha256" in k else _b(v)
    elif t == "list":
        val = [_b(x) for x in v]
    elif t == "set":
        val = {_b(x) for x in v}
    elif t == "zset":
        val = sorted((float(s), _b(m)) for m, s in v)
    elif t == "hash":
        val = (
            {_b(f): _b(x) for f, x in v},
            {_b(f): ms for f, ms in k.get("field_expire_at_ms", [])},
        )
    else:
        meta = k["stream_meta"]
        val = (
            [(e[0], [(_b(f), _b(x)) for f, x in e[1]]) for e in v],
            (
                meta["length"],
                meta["last-generated-id"],
                meta["max-deleted-entry-id"],
                meta["entries-added"],
                meta["recorded-first-entry-id"],
            ),
            [
                (
                    _b(g["name"]),
                    g["last_delivered_id"],
                    -1 if g["entries_read"] is None else g["entries_read"],
                    [(p[0], _b(p[1]), p[2], p[3]) for p in g["pel"]],
                    [(_b(c["name"]), [p[0] for p in c["pel"]]) for c in g["consumers"]],
                )
                for g in k["stream_groups"]
            ],
        )
    return (t, k["expire_at_ms"], val)


def _canon_record(r: KeyRecord, want: Any) -> Any:
    v = r.value
    if isinstance(v, StringValue):
        big = isinstance(want, tuple) and want[2][:1] == ("sha",)
        val: Any = ("sha", hashlib.sha256(v.value).hexdigest()) if big else v.value
    elif isinstance(v, ListValue):
        val = v.items
    elif isinstance(v, SetValue):
        val = set(v.members)
    elif isinstance(v, ZSetValue):
        val = sorted((s, m) for m, s in v.items)
    elif isinstance(v, HashValue):
        val = (dict(v.items), v.expires)
    else:
        assert isinstance(v, StreamValue)
        val = (
            [(str(i), f) for i, f in v.entries],
            (v.length, str(v.last_id), str(v.max_deleted_id), v.entries_added, str(v.first_id)),
            [
                (
                    g.name,
                    str(g.last_id),
                    g.entries_read,
                    [(str(p.id), p.consumer, p.delivery_time_ms, p.delivery_count) for p in g.pel],
                    [(c.name, [str(i) for i in c.pel]) for c in g.consumers],
                )
                for g in v.groups
            ],
        )
    return (r.type_name, r.expire_at_ms, val)


def replay(path: Path, clock: int) -> Applier:
    ap = Applier(now_ms=clock)
    for item in read_aof(path):
        if isinstance(item, AofCommand):
            ap.apply(item.argv)
        elif isinstance(item, AofRecord):
            if isinstance(item.event, KeyRecord):
                ap.load_record(item.event)
            elif isinstance(item.event, SlotImport):
                ap.load_slot_import(item.event)
    ap.finish()
    return ap


def compare(ap: Applier, expected: list[dict[str, Any]], now_ms: int | None) -> None:
    want = {(k["db"], _b(k["key"])): _canon_expected(k) for k in expected}
    recs = ap.records(now_ms=now_ms)
    got = {(r.db, r.key): _canon_record(r, want.get((r.db, r.key))) for r in recs}
    assert sorted(got) == sorted(want)
    for key in want:
        assert got[key] == want[key], key


@pytest.mark.parametrize(
    ("folder", "expected_name"),
    [
        ("aof_nopreamble/appendonlydir", "expected.json"),
        ("aof_timestamp/appendonlydir", "expected.json"),
        ("aof_preamble/appendonlydir", "expected.json"),
        ("aof_nopreamble/stage1_appendonlydir", "stage1_expected.json"),
        ("cluster_node/appendonlydir", "expected.json"),
    ],
)
def test_real_aof_fixtures(folder: str, expected_name: str) -> None:
    root = REAL / folder.split("/")[0]
    exp = json.loads((root / expected_name).read_text())
    gen = json.loads((root / "expected.json").read_text())["generated_at_ms"]
    ap = replay(REAL / folder, gen)
    compare(ap, exp["keys"], gen)


@pytest.mark.parametrize(
    ("case", "expected_keys"),
    [
        ("success", None),
        ("cancel", None),
        ("cancel_partial", []),
        ("kill", [b"{t42461}:preexisting_on_target"]),
        ("kill_partial", []),
    ],
)
def test_real_slot_migration_targets(case: str, expected_keys: list[bytes] | None) -> None:
    sm = REAL / "slot_migration"
    ap = replay(sm / f"{case}_target_appendonlydir", 1_795_694_900_000)
    if expected_keys is None:
        compare(ap, json.loads((sm / f"{case}_target_state_after.json").read_text())["keys"], None)
    else:
        assert [r.key for r in ap.records()] == expected_keys


# ---- differential test against a real valkey-server ----------------------------------------


def _workload(rng: random.Random) -> list[list[str]]:
    """Type-aware random writes: key ``<type><n>`` only gets commands of its type."""
    by_type: dict[str, list[Any]] = {
        "s": [
            lambda k, m, n: ["SET", k, str(n)],
            lambda k, m, n: ["SET", k, "v", "EX", "1000"],
            lambda k, m, n: ["SET", k, "w", "KEEPTTL", "GET"],
            lambda k, m, n: ["INCRBY", k, str(rng.randrange(-5, 5))],
            lambda k, m, n: ["INCRBYFLOAT", k, "0.1"],
            lambda k, m, n: ["APPEND", k, "x"],
            lambda k, m, n: ["SETRANGE", k, "3", "yy"],
            lambda k, m, n: ["GETEX", k, "PX", "5000"],
            lambda k, m, n: ["GETDEL", k],
        ],
        "l": [
            lambda k, m, n: ["RPUSH", k, m, str(n)],
            lambda k, m, n: ["LPUSH", k, m],
            lambda k, m, n: ["LPOP", k, "2"],
            lambda k, m, n: ["RPOP", k],
            lambda k, m, n: ["LREM", k, "-1", m],
            lambda k, m, n: ["LINSERT", k, "AFTER", m, "ins"],
            lambda k, m, n: ["LSET", k, "0", "set"],
            lambda k, m, n: ["LTRIM", k, "0", "4"],
            lambda k, m, n: ["LMOVE", k, "l" + str(rng.randrange(3)), "LEFT", "RIGHT"],
            lambda k, m, n: ["BLPOP", k, "0.01"],
            lambda k, m, n: ["LMPOP", "1", k, "RIGHT", "COUNT", "2"],
        ],
        "t": [
            lambda k, m, n: ["SADD", k, m, str(n % 5)],
            lambda k, m, n: ["SREM", k, m],
            lambda k, m, n: ["SPOP", k],
            lambda k, m, n: ["SMOVE", k, "t" + str(rng.randrange(3)), m],
            lambda k, m, n: ["SUNIONSTORE", k, k, "t" + str(rng.randrange(3))],
            lambda k, m, n: ["SDIFFSTORE", k, k, "t" + str(rng.randrange(3))],
        ],
        "z": [
            lambda k, m, n: ["ZADD", k, str(rng.randrange(9)), m],
            lambda k, m, n: ["ZADD", k, "GT", "CH", str(rng.randrange(9)), m],
            lambda k, m, n: ["ZINCRBY", k, "1.5", m],
            lambda k, m, n: ["ZPOPMIN", k],
            lambda k, m, n: ["ZPOPMAX", k, "2"],
            lambda k, m, n: ["BZPOPMIN", k, "0.01"],
            lambda k, m, n: ["ZREMRANGEBYSCORE", k, "(2", "4"],
            lambda k, m, n: ["ZUNIONSTORE", k, "2", k, "z" + str(rng.randrange(3))],
            lambda k, m, n: ["ZINTERSTORE", k, "2", k, "z" + str(rng.randrange(3))],
            lambda k, m, n: ["ZRANGESTORE", k, "z" + str(rng.randrange(3)), "0", "2"],
        ],
        "h": [
            lambda k, m, n: ["HSET", k, m, str(n)],
            lambda k, m, n: ["HDEL", k, m],
            lambda k, m, n: ["HINCRBY", k, m, "2"],
            lambda k, m, n: ["HSETNX", k, m, "nx"],
            lambda k, m, n: ["HSETEX", k, "EX", "1000", "FIELDS", "1", m, "x"],
            lambda k, m, n: ["HSETEX", k, "FNX", "PX", "90000", "FIELDS", "1", m, "y"],
            lambda k, m, n: ["HEXPIRE", k, "500", "GT", "FIELDS", "1", m],
            lambda k, m, n: ["HPEXPIRE", k, "700000", "FIELDS", "2", m, "m1"],
            lambda k, m, n: ["HGETEX", k, "PERSIST", "FIELDS", "1", m],
            lambda k, m, n: ["HGETEX", k, "EX", "900", "FIELDS", "1", m],
            lambda k, m, n: ["HGETDEL", k, "FIELDS", "1", m],
            lambda k, m, n: ["HPERSIST", k, "FIELDS", "1", m],
        ],
        "x": [
            lambda k, m, n: ["XADD", k, "*", "f", str(n)],
            lambda k, m, n: ["XADD", k, "MAXLEN", "~", "3", "*", "f", "v"],
            lambda k, m, n: ["XADD", k, "MINID", "=", "0-1", "*", "f", "v"],
            lambda k, m, n: ["XTRIM", k, "MAXLEN", "4"],
            lambda k, m, n: ["XGROUP", "CREATE", k, "g", "0", "MKSTREAM"],
            lambda k, m, n: ["XREADGROUP", "GROUP", "g", m, "COUNT", "2", "STREAMS", k, ">"],
            lambda k, m, n: ["XREADGROUP", "GROUP", "g", m, "NOACK", "STREAMS", k, ">"],
            lambda k, m, n: ["XAUTOCLAIM", k, "g", m, "0", "0", "COUNT", "1"],
            lambda k, m, n: ["XCLAIM", k, "g", m, "0", "0-1", "1-0"],
            lambda k, m, n: ["XGROUP", "SETID", k, "g", "0"],
            lambda k, m, n: ["XGROUP", "DELCONSUMER", k, "g", m],
        ],
    }
    generic: list[Any] = [
        lambda k, k2: ["EXPIRE", k, "2000"],
        lambda k, k2: ["PEXPIRE", k, "90000", "GT"],
        lambda k, k2: ["PERSIST", k],
        lambda k, k2: ["DEL", k],
        lambda k, k2: ["RENAME", k, k2],
        lambda k, k2: ["COPY", k, k2, "REPLACE"],
        lambda k, k2: ["MOVE", k, "1"],
        lambda k, k2: ["SELECT", str(rng.randrange(3))],
    ]
    cmds: list[list[str]] = []
    for n in range(600):
        t = rng.choice(list(by_type))
        k, k2 = f"{t}{rng.randrange(3)}", f"{t}{rng.randrange(3)}"
        if rng.random() < 0.1:
            cmds.append(rng.choice(generic)(k, k2))
        else:
            cmds.append(rng.choice(by_type[t])(k, f"m{rng.randrange(4)}", n))
    return cmds


@pytest.mark.real
def test_differential_against_real_server(tmp_path: Path) -> None:
    from realserver import real_server

    rng = random.Random(7)
    with real_server(tmp_path, "--appendonly", "yes", "--aof-use-rdb-preamble", "no") as srv:
        cli = srv.client(single_connection_client=True, protocol=2)
        for argv in _workload(rng):
            with contextlib.suppress(redis.ResponseError):  # error replies are part of it
                cli.execute_command(*argv)
        cli.response_callbacks.clear()  # raw replies for the read-back
        state = _server_state(cli)
        cli.execute_command("CONFIG", "SET", "appendfsync", "always")
        cli.execute_command("SET", "__sync__", "1")
        cli.execute_command("DEL", "__sync__")
        sec, usec = cli.execute_command("TIME")
        now = int(sec) * 1000 + int(usec) // 1000 + 1  # replay happens after every write
    ap = replay(tmp_path / "appendonlydir", now)
    assert _applier_state(ap) == state


def _server_state(cli: Any) -> dict[tuple[int, bytes], Any]:
    out: dict[tuple[int, bytes], Any] = {}
    for db in range(3):
        cli.execute_command("SELECT", db)
        for key in cli.execute_command("KEYS", "*"):
            t = cli.execute_command("TYPE", key).decode()
            if t == "string":
                v: Any = cli.execute_command("GET", key)
            elif t == "list":
                v = cli.execute_command("LRANGE", key, 0, -1)
            elif t == "set":
                v = set(cli.execute_command("SMEMBERS", key))
            elif t == "zset":
                flat = cli.execute_command("ZRANGE", key, 0, -1, "WITHSCORES")
                v = [(m, float(s)) for m, s in zip(flat[::2], flat[1::2])]
            elif t == "hash":
                flat = cli.execute_command("HGETALL", key)
                fields = dict(zip(flat[::2], flat[1::2]))
                exp = cli.execute_command("HPEXPIRETIME", key, "FIELDS", len(fields), *fields)
                v = (fields, {f: e for f, e in zip(fields, exp) if e > 0})
            else:
                v = [(i.decode(), f) for i, f in cli.execute_command("XRANGE", key, "-", "+")]
                info = cli.execute_command("XINFO", "STREAM", key, "FULL")
                groups = [_kv(g) for g in _kv(info)[b"groups"]]
                v = (
                    v,
                    [
                        (g[b"name"], g[b"last-delivered-id"], g[b"entries-read"], g[b"pending"])
                        for g in groups
                    ],
                )
            pexp = cli.execute_command("PEXPIRETIME", key)
            out[(db, key)] = (t, v, pexp if pexp > 0 else None)
    return out


def _kv(x: Any) -> dict[bytes, Any]:
    return x if isinstance(x, dict) else dict(zip(x[::2], x[1::2]))


def _applier_state(ap: Applier) -> dict[tuple[int, bytes], Any]:
    out: dict[tuple[int, bytes], Any] = {}
    for r in ap.records():
        v = r.value
        if isinstance(v, StringValue):
            pv: Any = v.value
        elif isinstance(v, ListValue):
            pv = v.items
        elif isinstance(v, SetValue):
            pv = set(v.members)
        elif isinstance(v, ZSetValue):
            pv = v.items
        elif isinstance(v, HashValue):
            pv = (dict(v.items), v.expires)
        else:
            assert isinstance(v, StreamValue)
            entries = [(str(i), [x for fv in f for x in fv]) for i, f in v.entries]
            groups = [
                (
                    g.name,
                    g.last_id.encode(),
                    None if g.entries_read == -1 else g.entries_read,
                    [
                        [p.id.encode(), p.consumer, p.delivery_time_ms, p.delivery_count]
                        for p in g.pel
                    ],
                )
                for g in v.groups
            ]
            pv = (entries, groups)
        out[(r.db, r.key)] = (r.type_name, pv, r.expire_at_ms)
    return out
