"""Shaped runs (persistence/aof/shapes.py) give exactly what hiredis and the exact scanner give.

- ``RespScanner`` with ``shaped`` on against the scanner with its segment path off (``SEG = 0``)
  on fixed-width streams with what a shape must decline mixed in: the same size with another
  split of key and value, another name or case, a special of the same size, '*' and CRLF inside
  values, annotations, odd RESP, torn tails; every chunk size.
- ``shape_of`` takes canonical commands only; ``Shape.holds`` fails on a change to any byte that
  is not an argument's data; columns and lazily built ``argvs`` hold the commands' arguments.
- ``AofStats`` (``inspect``) on shaped runs against ``add_batch`` of the same commands, and
  ``inspect_path`` with shapes against without them.
- the manifest's ``_split`` against ``split_args`` (sdssplitargs).
"""

from __future__ import annotations

import dataclasses
import io
import random
import shutil
from itertools import chain
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import persistence.stats as stats_mod
from persistence.aof import resp_scan
from persistence.aof.encoder import encode_command as enc
from persistence.aof.manifest import _split
from persistence.aof.reader import read_aof_runs
from persistence.aof.resp_scan import AofCommand, CommandRun, RespScanner
from persistence.aof.shapes import shape_of
from persistence.resp.tokens import split_args
from persistence.stats import AofStats, inspect_path
from tests.test_aof_runs import ODD, SPECIAL
from tests.test_inspect_fast import _small, add_plain  # tiny sketches: prunes and sampling happen
from tools.keyspecs import key_positions, single_key

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "valkey-9.1.2"


def _odd_one(rng: random.Random, i: int) -> bytes:
    """Something a shape of ``SET key:%06d value:%06d`` must not take, often of its size."""
    return rng.choice(
        [
            enc([b"SET", b"key:%07d" % i, b"value:%05d" % i]),  # same size, other split
            enc([b"DEL", b"key:%06d" % i, b"value:%06d" % i]),  # same size, other name
            enc([b"set", b"key:%06d" % i, b"value:%06d" % i]),  # other case
            enc([b"SET", b"key:*%05d" % i, b"value:%06d" % i]),  # '*' in a key
            enc([b"SET", b"key:%06d" % i, b"v\r\n*3\r\n$3\r\n"]),  # RESP in a value
            enc([b"SET", b"key:%06d" % i, b"va#TS:1\r\n\r\n"]),  # a hazard byte in a value
            enc([b"SELECT", b"%d" % (i % 3)]),
            enc([b"MULTI"]) + enc([b"SET", b"key:%06d" % i, b"value:%06d" % i]) + enc([b"EXEC"]),
            b"#TS:%d\r\n" % (1700000000 + i),
            rng.choice(ODD) if rng.random() < 0.1 else enc([b"SET", b"k", b"v"]),
        ]
    )


def _fixed(rng: random.Random, n: int, odd: float) -> bytes:
    parts = []
    for i in range(n):
        if rng.random() < odd:
            parts.append(_odd_one(rng, i))
        else:
            parts.append(enc([b"SET", b"key:%06d" % i, b"value:%06d" % i]))
    return b"".join(parts)


def _scan(data: bytes, chunk: int, special: frozenset[bytes], shaped: bool) -> list[Any]:
    out: list[Any] = []
    s = RespScanner(io.BytesIO(data), file="x", chunk=chunk)
    s.special = special
    s.shaped = shaped
    try:
        for run in s.runs():
            out += [(c.argv, c.offset, c.size, c.timestamp, c.db) for c in run.commands()]
    except Exception as e:  # the same error, message and offset
        out.append((type(e).__name__, str(e), getattr(e, "offset", None)))
    return out


@pytest.mark.parametrize("seed", range(10))
def test_shaped_scan_is_exact(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    for _ in range(4):
        data = _fixed(rng, rng.randrange(1, 4000), rng.choice((0.0, 0.0005, 0.005, 0.05)))
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data) + 1)]
        chunk = rng.choice((1 << 20, 4096, 65536, 7))
        special = rng.choice((frozenset(), SPECIAL))
        shaped = _scan(data, chunk, special, True)
        assert shaped == _scan(data, chunk, special, False)
        with monkeypatch.context() as m:
            m.setattr(resp_scan, "SEG", 0)
            assert shaped == _scan(data, chunk, special, True)


