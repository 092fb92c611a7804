"""``CommandRun.flat`` (the arguments the segment path flattens while type-checking) and the
inspect statistics that take the keys from it (``flat[1::argc]`` when every command of a run
has one argc) give exactly what the argvs give:

- every run that carries ``flat`` holds its argvs' arguments in order, ``nargs`` of them;
- ``AofStats.add_run`` of each run gives the same report with ``flat`` as without it, for
  runs of one argc and name, of mixed argc, of mixed names, and with keyless commands.
"""

from __future__ import annotations

import io
import random
from dataclasses import replace
from itertools import chain
from typing import Any

import pytest

from persistence.aof.encoder import encode_command as enc
from persistence.aof.resp_scan import CommandRun, RespScanner
from persistence.stats import AofStats
from tests.test_aof_runs import SPECIAL, _stream


def _runs(data: bytes, special: frozenset[bytes] = frozenset()) -> list[CommandRun]:
    s = RespScanner(io.BytesIO(data), file="x", chunk=1 << 12)
    s.special = special
    return list(s.runs())


@pytest.mark.parametrize("seed", range(6))
def test_flat_holds_the_arguments_in_order(seed: int) -> None:
    rng = random.Random(seed)
    data = _stream(rng, 3000, 0.0)
    seen = 0
    for run in _runs(data, SPECIAL):
        if run.flat is not None:
            seen += 1
            assert run.flat == list(chain.from_iterable(run.argvs))
            assert run.nargs == len(run.flat)
    assert seen


def _fixed(n: int) -> bytes:
    return b"".join(enc([b"SET", b"key:%010d" % i, b"value:%010d" % i]) for i in range(n))


def _mixed_argc(n: int) -> bytes:
    return b"".join(
        enc([b"SET", b"k%d" % i, b"v"] if i % 3 else [b"SET", b"k%d" % i, b"v", b"KEEPTTL"])
        for i in range(n)
    )


def _mixed_names(n: int) -> bytes:
    names = (b"SET", b"set", b"APPEND", b"INCR")
    return b"".join(
        enc([names[i % 4], b"k{t%d}" % (i % 7)] + ([] if names[i % 4] == b"INCR" else [b"x"]))
        for i in range(n)
    )


def _keyless(n: int) -> bytes:
    return b"".join(enc([b"PING"] if i % 5 == 0 else [b"INCR", b"c%d" % i]) for i in range(n))


def _report(runs: list[CommandRun]) -> dict[str, Any]:
    stats = AofStats(single_key=lambda name: name.upper() != b"PING")
    for run in runs:
        stats.add_run(run)
    return stats.result()


@pytest.mark.parametrize("make", [_fixed, _mixed_argc, _mixed_names, _keyless])
def test_add_run_same_with_and_without_flat(make: Any) -> None:
    runs = _runs(make(5000))
    assert any(r.flat is not None for r in runs)
    without = [replace(r, flat=None) for r in runs]
    assert _report(runs) == _report(without)
