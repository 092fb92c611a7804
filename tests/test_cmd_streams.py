"""Stream commands against a real valkey-server 9.1.2 (replies, errors, RESP3, propagation),
ID generation and blocking at the engine level, the persistence round trip, and a
random-sequence property test. Differential tests use explicit IDs (``*`` would differ)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from differential import REAL_ARGS, Differ
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from realserver import RealServer, real_server

from engine.blocking import Block
from engine.clock import ManualClock
from engine.commands.table import TABLE
from engine.context import Ctx
from engine.engine import Engine
from engine.types.base import type_info
from engine.types.streams import Stream
from persistence.aof.encoder import record_commands
from persistence.records import KeyRecord
from persistence.resp.frames import Array

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_server(tmp_path_factory.mktemp("streams"), *REAL_ARGS) as srv:
        yield srv


def reset(d: Differ) -> None:
    d.real(["SELECT", 0])
    d.client.db = 0
    d.real(["FLUSHALL"])
    d.read_aof()
    d.aof_db = 0
    for db in d.engine.keyspace.dbs:
        db.clear()


@pytest.fixture
def d(real: RealServer) -> Iterator[Differ]:
    differ = Differ(real)
    reset(differ)
    yield differ
    differ.close()


def run(d: Differ, script: str, tol: int | None = None) -> None:
    for line in script.strip().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            d.check(line.split(), tol=tol)


def resp3(d: Differ) -> None:
    d.hello(3)
    d.client.resp = 3


# ---- XADD / XLEN / XRANGE / XREVRANGE / XDEL ------------------------------------------------

XADD_SCRIPT = """
XADD s 1-1 a 1 b 2
XADD s 1-1 a 1
XADD s 1-0 a 1
XADD s 1-* a 1
XADD s 2-* a 1 b 2
XADD s 3 f v
XADD s 0-0 a 1
XADD z 0-0 a 1
XADD z 0-* a 1
XADD s 4-5 a
XADD s 4-5
XADD s 4-x a 1
XADD s - a 1
XADD s + a 1
XADD s 18446744073709551616-0 a 1
XADD s 99999999999999999999-0 a 1
XADD s NOMKSTREAM 5-0 a 1
XADD nokey NOMKSTREAM 5-0 a 1
XADD s MAXLEN
XADD s MAXLEN -1 6-0 a 1
XADD s MAXLEN abc 6-0 a 1
XADD s MAXLEN 10 MINID 0 6-0 a 1
XADD s LIMIT 10 6-0 a 1
XADD s MAXLEN 10 LIMIT 10 6-0 a 1
XADD s MAXLEN ~ 10 LIMIT -1 6-0 a 1
XADD s MAXLEN = 10 6-0 a 1
XADD s MINID = 2 7-0 a 1
XADD s MINID x 7-0 a 1
XLEN s
XLEN nokey
XRANGE s - +
XRANGE s (1-1 +
XRANGE s - (4
XRANGE s 2 2
XRANGE s - + COUNT 1
XRANGE s - + COUNT 0
XRANGE s - + COUNT -1
XRANGE s - + COUNT
XRANGE s - + LIMIT 1
XRANGE s (18446744073709551615-18446744073709551615 +
XRANGE s - (0-0
XRANGE s (- +
XRANGE s x +
XRANGE nokey - +
XREVRANGE s + -
XREVRANGE s + - COUNT 2
XREVRANGE s (7 (1-1
XDEL s 3-0 100-0
XDEL s x
XDEL nokey 1-0
XDEL s 2-0 2-1
XRANGE s - +
XADD s 1000-0 big 12345678901234567890
XRANGE s 1000 1000
SET str x
XADD str 1-0 a 1
XLEN str
XRANGE str - +
XDEL str 1-0
XADD s
XLEN
"""


def test_xadd_range_del(d: Differ) -> None:
    run(d, XADD_SCRIPT)


def test_xadd_resp3(d: Differ) -> None:
    resp3(d)
    run(d, XADD_SCRIPT)


def test_xadd_exhausted(d: Differ) -> None:
    run(
        d,
        """
        XADD s 18446744073709551615-18446744073709551615 a 1
        XADD s 18446744073709551615-* a 1
        XADD s 1-1 a 1
        XADD t 5-18446744073709551615 a 1
        XADD t 5-* a 1
    """,
    )


def test_trim_exact_and_approx(d: Differ) -> None:
    for i in range(1, 251):
        d.check(["XADD", "s", f"{i}-0", "f", str(i)], propagation=True)
    run(
        d,
        """
        XINFO STREAM s
        XTRIM s MAXLEN ~ 180
        XINFO STREAM s
        XTRIM s MAXLEN 180
        XINFO STREAM s
        XTRIM s MAXLEN ~ 100
        XINFO STREAM s
        XTRIM s MINID ~ 160
        XTRIM s MINID 160
        XINFO STREAM s
        XTRIM s MINID ~ 230 LIMIT 10
        XTRIM s MINID ~ 230 LIMIT 100
        XTRIM s MAXLEN = 5 LIMIT 1
        XTRIM s
        XTRIM s FOO 1
        XTRIM s MAXLEN 1 MINID 1
        XTRIM nokey MAXLEN 1
        XADD s MAXLEN ~ 10 300-0 a b
        XADD s MINID ~ 290 301-0 a b
        XADD s MAXLEN 3 302-0 a b
        XINFO STREAM s FULL
        XADD s MAXLEN ~ 0 303-0 a b
        XINFO STREAM s
    """,
    )


def test_node_bytes_limit(d: Differ) -> None:
    # big values split nodes by stream-node-max-bytes (4096), not by the 100 entries
    for i in range(1, 40):
        d.check(["XADD", "s", f"{i}-0", "f", "x" * 300, "g", str(i)])
    for i in range(40, 60):
        d.check(["XADD", "s", f"{i}-0", "other", "y" * 70])
    run(
        d,
        """
        XINFO STREAM s
        XDEL s 1-0 2-0 3-0 4-0 5-0 6-0 7-0 8-0 9-0 10-0 11-0 12-0
        XINFO STREAM s
        XTRIM s MAXLEN ~ 30
        XINFO STREAM s
        XTRIM s MINID ~ 50
        XINFO STREAM s
    """,
    )


def test_xsetid(d: Differ) -> None:
    run(
        d,
        """
        XSETID nokey 1-0
        XADD s 5-0 a 1
        XADD s 6-0 a 1
        XSETID s 4-0
        XSETID s 6-0
        XSETID s 10-0 ENTRIESADDED 1
        XSETID s 10-0 ENTRIESADDED -1
        XSETID s 10-0 ENTRIESADDED 5 MAXDELETEDID 11-0
        XSETID s 10-0 ENTRIESADDED 5 MAXDELETEDID 3-0
        XINFO STREAM s
        XSETID s 8-0
        XSETID s 10-0 FOO
        XSETID s +
        XSETID s 12
        XDEL s 5-0 6-0
        XSETID s 2-0
        XINFO STREAM s
        XADD s 11-0 a 1
        XADD s 12-5 a 1
        XSETID s 12-5 ENTRIESADDED 0
    """,
    )


def test_blocking_forms(d: Differ) -> None:
    # inside MULTI the blocking forms answer as on timeout
    e = d.engine
    ctx = Ctx(e, d.client, e.clock.now_ms())
    for argv in ([b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"],
                 [b"XREAD", b"BLOCK", b"10", b"STREAMS", b"s", b"+"]):  # fmt: skip
        assert e.call(ctx, TABLE[b"xread"], argv, may_block=False) == Array(None)
    if b"multi" not in TABLE:  # MULTI belongs to another module
        return
    run(
        d,
        """
        MULTI
        XREAD BLOCK 0 STREAMS s $
        XREADGROUP GROUP g c BLOCK 0 STREAMS s >
        EXEC
    """,
    )


def test_wrong_type_and_arity(d: Differ) -> None:
    run(
        d,
        """
        XADD s 1-0
        XRANGE s -
        XREVRANGE s +
        XDEL s
        XTRIM s MAXLEN
        XSETID s
        XACK s g
        XPENDING s
        XCLAIM s g c 0
        XAUTOCLAIM s g c 0
        XREAD STREAMS
        XREADGROUP GROUP g c STREAMS s
        XINFO STREAM
        XINFO GROUPS
        XINFO CONSUMERS s
        XGROUP CREATECONSUMER s g
        XGROUP DELCONSUMER s g
        SET str x
        XSETID str 1-0
        XINFO STREAM str
        XINFO GROUPS str
        XCLAIM str g c 0 1-0
        XAUTOCLAIM str g c 0 0
        XTRIM str MAXLEN 1
    """,
    )


def test_notifications(d: Differ) -> None:
    d.both(["CONFIG", "SET", "notify-keyspace-events", "KEA"])
    d.engine.config.set("notify-keyspace-events", "KEA")
    seen: list[bytes] = []
    d.engine.publish = lambda ch, msg: seen.append(ch) or 0  # type: ignore[method-assign]
    for cmd in [
        "XADD s 1-0 a 1",
        "XADD s MAXLEN 0 2-0 a 1",
        "XADD s 3-0 a 1",
        "XDEL s 3-0",
        "XSETID s 9-0",
        "XGROUP CREATE s g 0",
        "XGROUP CREATECONSUMER s g c",
        "XGROUP SETID s g 0",
        "XGROUP DELCONSUMER s g c",
        "XGROUP DESTROY s g",
    ]:
        d.ours(cmd.split())
    events = [ch.split(b":", 1)[1] for ch in seen if ch.startswith(b"__keyevent")]
    assert events == [b"xadd", b"xadd", b"xtrim", b"xadd", b"xdel", b"xsetid", b"xgroup-create",
                      b"xgroup-createconsumer", b"xgroup-setid", b"xgroup-delconsumer",
                      b"xgroup-destroy"]  # fmt: skip


# ---- engine level: ID generation, blocking, persistence ------------------------------------


def _engine() -> tuple[Engine, ManualClock]:
    clock = ManualClock(1_700_000_000_000)
    return Engine(clock=clock), clock


def _x(e: Engine, c: object, line: str) -> object:
    return e.execute(c, line.encode().split())  # type: ignore[arg-type]


def test_star_ids_and_propagation() -> None:
    e, clock = _engine()
    c = e.new_client()
    assert _x(e, c, "XADD s * a 1") == (b"1700000000000-0", [(0, [b"XADD", b"s",
                                        b"1700000000000-0", b"a", b"1"])])  # fmt: skip
    assert _x(e, c, "XADD s * a 2")[0] == b"1700000000000-1"  # type: ignore[index]
    clock.ms -= 10  # the clock going back never makes an ID go back
    assert _x(e, c, "XADD s * a 3")[0] == b"1700000000000-2"  # type: ignore[index]
    clock.ms += 100
    assert _x(e, c, "XADD s * a 4")[0] == b"1700000000090-0"  # type: ignore[index]
    reply, eff = _x(e, c, "XADD s 1700000000090-* a 5")  # type: ignore[misc]
    assert reply == b"1700000000090-1"
    assert eff[0][1][2] == b"1700000000090-1"
    reply, eff = _x(e, c, "XADD s MAXLEN ~ 1 * a 6")  # type: ignore[misc]
    assert eff[0][1][2:6] == [b"MAXLEN", b"=", b"6", reply]


def test_blocking_resume() -> None:
    e, _ = _engine()
    c = e.new_client()
    _x(e, c, "XADD s 5-0 a 1")
    r, _ = _x(e, c, "XREAD BLOCK 100 STREAMS s nokey $ $")  # type: ignore[misc]
    assert isinstance(r, Block)
    assert r.keys == [b"s", b"nokey"] and r.timeout_ms == 100
    assert r.resume_argv is not None and r.resume_argv[-2:] == [b"5-0", b"0-0"]
    assert r.timeout_reply == Array(None)
    _x(e, c, "XADD s 6-0 a 2")
    assert e.ready_keys[-1] == (0, b"s")
    r2, _ = e.execute(c, r.resume_argv)
    assert r2 == [[b"s", [[b"6-0", [b"a", b"2"]]]]]
    _x(e, c, "XGROUP CREATE s g $")
    r3, _ = _x(e, c, "XREADGROUP GROUP g c BLOCK 0 STREAMS s >")  # type: ignore[misc]
    assert isinstance(r3, Block) and r3.resume_argv is None


def _roundtrip(e: Engine, key: bytes) -> Stream:
    rec = KeyRecord(0, key, type_info(e.keyspace.dbs[0].data[key]).to_record(
        e.keyspace.dbs[0].data[key]))  # fmt: skip
    e2 = Engine()
    e2.loading = True
    c2 = e2.new_client()
    for argv in record_commands(rec):
        reply, _ = e2.execute(c2, argv)
        assert not hasattr(reply, "message"), (argv, reply)
    e2.loading = False
    return e2.keyspace.dbs[0].data[key]  # type: ignore[no-any-return]


def _rec(s: Stream) -> object:
    """The record, consumer seen/active times left out: the AOF rewrite form (XCLAIM,
    XGROUP CREATECONSUMER) does not carry them, in Valkey either (src/aof.c)."""
    rec = type_info(s).to_record(s)
    for g in rec.groups:  # type: ignore[union-attr]
        for c in g.consumers:
            c.seen_time_ms = 0
            c.active_time_ms = 0 if c.active_time_ms != -1 else -1
    return rec


def test_persistence_roundtrip() -> None:
    e, clock = _engine()
    c = e.new_client()
    for line in [
        "XADD s 1-0 a 1 b 2",
        "XADD s 2-0 a 3",
        "XADD s 3-0 x y",
        "XADD s 4-0 a 1",
        "XADD s 5-0 a 1",
        "XDEL s 3-0",
        "XGROUP CREATE s g1 0",
        "XGROUP CREATE s g2 $ ENTRIESREAD 5",
        "XGROUP CREATE s g3 1-0",
        "XREADGROUP GROUP g1 alice COUNT 2 STREAMS s >",
        "XREADGROUP GROUP g1 bob COUNT 1 STREAMS s >",
        "XGROUP CREATECONSUMER s g2 idle",
        "XCLAIM s g1 carol 0 1-0",
    ]:
        clock.ms += 7
        _x(e, c, line)
    orig = e.keyspace.dbs[0].data[b"s"]
    back = _roundtrip(e, b"s")
    assert _rec(back) == _rec(orig)
    # an emptied stream keeps its metadata
    _x(e, c, "XADD t 1-0 a 1")
    _x(e, c, "XDEL t 1-0")
    t = e.keyspace.dbs[0].data[b"t"]
    back_t = _roundtrip(e, b"t")
    assert _rec(back_t) == _rec(t)


def test_copy_is_deep() -> None:
    e, _ = _engine()
    c = e.new_client()
    _x(e, c, "XADD s 1-0 a 1")
    _x(e, c, "XGROUP CREATE s g 0")
    _x(e, c, "XREADGROUP GROUP g c STREAMS s >")
    s = e.keyspace.dbs[0].data[b"s"]
    cp = type_info(s).copy(s)
    assert type_info(cp).to_record(cp) == type_info(s).to_record(s)
    _x(e, c, "XACK s g 1-0")
    assert len(cp.groups[b"g"].pel) == 1 and len(cp.groups[b"g"].consumers[b"c"].pel) == 1


# ---- random sequences ----------------------------------------------------------------------

_ids = st.builds(lambda ms, seq: f"{ms}-{seq}", st.integers(0, 12), st.integers(0, 3))
_keys = st.sampled_from(["s", "t"])
_groups = st.sampled_from(["g", "h"])
_cons = st.sampled_from(["c1", "c2"])
_cmd = st.one_of(
    st.builds(lambda k, i, f: ["XADD", k, i, f, "v"], _keys, _ids, st.sampled_from(["a", "b"])),
    st.builds(
        lambda k, n, a: ["XADD", k, "MAXLEN", a, str(n), "13-*", "a", "v"],
        _keys,
        st.integers(0, 5),
        st.sampled_from(["~", "="]),
    ),
    st.builds(lambda k, i: ["XDEL", k, i], _keys, _ids),
    st.builds(lambda k, n: ["XTRIM", k, "MAXLEN", str(n)], _keys, st.integers(0, 6)),
    st.builds(lambda k, i: ["XTRIM", k, "MINID", i], _keys, _ids),
    st.builds(lambda k, a, b: ["XRANGE", k, a, b], _keys, _ids, st.sampled_from(["+", "(9"])),
    st.builds(lambda k: ["XREVRANGE", k, "+", "-", "COUNT", "2"], _keys),
    st.builds(lambda k, g, i: ["XGROUP", "CREATE", k, g, i, "MKSTREAM"], _keys, _groups, _ids),
    st.builds(lambda k, g, i: ["XGROUP", "SETID", k, g, i], _keys, _groups, _ids),
    st.builds(
        lambda k, g, c, n: ["XREADGROUP", "GROUP", g, c, "COUNT", str(n), "STREAMS", k, ">"],
        _keys,
        _groups,
        _cons,
        st.integers(1, 3),
    ),
    st.builds(
        lambda k, g, c: ["XREADGROUP", "GROUP", g, c, "STREAMS", k, "0"], _keys, _groups, _cons
    ),
    st.builds(lambda k, g, i: ["XACK", k, g, i], _keys, _groups, _ids),
    st.builds(
        lambda k, g, c, i: ["XCLAIM", k, g, c, "0", i, "JUSTID"], _keys, _groups, _cons, _ids
    ),
    st.builds(
        lambda k, g, c: ["XAUTOCLAIM", k, g, c, "0", "0", "COUNT", "2", "JUSTID"],
        _keys,
        _groups,
        _cons,
    ),
    st.builds(lambda k, g, c: ["XGROUP", "DELCONSUMER", k, g, c], _keys, _groups, _cons),
    st.builds(lambda k, i: ["XSETID", k, i], _keys, _ids),
    st.builds(lambda k: ["XINFO", "STREAM", k], _keys),
    st.builds(lambda k: ["XINFO", "GROUPS", k], _keys),
    st.builds(lambda k, g: ["XPENDING", k, g], _keys, _groups),
    st.builds(lambda k: ["XREAD", "STREAMS", k, "0"], _keys),
    st.builds(lambda k: ["XLEN", k], _keys),
)
_SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=25, deadline=None, suppress_health_check=_SUPPRESS)
@given(seq=st.lists(_cmd, min_size=1, max_size=25))
def test_random_sequences(real: RealServer, seq: list[list[str]]) -> None:
    d = Differ(real)
    try:
        reset(d)
        for argv in seq:
            d.check(argv)  # type: ignore[arg-type]
        for k in ("s", "t"):
            d.check(["XINFO", "STREAM", k, "FULL"], tol=50)
    finally:
        d.close()
