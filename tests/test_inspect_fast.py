"""The fast paths of ``valkey-aof inspect``'s statistics give exactly what the plain paths give.

- ``AofStats.add_run`` (same head / same size from the raw RESP, slots from CRC16, top keys
  by bytes kept as a multiple of top keys by writes while every command has one size) against
  ``add_batch`` of the same commands, with tiny sketches so that prunes and sampling happen;
- the helpers against brute force (binascii's CRC against persistence.crc);
- ``DistinctCounter`` against its definition (the result does not depend on the batches).
"""

from __future__ import annotations

import heapq
import random
from binascii import crc_hqx
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from persistence.aof.encoder import encode_command as enc
from persistence.aof.reader import read_aof_runs
from persistence.aof.resp_scan import AofCommand, CommandRun
from persistence.crc import crc16, key_slot
from persistence.sketches import DistinctCounter, HeavyHitters
from persistence.stats import AofStats, inspect_path
from persistence.stats_runs import one_size, same_head
from tools.keyspecs import key_positions, single_key


def _aof(rng: random.Random, n: int, uniform: float) -> bytes:
    """SET runs, some of one command size throughout, with keyless, multi-key, hash-tagged,
    PXAT, MULTI and #TS commands mixed in; values hold RESP-looking bytes."""
    parts = [b"#TS:1700000000\r\n"]
    values = [b"v" * 7, b"$3\r\nSET\r\n", b"{x}", b"abcdefg", b"*3\r\n"]
    for i in range(n):
        r = rng.random()
        if r < uniform:  # one size: 10-byte keys, 7-byte values
            parts.append(enc([b"SET", b"key:%06d" % rng.randrange(3000), rng.choice(values[:4])]))
            continue
        k = rng.choice((b"k%d" % rng.randrange(200), b"{t%d}x" % (i % 7), b"u%d" % i))
        if r < 0.8:
            parts.append(enc([b"SET", k, rng.choice(values) * rng.randrange(1, 4)]))
        elif r < 0.84:
            parts.append(enc([b"set", k, b"v", b"PXAT", b"1800000000000"]))
        elif r < 0.88:
            parts.append(enc([b"DEL", k, b"z%d" % rng.randrange(9)]))
        elif r < 0.9:
            parts.append(enc([b"PING"]))
        elif r < 0.92:
            parts.append(enc([b"SELECT", b"%d" % rng.randrange(3)]))
        elif r < 0.94:
            parts.append(b"#TS:%d\r\n" % (1700000000 + i))
        elif r < 0.96:
            parts += [enc([b"MULTI"]), enc([b"INCR", k]), enc([b"EXEC"])]
        else:
            parts.append(enc([b"HSET", k, b"f", b"v"]))
    return b"".join(parts)


def add_plain(stats: AofStats, p: Path) -> AofStats:
    """``stats`` of the AOF at ``p`` through add_batch only (no column-wise fast path)."""
    for items in read_aof_runs(p):
        for it in items:
            if type(it) is CommandRun:
                stats.add_batch(it.commands())
            elif type(it) is AofCommand:
                stats.add_batch([it])
    return stats


def _small(stats: AofStats) -> AofStats:
    stats.top_writes = HeavyHitters(4)
    stats.top_bytes = HeavyHitters(4)
    stats.keys = DistinctCounter(limit=300)
    stats.keys.SAMPLE = 64
    return stats


