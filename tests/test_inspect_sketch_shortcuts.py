"""Two shortcuts of the top-key sketches (persistence/sketches.py, persistence/stats.py) give
what the plain ways give:

- a window of all-new keys, each counted one unit, is pruned to nothing without sorting;
- ``top_keys_by_bytes`` kept as ``top_keys_by_writes`` times one command size again after a
  prune empties both sketches at one check place (as in a bulk load whose value sizes grow).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from persistence.aof.encoder import encode_command as enc
from persistence.sketches import HeavyHitters
from persistence.stats import AofStats, inspect_path
from tests.test_inspect_fast import add_plain
from tools.keyspecs import key_positions, single_key


def _plain_prune(self: HeavyHitters) -> None:
    if len(self.counts) > 4 * self.capacity:
        self._prune()


def _state(hh: HeavyHitters) -> tuple[list[tuple[bytes, int]], int, list[tuple[bytes, int]]]:
    return list(hh.real_counts().items()), hh.error, hh.top(7)


@pytest.mark.parametrize("seed", range(6))
def test_new_key_windows_prune_as_the_sort_does(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rng = random.Random(seed)
    cap, every = rng.choice([(4, 32), (10, 41), (3, 13)])
    batches: list[tuple[list[bytes], list[int] | int]] = []
    fresh = 0
    for _ in range(300):
        n = rng.randrange(1, 3 * every)
        if rng.random() < 0.6:  # new keys
            keys = [b"n%d" % (fresh + i) for i in range(n)]
            fresh += n
        else:
            keys = [b"k%d" % rng.randrange(3 * every) for _ in range(n)]
        r = rng.random()
        weights: list[int] | int = (
            1 if r < 0.4 else rng.choice([5, 7]) if r < 0.8 else [rng.randrange(1, 9) for _ in keys]
        )
        batches.append((keys, weights))
    fast = HeavyHitters(cap, every)
    for keys, weights in batches:
        fast.add_weights(keys, weights)
    monkeypatch.setattr(HeavyHitters, "maybe_prune", _plain_prune)
    plain = HeavyHitters(cap, every)
    for keys, weights in batches:
        plain.add_weights(keys, weights)
    assert _state(fast) == _state(plain)
    assert fast.error > 0


def _aof(rng: random.Random, n: int, repeat: float) -> bytes:
    """SETs of mostly new keys whose value sizes grow now and then (at random places, some on
    a 4,096-key check place), with repeated keys, other commands and #TS marks between."""
    parts = [enc([b"SELECT", b"0"])]
    width = 1
    for i in range(n):
        if rng.random() < 0.0002 or (i % 4096 == 0 and rng.random() < 0.3):
            width += 1
        r = rng.random()
        if r < repeat:
            parts.append(enc([b"SET", b"hot%d" % rng.randrange(20), b"v" * width]))
        elif r < repeat + 0.001:
            parts.append(enc([b"DEL", b"a%d" % i, b"b%d" % i]))
        elif r < repeat + 0.002:
            parts.append(b"#TS:%d\r\n" % (1_790_000_000 + i))
        else:
            parts.append(enc([b"SET", b"key:%08d" % i, b"v" * width]))
    return b"".join(parts)


def _plain_report(p: Path) -> dict[str, object]:
    """add_batch only: top_bytes is always counted with the weight of each command."""
    return add_plain(AofStats(key_positions, 10, single_key), p).result()


@pytest.mark.parametrize(("seed", "repeat"), [(1, 0.0), (2, 0.0), (3, 0.01), (4, 0.3)])
def test_top_bytes_tied_again_is_the_weighted_count(
    tmp_path: Path, seed: int, repeat: float
) -> None:
    p = tmp_path / "a.aof"
    p.write_bytes(_aof(random.Random(seed), 40_000, repeat))
    ties: list[int] = []
    real_tie = AofStats._tie

    def tie(self: AofStats, size: int) -> None:
        ties.append(size)
        real_tie(self, size)

    AofStats._tie = tie  # type: ignore[method-assign]
    try:
        report = inspect_path(p, key_positions=key_positions, single_key=single_key)
    finally:
        AofStats._tie = real_tie  # type: ignore[method-assign]
    plain = _plain_report(p)
    assert json.dumps(report["aof"]) == json.dumps(plain)
    if repeat == 0.0:
        assert ties  # the sizes grew, and the factor came back
        assert report["aof"]["top_keys_by_bytes"]["max_error"] > 0


def test_no_tie_while_top_bytes_keeps_counts(tmp_path: Path) -> None:
    """The writes sketch empties at the first check place (every key new) but the bytes one
    keeps the 596 keys of the bigger size: the factor must not come back there."""
    cmds = [enc([b"SET", b"key:%07d" % i, b"a" * 5]) for i in range(3500)]
    cmds += [enc([b"SET", b"key:%07d" % i, b"b" * 6]) for i in range(3500, 4096)]
    cmds += [enc([b"SET", b"key:%07d" % 4000, b"b" * 6])]  # one of them again, then new keys
    cmds += [enc([b"SET", b"key:%07d" % i, b"b" * 6]) for i in range(5000, 5100)]
    p = tmp_path / "a.aof"
    p.write_bytes(b"".join(cmds))
    report = inspect_path(p, key_positions=key_positions, single_key=single_key)
    assert json.dumps(report["aof"]) == json.dumps(_plain_report(p))
    top = report["aof"]["top_keys_by_bytes"]["keys"]
    assert top[0] == {"key": "key:0004000", "value": 1 + 43}  # 43: its size; 1 kept
