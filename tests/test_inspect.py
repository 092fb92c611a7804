"""``valkey-aof inspect``: every real input, the JSON schema, the report, the bounded counters."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from persistence.stats import DistinctCounter, HeavyHitters, Timeline, inspect_path
from tools.app import main
from tools.cmd_inspect import _load_table, key_positions, single_key
from tools.render import inspect_report, sparkline

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "fixtures" / "valkey-9.1.2"
CORRUPT = ROOT / "fixtures" / "corrupt"
INPUTS = sorted(
    str(p.relative_to(REAL)) for p in [*REAL.glob("*/*appendonlydir"), *REAL.glob("*/dump.rdb")]
)


def inspect(path: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["inspect", str(path), *args], catch_exceptions=False)
    return res.exit_code, res.output


@pytest.mark.parametrize("src", INPUTS)
def test_every_real_input(src: str) -> None:
    code, out = inspect(REAL / src, "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["schema"] == "valkey-aof.inspect/1" and doc["problem"] is None
    assert doc["files"]
    if src.endswith("dump.rdb"):
        expected = json.loads((REAL / src.split("/")[0] / "expected.json").read_text())
        assert doc["rdb"]["keys"] >= len(expected["keys"]) - 2  # cluster_node: 2 SETs after save
    code, text = inspect(REAL / src)
    assert code == 0 and "Files" in text


def test_aof_report_contents() -> None:
    _load_table()
    d = inspect_path(
        REAL / "aof_timestamp" / "appendonlydir", key_positions=key_positions, single_key=single_key
    )
    a = d["aof"]
    assert a["totals"]["commands"] == sum(c["count"] for c in a["commands"])
    assert 0 < sum(f["size"] for f in d["files"]) - a["totals"]["bytes"] < 100  # #TS lines
    assert a["totals"]["keys_touched_exact"]
    assert sum(a["slots"].values()) > 0
    assert a["ttl_records"]["PEXPIREAT"] > 0 and a["ttl_records"]["HSETEX PXAT"] > 0
    assert a["multi"]["blocks"] == 4
    assert a["timeline"]["first"] is not None and sum(a["timeline"]["writes"]) > 0
    assert {x["db"] for x in a["dbs"]} >= {0, 9}


def test_syncslots_imports_with_outcome() -> None:
    d = inspect_path(REAL / "slot_migration" / "success_target_appendonlydir")
    assert [i["outcome"] for i in d["aof"]["imports"]] == ["success"]
    d = inspect_path(REAL / "slot_migration" / "cancel_target_appendonlydir")
    assert d["aof"]["imports"] and d["aof"]["imports"][0]["outcome"] != "success"


def test_rdb_report() -> None:
    d = inspect_path(REAL / "rdb_all_nocomp" / "dump.rdb")
    r = d["rdb"]
    assert r["keys"] == sum(x["keys"] for x in r["per_db_type"])
    assert r["aux"]["valkey-ver"] == "9.1.2"
    assert r["volatile_hash_fields"]["fields"] > 0 and r["expires"]["keys"] > 0
    assert r["biggest_keys"][0]["bytes"] >= r["biggest_keys"][-1]["bytes"]


def test_damaged_input_exits_3() -> None:
    code, out = inspect(CORRUPT / "garbage_middle" / "appendonlydir", "--json")
    assert code == 3
    doc = json.loads(out.split("\nError:")[0])
    assert doc["problem"]["offset"] == 24669
    code, out = inspect(CORRUPT / "truncated_last_command" / "appendonlydir", "--json")
    assert code == 0 and json.loads(out)["torn"][0]["offset"] == 261


def test_render_inspect_report() -> None:
    for src in ("aof_timestamp/appendonlydir", "rdb_all_nocomp/dump.rdb"):
        buf = io.StringIO()
        Console(file=buf, width=100).print(inspect_report(inspect_path(REAL / src)))
        text = buf.getvalue()
        assert "Files" in text
        assert ("Commands by name" in text) == src.startswith("aof")
        assert ("Biggest keys" in text) == src.endswith("rdb")


def test_bounded_structures() -> None:
    hh = HeavyHitters(capacity=10)
    for i in range(10_000):
        hh.add(b"hot", 1)
        hh.add(b"k%d" % i, 1)
    assert hh.top(1)[0][0] == b"hot" and len(hh.counts) <= 40 + hh.check_every
    dc = DistinctCounter(limit=100)
    dc.add_many([b"k%d" % i for i in range(50_000)])
    assert not dc.is_exact and abs(dc.count() - 50_000) < 1_000
    tl = Timeline()
    for t in range(0, 10_000_000, 600):
        tl.add(t, 1)
    assert len(tl.series()) <= 4 * 240 and sum(tl.series()) == len(range(0, 10_000_000, 600))
    assert len(sparkline(list(range(500)), width=50)) == 50
