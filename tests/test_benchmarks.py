"""The benchmark suite (benchmarks/run.py) cannot rot: its table/JSON shape, targets and one tiny
end-to-end run against the real valkey-server. No timing assertions (figures are not checked)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def run() -> Iterator[ModuleType]:
    saved = list(sys.path)  # run.py puts benchmarks/ first on sys.path: undo it for other tests
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    sys.path[:] = saved
    yield module


def outcome(run: ModuleType) -> Any:
    fig = run.Figure
    out = run.Outcome()
    out.figures = [
        ("tools", fig("tools.check", "check", "s", [2.0, 1.0, 3.0], [1.0, 1.1, 0.9], "ref")),
        ("replay", fig("replay.standalone", "replay", "cmd/s", [3.0, 2.0, 4.0], [2.0, 2.0, 2.0])),
        ("durability", fig("durability.rewrite_p99", "p99", "ms", [4.0, 6.0, 1.0], [1.0, 1, 1])),
        ("formats", fig("formats.rdb_read", "rdb", "s", [1.0], [])),
    ]
    return out


def test_rows_ratios_and_targets(run: ModuleType) -> None:
    rows = {r["metric"]: r for r in run.result_rows(outcome(run))}
    check = rows["tools.check"]
    assert check["ours"] == {"median": 2.0, "min": 1.0, "max": 3.0, "samples": [2.0, 1.0, 3.0]}
    assert check["ratio"] == 2.0 and check["target"] == "<= 1.0x" and check["pass"] is False
    assert check["reference"]["name"] == "ref"
    # a rate: higher is better; ratio of medians
    assert rows["replay.standalone"]["ratio"] == 1.5 and rows["replay.standalone"]["pass"] is True
    # an absolute target on our median (4 ms <= 5 ms), the reference shown beside it
    assert rows["durability.rewrite_p99"]["target"] == "<= 5 ms"
    assert rows["durability.rewrite_p99"]["pass"] is True
    # no reference, no target
    assert rows["formats.rdb_read"]["ratio"] is None and rows["formats.rdb_read"]["pass"] is None
    json.dumps(list(rows.values()))


def test_table_and_markdown(run: ModuleType) -> None:
    rows = run.result_rows(outcome(run))
    text = run.render_table(rows, {"server": "Traceback ..."})
    for header in run.HEADERS:
        assert header in text
    assert "2.00 s [1.00-3.00]" in text and "FAIL" in text and "pass" in text
    assert "server: CRASHED" in text
    md = run.render_markdown(rows).splitlines()
    assert md[0] == "| metric | ours | reference | ratio | target | pass/fail |"
    assert len(md) == 2 + len(rows)


def test_targets_name_known_benchmarks(run: ModuleType) -> None:
    for metric in run.TARGETS:
        assert metric.split(".")[0] in run.BENCHMARKS
    assert run.target_for("migration.longest_pause") == run.TARGETS["migration.pause"]


def test_migration_dict_results_become_figures(
    run: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = []

    class Fake:
        @staticmethod
        def measure(keys: int, work: Path) -> dict[str, float]:
            calls.append((keys, work))
            return {"longest_write_ms": 12.0 + len(calls), "keys_per_s": 1000.0}

    monkeypatch.setattr(run, "_migration_module", lambda: Fake)
    ctx = run.Context(run.Sizes(100, 10, 50), 3, tmp_path)
    pause, speed = run.run_migration(ctx)
    assert [k for k, _ in calls] == [50, 50, 50] and len({w for _, w in calls}) == 3
    assert pause.metric == "migration.pause" and pause.ours == [13.0, 14.0, 15.0]
    assert speed.unit == "keys/s"


@pytest.mark.real
def test_tiny_suite_end_to_end_json(
    run: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    res = subprocess.run(
        [sys.executable, str(RUN), "formats", "--keys", "300", "--runs", "3", "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)
    assert doc["runs"] == 3 and doc["sizes"]["keys"] == 300 and doc["errors"] == {}
    assert doc["machine"]["cores"] >= 1
    by_metric = {r["metric"]: r for r in doc["results"]}
    assert set(by_metric) == {"formats.aof_read", "formats.rdb_read"}
    aof = by_metric["formats.aof_read"]
    assert len(aof["ours"]["samples"]) == 3 and len(aof["reference"]["samples"]) == 3
    assert aof["ours"]["min"] <= aof["ours"]["median"] <= aof["ours"]["max"]
    assert aof["target"] == "<= 1.0x"
    # valkey logs its load time in ms: a tiny AOF may load in "0.000 seconds", leaving no ratio
    assert (aof["ratio"] is None and aof["pass"] is None) or aof["ratio"] > 0
    assert "300 keys" in by_metric["formats.rdb_read"]["label"]
    # a saved run prints again as the table or as markdown
    saved = tmp_path / "run.json"
    saved.write_text(res.stdout)
    assert run.main(["--from-json", str(saved), "--markdown"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| metric |") and len(md) == 4
    assert run.main(["--from-json", str(saved)]) == 0
    assert "AOF reader" in capsys.readouterr().out