def test_shaped_runs_are_lazy_and_hold_the_commands() -> None:
    data = b"".join(enc([b"SET", b"k%05d" % i, b"v%07d" % i]) for i in range(20_000))
    s = RespScanner(io.BytesIO(data), file="x")
    s.shaped = True
    runs = list(s.runs())
    shaped = [r for r in runs if r.shape is not None]
    assert len(shaped) >= len(runs) - 1 and sum(r.size for r in runs) == len(data)
    # longer segments than unshaped ones (no list per command is made)
    assert max(r.size // r.step for r in shaped) > 2 * resp_scan.SEG_CMDS
    for r in shaped:
        keys = r.column(1)
        assert r.flat is None  # argvs not built by a column
        argvs = r.argvs
        assert [a[1] for a in argvs] == keys and r.column(2) == [a[2] for a in argvs]
        assert r.flat == list(chain.from_iterable(argvs)) and r.nargs == len(r.flat)
        assert all(type(a) is bytes for a in r.flat)
        assert r.sizes() == [r.step] * len(argvs)
        assert list(r.iter_commands()) == r.commands()
        assert dataclasses.replace(r, flat=None) == r


def test_shaped_runs_only_when_asked() -> None:
    data = b"".join(enc([b"SET", b"k%05d" % i, b"v"]) for i in range(5000))
    assert all(r.shape is None for r in RespScanner(io.BytesIO(data), file="x").runs())


@pytest.mark.parametrize(
    "cmd",
    [
        b"*03\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", b"*2\r\n$01\r\na\r\n$1\r\nb\r\n",
        b"*1\r\n$-1\r\n", b"*0\r\n", b"*1\r\n$1\r\nab\r\n", b"*1\r\n$2\r\na\r\n",
        b"*1\r\n$1\r\na\n\n", b"*1\r\n+a\r\n", b"*1\r\n$1\r\na\r\nxx", b"*2\r\n$1\r\na\r\n",
        b"$1\r\na\r\n", b"*+1\r\n$1\r\na\r\n", b"*1\r\n$ 1\r\na\r\n", b"*1\n$1\r\na\r\n",
    ],
)  # fmt: skip
def test_shape_of_takes_canonical_commands_only(cmd: bytes) -> None:
    assert shape_of(cmd, 0, len(cmd)) is None


def test_shape_of_layout() -> None:
    cmd = enc([b"HSET", b"", b"field", b"v" * 12])
    shape = shape_of(b"xx" + cmd, 2, len(cmd))
    assert shape is not None
    assert (shape.name, shape.argc, shape.size) == (b"HSET", 4, len(cmd))
    assert [cmd[a : a + n] for a, n in zip(shape.starts, shape.lengths)] == [
        b"HSET", b"", b"field", b"v" * 12
    ]  # fmt: skip


def test_holds_checks_every_fixed_byte() -> None:
    rng = random.Random(1)
    cmds = [enc([b"SET", b"k%04d" % i, b"val%03d" % i]) for i in range(60)]
    size = len(cmds[0])
    data = b"".join(cmds)
    shape = shape_of(data, 0, size)
    assert shape is not None and shape.holds(data, 0, 60)
    data_bytes = {a + i for a, n in zip(shape.starts[1:], shape.lengths[1:]) for i in range(n)}
    for pos in range(size):
        at = rng.randrange(60) * size + pos
        for new in {b"\0", b"*", b"x", b"\r"} - {data[at : at + 1]}:
            changed = data[:at] + new + data[at + 1 :]
            assert shape.holds(changed, 0, 60) == (pos in data_bytes)


def _uniform_shapes(rng: random.Random) -> bytes:
    """Runs of one shape each: plain and repeated keys, hash tags, SET PXAT (a TTL form),
    HSET, keyless PING, multi-key MSET and DEL, MULTI blocks, SELECT and #TS between them."""
    runs = [
        lambda i: [b"SET", b"key:%05d" % rng.randrange(700), b"val:%05d" % i],
        lambda i: [b"SET", b"{t%d}:%04d" % (i % 9, i % 1000), b"v%05d" % i],
        lambda i: [b"set", b"k:%05d" % i, b"v%05d" % i, b"PXAT", b"1800000000000"],
        lambda i: [b"HSET", b"h:%04d" % (i % 300), b"f%03d" % (i % 999), b"v"],
        lambda i: [b"PING"],
        lambda i: [b"MSET", b"a:%05d" % i, b"1", b"b:%05d" % i, b"2"],
        lambda i: [b"DEL", b"a:%05d" % i, b"b:%05d" % i],
        lambda i: [b"PEXPIREAT", b"k:%05d" % i, b"1800000000000"],
    ]
    parts = []
    for j in range(40):
        make = rng.choice(runs)
        if rng.random() < 0.2:
            parts.append(enc([b"SELECT", b"%d" % rng.randrange(4)]))
        if rng.random() < 0.2:
            parts.append(b"#TS:%d\r\n" % (1700000000 + j * 50))
        if rng.random() < 0.15:
            parts.append(enc([b"MULTI"]))
            parts += [enc(make(i)) for i in range(rng.randrange(1, 900))]
            parts.append(enc([b"EXEC"]))
        parts += [enc(make(i)) for i in range(rng.randrange(1, 3000))]
    return b"".join(parts)


@pytest.mark.parametrize("seed", range(4))
def test_stats_of_shaped_runs_match_add_batch(seed: int, tmp_path: Path) -> None:
    p = tmp_path / "a.aof"
    p.write_bytes(_uniform_shapes(random.Random(seed)))
    fast = _small(AofStats(key_positions, 5, single_key))
    plain = _small(AofStats(key_positions, 5, single_key))
    seen = 0
    for items in read_aof_runs(p, shaped=True):
        for it in items:
            if type(it) is CommandRun:
                seen += it.shape is not None
                fast.add_run(it)
            elif type(it) is AofCommand:
                fast.add_batch([it])
    add_plain(plain, p)
    assert seen > 10
    assert fast.result() == plain.result()


def _report_without_shapes(path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    def unshaped(p: Any, **kw: Any) -> Any:
        kw.pop("shaped", None)
        return read_aof_runs(p, **kw)

    with monkeypatch.context() as m:
        m.setattr(stats_mod, "read_aof_runs", unshaped)
        return inspect_path(path, key_positions=key_positions, single_key=single_key)


def test_inspect_report_same_with_and_without_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(9)
    data = _uniform_shapes(rng)
    paths = []
    for name, body in [
        ("whole.aof", data),
        ("torn.aof", data[: len(data) - 5]),
        ("garbage.aof", data[: len(data) // 2] + b"xyz" + data[len(data) // 2 :]),
        ("fixed.aof", _fixed(rng, 30_000, 0.001)),
    ]:
        paths.append(tmp_path / name)
        paths[-1].write_bytes(body)
    base = next(FIXTURES.glob("aof_preamble/**/*.base.rdb"), None)
    if base is not None:  # an RDB preamble base, then shaped incr files
        d = tmp_path / "appendonlydir"
        d.mkdir()
        shutil.copy(base, d / "appendonly.aof.1.base.rdb")
        (d / "appendonly.aof.1.incr.aof").write_bytes(_fixed(rng, 5000, 0.01))
        (d / "appendonly.aof.2.incr.aof").write_bytes(data)
        (d / "appendonly.aof.manifest").write_text(
            "file appendonly.aof.1.base.rdb seq 1 type b\n"
            "file appendonly.aof.1.incr.aof seq 1 type i\n"
            "file appendonly.aof.2.incr.aof seq 2 type i\n"
        )
        paths.append(d)
    for path in paths:
        got = inspect_path(path, key_positions=key_positions, single_key=single_key)
        assert got == _report_without_shapes(path, monkeypatch), path.name


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [b"a", b"file", b" ", b"\t", b"\r", b"\n", b"\v", b"\f", b'"', b"'", b"\\", b"\x1c",
             b"\x85", b"x41", b"seq", b"1"]
        )
    ).map(b"".join)
)  # fmt: skip
def test_manifest_split_is_sdssplitargs(line: bytes) -> None:
    assert _split(line) == split_args(line)


def test_inspect_reads_one_layout_without_hiredis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "a.aof"
    p.write_bytes(
        b"".join(enc([b"SET", b"key:%06d" % i, b"value:%06d" % i]) for i in range(30_000))
    )
    expected = _report_without_shapes(p, monkeypatch)
    shaped: list[int] = []
    add_shaped = AofStats._add_shaped

    def counted(self: AofStats, run: CommandRun, argc: int, entry: list[Any]) -> None:
        shaped.append(run.size // run.step)
        add_shaped(self, run, argc, entry)

    def no_hiredis(*args: Any) -> Any:
        raise AssertionError("hiredis called")

    monkeypatch.setattr(AofStats, "_add_shaped", counted)
    monkeypatch.setattr(resp_scan, "_parse_segment", no_hiredis)
    got = inspect_path(p, key_positions=key_positions, single_key=single_key)
    assert got == expected and sum(shaped) == 30_000
