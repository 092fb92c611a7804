"""Hypothesis properties of the RESP codec: any bytes give commands/frames or ProtocolError."""

from __future__ import annotations

import contextlib
import itertools
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persistence.resp import (
    Array,
    BigNumber,
    Boolean,
    Bulk,
    Double,
    Error,
    Frame,
    Integer,
    Map,
    Null,
    ProtocolError,
    Push,
    ReplyParser,
    RequestParser,
    Set,
    SimpleString,
    Verbatim,
    encode,
    split_args,
)
from persistence.resp.parser import find_big_aggregate


def cmd_wire(args: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


def run(data: bytes, cuts: list[int], fast: bool) -> tuple[list[list[bytes]], str | None]:
    """Feed ``data`` in chunks split at ``cuts``; the commands and the error message, if any."""
    p = RequestParser(fast=fast, max_bulk_len=64)
    out: list[list[bytes]] = []
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    try:
        for a, b in itertools.pairwise(bounds):
            p.feed(data[a:b])
            while (cmd := p.next_command()) is not None:
                out.append(cmd)
                # the bytes it came as: a multibulk's are exactly its canonical encoding (the
                # server writes them as the AOF record); an inline command has none
                raw = p.last_raw()
                assert raw is None or raw == cmd_wire(cmd)
    except ProtocolError as exc:
        return out, exc.message
    return out, None


# Byte soup that often looks like RESP.
resp_bytes = st.lists(
    st.one_of(
        st.binary(max_size=6),
        st.sampled_from(
            [
                b"*",
                b"$",
                b"\r\n",
                b"\r",
                b"\n",
                b"*1\r\n",
                b"*2\r\n",
                b"$3\r\n",
                b"$-1\r\n",
                b"foo",
                b'"',
                b"'",
                b"\\",
                b"\\x4",
                b" ",
                b"\x00",
                b"+OK\r\n",
                b":1\r\n",
                b"$65\r\n",
                b"*-1\r\n",
                b"*0\r\n",
                b"PING\r\n",
            ]
        ),
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(resp_bytes, st.lists(st.integers(min_value=0), max_size=6))
def test_any_bytes_give_commands_or_protocol_error(data: bytes, cuts: list[int]) -> None:
    whole_fast = run(data, [], True)
    # the same outcome whether whole or chunked, hiredis fast path or pure Python
    assert run(data, cuts, True) == whole_fast
    assert run(data, cuts, False) == whole_fast
    assert run(data, [], False) == whole_fast
    for cmd in whole_fast[0]:
        assert cmd and all(type(a) is bytes for a in cmd)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(min_value=0), max_size=4))
def test_random_binary(data: bytes, cuts: list[int]) -> None:
    assert run(data, cuts, True) == run(data, [], False)


args_st = st.lists(st.binary(max_size=40), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(args_st, max_size=10), st.lists(st.integers(min_value=0), max_size=6))
def test_parse_of_encoded_commands(cmds: list[list[bytes]], cuts: list[int]) -> None:
    wire = b"".join(cmd_wire(c) for c in cmds)
    assert run(wire, cuts, True) == (cmds, None)
    assert run(wire, cuts, False) == (cmds, None)
    p = RequestParser()
    p.feed(wire)
    for c in cmds:
        assert p.next_command() == c
        assert p.last_raw() == cmd_wire(c)


def test_last_raw_is_the_request_bytes_across_buffer_compaction() -> None:
    """Multibulk commands give their own bytes back, also where the buffer is compacted (the
    compaction waits until the next command is asked for) and on the exact parser's path."""
    cmds = [[b"SET", b"k%d" % i, b"v" * (i % 700)] for i in range(600)]
    wire = b"".join(cmd_wire(c) for c in cmds) + b"PING\r\n"
    for fast in (True, False):
        p = RequestParser(fast=fast)
        got: list[bytes | None] = []
        for i in range(0, len(wire), 50_000):
            p.feed(wire[i : i + 50_000])
            while p.next_command() is not None:
                got.append(p.last_raw())
        assert got == [cmd_wire(c) for c in cmds] + [None]


@given(st.binary(max_size=60))
def test_split_args_never_raises(line: bytes) -> None:
    words = split_args(line)
    assert words is None or all(type(w) is bytes for w in words)


# --- replies -------------------------------------------------------------------------------

scalars = st.one_of(
    st.binary(max_size=10).filter(lambda b: b"\r" not in b and b"\n" not in b).map(SimpleString),
    st.binary(max_size=10).filter(lambda b: b"\r" not in b and b"\n" not in b).map(Error),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(Integer),
    st.one_of(st.none(), st.binary(max_size=10)).map(Bulk),
    st.just(Null()),
    st.floats(allow_nan=False).map(Double),
    st.booleans().map(Boolean),
    st.integers().map(BigNumber),
    st.tuples(st.sampled_from([b"txt", b"mkd"]), st.binary(max_size=10)).map(
        lambda t: Verbatim(*t)
    ),
)


def _aggregates(children: st.SearchStrategy[Frame]) -> st.SearchStrategy[Frame]:
    items = st.lists(children, max_size=4)
    return st.one_of(
        items.map(Array),
        items.map(Set),
        items.map(Push),
        st.lists(st.tuples(children, children), max_size=3).map(Map),
    )


frames_st = st.recursive(scalars, _aggregates, max_leaves=12)


def _resp3_roundtrip_equal(a: Frame, b: Frame) -> bool:
    if isinstance(a, Double) and isinstance(b, Double):
        return a.value == b.value or (math.isnan(a.value) and math.isnan(b.value))
    return a == b


@settings(max_examples=300, deadline=None)
@given(st.lists(frames_st, max_size=4))
def test_reply_roundtrip_resp3(frames: list[Frame]) -> None:
    wire = b"".join(encode(f, 3) for f in frames)
    p = ReplyParser()
    p.feed(wire)
    got = list(p.frames())
    # RESP3 has one null: Bulk(None) and Array(None) come back as Null()
    expected = [_nulls_to_null(f) for f in frames]
    assert len(got) == len(expected)
    assert all(_resp3_roundtrip_equal(a, b) for a, b in zip(got, expected))
    # byte by byte gives the same frames
    q = ReplyParser()
    one: list[Frame] = []
    for i in range(len(wire)):
        q.feed(wire[i : i + 1])
        one.extend(q.frames())
    assert one == got


def _nulls_to_null(f: Frame) -> Frame:
    if f in (Bulk(None), Array(None)):
        return Null()
    if isinstance(f, Array) and f.items is not None:
        return Array([_nulls_to_null(x) for x in f.items])
    if isinstance(f, Set | Push):
        return type(f)([_nulls_to_null(x) for x in f.items])
    if isinstance(f, Map):
        return Map([(_nulls_to_null(k), _nulls_to_null(v)) for k, v in f.pairs])
    return f


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_reply_parser_any_bytes(data: bytes) -> None:
    p = ReplyParser()
    p.feed(data)
    with contextlib.suppress(ProtocolError):
        list(p.frames())


# what RequestParser must never let hiredis see: an aggregate header of 100000 or more
_BIG_AGGREGATE = re.compile(rb"[*%~>|][0-9]{6}")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"*", b"%", b"~", b">", b"|", b"1", b"0", b"9", b"x", b"\r\n"])).map(
        b"".join
    ),
    st.integers(min_value=0, max_value=40),
)
def test_find_big_aggregate_is_the_regex(data: bytes, start: int) -> None:
    m = _BIG_AGGREGATE.search(bytearray(data), start)
    assert find_big_aggregate(bytearray(data), start) == (-1 if m is None else m.end())


