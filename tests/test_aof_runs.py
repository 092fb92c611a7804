"""The run paths of the AOF read side give exactly what the per-command paths give.

- ``RespScanner``: the one-hiredis-call segment path against the scanner with that path off
  (``SEG = 0``), on generated streams full of what the segment path must decline (annotations,
  RESP3 types, nested arrays, non-canonical lengths, big headers, torn tails, '*' in values).
- ``Loader``: ``read_aof_runs`` (the SET fast path) against ``read_aof_batches`` (each command
  through ``Engine.execute_loading``): same keyspace, counts, skipped errors and load errors.
- ``AofStats.add_run`` against ``add_batch`` of the same commands.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pytest

from engine.clock import ManualClock
from engine.engine import Engine
from engine.loader import Loader, LoadError
from persistence.aof import resp_scan
from persistence.aof.encoder import encode_command as enc
from persistence.aof.reader import read_aof_batches, read_aof_runs
from persistence.aof.resp_scan import CommandRun, RespScanner, command_sizes
from persistence.stats import AofStats

SPECIAL = frozenset([b"MULTI", b"EXEC", b"SELECT", b"multi", b"exec", b"Select"])
ODD = [
    b"+OK\r\n", b"~1\r\n$1\r\na\r\n", b"*0\r\n", b"*1000000\r\n", b"*2\r\n+ab\r\n$1\r\nx\r\n",
    b"*2\r\n$3\r\nSET\r\n=7\r\ntxt:abc\r\n", b"#TS:123\r\n", b"#TS:x\r\n", b"*1\r\n$3\r\nabcXY",
    b"*2\r\n$1\r\na\r\n:5\r\n", b"*2\r\n$1\r\na\r\n*1\r\n$1\r\nb\r\n", b"$3\r\nabc\r\n",
    b"*1\r\n$-1\r\n", b"%1\r\n$1\r\na\r\n$1\r\nb\r\n", b">1\r\n$1\r\na\r\n",
    b"*1\r\n$05\r\nMULTI\r\n", b"*2\r\n$1\r\na\n$1\r\nb\r\n", b"garbage", b"\x00\x00",
    b"*2\r\n$1\r\na\r\n_\r\n",
]  # fmt: skip
VALUES = [b"plain", b"+x", b"=y", b"(1", b"~", b"#", b"a\r\n*3\r\n", b"*", b"", b"\r\n", b"$5"]
NAMES = [b"SET", b"MULTI", b"EXEC", b"SELECT", b"select", b"PING", b"INCR", b"set"]


def _stream(rng: random.Random, n: int, odd: float) -> bytes:
    parts = []
    for _ in range(n):
        if rng.random() < odd:
            parts.append(rng.choice(ODD))
            continue
        name = rng.choice(NAMES) if rng.random() < 0.05 else b"SET"
        argv = [name] + [
            rng.choice(VALUES) if rng.random() < 0.02 else b"k%d" % rng.randrange(10**6)
            for _ in range(rng.choice((0, 1, 2, 2, 2, 3)))
        ]
        if name.upper() == b"SELECT":
            argv = [name, b"%d" % rng.randrange(4)]
        parts.append(enc(argv))
    return b"".join(parts)


def _scan(data: bytes, chunk: int, special: frozenset[bytes]) -> list[Any]:
    out: list[Any] = []
    s = RespScanner(io.BytesIO(data), file="x", chunk=chunk)
    s.special = special
    try:
        for batch in s.batches():
            out.append([(c.argv, c.offset, c.size, c.timestamp, c.db) for c in batch])
    except Exception as e:  # the same error, message and offset
        out.append((type(e).__name__, str(e), getattr(e, "offset", None)))
    return out


def _flat(batches: list[Any]) -> list[Any]:
    return [c for b in batches for c in (b if isinstance(b, list) else [b])]


@pytest.mark.parametrize("seed", range(12))
def test_segment_path_is_exact(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    for _ in range(6):
        data = _stream(rng, rng.randrange(1, 3000), rng.choice((0.0, 0.001, 0.01)))
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data) + 1)]
        chunk = rng.choice((1 << 20, 4096, 65536, 7))
        special = rng.choice((frozenset(), SPECIAL))
        fast = _scan(data, chunk, special)
        with monkeypatch.context() as m:
            m.setattr(resp_scan, "SEG", 0)
            slow = _scan(data, chunk, special)
        assert _flat(fast) == _flat(slow)


def test_runs_come_from_segments_and_sizes_agree() -> None:
    data = b"".join(enc([b"SET", b"k%d" % i, b"v" * (i % 300)]) for i in range(20_000))
    runs = list(RespScanner(io.BytesIO(data), file="x").runs())
    assert len(runs) < 100  # one per segment, not one per command
    assert sum(r.size for r in runs) == len(data)
    for r in runs:
        assert r.raw is not None and r.sizes() == command_sizes(r.argvs)


# ---- loading ---------------------------------------------------------------------------------


def _load_aof(rng: random.Random, now: int) -> bytes:
    parts = [enc([b"SELECT", b"0"])]
    for i in range(4000):
        k = b"k%d" % rng.randrange(300)
        r = rng.random()
        if r < 0.6:
            parts.append(enc([rng.choice((b"SET", b"set", b"SeT")), k, b"v%d" % i]))
        elif r < 0.75:
            ms = rng.choice((now + 10_000, now - 10_000, 0, -5))
            when = rng.choice((b"%d" % ms, b"0%d" % ms, b"x", b"99999999999999999999"))
            parts.append(enc([b"SET", k, b"v", rng.choice((b"PXAT", b"pxat", b"EX")), when]))
        elif r < 0.8:
            parts.append(enc([b"HSET", k, b"f", b"v"]))
        elif r < 0.84:
            parts.append(enc([b"HPEXPIREAT", k, b"%d" % (now + 5000), b"FIELDS", b"1", b"f"]))
        elif r < 0.88:
            parts.append(enc([b"PEXPIREAT", k, b"%d" % (now + 9000)]))
        elif r < 0.9:
            parts.append(enc([b"SELECT", b"%d" % rng.randrange(3)]))
        elif r < 0.92:
            parts += [enc([b"MULTI"]), enc([b"SET", k, b"m"]), enc([b"INCR", b"n"]), enc([b"EXEC"])]
        elif r < 0.95:
            parts.append(enc([b"INCR", k]))  # WRONGTYPE / not an integer: skipped errors
        else:
            parts.append(enc([b"SET", k, b"v", b"GET"]))
    return b"".join(parts)


def _blocks_aof(rng: random.Random, now: int) -> bytes:
    """Runs of nothing but plain SETs (the dict.update path) over keys with TTLs and volatile
    hash fields; SELECT ends each run."""
    parts = []
    for _ in range(20):
        for _ in range(30):
            k = b"k%d" % rng.randrange(200)
            parts += [enc([b"HSET", k, b"f", b"v"]),
                      enc([b"HPEXPIREAT", k, b"%d" % (now + 5000), b"FIELDS", b"1", b"f"]),
                      enc([b"PEXPIREAT", k, b"%d" % (now + 9000)])]  # fmt: skip
        parts.append(enc([b"SELECT", b"0"]))
        parts += [enc([b"SET", b"k%d" % rng.randrange(200), b"s%d" % i]) for i in range(300)]
        parts.append(enc([b"SELECT", b"0"]))
    return b"".join(parts)


def _dump(e: Engine) -> list[Any]:
    return [
        (db.id, sorted((k, repr(v)) for k, v in db.data.items()), sorted(db.expires.items()),
         sorted(db.volatile_keys))
        for db in e.keyspace.dbs[:4]
    ]  # fmt: skip


def _engine() -> Engine:
    return Engine(clock=ManualClock(1_700_000_000_000))


@pytest.mark.parametrize("seed", range(6))
def test_loader_runs_match_per_command_replay(seed: int, tmp_path: Path) -> None:
    now = 1_700_000_000_000
    p = tmp_path / "a.aof"
    make = _load_aof if seed % 2 else _blocks_aof
    p.write_bytes(make(random.Random(seed), now))
    fast, slow = _engine(), _engine()
    r1 = Loader(fast).load(read_aof_runs(p))
    r2 = Loader(slow).load(read_aof_batches(p))
    assert _dump(fast) == _dump(slow)
    assert (r1.commands, r1.skipped_errors) == (r2.commands, r2.skipped_errors)
    assert r1.skipped_errors or make is _blocks_aof  # the errors went through the same path


def test_loader_run_errors_have_command_offsets(tmp_path: Path) -> None:
    p = tmp_path / "a.aof"
    cmds = [enc([b"SET", b"a%d" % i, b"v"]) for i in range(50)]
    cmds.insert(30, enc([b"NOSUCHCMD", b"x"]))
    p.write_bytes(b"".join(cmds))
    offset = sum(map(len, cmds[:30]))
    for read in (read_aof_runs, read_aof_batches):
        e = _engine()
        with pytest.raises(LoadError) as info:
            Loader(e).load(read(p))
        assert (info.value.file, info.value.offset) == (str(p), offset)


# ---- inspect statistics ----------------------------------------------------------------------


def test_add_run_matches_add_batch(tmp_path: Path) -> None:
    rng = random.Random(7)
    parts = [b"#TS:1700000000\r\n"]
    for i in range(6000):
        k = rng.choice((b"k%d" % rng.randrange(500), b"{tag}%d" % i, b"x"))
        r = rng.random()
        if r < 0.7:
            parts.append(enc([b"SET", k, b"v" * rng.randrange(50)]))
        elif r < 0.8:
            parts.append(enc([b"SET", k, b"v", b"PXAT", b"1800000000000"]))
        elif r < 0.85:
            parts.append(enc([b"DEL", k, b"y"]))
        elif r < 0.9:
            parts.append(enc([b"PING"]))
        elif r < 0.93:
            parts.append(b"#TS:%d\r\n" % (1700000000 + i))
        elif r < 0.96:
            parts.append(enc([b"SELECT", b"%d" % rng.randrange(3)]))
        else:
            parts += [enc([b"MULTI"]), enc([b"SET", k, b"m"]), enc([b"EXEC"])]
    p = tmp_path / "a.aof"
    p.write_bytes(b"".join(parts))

    def positions(argv: list[bytes]) -> list[int]:
        return list(range(1, len(argv))) if argv[0] == b"DEL" else [1] if len(argv) > 1 else []

    def single(name: bytes) -> bool:
        return name.upper() in (b"SET", b"SELECT")

    a, b = AofStats(positions, single_key=single), AofStats(positions, single_key=single)
    for items in read_aof_runs(p):
        for it in items:
            if type(it) is CommandRun:
                a.add_run(it)
                b.add_batch(it.commands())
            elif it.__class__.__name__ == "AofCommand":
                a.add_batch([it])  # type: ignore[list-item]
                b.add_batch([it])  # type: ignore[list-item]
    assert a.result() == b.result()
    assert a.result()["totals"]["commands"] > 6000
