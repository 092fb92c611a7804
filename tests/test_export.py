"""``valkey-aof export`` against every real data set and every corrupt variant."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tools.app import main

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "fixtures" / "valkey-9.1.2"
CORRUPT = ROOT / "fixtures" / "corrupt"

# (input path, expected json) for every real data set
DATA_SETS: list[tuple[str, str | None]] = [
    ("aof_preamble/appendonlydir", "aof_preamble/expected.json"),
    ("aof_preamble/stage1_appendonlydir", "aof_preamble/stage1_expected.json"),
    ("aof_nopreamble/appendonlydir", "aof_nopreamble/expected.json"),
    ("aof_nopreamble/stage1_appendonlydir", "aof_nopreamble/stage1_expected.json"),
    ("aof_timestamp/appendonlydir", "aof_timestamp/expected.json"),
    ("aof_timestamp/stage1_appendonlydir", "aof_timestamp/stage1_expected.json"),
    ("rdb_all_nocomp/dump.rdb", "rdb_all_nocomp/expected.json"),
    ("rdb_all_comp/dump.rdb", "rdb_all_comp/expected.json"),
    ("rdb_lzf/dump.rdb", "rdb_lzf/expected.json"),
    # dump.rdb was saved before the two `*:after_rewrite` SETs that only the AOF holds
    ("cluster_node/dump.rdb", "cluster_node/expected.json:before-rewrite"),
    ("cluster_node/appendonlydir", "cluster_node/expected.json"),
    *[
        (
            f"slot_migration/{case}_{side}_appendonlydir",
            f"slot_migration/{case}_{side}_state_after.json",
        )
        for case, side in [
            ("success", "source"),
            ("success", "target"),
            ("cancel", "source"),
            ("cancel", "target"),
            ("kill", "source"),
        ]
    ],
    # a killed target restarts without the unfinished import: only its own key is left, the same
    # one the cancel case keeps ({t42461}:preexisting_on_target = x)
    ("slot_migration/kill_target_appendonlydir", "slot_migration/cancel_target_state_after.json"),
    # partial imports (no pre-existing key): nothing survives a cancel or a restart
    ("slot_migration/cancel_partial_target_appendonlydir", None),
    ("slot_migration/kill_partial_target_appendonlydir", None),
]


def normalise(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop what may differ after a reload: encodings and consumer seen/active times."""
    out = []
    for k in keys:
        # value_len / value_sha256 are derived from value (big strings only)
        k = {n: v for n, v in k.items() if n not in ("encoding", "value_len", "value_sha256")}
        for g in k.get("stream_groups", []):
            for c in g["consumers"]:
                c.pop("seen_time_ms", None)
                c.pop("active_time_ms", None)
        out.append(k)
    return sorted(out, key=lambda k: (k["db"], json.dumps(k["key"])))