def run_with_runs(
    data: bytes, cuts: list[int], takes: list[int]
) -> tuple[list[list[bytes]], str | None]:
    """:func:`run`, reading runs (same_after, then take of a chosen number of them) wherever
    next_command's command has more bytes behind it; each run's bytes are its commands'
    canonical encodings."""
    p = RequestParser(max_bulk_len=64)
    out: list[list[bytes]] = []
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    choice = itertools.cycle(takes or [0])
    try:
        for a, b in itertools.pairwise(bounds):
            p.feed(data[a:b])
            while (cmd := p.next_command()) is not None:
                found = p.same_after(cmd) if p.more else []
                n = next(choice) % (len(found) + 1)
                more = [[cmd[0], item] if len(cmd) == 2 else [cmd[0], *item] for item in found]
                assert all(len(m) == len(cmd) for m in more)
                raw = p.take(n)
                taken = [cmd, *more[:n]]
                assert raw is None or raw == b"".join(map(cmd_wire, taken))
                assert raw is not None or n == 0
                out += taken
    except ProtocolError as exc:
        return out, exc.message
    return out, None


# stretches of commands of one name and argument count (one size or varied sizes), among
# near-canonical encodings and byte soup
def _stretch(name: bytes, argc: int, one_size: bool, blobs: list[bytes]) -> bytes:
    out = []
    for i in range(0, len(blobs) - argc + 1, argc):
        args = [(a + b"xyz")[:2] if one_size else a for a in blobs[i : i + argc]]
        out.append(cmd_wire([name, *args]))
    return b"".join(out)


