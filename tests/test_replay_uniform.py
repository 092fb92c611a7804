"""Uniform runs of ``valkey-aof replay``'s fast scanner (tools/replay_fastscan.py
``uniform_run``): commands of one shape proven alike by strided slices, with no parse.

Every input goes through ``Source(fast=True)`` and ``Source(fast=False)`` (the exact reader):
same commands, offsets, sizes, dbs and bytes; and the runs that should be uniform are.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from persistence.aof.encoder import encode_command
from tools.replay_fastscan import PLAIN, RawCmds, Run, split_run, uniform_run
from tools.replay_source import Source


def emitted(path: Path, fast: bool) -> tuple[list[Any], bytes, int]:
    src = Source(path, fast=fast)
    cmds: list[Any] = []
    data = []
    uniform = 0
    for seg in src.segments():
        data.append(seg.data)
        if type(seg.cmds) is RawCmds and seg.cmds.step:
            uniform += len(seg.cmds)
        for c in seg.cmds:
            cmds.append((c.argv, c.file, c.offset, c.size, seg.db, seg.txn))
        if type(seg.cmds) is RawCmds:
            assert seg.data == b"".join(encode_command(c.argv) for c in seg.cmds)
            assert seg.cmds.end_of(len(seg.cmds) - 1) == seg.cmds.end
    return cmds, b"".join(data), uniform


def sets(n: int, width: int = 6, start: int = 0) -> bytes:
    return b"".join(
        encode_command([b"SET", b"k:%0*d" % (width, i), b"v:%0*d" % (width, i)])
        for i in range(start, start + n)
    )


def check(tmp_path: Path, data: bytes) -> int:
    p = tmp_path / "a.aof"
    p.write_bytes(data)
    fast = emitted(p, True)
    exact = emitted(p, False)
    assert fast[:2] == exact[:2]
    return fast[2]


def test_fixed_width_sets_are_uniform(tmp_path: Path) -> None:
    assert check(tmp_path, sets(5000)) == 5000


def test_shape_changes_mid_run(tmp_path: Path) -> None:
    odd = encode_command([b"SET", b"k", b"a value of another size"])
    data = sets(300) + odd + sets(20_000, start=300) + sets(200, width=9)
    assert check(tmp_path, data) >= 10_000  # uniform again after at most a run of hiredis


def test_special_commands_and_annotations_between(tmp_path: Path) -> None:
    data = (
        sets(100)
        + encode_command([b"SELECT", b"3"])
        + sets(100)
        + b"#TS:1700000000\r\n"
        + encode_command([b"MULTI"])
        + sets(2)
        + encode_command([b"EXEC"])
        + sets(100)
    )
    assert check(tmp_path, data) >= 100


def test_values_holding_resp_bytes(tmp_path: Path) -> None:
    data = b"".join(
        encode_command([b"SET", b"k%03d" % i, b"*3\r\n$3\r\n" if i % 2 else b"#TS:1\r\n$"])
        for i in range(500)
    )
    assert check(tmp_path, data) == 500  # one size: values are not looked at
    assert check(
        tmp_path, b"".join(encode_command([b"SET", b"k", b"\r\n*9\r\n"]) for _ in range(99))
    )


def test_random_mixes(tmp_path: Path) -> None:
    rnd = random.Random(7)
    for _ in range(15):
        parts = []
        for _ in range(rnd.randrange(1, 6)):
            w = rnd.randrange(0, 4)
            m = rnd.randrange(1, 400)
            if rnd.random() < 0.2:
                parts.append(encode_command([b"SELECT", b"%d" % rnd.randrange(3)]))
            parts += [
                encode_command(
                    [b"SET", b"k%0*d" % (w, i % 10**w if w else 0), b"x" * rnd.randrange(2)]
                )
                for i in range(m)
            ]
        data = b"".join(parts)
        if rnd.random() < 0.3:
            data = data[: rnd.randrange(len(data))]
        check(tmp_path, data)


@pytest.mark.parametrize(
    "first",
    [
        b"*03\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",  # a leading zero
        b"*3\r\n$03\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
        b"*3\r\n+SET\r\n$1\r\nk\r\n$1\r\nv\r\n",  # not a bulk string
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nvv\r\n",  # a wrong length
        b"*0\r\n",
    ],
)
def test_not_canonical_is_not_uniform(first: bytes) -> None:
    buf = first * 100
    assert uniform_run(buf, 0, len(buf), lambda name: True) == (0, 0)


def test_only_plain_names() -> None:
    buf = encode_command([b"FLUSHALL"]) * 100
    assert uniform_run(buf, 0, len(buf), lambda name: False) == (0, 0)
    assert uniform_run(buf, 0, len(buf), lambda name: True) == (100, 18)
    assert uniform_run(buf, 0, 18 * 70, lambda name: True) == (70, 18)


def test_lazy_argvs_and_split() -> None:
    data = sets(200)
    size = len(data) // 200
    raw = RawCmds(None, "f", 10, 10 + len(data), 0, data=data, n=200, step=size)
    parts = split_run(Run(data, raw), 64)
    assert [len(p.cmds) for p in parts] == [64, 64, 64, 8]
    assert b"".join(p.data for p in parts) == data
    assert parts[1].cmds.offset == 10 + 64 * size and parts[1].cmds.argvs[0][0] == b"SET"
    assert raw.argvs[199] == [b"SET", b"k:000199", b"v:000199"]
    assert [c.offset for c in raw][:2] == [10, 10 + size]
    assert PLAIN == 0
