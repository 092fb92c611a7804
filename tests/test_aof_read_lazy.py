"""The fast read paths of issue 7 give exactly what the slower ones give.

- ``read_aof`` makes each command object as it is consumed (``CommandRun.iter_commands``): the
  same items, fields and errors as expanding ``read_aof_batches``, and as the scanner with its
  segment path off (``SEG = 0``).
- Equal-size segments (``step``: two strided slices instead of the big-header search and a size
  per command) on fixed-width streams, including what must decline: a '*' inside values, big or
  two-digit headers, specials of the same size, annotations, torn tails.
- The segment length follows the command size (about ``SEG_CMDS`` commands per run).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from persistence.aof import resp_scan
from persistence.aof.encoder import encode_command as enc
from persistence.aof.reader import (
    AofCommand,
    TornTail,
    read_aof,
    read_aof_batches,
    read_aof_runs,
)
from persistence.aof.resp_scan import CommandRun

SET = [b"SET", b"key:%06d", b"value:%06d"]


def _fixed(rng: random.Random, n: int) -> bytes:
    """Fixed-width SETs, with now and then something of another shape or size."""
    parts = [enc([b"SELECT", b"0"])]
    for i in range(n):
        r = rng.random()
        if r < 0.998:
            parts.append(enc([b"SET", b"key:%06d" % i, b"value:%06d" % i]))
        elif r < 0.9983:
            parts.append(enc([b"SET", b"key:*%05d" % i, b"value:%06d" % i]))  # '*' in a key
        elif r < 0.9986:
            parts.append(enc([b"SET", b"key:%06d" % i, b"v*123456789"]))  # '*' + digits
        elif r < 0.9989:
            parts.append(enc([b"SELECT", b"1"]))
        elif r < 0.9992:
            parts += [enc([b"MULTI"]), enc([b"SET", b"key:%06d" % i, b"m"]), enc([b"EXEC"])]
        elif r < 0.9995:
            parts.append(b"#TS:%d\r\n" % (1700000000 + i))
        else:
            parts.append(enc([b"MSET"] + [b"k%d" % j for j in range(11)]))  # 2-digit header
    return b"".join(parts)


def _items(fn: Any, path: Path) -> list[Any]:
    out: list[Any] = []
    try:
        for item in fn(path):
            out.append(item)
    except Exception as e:  # the same error, message and offset
        out.append((type(e).__name__, str(e), getattr(e, "offset", None)))
    return out


def _batched(path: Path) -> Any:
    for batch in read_aof_batches(path):
        yield from batch


def _all_ways(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lazy = _items(read_aof, path)
    assert lazy == _items(_batched, path)
    with monkeypatch.context() as m:
        m.setattr(resp_scan, "SEG", 0)
        assert lazy == _items(read_aof, path)


@pytest.mark.parametrize("seed", range(4))
def test_fixed_width_streams(seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    data = _fixed(rng, 6000)
    path = tmp_path / "a.aof"
    for cut in (len(data), rng.randrange(len(data)), len(data) - 3):
        path.write_bytes(data[:cut])
        _all_ways(path, monkeypatch)


def test_step_runs_are_used(tmp_path: Path) -> None:
    path = tmp_path / "a.aof"
    path.write_bytes(b"".join(enc([b"SET", b"k%05d" % i, b"v%05d" % i]) for i in range(5000)))
    runs = [r for items in read_aof_runs(path) for r in items if type(r) is CommandRun]
    assert sum(len(r.argvs) for r in runs) == 5000
    assert all(r.step == len(enc([b"SET", b"k00000", b"v00000"])) for r in runs)
    for r in runs:
        assert list(r.iter_commands()) == r.commands()
        assert [c.size for c in r.commands()] == r.sizes()
    # about SEG_CMDS commands per run once the command size is known
    assert max(len(r.argvs) for r in runs[1:]) <= 2 * resp_scan.SEG_CMDS


@pytest.mark.parametrize(
    "line",
    [b"*100000\r\n", b"*99999\r\n", b"*12\r\n", b"*1\r\n$1\r\na\r\n", b"*2\r\n$1\r\na\r\n:1\r\n"],
)
def test_equally_spaced_odd_headers(
    line: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Equally spaced '*' bytes that are not all small commands: big headers (never handed to
    hiredis), headers of other arrays, non-bulk elements."""
    path = tmp_path / "a.aof"
    for lead in (b"", enc([b"SET", b"a", b"b"])):
        path.write_bytes(lead + line * 300)
        _all_ways(path, monkeypatch)


def test_specials_of_the_same_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # MULTI / EXEC / SELECT with the size of the SETs around them: the run is cut after each
    same = [enc([b"MULTI", b"xy"]), enc([b"EXEC", b"xyz"]), enc([b"SELECT", b"7"])]
    cmd = enc([b"INCR", b"kkk"])
    assert {len(c) for c in same} == {len(cmd)}
    parts = []
    for i in range(3000):
        parts.append(cmd if i % 97 else same[i % 3])
    path = tmp_path / "a.aof"
    path.write_bytes(b"".join(parts))
    _all_ways(path, monkeypatch)
    items = _items(read_aof, path)
    assert isinstance(items[-1], TornTail) and items[-1].kind == "multi"  # the last MULTI
    assert sum(type(c) is AofCommand and c.db == 7 for c in items) > 1000


def test_lazy_commands_are_fresh_objects(tmp_path: Path) -> None:
    """Each command is its own object (users mutate them), and a run's list stays cached."""
    path = tmp_path / "a.aof"
    path.write_bytes(b"".join(enc([b"SET", b"k%03d" % i, b"v"]) for i in range(1000)))
    cmds = [c for c in read_aof(path) if type(c) is AofCommand]
    assert len({id(c) for c in cmds}) == len(cmds) == 1000
    cmds[0].file = "other"
    assert cmds[1].file != "other"
    run = next(r for items in read_aof_runs(path) for r in items if type(r) is CommandRun)
    assert run.commands() is run.commands()
    assert list(run.iter_commands()) == run.commands()
