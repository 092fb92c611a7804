"""RESP codec: request parser (Valkey's limits and error texts), reply parser, encoder."""

from __future__ import annotations

import math
import random
import socket
from pathlib import Path

import pytest

from persistence.errors import FormatError
from persistence.resp import (
    NEED_MORE,
    Array,
    Attribute,
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
    format_double,
    split_args,
    string2ll,
)
from persistence.resp import reply as R

# --- h11-style helpers: whole buffer, one byte at a time, with trailing bytes ---------------


def cmd_wire(*args: bytes) -> bytes:
    """A canonical multibulk command (test-only; the real encoder is persistence/aof)."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


def parse_whole(data: bytes, **kw: object) -> list[list[bytes]]:
    p = RequestParser(**kw)  # type: ignore[arg-type]
    p.feed(data)
    return list(p.commands())


def parse_bytewise(data: bytes, **kw: object) -> list[list[bytes]]:
    p = RequestParser(**kw)  # type: ignore[arg-type]
    out: list[list[bytes]] = []
    for i in range(len(data)):
        p.feed(data[i : i + 1])
        out.extend(p.commands())
    return out


def error_of(data: bytes, bytewise: bool = False, **kw: object) -> str | None:
    try:
        (parse_bytewise if bytewise else parse_whole)(data, **kw)
    except ProtocolError as exc:
        return exc.message
    return None


MODES = [
    pytest.param({"fast": True}, id="fast"),
    pytest.param({"fast": False}, id="slow"),
]


# --- requests ------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", MODES)
def test_multibulk_whole_bytewise_and_trailing(kw: dict[str, object]) -> None:
    cmds = [[b"SET", b"k", b"v"], [b"GET", b"k"], [b"ECHO", b""], [b"X", b"\r\n\x00" * 5]]
    wire = b"".join(cmd_wire(*c) for c in cmds)
    assert parse_whole(wire, **kw) == cmds
    assert parse_bytewise(wire, **kw) == cmds
    p = RequestParser(**kw)  # type: ignore[arg-type]
    p.feed(wire + b"*2\r\n$3\r\nGET")
    assert list(p.commands()) == cmds
    assert p.next_command() is None
    assert p.buffered == len(b"*2\r\n$3\r\nGET")
    p.feed(b"\r\n$1\r\nk\r\n")
    assert p.next_command() == [b"GET", b"k"]
    assert p.offset == len(wire) + len(cmd_wire(b"GET", b"k"))


@pytest.mark.parametrize("kw", MODES)
def test_inline_and_empty_commands_skipped(kw: dict[str, object]) -> None:
    wire = b"PING\r\n\r\n\n  \t \r\n*0\r\n*-1\r\n*-5\r\nECHO \"a b\" 'c'\nSET k v\r\n"
    expected = [[b"PING"], [b"ECHO", b"a b", b"c"], [b"SET", b"k", b"v"]]
    assert parse_whole(wire, **kw) == expected
    assert parse_bytewise(wire, **kw) == expected


@pytest.mark.parametrize("kw", MODES)
def test_mixed_inline_and_multibulk(kw: dict[str, object]) -> None:
    wire = cmd_wire(b"A") + b"B c\r\n" + cmd_wire(b"D", b"e") + b"\rF\r\n" + cmd_wire(b"G")
    expected = [[b"A"], [b"B", b"c"], [b"D", b"e"], [b"F"], [b"G"]]
    assert parse_whole(wire, **kw) == expected
    assert parse_bytewise(wire, **kw) == expected


# Valkey 9.1.2's replies (checked against the real server in test_errors_match_real_server).
ERRORS = [
    (b"*abc\r\n", "Protocol error: invalid multibulk length"),
    (b"*\r\n", "Protocol error: invalid multibulk length"),
    (b"*-0\r\n", "Protocol error: invalid multibulk length"),
    (b"*+1\r\n", "Protocol error: invalid multibulk length"),
    (b"*01\r\n", "Protocol error: invalid multibulk length"),
    (b"*1\x00\r\n", "Protocol error: invalid multibulk length"),
    (b"*2147483648\r\n", "Protocol error: invalid multibulk length"),
    (b"*9223372036854775808\r\n", "Protocol error: invalid multibulk length"),
    (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$04\r\nPING\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$+4\r\nPING\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$536870913\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\nfoo\r\n", "Protocol error: expected '$', got 'f'"),
    (b"*1\r\n+OK\r\n", "Protocol error: expected '$', got '+'"),
    (b"*1\r\n\r\n", "Protocol error: expected '$', got ' '"),
    (b"*1\r\n\n\r\n", "Protocol error: expected '$', got ' '"),
    (b"*1\r\n\xe9\r\n", "Protocol error: expected '$', got '\xe9'"),
    (b"*1\r\nX4\rY", "Protocol error: expected '$', got 'X'"),
    (b"*1\rX", "Protocol error: invalid CRLF in request"),
    (b"*abc\rX", "Protocol error: invalid CRLF in request"),
    (b"*1\r\n$abc\rY", "Protocol error: invalid CRLF in request"),
    (b"*1\r\n$4\r\nPINGxx", "Protocol error: invalid CRLF in request"),
    (b"*1\r\n$4\r\nPING\n\r", "Protocol error: invalid CRLF in request"),
    (b"*" + b"1" * 65536, "Protocol error: too big mbulk count string"),
    (b"*1\r\n$" + b"1" * 65536, "Protocol error: too big bulk count string"),
    (b"*1\r\n" + b"X" * 65537, "Protocol error: too big bulk count string"),
    (b"PING" + b"a" * 65533, "Protocol error: too big inline request"),
    (b'ECHO "a\r\n', "Protocol error: unbalanced quotes in request"),
    (b"ECHO 'a\r\n", "Protocol error: unbalanced quotes in request"),
    (b'ECHO "a\\" \r\n', "Protocol error: unbalanced quotes in request"),
]

# Valid prefixes on which Valkey keeps waiting for more bytes (no reply, no error).
WAITS = [
    b"*2147483647\r\n",
    b"*1\r\n$536870912\r\n",
    b"*" + b"1" * 65535,
    b"*" + b"1" * 65534 + b"\r",
    b"*1\r\n$" + b"1" * 65532,
    b"*1\r\nX",
    b"*1\r\n$4\r\nPINGX",
    b"PING" + b"a" * 65532,
    b"PI\x00NG\r\n",
    b"*-9223372036854775808\r\n",
]


@pytest.mark.parametrize("kw", MODES)
@pytest.mark.parametrize(("data", "message"), ERRORS, ids=[repr(e[0][:20]) for e in ERRORS])
def test_error_texts(data: bytes, message: str, kw: dict[str, object]) -> None:
    assert error_of(data, **kw) == message
    if len(data) < 1000:
        assert error_of(data, bytewise=True, **kw) == message
    # the same error after a good command, with the stream offset of the bad command
    p = RequestParser(**kw)  # type: ignore[arg-type]
    good = cmd_wire(b"PING")
    p.feed(good + data)
    assert p.next_command() == [b"PING"]
    with pytest.raises(ProtocolError) as info:
        p.next_command()
    assert info.value.message == message
    assert info.value.offset == len(good)
    assert isinstance(info.value, FormatError)
    # sticky: the connection is dead
    p.feed(good)
    with pytest.raises(ProtocolError):
        p.next_command()


@pytest.mark.parametrize("kw", MODES)
@pytest.mark.parametrize("data", WAITS, ids=[repr(w[:20]) for w in WAITS])
def test_waits_for_more(data: bytes, kw: dict[str, object]) -> None:
    p = RequestParser(**kw)  # type: ignore[arg-type]
    p.feed(data)
    assert p.next_command() is None


def test_huge_bulk_header_fails_before_the_data() -> None:
    p = RequestParser(max_bulk_len=1024)
    p.feed(b"*2\r\n$3\r\nSET\r\n$1025\r\n")
    with pytest.raises(ProtocolError, match="invalid bulk length"):
        p.next_command()
    # a complete command with a too-big bulk is refused on the fast path too
    wire = cmd_wire(b"SET", b"x" * 1025)
    assert error_of(wire, max_bulk_len=1024) == "Protocol error: invalid bulk length"
    assert parse_whole(cmd_wire(b"SET", b"x" * 1024), max_bulk_len=1024) == [[b"SET", b"x" * 1024]]


def test_wire_line() -> None:
    exc = ProtocolError("Protocol error: expected '$', got '\xe9'")
    assert exc.wire == b"-ERR Protocol error: expected '$', got '\xe9'\r\n"


def test_large_pipeline_compacts_buffer() -> None:
    cmds = [[b"SET", b"k%d" % i, b"v" * (i % 300)] for i in range(3000)]
    wire = b"".join(cmd_wire(*c) for c in cmds)
    p = RequestParser()
    out = []
    for i in range(0, len(wire), 7000):
        p.feed(wire[i : i + 7000])
        out.extend(p.commands())
    assert out == cmds
    assert len(p._buf) < 200_000
    assert p.offset == len(wire)


def test_string2ll() -> None:
    assert [string2ll(s) for s in (b"0", b"-1", b"12", b"-9223372036854775808")] == [
        0,
        -1,
        12,
        -(2**63),
    ]
    for bad in (b"", b"-", b"-0", b"01", b"+1", b" 1", b"1 ", b"9223372036854775808", b"1_0"):
        assert string2ll(bad) is None


SPLITS = [
    (b"", []),
    (b"   ", []),
    (b"foo bar", [b"foo", b"bar"]),
    (b"\x0bPING", [b"PING"]),
    (b"a\x0bb", [b"a\x0bb"]),
    (b"\"a b\" 'c d'", [b"a b", b"c d"]),
    (b'"a"b"c"', [b"abc"]),
    (b'a"b c"', [b"ab c"]),
    (b"'a'\"b\"", [b"ab"]),
    (b'""', [b""]),
    (b"a''", [b"a"]),
    (b'"\\x41\\x4g\\n"', [b"Ax4g\n"]),
    (b'"\\xff\\x00"', [b"\xff\x00"]),
    (b'"\\x4"', [b"x4"]),
    (b'"\\r\\t\\b\\a\\z\\\\"', [b"\r\t\x08\x07z\\"]),
    (b'"a\\"b"', [b'a"b']),
    (b'"a\\""', [b'a"']),
    (b'"a\\"', [b"a\\"]),
    (b"'a\\'b'", [b"a'b"]),
    (b"'a\\''", [b"a'"]),
    (b"'a\\'", [b"a\\"]),
    (b"'a\\nb'", [b"a\\nb"]),
    (b"a\\x41", [b"a\\x41"]),
    (b'"a\rb"', [b"a\rb"]),
    (b"x\x00y z", [b"x"]),
    (b'"a', None),
    (b"'a", None),
    (b'"a\\', None),
    (b'"a\\" ', None),
    (b"'unterminated '\"double quotes", None),
]


@pytest.mark.parametrize(("line", "expected"), SPLITS)
def test_split_args(line: bytes, expected: list[bytes] | None) -> None:
    assert split_args(line) == expected


# --- replies -------------------------------------------------------------------------------

REPLIES: list[tuple[bytes, Frame]] = [
    (b"+OK\r\n", SimpleString(b"OK")),
    (b"-ERR bad\r\n", Error(b"ERR bad")),
    (b"!8\r\nERR b\r\nd\r\n", Error(b"ERR b\r\nd")),
    (b":-42\r\n", Integer(-42)),
    (b"$3\r\nfoo\r\n", Bulk(b"foo")),
    (b"$0\r\n\r\n", Bulk(b"")),
    (b"$-1\r\n", Bulk(None)),
    (b"*-1\r\n", Array(None)),
    (b"*0\r\n", Array([])),
    (b"*2\r\n:1\r\n*1\r\n$1\r\na\r\n", Array([Integer(1), Array([Bulk(b"a")])])),
    (b"_\r\n", Null()),
    (b"%1\r\n+k\r\n:1\r\n", Map([(SimpleString(b"k"), Integer(1))])),
    (b"~2\r\n:1\r\n:2\r\n", Set([Integer(1), Integer(2)])),
    (b",2.5\r\n", Double(2.5)),
    (b",-inf\r\n", Double(-math.inf)),
    (b",1e+20\r\n", Double(1e20)),
    (b"#t\r\n", Boolean(True)),
    (b"#f\r\n", Boolean(False)),
    (
        b"(-3492890328409238509324850943850943825024385\r\n",
        BigNumber(-3492890328409238509324850943850943825024385),
    ),
    (b"=8\r\ntxt:ab\r\n\r\n", Verbatim(b"txt", b"ab\r\n")),
    (b">2\r\n+message\r\n$1\r\nx\r\n", Push([SimpleString(b"message"), Bulk(b"x")])),
    (b"|1\r\n+ttl\r\n:3\r\n", Attribute([(SimpleString(b"ttl"), Integer(3))])),
    (
        b"*2\r\n|1\r\n+a\r\n:1\r\n:5\r\n:6\r\n",
        Array([Attribute([(SimpleString(b"a"), Integer(1))]), Integer(5), Integer(6)]),
    ),
]


def replies_whole(data: bytes) -> list[Frame]:
    p = ReplyParser()
    p.feed(data)
    return list(p.frames())


def replies_bytewise(data: bytes) -> list[Frame]:
    p = ReplyParser()
    out: list[Frame] = []
    for i in range(len(data)):
        p.feed(data[i : i + 1])
        out.extend(p.frames())
    return out


@pytest.mark.parametrize(("wire", "frame"), REPLIES, ids=[r[0][:12].decode() for r in REPLIES])
def test_reply_parser_every_type(wire: bytes, frame: Frame) -> None:
    assert replies_whole(wire) == [frame]
    assert replies_bytewise(wire) == [frame]
    p = ReplyParser()
    p.feed(wire + wire[:-1])
    assert p.next_frame() == frame
    assert p.next_frame() is NEED_MORE
    p.feed(wire[-1:])
    assert p.next_frame() == frame
    assert p.next_frame() is NEED_MORE
    # RESP3 encoding reproduces the wire bytes (the blob error is written as a simple error)
    if frame in (Bulk(None), Array(None)):
        assert encode(frame, 3) == b"_\r\n"  # addReplyNull / addReplyNullArray in RESP3
    elif not wire.startswith(b"!"):
        assert encode(frame, 3) == wire


@pytest.mark.parametrize(
    "wire",
    [
        b"?x\r\n",
        b":1a\r\n",
        b"$-2\r\n",
        b"$1\r\nab\r\n",
        b"#x\r\n",
        b",1.2.3x\r\n",
        b"_x\r\n",
        b"(1a\r\n",
        b"=2\r\nab\r\n",
        b"*-2\r\n",
        b"%-1\r\n",
    ],
)
def test_reply_parser_errors(wire: bytes) -> None:
    p = ReplyParser()
    p.feed(wire)
    with pytest.raises(ProtocolError):
        p.next_frame()
    with pytest.raises(ProtocolError):
        p.next_frame()


# --- reply encoder -------------------------------------------------------------------------


def test_encode_resp2_downgrade() -> None:
    assert encode(SimpleString(b"OK")) == b"+OK\r\n" == R.ok()
    assert encode(Bulk(b"OK")) == b"$2\r\nOK\r\n" == R.bulk(b"OK")
    assert encode(Map([(Bulk(b"a"), Integer(1))])) == b"*2\r\n$1\r\na\r\n:1\r\n"
    assert encode(Set([Integer(1)])) == b"*1\r\n:1\r\n"
    assert encode(Push([Bulk(b"m")])) == b"*1\r\n$1\r\nm\r\n"
    assert encode(Double(3.0)) == b"$1\r\n3\r\n"
    assert encode(Double(2.5)) == b"$3\r\n2.5\r\n"
    assert encode(Boolean(True)) == b":1\r\n"
    assert encode(Boolean(False)) == b":0\r\n"
    assert encode(Null()) == b"$-1\r\n"
    assert encode(Bulk(None)) == b"$-1\r\n"
    assert encode(Array(None)) == b"*-1\r\n"
    assert encode(BigNumber(12345678901234567890123)) == b"$23\r\n12345678901234567890123\r\n"
    assert encode(Verbatim(b"txt", b"hi")) == b"$2\r\nhi\r\n"
    assert encode(Attribute([(Bulk(b"a"), Integer(1))])) == b""
    assert encode(Array([Attribute([]), Integer(1)])) == b"*1\r\n:1\r\n"
    assert encode(Error(b"ERR x\r\ny")) == b"-ERR x  y\r\n"


def test_encode_resp3() -> None:
    assert encode(Null(), 3) == b"_\r\n"
    assert encode(Bulk(None), 3) == b"_\r\n"
    assert encode(Array(None), 3) == b"_\r\n"
    assert encode(Map([(Bulk(b"a"), Integer(1))]), 3) == b"%1\r\n$1\r\na\r\n:1\r\n"
    assert encode(Double(3.0), 3) == b",3\r\n"
    assert encode(Verbatim(b"md", b"x"), 3) == b"=5\r\nmd :x\r\n"
    with pytest.raises(ValueError):
        encode(Null(), 4)


def test_fast_helpers() -> None:
    assert R.integer(0) == b":0\r\n"
    assert R.integer(-7) == b":-7\r\n"
    assert R.integer(123456789) == b":123456789\r\n"
    assert R.error("ERR unknown command") == b"-ERR unknown command\r\n"
    assert R.simple("PONG") == R.PONG
    assert R.array_of_bulks([b"a", None, b""]) == b"*3\r\n$1\r\na\r\n$-1\r\n$0\r\n\r\n"
    assert R.array_of_bulks([None], 3) == b"*1\r\n_\r\n"
    assert R.null(2) == b"$-1\r\n"
    assert R.null(3) == b"_\r\n"
    assert R.null_array(2) == b"*-1\r\n"
    assert R.bulk(b"x" * 20000) == b"$20000\r\n" + b"x" * 20000 + b"\r\n"
    assert R.map_header(2) == b"*4\r\n"
    assert R.map_header(2, 3) == b"%2\r\n"
    assert R.set_header(1, 3) == b"~1\r\n"
    assert R.push_header(3, 3) == b">3\r\n"
    assert R.double(math.inf) == b"$3\r\ninf\r\n"


# Values produced by valkey-server 9.1.2 (ZADD then ZSCORE, RESP2 and RESP3 alike).
DOUBLES = [
    (3.0, b"3"),
    (2.5, b"2.5"),
    (1e20, b"1e+20"),
    (1e-7, b"1e-7"),
    (math.inf, b"inf"),
    (-math.inf, b"-inf"),
    (0.1 + 0.2, b"0.30000000000000004"),
    (0.1, b"0.1"),
    (0.0, b"0"),
    (1e308, b"1e+308"),
    (123456789012345678.0, b"123456789012345680"),
    (4611686018427387904.0, b"4611686018427387904"),
    (-4611686018427387904.0, b"-4611686018427387904"),
    (1.5e-300, b"1.5e-300"),
    (5e-324, b"5e-324"),
    (1e21, b"1e+21"),
    (12345678.9, b"12345678.9"),
    (0.000001, b"0.000001"),
    (1e16, b"10000000000000000"),
    (123456.7890123, b"1.234567890123e+5"),
    (1.7976931348623157e308, b"1.7976931348623157e+308"),
    (2.2250738585072014e-308, b"2.2250738585072014e-308"),
    (1234567.0, b"1234567"),
    (12345678901234567890.0, b"12345678901234567000"),
    (-1.5, b"-1.5"),
    (123e-10, b"1.23e-8"),
    (1.0000000000000002, b"1.0000000000000002"),
]


@pytest.mark.parametrize(("value", "text"), DOUBLES)
def test_format_double(value: float, text: bytes) -> None:
    assert format_double(value) == text
    if not math.isinf(value):
        assert float(text) == value  # round-trips


def test_format_double_special() -> None:
    assert format_double(math.nan) == b"nan"
    assert format_double(-0.0) == b"-0"


# --- against the real server ---------------------------------------------------------------


def _talk(port: int, data: bytes, until: bytes | None = None) -> bytes:
    """Send ``data``; read until the server closes or the reply ends with ``until``."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(5)
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if until is not None and out.endswith(until):
                    break
        except ConnectionResetError:
            pass
    return out


