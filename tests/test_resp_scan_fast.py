"""The cheap paths of ``RespScanner`` added for ``valkey-aof check`` give what the plain ones give:

- refilling a plain file by reading the unconsumed tail again (``_reread``) against a stream
  that is only read forward (``io.BytesIO``), with tiny chunks;
- the letter pre-check for special commands (``_may_hold``) against the per-command set
  lookup, with special words in any case and data with and without their letters;
- ``CommandRun.nargs`` (counted while type-checking a segment) against counting the arguments.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pytest

from persistence.aof import resp_scan
from persistence.aof.encoder import encode_command as enc
from persistence.aof.resp_scan import RespScanner
from tests.test_aof_runs import SPECIAL, _stream

CHECK_SPECIAL = frozenset(
    w for base in (b"multi", b"exec") for w in {base, base.upper(), base.title()}
)


def _runs(f: Any, chunk: int, special: frozenset[bytes]) -> list[Any]:
    out: list[Any] = []
    s = RespScanner(f, file="x", chunk=chunk)
    s.special = special
    try:
        for run in s.runs():
            if run.nargs >= 0:
                assert run.nargs == sum(map(len, run.argvs))
            out.append((run.offset, run.size, [list(a) for a in run.argvs]))
    except Exception as e:  # the same error, message and offset
        out.append((type(e).__name__, str(e), getattr(e, "offset", None)))
    return out


def _flat(runs: list[Any]) -> list[Any]:
    """Commands with their offsets (a run may be cut elsewhere by another path)."""
    out = []
    for r in runs:
        if isinstance(r, tuple) and len(r) == 3 and isinstance(r[2], list):
            at = r[0]
            for argv in r[2]:
                size = resp_scan.canonical_size(argv)
                out.append((at, argv))
                at += size
        else:
            out.append(r)
    return out


@pytest.mark.parametrize("seed", range(8))
def test_reread_refill_is_exact(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    for i in range(4):
        data = _stream(rng, rng.randrange(1, 2000), rng.choice((0.0, 0.001, 0.01)))
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data) + 1)]
        chunk = rng.choice((7, 100, 4096, 65536))
        special = rng.choice((frozenset(), SPECIAL))
        f = tmp_path / f"s{i}.aof"
        f.write_bytes(data)
        with open(f, "rb") as plain:
            got = _runs(plain, chunk, special)
        assert got == _runs(io.BytesIO(data), chunk, special)


def _special_stream(rng: random.Random, letters: bool) -> bytes:
    """SETs whose values hold (or not) every letter of MULTI/EXEC, a few MULTI/EXEC."""
    parts = []
    for i in range(3000):
        r = rng.random()
        if r < 0.01:
            parts.append(enc([rng.choice(sorted(CHECK_SPECIAL))]))
        else:
            value = b"multi-exec" if letters and r < 0.02 else b"%d" % i
            parts.append(enc([b"SET", b"k%d" % i, value]))
    return b"".join(parts)


@pytest.mark.parametrize("letters", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_special_letter_precheck_is_exact(
    seed: int, letters: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _special_stream(random.Random(seed), letters)
    fast = _runs(io.BytesIO(data), 1 << 20, CHECK_SPECIAL)
    with monkeypatch.context() as m:
        m.setattr(RespScanner, "_may_hold", lambda self, pos, stop: True)
        assert _runs(io.BytesIO(data), 1 << 20, CHECK_SPECIAL) == fast
    # every special command ends its run
    for _, _, argvs in fast:
        assert all(a[0] not in CHECK_SPECIAL for a in argvs[:-1])
    with monkeypatch.context() as m:
        m.setattr(resp_scan, "SEG", 0)
        assert _flat(_runs(io.BytesIO(data), 1 << 20, CHECK_SPECIAL)) == _flat(fast)


def test_may_hold_follows_a_new_special_set() -> None:
    data = enc([b"SET", b"k", b"v"]) * 100 + enc([b"SELECT", b"1"]) + enc([b"SET", b"k", b"v"])
    s = RespScanner(io.BytesIO(data), file="x")
    s.special = CHECK_SPECIAL
    assert len(list(s.runs())) == 1  # no MULTI/EXEC: one run
    s = RespScanner(io.BytesIO(data), file="x")
    s.special = CHECK_SPECIAL
    s._may_hold(0, 0)
    s.special = frozenset([b"SELECT"])
    assert len(list(s.runs())) == 2  # the set changed: SELECT ends the first run