def run_export(path: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, ["export", str(path), *args], catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


@pytest.mark.parametrize(("src", "exp"), DATA_SETS, ids=[s for s, _ in DATA_SETS])
def test_export_equals_expected(src: str, exp: str | None) -> None:
    expected = json.loads((REAL / exp.split(":")[0]).read_text()) if exp else {"keys": []}
    if exp and exp.endswith(":before-rewrite"):
        expected["keys"] = [k for k in expected["keys"] if not k["key"].endswith(":after_rewrite")]
    args = []
    if "generated_at_ms" in expected:
        args = ["--now-ms", str(expected["generated_at_ms"])]
    code, out, err = run_export(REAL / src, *args)
    assert code == 0, err
    got = json.loads(out)["keys"]
    assert normalise(got) == normalise(expected["keys"])


def test_jsonl_and_filters() -> None:
    src = REAL / "rdb_all_nocomp" / "dump.rdb"
    code, out, _ = run_export(src, "--format", "jsonl", "--db", "5")
    assert code == 0
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines and all(k["db"] == 5 for k in lines)
    code, out, _ = run_export(src, "--match", "zset:*")
    keys = json.loads(out)["keys"]
    assert keys and all(k["key"].startswith("zset:") for k in keys)


def test_lz4_archived_rdb_reads_the_same(tmp_path: Path) -> None:
    import lz4.frame

    src = REAL / "rdb_all_comp" / "dump.rdb"
    arch = tmp_path / "dump.rdb.lz4"
    arch.write_bytes(lz4.frame.compress(src.read_bytes()))
    assert run_export(arch)[1] == run_export(src)[1]


CASES = json.loads((CORRUPT / "cases.json").read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_corrupt_variants(name: str) -> None:
    case = CASES[name]
    code, _, err = run_export(CORRUPT / case["path"])
    assert code == case["exit"], err
    assert "Traceback" not in err
    assert case["file"] in err
    if "offset" in case:
        assert str(case["offset"]) in err
    if code == 0:
        assert "warning" in err


# a fixed clock: replaying XREADGROUP/XCLAIM stamps consumer times with the loader's clock
NOW = [
    "--now-ms",
    str(json.loads((REAL / "aof_preamble" / "expected.json").read_text())["generated_at_ms"]),
]


def test_dangling_multi_drops_only_the_block() -> None:
    code, out, _ = run_export(CORRUPT / "dangling_multi" / "appendonlydir", *NOW)
    assert code == 0
    _, ref, _ = run_export(REAL / "aof_preamble" / "appendonlydir", *NOW)
    assert out == ref


def test_truncated_last_command_loads_what_came_before(tmp_path: Path) -> None:
    case = CASES["truncated_last_command"]
    damaged = CORRUPT / case["path"]
    # the same directory with the last file cut exactly at the reported offset
    cut = tmp_path / "appendonlydir"
    shutil.copytree(damaged, cut)
    last = cut / case["file"]
    last.write_bytes(last.read_bytes()[: case["offset"]])
    code, out, _ = run_export(damaged, *NOW)
    assert code == 0
    assert out == run_export(cut, *NOW)[1]
    assert out != run_export(REAL / "aof_preamble" / "appendonlydir", *NOW)[1]


def test_bad_crc_names_both_checksums_and_no_checksum_loads() -> None:
    src = CORRUPT / "bad_crc64" / "dump.rdb"
    code, _, err = run_export(src)
    # src/rdb.c wording: "Wrong RDB checksum expected: (<computed>) got: (<stored>)"
    assert code == 3 and "expected: (56cf0e382be5634a)" in err and "got: (a9cf0e382be5634a)" in err
    code, out, _ = run_export(src, "--no-checksum")
    assert code == 0
    assert out == run_export(REAL / "rdb_all_nocomp" / "dump.rdb")[1]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert CliRunner().invoke(main, ["export"]).exit_code == 2
    assert CliRunner().invoke(main, ["export", str(tmp_path / "nope")]).exit_code == 2
    assert CliRunner().invoke(main, ["export", "--format", "xml", str(REAL)]).exit_code == 2


def test_every_command_has_help_with_an_example() -> None:
    from tools.app import COMMANDS, load_all

    load_all()
    assert set(main.commands) == set(COMMANDS)  # type: ignore[attr-defined]
    for name, cmd in main.commands.items():  # type: ignore[attr-defined]
        res = CliRunner().invoke(main, [name, "--help"])
        assert res.exit_code == 0, name
        assert "Example" in res.output, name
        assert cmd.help


def test_a_database_beyond_the_configured_count_is_an_error(tmp_path: Path) -> None:
    from persistence.rdb.writer import write_rdb
    from persistence.records import KeyRecord, StringValue

    write_rdb(tmp_path / "dump.rdb", [KeyRecord(20, b"k", StringValue(b"v"))])
    code, _, err = run_export(tmp_path / "dump.rdb")
    assert code == 3 and "more than 16 databases" in err and "offset" in err