_NEAR = [
    b"*2\r\n$3\r\nGET\r\n$03\r\nabc\r\n",
    b"*2\r\n$3\r\nGET\r\n$2\r\nabXY",
    b"*2\r\n$3\r\nGET\r\n+ab\r\n",
    b"*2\r\n$3\r\nGET\r\n:12\r\n",
    b"*02\r\n$3\r\nGET\r\n$2\r\nab\r\n",
    b"*2\r\n$3\r\nGET\r\n$-1\r\n",
    b"GET ab\r\n",
    b"\r\n",
    b"*1\r\n$3\r\nGET\r\n",
]
_run_piece = st.one_of(
    st.builds(
        _stretch,
        st.sampled_from([b"SET", b"set", b"GET", b"LPUSH"]),
        st.integers(min_value=1, max_value=3),
        st.booleans(),
        st.lists(st.binary(max_size=3), max_size=30),
    ),
    st.sampled_from(_NEAR),
    st.binary(max_size=4),
)
runs_bytes = st.lists(_run_piece, max_size=12).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(runs_bytes, resp_bytes),
    st.lists(st.integers(min_value=0), max_size=6),
    st.lists(st.integers(min_value=0, max_value=50), max_size=5),
)
def test_runs_read_what_next_command_reads(data: bytes, cuts: list[int], takes: list[int]) -> None:
    assert run_with_runs(data, cuts, takes) == run(data, [], False)