@pytest.mark.real
def test_errors_match_real_server(tmp_path: Path) -> None:
    from realserver import real_server

    with real_server(tmp_path) as srv:
        for data, message in ERRORS:
            got = _talk(srv.port, data)
            assert got == ProtocolError(message).wire, data[:40]
        # inline splitting: RPUSH the split words and read them back
        rng = random.Random(7)
        alphabet = [b"a", b"b", b" ", b"\t", b'"', b"'", b"\\", b"x", b"4", b"1", b"\x0b", b"n"]
        client = srv.client()
        for _ in range(150):
            line = b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))
            client.delete("L")
            got = _talk(srv.port, b"RPUSH L " + line + b"\r\nPING\r\n", until=b"+PONG\r\n")
            words = split_args(line)
            if words is None:
                assert got == b"-ERR Protocol error: unbalanced quotes in request\r\n", line
            elif not words:
                assert got.startswith(b"-ERR wrong number of arguments"), line
            else:
                assert got == b":%d\r\n+PONG\r\n" % len(words), line
                assert client.lrange("L", 0, -1) == words, line
        # doubles: ZSCORE in RESP2 and RESP3
        values = [rng.uniform(-1e6, 1e6) for _ in range(40)]
        values += [rng.random() * 10.0 ** rng.randint(-30, 30) for _ in range(40)]
        for v in values:
            wire = b"ZADD z %r m\r\nZSCORE z m\r\nHELLO 3\r\nZSCORE z m\r\nPING\r\n" % v
            got = _talk(srv.port, wire, until=b"+PONG\r\n")
            text = format_double(v)
            assert b"$%d\r\n%b\r\n" % (len(text), text) in got, v
            assert b"\r\n," + text + b"\r\n" in got, v


def test_reply_parser_resumes_wide_reply_without_reparsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide reply arriving a few bytes at a time is parsed once, not again from its start on
    every read (the old parser was quadratic there)."""
    from persistence.resp import reply_parser as P

    calls = 0
    real = P.ReplyParser._element

    def counting(self: P.ReplyParser, pos: int, depth: int) -> object:
        nonlocal calls
        calls += 1
        return real(self, pos, depth)

    monkeypatch.setattr(P.ReplyParser, "_element", counting)
    n = 2000
    data = b"*%d\r\n" % n + b"".join(b"$3\r\n%03d\r\n" % (i % 1000) for i in range(n))
    p = P.ReplyParser()
    frames = []
    for i in range(0, len(data), 5):
        p.feed(data[i : i + 5])
        frames.extend(p.frames())
    assert len(frames) == 1 and len(frames[0].items) == n
    # one call per element, plus at most one failed attempt per read
    assert calls <= (n + 1) + len(data) // 5 + 1
