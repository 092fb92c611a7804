"""``valkey-aof inspect`` by two processes (persistence/stats_split.py) gives the one-process
report, byte for byte: the two shares merged in-process at several slot cuts, over inputs with
hash tags, MULTI blocks, TTL forms, several dbs, ``#TS`` marks, commands without a key, varied
sizes, and more than ``EXACT_KEYS`` distinct keys; the CLI's ``--jobs 2`` (a real fork)
against ``--jobs 1``, damaged inputs included; and which inputs are split at all."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import persistence.stats_split as split
import tools.parallel
from persistence.aof.encoder import encode_command as enc
from persistence.sketches import EXACT_KEYS
from persistence.stats import inspect_path
from persistence.stats_split import merge_shares, resp_size, share_options
from tools.cli import main
from tools.keyspecs import key_positions, single_key

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REAL = FIXTURES / "valkey-9.1.2"
KW: dict[str, Any] = {"key_positions": key_positions, "single_key": single_key}


def _aof(p: Path, n: int, seed: int, distinct: int) -> Path:
    rng = random.Random(seed)
    out = [enc([b"SELECT", b"0"])]
    ts = 1_790_000_000
    for i in range(n):
        k = b"k%d" % rng.randrange(distinct)
        r = rng.random()
        if r < 0.01:
            ts += rng.randrange(1, 400)
            out.append(b"#TS:%d\r\n" % ts)
        elif r < 0.02:
            out.append(enc([b"MULTI"]))
            out += [enc([b"INCR", k]), enc([b"SET", b"{t}" + k, b"v"]), enc([b"EXEC"])]
        elif r < 0.03:
            out.append(enc([b"SET", k, b"v", b"PXAT", b"1790000000000"]))
        elif r < 0.04:
            out.append(enc([b"DEL", k, b"{t}a", b"x"]))
        elif r < 0.045:
            out.append(enc([b"SELECT", b"%d" % rng.randrange(3)]))
        elif r < 0.05:
            out.append(enc([b"PING"]))
        elif r < 0.06:
            out.append(enc([b"PEXPIREAT", k, b"1790000000000"]))
        elif i < n // 2:  # a stretch of one size, then varied sizes
            out.append(enc([b"SET", b"key:%08d" % rng.randrange(distinct), b"value-00"]))
        else:
            out.append(enc([b"SET", k, b"v" * rng.randrange(1, 40)]))
    p.write_bytes(b"".join(out))
    return p


def _merged(p: Path, top_n: int = 10) -> dict[str, Any]:
    size = resp_size(p) or 4000  # (an RDB part is not split by the CLI, but merges alike)
    first = inspect_path(p, top_n=top_n, **KW, **share_options(0, size))
    second = inspect_path(p, top_n=top_n, **KW, **share_options(1, size))
    return merge_shares(first, second)


@pytest.mark.parametrize("share", [0.0, 0.3, 0.6, 1.0])
def test_shares_merge_to_the_one_process_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, share: float
) -> None:
    monkeypatch.setattr(split, "SLOT_SHARE", share)
    p = _aof(tmp_path / "a.aof", 20_000, 1, 3000)
    whole = inspect_path(p, top_n=5, **KW)
    assert whole["aof"]["slots"] and whole["aof"]["totals"]["keys_touched_exact"]
    assert json.dumps(_merged(p, 5)) == json.dumps(whole)


def test_shares_merge_past_the_exact_keys(tmp_path: Path) -> None:
    p = _aof(tmp_path / "a.aof", EXACT_KEYS + 30_000, 2, 10 * EXACT_KEYS)
    whole = inspect_path(p, **KW)
    assert not whole["aof"]["totals"]["keys_touched_exact"]
    assert json.dumps(_merged(p)) == json.dumps(whole)


def test_shares_merge_over_the_fixtures() -> None:
    dirs = [REAL / "aof_nopreamble", REAL / "aof_timestamp", REAL / "cluster_node"]
    dirs += [FIXTURES / "corrupt" / d for d in ("garbage_middle", "truncated_last_command")]
    for d in dirs:
        p = d / "appendonlydir"
        whole = inspect_path(p, **KW)
        assert json.dumps(_merged(p)) == json.dumps(whole), d


@pytest.mark.parametrize(
    "src",
    [
        "valkey-9.1.2/aof_nopreamble",
        "valkey-9.1.2/aof_preamble",
        "corrupt/garbage_middle",
        "corrupt/dangling_multi",
        "corrupt/truncated_last_command",
        "corrupt/missing_file",
    ],
)
def test_cli_jobs_2_is_jobs_1(monkeypatch: pytest.MonkeyPatch, src: str) -> None:
    forks: list[int] = []
    real = tools.parallel.fork_map

    def counted(*args: Any) -> Any:
        forks.append(1)
        return real(*args)

    monkeypatch.setattr(tools.parallel, "fork_map", counted)
    p = str(FIXTURES / src / "appendonlydir")
    one = CliRunner().invoke(main, ["inspect", p, "--json", "--jobs", "1"])
    assert not forks
    two = CliRunner().invoke(main, ["inspect", p, "--json", "--jobs", "2"])
    assert (two.exit_code, two.output) == (one.exit_code, one.output)
    assert forks == ([1] if resp_size(p) else [])


def test_only_all_resp_aofs_are_split(tmp_path: Path) -> None:
    assert resp_size(REAL / "aof_nopreamble" / "appendonlydir") > 0
    assert resp_size(REAL / "aof_preamble" / "appendonlydir") == 0  # an RDB base
    assert resp_size(REAL / "rdb_all_nocomp" / "dump.rdb") == 0
    assert resp_size(FIXTURES / "corrupt" / "missing_file" / "appendonlydir") == 0
    assert resp_size(tmp_path / "nothing") == 0
    p = _aof(tmp_path / "a.aof", 100, 3, 10)
    assert resp_size(p) == p.stat().st_size