def _both(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    fast = _small(AofStats(key_positions, 5, single_key))
    plain = _small(AofStats(key_positions, 5, single_key))
    for items in read_aof_runs(path):
        for it in items:
            if type(it) is CommandRun:
                fast.add_run(it)
                plain.add_batch(it.commands())
            elif type(it) is AofCommand:
                fast.add_batch([it])
                plain.add_batch([it])
    return fast.result(), plain.result()


@pytest.mark.parametrize("uniform", [0.0, 0.5, 0.97, 1.0])
@pytest.mark.parametrize("seed", [1, 2])
def test_add_run_matches_add_batch(tmp_path: Path, uniform: float, seed: int) -> None:
    p = tmp_path / "a.aof"
    p.write_bytes(_aof(random.Random(seed), 8000, uniform))
    fast, plain = _both(p)
    assert fast == plain
    assert fast["top_keys_by_bytes"]["approximate"]  # the sketches pruned
    assert not fast["totals"]["keys_touched_exact"]


def test_uniform_sizes_keep_top_bytes_as_a_multiple(tmp_path: Path) -> None:
    p = tmp_path / "a.aof"
    p.write_bytes(b"".join(enc([b"SET", b"key:%06d" % (i % 5000), b"v" * 7]) for i in range(9000)))
    stats = _small(AofStats(key_positions, 5, single_key))
    for items in read_aof_runs(p):
        for it in items:
            if type(it) is CommandRun:
                stats.add_run(it)
    assert stats._bytes_factor == 43  # never made real: every command has 43 bytes
    fast, plain = _both(p)
    assert fast == plain
    top = fast["top_keys_by_bytes"]
    writes = fast["top_keys_by_writes"]
    assert top["max_error"] == 43 * writes["max_error"] > 0
    assert [k["value"] for k in top["keys"]] == [43 * k["value"] for k in writes["keys"]]


def test_inspect_path_report_unchanged_by_the_fast_paths(tmp_path: Path) -> None:
    p = tmp_path / "a.aof"
    p.write_bytes(_aof(random.Random(3), 3000, 0.5))
    d = inspect_path(p, key_positions=key_positions, single_key=single_key)
    stats = add_plain(AofStats(key_positions, 10, single_key), p)
    assert d["aof"] == stats.result()
    keys = [k for c in _commands(p) for k in (c.argv[i] for i in key_positions(c.argv))]
    slots = Counter(map(key_slot, keys))
    assert d["aof"]["slots"] == {str(s): slots[s] for s in sorted(slots)}


def _commands(p: Path) -> list[AofCommand]:
    out: list[AofCommand] = []
    for items in read_aof_runs(p):
        for it in items:
            if type(it) is CommandRun:
                out += it.commands()
            elif type(it) is AofCommand:
                out.append(it)
    return out


def testsame_head_and_same_size_against_brute_force(tmp_path: Path) -> None:
    rng = random.Random(5)
    p = tmp_path / "a.aof"
    p.write_bytes(_aof(rng, 6000, 0.6))
    runs = [it for items in read_aof_runs(p) for it in items if type(it) is CommandRun]
    heads = sizes = 0
    for run in runs:
        first = run.argvs[0]
        same = all(len(a) == len(first) and a[0] == first[0] for a in run.argvs)
        assert same_head(run) == (same and run.raw is not None)
        got = one_size(run) or run.sizes()  # one int when all have the same size
        expected = run.sizes()
        if isinstance(got, int):
            assert expected == [got] * len(run.argvs)
            sizes += 1
        else:
            assert got == expected
        heads += same_head(run)
    assert heads and sizes  # both fast paths were taken


def test_crc_hqx_is_crc16_xmodem() -> None:
    rng = random.Random(9)
    for _ in range(2000):
        key = rng.randbytes(rng.randrange(40))
        assert crc_hqx(key, 0) == crc16(key)
    assert crc_hqx(b"123456789", 0) == 0x31C3  # CRC-16/XMODEM's check value


def _definition(items: list[bytes], limit: int, sample: int) -> tuple[int, bool]:
    """Exact up to ``limit``; beyond, the fewest halvings that keep at most ``sample`` hashes."""
    distinct = set(items)
    if len(distinct) <= limit:
        return len(distinct), True
    hashes = set(map(hash, distinct))
    level = 0
    below = (1 << 63) - 1
    while sum(h < below for h in hashes) > sample:
        level += 1
        below = (1 << (64 - level)) - (1 << 63)
    return sum(h < below for h in hashes) << level, False


@pytest.mark.parametrize("n", [50, 400, 5000])
def test_distinct_counter_is_its_definition_whatever_the_batches(n: int) -> None:
    rng = random.Random(n)
    items = [b"i%d" % rng.randrange(n) for _ in range(2 * n)]
    for size in (1, 7, 333, len(items)):
        d = DistinctCounter(limit=300)
        d.SAMPLE = 64
        for i in range(0, len(items), size):
            d.add_many(items[i : i + size])
        assert (d.count(), d.is_exact) == _definition(items, 300, 64)
        assert len(d.sample) <= 64


def test_weighted_adds_are_sequential_adds() -> None:
    rng = random.Random(6)
    hh, counts, error, units = HeavyHitters(3, check_every=12), Counter[bytes](), 0, set()
    for i in range(600):
        new = i % 50 > 25  # all keys new for a while: the counters empty, units come in
        keys = [b"k%d" % (rng.randrange(30) + (i * 100 if new else 0)) for _ in range(12)]
        one = rng.choice((7, 7, 7, 9)) if rng.random() < 0.8 else None
        weights = [one] * len(keys) if one else [rng.randrange(1, 100) for _ in keys]
        hh.add_weights(keys, one or weights)
        units.add(hh.unit)
        for k, w in zip(keys, weights):  # the definition, one add at a time
            counts[k] += w
        if len(counts) > 12:
            cut = sorted(counts.values())[-4]
            error += cut
            counts = Counter({k: v - cut for k, v in counts.items() if v > cut})
        assert list(hh.real_counts().items()) == list(counts.items()) and hh.error == error
        assert [(k, v) for k, v in hh.top(3)] == heapq.nlargest(3, counts.items(), key=_value)
    assert error > 0 and units >= {1, 7, 9}


def _value(kv: tuple[bytes, int]) -> int:
    return kv[1]


def test_scaled_heavy_hitters_equal_weighted_adds() -> None:
    rng = random.Random(4)
    a, b = HeavyHitters(3, check_every=5), HeavyHitters(3, check_every=5)
    for _ in range(200):
        keys = [b"k%d" % rng.randrange(40) for _ in range(rng.randrange(1, 30))]
        a.add_many(keys)
        b.add_weights(keys, 11)
        s = a.scaled(11)
        assert s.real_counts() == b.real_counts() and s.error == b.error
        assert list(s.real_counts()) == list(b.real_counts())
    assert b.error > 0


def test_heavy_hitters_do_not_depend_on_how_keys_are_split() -> None:
    """Prunes happen at fixed places of the key stream: the reader's run boundaries (which
    change with its internals) must not change inspect's top keys."""
    rng = random.Random(9)
    stream = [b"k%d" % min(rng.randrange(400), rng.randrange(400)) for _ in range(5000)]
    weights = [rng.choice((5, 5, 5, 8)) for _ in stream]
    results = []
    for split in (1, 7, 100, 999, 5000, -1):
        hh = HeavyHitters(10, check_every=64)
        i = 0
        while i < len(stream):
            j = i + (rng.randrange(1, 300) if split < 0 else split)
            if len(set(weights[i:j])) == 1:
                hh.add_weights(stream[i:j], weights[i])
            else:
                hh.add_weights(stream[i:j], weights[i:j])
            i = j
        results.append((list(hh.real_counts().items()), hh.error))
    assert results[0][1] > 0 and all(r == results[0] for r in results)
