"""The shortcuts of ``valkey-aof inspect`` give what the plain ways give:

- ``same_head`` with the run's one command size (strided compares) against its C count;
- ``slot_counts`` (one weighted C pass) against a loop, and the CRCs counted in batches
  (``CRC_BATCH``) against counting them as they come.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

import persistence.crc
import persistence.stats
from persistence.aof.encoder import encode_command as enc
from persistence.aof.reader import read_aof_runs
from persistence.aof.resp_scan import CommandRun
from persistence.stats import inspect_path
from persistence.stats_runs import one_size, same_head, slot_counts
from tools.keyspecs import key_positions, single_key


def test_stridedsame_head_is_the_counted_one(tmp_path: Path) -> None:
    """Runs of one command size, with heads that differ in one byte anywhere (argc, name
    length, name) and values that hold heads of their own."""
    rng = random.Random(11)
    variants = [
        [b"SET", b"k%04d", b"*3\r\n$3\r\nSET"],
        [b"SET", b"k%04d", b"v" * 13],
        [b"SEX", b"k%04d", b"v" * 13],
        [b"DEL", b"k%04d", b"a", b"b", b"c" * 5],
        [b"GETDEL", b"k%04d", b"v" * 10],
        [b"SET", b"kk%04d", b"v" * 12],
    ]
    p = tmp_path / "a.aof"
    parts = []
    for i in range(8000):
        # long stretches of one size without a '*' in a value (else the run has no raw
        # RESP), heads alike or not, then a mix
        pick = variants[1 + (i // 700) % 2 * rng.choice((0, 0, 0, 1))] if i < 6000 else None
        pick = pick or rng.choice(variants)
        parts.append(enc([a % i if b"%" in a else a for a in pick]))
    p.write_bytes(b"".join(parts))
    runs = [it for items in read_aof_runs(p) for it in items if type(it) is CommandRun]
    same = differ = 0
    for run in runs:
        size = one_size(run)
        if size:
            head = same_head(run, size)
            assert head == same_head(run)
            same += head
            differ += not head
    assert same and differ


def testslot_counts_is_the_loop() -> None:
    rng = random.Random(12)
    for n in (0, 1, 50, 5000, 300_000):
        crcs = Counter(rng.randrange(65536) for _ in range(n))
        slots: Counter[int] = Counter()
        for crc, c in crcs.items():
            slots[crc & 0x3FFF] += c
        got = slot_counts(crcs)
        assert list(got.items()) == [(str(s), slots[s]) for s in sorted(slots)]


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_crc_batches_do_not_change_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    rng = random.Random(batch)
    keys = [b"k%d" % rng.randrange(5000) for _ in range(3000)] + [b"{t%d}x" % i for i in range(50)]
    p = tmp_path / "a.aof"
    p.write_bytes(b"".join(enc([b"SET", k, b"v"]) for k in keys) + enc([b"DEL", b"a", b"{b}c"]))
    plain = inspect_path(p, key_positions=key_positions, single_key=single_key)
    monkeypatch.setattr(persistence.stats, "CRC_BATCH", batch)
    batched = inspect_path(p, key_positions=key_positions, single_key=single_key)
    assert batched == plain
    slots = Counter(persistence.crc.key_slot(k) for k in [*keys, b"a", b"{b}c"])
    assert plain["aof"]["slots"] == {str(s): slots[s] for s in sorted(slots)}