def run_reads(
    pieces: list[bytes], takes: list[int], stops: list[int], sole: bool = False
) -> tuple[list[list[bytes]], str | None]:
    """:func:`run_with_runs` with each piece one read, and after each read only some of the
    commands read (``stops``) before the next comes: shaped reads (a read all of the shape of
    the client's last commands, read by one regex without hiredis) and their catching up.
    ``sole``: each read offered to RequestParser.sole and sole_run first (for the names SET
    and GET), and some of what sole_run found read (skip)."""
    p = RequestParser(max_bulk_len=64)
    out: list[list[bytes]] = []
    choice = itertools.cycle(takes or [0])
    stop = itertools.cycle(stops or [1000])
    accept = {b"SET": True, b"GET": True}
    try:
        for i, piece in enumerate([*pieces, b""]):
            if sole:
                offset = p.offset
                item = p.sole(piece, accept)
                if item is not None:
                    name = p.shape_name
                    cmd = [name, item] if p.shape_argc == 2 else [name, *item]
                    assert cmd_wire(cmd) == piece and name in accept
                    assert p.offset == offset + len(piece) and not p.more and not p.buffered
                    assert p.last_raw() is None
                    out.append(cmd)
                    continue
                found = p.sole_run(piece, accept)
                if found is not None:
                    name, argc, items = found
                    cmds = [[name, it] if argc == 2 else [name, *it] for it in items]
                    assert b"".join(map(cmd_wire, cmds)) == piece and name in accept
                    assert p.offset == offset and p.buffered == 0  # none read yet
                    done = 1 + next(choice) % len(cmds)
                    p.skip(piece, len(piece) // len(cmds) * done)
                    assert p.offset == offset + len(piece) // len(cmds) * done
                    out += cmds[:done]
                    piece = b""  # (the rest was fed: read below)
            p.feed(piece)
            left = next(stop) if i < len(pieces) else 1 << 30
            while left > 0 and (cmd := p.next_command()) is not None:
                start = p.offset - len(cmd_wire(cmd)) if p.last_raw() is not None else None
                found = p.same_after(cmd) if p.more else []
                n = min(next(choice) % (len(found) + 1), left - 1)
                more = [[cmd[0], item] if len(cmd) == 2 else [cmd[0], *item] for item in found]
                raw = p.take(n)
                taken = [cmd, *more[:n]]
                assert raw is None or raw == b"".join(map(cmd_wire, taken))
                if raw is not None:
                    assert p.offset == start + len(raw)
                out += taken
                left -= len(taken)
    except ProtocolError as exc:
        return out, exc.message
    return out, None


# reads of whole commands, mostly of one shape, as clients send them
_CMDS = [[b"SET", b"k1", b"v"], [b"SET", b"k2", b"w"], [b"GET", b"k1"], [b"get", b"ab"]]


@st.composite
def _reads(draw: st.DrawFn) -> list[bytes]:
    main = draw(st.sampled_from(_CMDS))
    same = st.builds(lambda k: cmd_wire(main) * k, st.integers(min_value=1, max_value=5))
    other = st.builds(
        lambda cmds: b"".join(map(cmd_wire, cmds)),
        st.lists(st.sampled_from(_CMDS), min_size=1, max_size=4),
    )
    return draw(st.lists(st.one_of(same, same, same, other, _run_piece), max_size=12))


@pytest.mark.parametrize("sole", [False, True])
@settings(max_examples=300, deadline=None)
@given(
    _reads(),
    st.lists(st.integers(min_value=0, max_value=50), max_size=5),
    st.lists(st.integers(min_value=1, max_value=6), max_size=4),
)
def test_shaped_reads_read_what_next_command_reads(
    sole: bool, pieces: list[bytes], takes: list[int], stops: list[int]
) -> None:
    """With sole: each read offered to RequestParser.sole and sole_run first."""
    assert run_reads(pieces, takes, stops, sole) == run(b"".join(pieces), [], False)


def test_shaped_reads_happen() -> None:
    """The property above exercises shaped reads: a read all of the last commands' shape is
    read without hiredis (and one of another shape, or of mixed shapes, with it)."""
    p = RequestParser()
    k0, k1, k2 = (b"shaped-reads-test-key-%d" % i for i in range(3))  # (a shape no other test
    a, b, c = (cmd_wire([b"SET", k, b"v"]) for k in (k1, k2, k0))  # uses: its pattern is new)
    for _ in range(2):  # a new shape is learnt from the second command of it in a row
        p.feed(c)
        assert p._pre is None
        assert p.next_command() == [b"SET", k0, b"v"]
    p.feed(b + a)  # same shape: read by its pattern
    assert p._pre is not None
    assert p.next_command() == [b"SET", k2, b"v"] and p.more
    assert p.same_after([b"SET", k2, b"v"]) == [(k1, b"v")]
    assert p.take(1) == b + a and not p.more and p._pre is None
    p.feed(cmd_wire([b"GET", k1]))  # another shape: hiredis
    assert p._pre is None
    assert p.next_command() == [b"GET", k1]


def test_sole_reads_happen() -> None:
    """RequestParser.sole reads a read of one command of the client's shape, of a name the
    caller accepts, when nothing else is buffered; else it changes nothing."""
    p = RequestParser()
    k0, k1 = b"sole-reads-test-key-0", b"sole-reads-test-key-1"  # (a new shape)
    a, b = cmd_wire([b"SET", k0, b"v"]), cmd_wire([b"SET", k1, b"w"])
    accept = {b"SET": True}
    for _ in range(3):  # a shape is learnt from the second command of it in a row
        assert p.sole(a, accept) is None
        p.feed(a)
        assert p.next_command() == [b"SET", k0, b"v"]
    assert p.sole(b, {b"GET": True}) is None  # a name not accepted
    assert p.sole(b, accept) == (k1, b"w") and (p.shape_name, p.shape_argc) == (b"SET", 3)
    assert p.sole(a + b, accept) is None  # two commands: feed them
    assert p.sole(b[:-1] + b"x", accept) is None  # not a command
    p.feed(a[:5])
    assert p.sole(b, accept) is None  # something is buffered
    p.feed(a[5:])
    assert p.next_command() == [b"SET", k0, b"v"]
    assert p.sole(a, accept) == (k0, b"v")
    # several of them: RequestParser.sole_run; skip() reads those done, feeds the rest
    assert p.sole_run(a + b + a, {b"GET": True}) is None
    assert p.sole_run(a + b + a[:-1] + b"x", accept) is None
    assert p.sole_run(a + b + a, accept) == (b"SET", 3, [(k0, b"v"), (k1, b"w"), (k0, b"v")])
    p.skip(a + b + a, len(a))
    assert p.next_command() == [b"SET", k1, b"w"] and p.more
    assert p.next_command() == [b"SET", k0, b"v"] and not p.more
    assert p.offset == 7 * len(a) + 2 * len(b)
    get = cmd_wire([b"GET", k0])
    for _ in range(3):
        p.feed(get)
        assert p.next_command() == [b"GET", k0]
    assert p.sole(get, {b"GET": True}) == k0 and p.shape_argc == 2  # (one argument: itself)
