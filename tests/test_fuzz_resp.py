"""Fuzz the RESP parsers (issue 8): mutants of real client traffic (the commands the fixture
recipes sent to valkey-server 9.1.2) and of real AOF bytes for :class:`RequestParser`, mutants of
encoded replies for :class:`ReplyParser`, and Hypothesis over RESP-shaped token soup.

Every input, fed in random splits, gives commands/frames or a ``ProtocolError``, never another
exception. Buffering is bounded: after any mutant, 70 KB of bytes that can never complete a
command (no CR, no LF, no ``$``) must end in a ``ProtocolError`` with at most
``PROTO_INLINE_MAX_SIZE`` + ``max_bulk_len`` + one feed buffered, as Valkey closes such clients.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import time

import pytest
from fuzzing import (
    REAL,
    Tally,
    case_count,
    check_case,
    mutate_resp,
    read_fixture,
    report,
    resp_command,
    rng_for,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistence.aof.resp_scan import RespScanner
from persistence.errors import FormatError
from persistence.resp import (
    NEED_MORE,
    PROTO_INLINE_MAX_SIZE,
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
)
from persistence.resp.reply_parser import MAX_REPLY_NESTING

MAX_BULK = 4096
FILLER = b"x" * (PROTO_INLINE_MAX_SIZE + MAX_BULK + 4096)


def _arg(a: object) -> bytes:
    s = str(a)
    try:
        return s.encode("latin-1")
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape")


def client_traffic() -> list[bytes]:
    """The commands each fixture recipe sent, as RESP (one blob per recipe) and a few inline."""
    out = []
    for path in sorted(REAL.glob("*/commands_sent.json")):
        cmds = [[_arg(a) for a in c[0]] for c in json.loads(path.read_text())]
        out.append(b"".join(resp_command(c) for c in cmds))
        out.append(b"".join(b" ".join(c) + b"\r\n" for c in cmds[:40] if all(
            a and not any(ch in a for ch in b" \r\n\"'\\\x00") for a in c)))  # fmt: skip
    out.append(read_fixture("aof_timestamp/appendonlydir/appendonly.aof.3.incr.aof"))
    out.append(read_fixture("slot_migration/dbbug_target_incr.aof"))
    return [o for o in out if o]


def feed_requests(data: bytes, rng: random.Random, fast: bool, max_bulk: int, filler: bool) -> None:
    """Feed ``data`` (then FILLER) in random steps; ProtocolError propagates."""
    p = RequestParser(fast=fast, max_bulk_len=max_bulk)
    stream = data + FILLER if filler else data
    pos = 0
    while pos < len(stream):
        step = rng.choice((1, 7, 64, 1024, 16384, len(stream)))
        p.feed(stream[pos : pos + step])
        pos += step
        for cmd in p.commands():
            assert cmd and all(type(a) is bytes for a in cmd)
        # never more than a line, a bulk and one feed's worth held back
        assert p.buffered <= PROTO_INLINE_MAX_SIZE + max_bulk + 2 * step + 64, p.buffered
    if filler:
        raise AssertionError("bytes that never complete a command were buffered without end")


def test_fuzz_request_parser(request: pytest.FixtureRequest) -> None:
    corpus = client_traffic()
    rng = rng_for("resp-request")
    tally = Tally()
    for i in range(case_count(request.config, 6000)):
        src = corpus[i % len(corpus)]
        if len(src) > 20000:  # a window of the big recipes keeps cases fast
            a = rng.randrange(len(src) - 8000)
            src = src[a : a + 8000]
        data, log = mutate_resp(rng, src, corpus)
        fast = rng.random() < 0.7
        max_bulk = rng.choice((MAX_BULK, 512 * 1024 * 1024)) if i % 10 else MAX_BULK
        filler = i % 10 == 0
        log.append(f"fast={fast} max_bulk={max_bulk} filler={filler}")
        case_rng = random.Random(i)
        check_case(
            tally,
            i,
            log,
            data,
            lambda d, f=fast, m=max_bulk, fl=filler, r=case_rng: feed_requests(d, r, f, m, fl),
            expected=(ProtocolError,),
            offset_limit=len(data) + len(FILLER),
            input_size=len(data) + (len(FILLER) if filler else 0),
        )
    report("resp-request", tally)


REPLY_FRAMES: list[Frame] = [
    SimpleString(b"OK"),
    Error(b"ERR unknown command"),
    Integer(-42),
    Bulk(b"hello\r\nworld"),
    Bulk(None),
    Array([Bulk(b"a"), Integer(1), Array([Bulk(b"nested"), Array(None)])]),
    Array([]),
    Map([(Bulk(b"k"), Array([Integer(1), Double(1.5)]))]),
    Set([Bulk(b"m1"), Bulk(b"m2")]),
    Push([Bulk(b"message"), Bulk(b"ch"), Bulk(b"payload")]),
    Double(math.inf),
    Double(-0.25),
    Boolean(True),
    Null(),
    BigNumber(12345678901234567890123),
    Verbatim(b"txt", b"some text"),
]


def reply_traffic() -> list[bytes]:
    out = [b"".join(encode(f, resp) for f in REPLY_FRAMES) for resp in (2, 3)]
    out.append(b"|1\r\n+key\r\n+val\r\n" + encode(REPLY_FRAMES[5], 3))  # an attribute first
    out.append(read_fixture("aof_timestamp/appendonlydir/appendonly.aof.3.incr.aof"))
    return out


def feed_replies(data: bytes, rng: random.Random) -> None:
    """Feed ``data`` in random steps, taking every frame; ProtocolError propagates."""
    p = ReplyParser()
    pos = 0
    while pos < len(data):
        step = rng.choice((1, 5, 64, len(data)))
        p.feed(data[pos : pos + step])
        pos += step
        while (frame := p.next_frame()) is not NEED_MORE:
            assert frame is not None


def test_fuzz_reply_parser(request: pytest.FixtureRequest) -> None:
    corpus = reply_traffic()
    rng = rng_for("resp-reply")
    tally = Tally()
    for i in range(case_count(request.config, 4000)):
        data, log = mutate_resp(rng, corpus[i % len(corpus)], corpus)
        case_rng = random.Random(i)
        check_case(tally, i, log, data, lambda d, r=case_rng: feed_replies(d, r), (ProtocolError,))
    report("resp-reply", tally)


# ---- Hypothesis over RESP-shaped token soup -------------------------------------------------

TOKENS = st.lists(
    st.one_of(
        st.sampled_from(
            [b"*", b"$", b"%", b"~", b">", b"|", b"=", b"!", b"(", b",", b"#", b"_", b":", b"+"]
        ),
        st.sampled_from([b"\r\n", b"\r", b"\n", b"0", b"1", b"3", b"-1", b"-2", b"txt:"]),
        st.sampled_from([b"999999", b"2147483648", b"9" * 30, b"1" * 5000, b"inf", b"1e999"]),
        st.sampled_from([b"*1\r\n" * 50, b"%1\r\n" * 50, b"|1\r\n" * 50, b"*1\r\n" * 700]),
        st.binary(max_size=4),
    ),
    max_size=40,
).map(b"".join)


def _hypothesis(request: pytest.FixtureRequest, default: int) -> settings:
    return settings(
        max_examples=case_count(request.config, default),
        derandomize=True,  # a fixed seed: the same examples every run
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def test_hypothesis_reply_parser(request: pytest.FixtureRequest) -> None:
    @_hypothesis(request, 1000)
    @given(TOKENS, st.integers(0, 2**32))
    def prop(data: bytes, seed: int) -> None:
        t0 = time.process_time()
        with contextlib.suppress(ProtocolError):
            feed_replies(data, random.Random(seed))
        assert time.process_time() - t0 < 1.0

    prop()


def test_hypothesis_request_parser(request: pytest.FixtureRequest) -> None:
    @_hypothesis(request, 1000)
    @given(TOKENS, st.integers(0, 2**32), st.booleans())
    def prop(data: bytes, seed: int, fast: bool) -> None:
        t0 = time.process_time()
        with contextlib.suppress(ProtocolError):
            feed_requests(data, random.Random(seed), fast, MAX_BULK, False)
        assert time.process_time() - t0 < 1.0

    prop()


# ---- regression tests for what the fuzzer found -----------------------------------------------


def _reply_error(data: bytes) -> ProtocolError:
    p = ReplyParser()
    p.feed(data)
    with pytest.raises(ProtocolError) as info:
        while p.next_frame() is not NEED_MORE:
            pass
    return info.value


def test_reply_parser_deep_nesting_is_a_protocol_error() -> None:
    # found by test_hypothesis_reply_parser: RecursionError on 700 nested "*1"
    for opener in (b"*1\r\n", b"%1\r\n", b"|1\r\n", b"~1\r\n", b">1\r\n"):
        err = _reply_error(opener * 700 + b":1\r\n")
        assert err.message == "Protocol error: reply nested too deeply"
        assert err.offset == 4 * MAX_REPLY_NESTING
    p = ReplyParser()
    p.feed(b"*1\r\n" * MAX_REPLY_NESTING + b":1\r\n")  # the limit itself is fine
    frame = p.next_frame()
    for _ in range(MAX_REPLY_NESTING):
        assert isinstance(frame, Array) and frame.items is not None
        frame = frame.items[0]
    assert frame == Integer(1)


def test_reply_parser_huge_big_number_is_a_protocol_error() -> None:
    # found by test_hypothesis_reply_parser: ValueError from int() past 4300 digits
    err = _reply_error(b"+ok\r\n(" + b"1" * 5000 + b"\r\n")
    assert err.message == "Protocol error: big number too long" and err.offset == 5
    p = ReplyParser()
    p.feed(b"(-" + b"9" * 4000 + b"\r\n")
    assert p.next_frame() == BigNumber(-int("9" * 4000))


def test_hiredis_type_error_falls_back_to_the_exact_parser() -> None:
    # found by test_hypothesis_request_parser: hiredis raises TypeError building a RESP3 map
    # with a list key ("%1 *0 ..."); the request parser and the AOF scanner let it escape
    data = b"*1\r\n$4\r\nPING\r\n*1\r\n%1\r\n*0\r\n:1\r\n"
    p = RequestParser(fast=True)
    p.feed(data)
    assert p.next_command() == [b"PING"]
    with pytest.raises(ProtocolError) as info:
        p.next_command()
    assert info.value.message == "Protocol error: expected '$', got '%'"
    assert info.value.offset == 14
    with pytest.raises(FormatError) as scan_info:
        list(RespScanner(io.BytesIO(data), file="x"))
    assert scan_info.value.offset == 18
