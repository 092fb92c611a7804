"""``valkey-aof rewrite``: outputs that a real valkey-server 9.1.2 loads, every option, --json."""

from __future__ import annotations

import io
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from realserver import RealServer, real_server
from server_snapshot import snapshot
from test_export import normalise

from persistence.aof.encoder import encode_command
from persistence.crc import key_slot
from tools.app import main
from tools.cmd_rewrite import progress_bar
from tools.export import load_contents
from tools.jsonview import records_to_json, untext
from tools.rewrite import KeyFilter, Progress, rewrite

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "fixtures" / "valkey-9.1.2"
CORRUPT = ROOT / "fixtures" / "corrupt"

# (input, expected.json) for the data sets a real server is checked against
LOADABLE = [
    ("aof_preamble/appendonlydir", "aof_preamble/expected.json"),
    ("aof_nopreamble/appendonlydir", "aof_nopreamble/expected.json"),
    ("aof_timestamp/appendonlydir", "aof_timestamp/expected.json"),
    ("rdb_all_comp/dump.rdb", "rdb_all_comp/expected.json"),
    ("rdb_lzf/dump.rdb", "rdb_lzf/expected.json"),
    ("cluster_node/appendonlydir", "cluster_node/expected.json"),
    (
        "slot_migration/success_target_appendonlydir",
        "slot_migration/success_target_state_after.json",
    ),
]
SUMMARY_KEYS = {
    "command", "input", "input_kind", "output", "to", "compress", "base", "rdb_version", "files",
    "keys", "expires", "keys_by_db", "keys_by_type", "functions", "until", "warnings", "seconds",
}  # fmt: skip


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def contents(path: Path, **kw: Any) -> list[dict[str, Any]]:
    """Normalised: replaying XREADGROUP stamps consumer times with the loader's clock."""
    return normalise(records_to_json(load_contents(path, **kw).records))


def drop_due(keys: list[dict[str, Any]], cutoff_ms: int) -> list[dict[str, Any]]:
    """Keys and hash fields expiring at or before ``cutoff_ms`` removed (a live server drops them
    by its wall clock; around the cut-off either side may still hold them)."""
    out = []
    for k in keys:
        if k.get("expire_at_ms") is not None and k["expire_at_ms"] <= cutoff_ms:
            continue
        fx = k.get("field_expire_at_ms")
        if fx:
            dead = {json.dumps(f) for f, ms in fx if ms <= cutoff_ms}
            if dead:
                k = dict(k)
                k["value"] = [fv for fv in k["value"] if json.dumps(fv[0]) not in dead]
                k["field_expire_at_ms"] = [x for x in fx if json.dumps(x[0]) not in dead]
                if not k["value"]:
                    continue
        out.append(k)
    return out


def expected_keys(exp: str) -> list[dict[str, Any]]:
    doc = json.loads((REAL / exp).read_text())
    return list(doc["keys"] if isinstance(doc, dict) else doc)


def served(srv: RealServer) -> list[dict[str, Any]]:
    return snapshot(srv.client())


def assert_same_live(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Compare a live server's contents with expected, ignoring what expired by now."""
    cutoff = int(time.time() * 1000) + 5000
    assert normalise(drop_due(got, cutoff)) == normalise(drop_due(expected, cutoff))


# ---- real server --------------------------------------------------------------------------


@pytest.mark.real
@pytest.mark.parametrize("base", ["rdb", "aof"])
@pytest.mark.parametrize(("src", "exp"), LOADABLE, ids=[s for s, _ in LOADABLE])
def test_real_server_loads_the_rewrite(tmp_path: Path, src: str, exp: str, base: str) -> None:
    out = tmp_path / "data" / "appendonlydir"
    code, _, err = run("rewrite", str(REAL / src), "-o", str(out), "--base", base, "-q")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"appendonly.aof.1.base.{'rdb' if base == 'rdb' else 'aof'}", "appendonly.aof.1.incr.aof",
         "appendonly.aof.manifest"]
    )  # fmt: skip
    with real_server(tmp_path / "data", "--appendonly", "yes") as srv:
        got = served(srv)
        assert "DB loaded from base file appendonly.aof.1.base" in srv.log
    assert_same_live(got, expected_keys(exp))


@pytest.mark.real
def test_real_server_loads_a_filtered_point_in_time_rewrite(tmp_path: Path) -> None:
    src = REAL / "aof_timestamp" / "appendonlydir"
    out = tmp_path / "data" / "appendonlydir"
    code, _, err = run(
        "rewrite", str(src), "-o", str(out), "--until", "1795694367", "--db", "0",
        "--map-db", "0:3", "--type", "hash", "-q",
    )  # fmt: skip
    assert code == 0, err
    expected = truncated_copy(tmp_path / "cut", until_offset=UNTIL_OFFSET)
    expected = [dict(k, db=3) for k in expected if k["db"] == 0 and k["type"] == "hash"]
    with real_server(tmp_path / "data", "--appendonly", "yes") as srv:
        got = served(srv)
    assert expected and all(k["db"] == 3 for k in got)
    assert_same_live(got, expected)


# ---- --until ------------------------------------------------------------------------------

TS_DIR = REAL / "aof_timestamp" / "appendonlydir"
INCR2 = "appendonly.aof.2.incr.aof"
UNTIL_OFFSET = (TS_DIR / INCR2).read_bytes().index(b"#TS:1795694368")


def truncated_copy(dest: Path, *, until_offset: int) -> list[dict[str, Any]]:
    """The timestamp data set cut the way valkey-check-aof --truncate-to-timestamp cuts it."""
    shutil.copytree(TS_DIR, dest)
    (dest / INCR2).write_bytes((dest / INCR2).read_bytes()[:until_offset])
    (dest / "appendonly.aof.3.incr.aof").unlink()
    m = dest / "appendonly.aof.manifest"
    m.write_bytes(b"".join(x for x in m.read_bytes().splitlines(True) if b".3.incr" not in x))
    return contents(dest)


def test_until_stops_at_the_first_later_annotation(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, err = run(
        "rewrite", str(TS_DIR), "-o", str(out), "--until", "1795694367", "--json"
    )
    assert code == 0, err
    doc = json.loads(stdout)
    # the first command not replayed: right after the annotation line
    cut = UNTIL_OFFSET + len(b"#TS:1795694368\r\n")
    assert doc["until"] == {"file": INCR2, "offset": cut, "timestamp": 1795694368}
    want = truncated_copy(tmp_path / "cut", until_offset=UNTIL_OFFSET)
    assert contents(out) == want
    assert want != contents(TS_DIR)
    # a TS after the last annotation keeps everything
    code, stdout, _ = run(
        "rewrite", str(TS_DIR), "-o", str(tmp_path / "all"), "--until", "2000000000", "--json"
    )
    assert json.loads(stdout)["until"] is None
    assert contents(tmp_path / "all") == contents(TS_DIR)


def test_until_drops_a_transaction_cut_in_the_middle(tmp_path: Path) -> None:
    f = tmp_path / "appendonly.aof"
    f.write_bytes(
        b"#TS:100\r\n" + encode_command([b"SET", b"a", b"1"]) + encode_command([b"MULTI"])
        + encode_command([b"SET", b"b", b"1"]) + b"#TS:200\r\n"
        + encode_command([b"SET", b"c", b"1"]) + encode_command([b"EXEC"])
        + encode_command([b"SET", b"d", b"1"])
    )  # fmt: skip
    rewrite(f, tmp_path / "out", until=150)
    assert [k["key"] for k in contents(tmp_path / "out")] == ["a"]
    rewrite(f, tmp_path / "all", until=200)
    assert [k["key"] for k in contents(tmp_path / "all")] == ["a", "b", "c", "d"]


# ---- every option -------------------------------------------------------------------------

RDB = REAL / "rdb_all_nocomp" / "dump.rdb"
PRE = REAL / "aof_preamble" / "appendonlydir"


@pytest.mark.parametrize("src", [RDB, PRE], ids=["rdb", "aofdir"])
@pytest.mark.parametrize("base", ["rdb", "aof"])
def test_rewrite_keeps_the_contents(tmp_path: Path, src: Path, base: str) -> None:
    code, _, err = run("rewrite", str(src), "-o", str(tmp_path / "o"), "--base", base)
    assert code == 0, err
    assert contents(tmp_path / "o") == contents(src)
    # the manifest as a path works too
    if src.is_dir():
        code, _, _ = run("rewrite", str(src / "appendonly.aof.manifest"), "-o", str(tmp_path / "m"))
        assert code == 0 and contents(tmp_path / "m") == contents(src)


@pytest.mark.parametrize("src", [RDB, PRE], ids=["rdb", "aofdir"])
def test_filters(tmp_path: Path, src: Path) -> None:
    every = contents(src)

    def got(*opts: str) -> list[dict[str, Any]]:
        out = tmp_path / f"o{len(list(tmp_path.iterdir()))}"
        code, _, err = run("rewrite", str(src), "-o", str(out), *opts)
        assert code == 0, err
        return contents(out)

    assert got("--db", "5") == [k for k in every if k["db"] == 5] != []
    assert got("--db", "1", "--db", "9") == [k for k in every if k["db"] in (1, 9)]
    assert (
        got("--match", "zset:*")
        == [k for k in every if untext(k["key"]).startswith(b"zset:")]
        != []
    )
    assert got("--type", "set,zset") == [k for k in every if k["type"] in ("set", "zset")]
    assert got("--type", "stream", "--type", "list") == [
        k for k in every if k["type"] in ("stream", "list")
    ]

    def in_slots(k: dict[str, Any]) -> bool:
        slot = key_slot(untext(k["key"]))
        return slot <= 8000 or slot == 12000

    sel = [k for k in every if in_slots(k)]
    assert 0 < len(sel) < len(every)
    assert got("--slot", "0-8000,12000") == sel
    moved = got("--map-db", "5:7", "--map-db", "9:2")
    mapped = [dict(k, db={5: 7, 9: 2}.get(k["db"], k["db"])) for k in every]
    assert moved == normalise(mapped)


def test_map_db_collision_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "appendonly.aof"
    f.write_bytes(
        encode_command([b"SET", b"k", b"0"]) + encode_command([b"SELECT", b"1"])
        + encode_command([b"SET", b"k", b"1"])
    )  # fmt: skip
    code, _, err = run("rewrite", str(f), "-o", str(tmp_path / "o"), "--map-db", "1:0")
    assert code == 1 and "twice into db 0" in err
    code, _, err = run(
        "rewrite", str(f), "-o", str(tmp_path / "p"), "--map-db", "1:2", "--map-db", "0:1"
    )
    assert code == 0, err
    assert [(k["db"], k["value"]) for k in contents(tmp_path / "p")] == [(1, "0"), (2, "1")]


def test_bad_option_values_are_usage_errors(tmp_path: Path) -> None:
    out = str(tmp_path / "o")
    for opts in (
        ["--slot", "16384"], ["--slot", "5-2"], ["--slot", "x"], ["--type", "hyperloglog"],
        ["--map-db", "1"], ["--map-db", "a:b"], ["--map-db", "1:2", "--map-db", "1:3"],
        ["--db", "-1"], ["--base", "json"], ["--until", "soon"],
    ):  # fmt: skip
        code, _, err = run("rewrite", str(RDB), "-o", out, *opts)
        assert code == 2, (opts, err)
    assert run("rewrite", str(RDB))[0] == 2
    assert run("rewrite", str(tmp_path / "missing"), "-o", out)[0] == 2
    assert not (tmp_path / "o").exists()


def test_output_is_never_clobbered(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert run("rewrite", str(RDB), "-o", str(out))[0] == 0
    code, _, err = run("rewrite", str(RDB), "-o", str(out))
    assert code == 1 and "not empty" in err
    code, _, err = run("rewrite", str(RDB), "-o", str(out), "--force", "--db", "5")
    assert code == 0, err
    assert {k["db"] for k in contents(out)} == {5}
    # the input directory itself is refused even with --force
    copy = tmp_path / "in"
    shutil.copytree(PRE, copy)
    code, _, err = run("rewrite", str(copy), "-o", str(copy), "--force")
    assert code == 1 and "overwrite the input" in err
    assert contents(copy) == contents(PRE)


CASES = json.loads((CORRUPT / "cases.json").read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_corrupt_input(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    code, _, err = run("rewrite", str(CORRUPT / case["path"]), "-o", str(tmp_path / "o"))
    assert code == case["exit"], err
    assert "Traceback" not in err and case["file"] in err
    if code == 0:
        assert "warning" in err
    else:
        assert not (tmp_path / "o" / "appendonly.aof.manifest").exists()


def test_no_checksum(tmp_path: Path) -> None:
    src = CORRUPT / "bad_crc64" / "dump.rdb"
    assert run("rewrite", str(src), "-o", str(tmp_path / "a"))[0] == 3
    assert run("rewrite", str(src), "-o", str(tmp_path / "b"), "--no-checksum")[0] == 0
    assert contents(tmp_path / "b") == contents(RDB)


def test_old_style_aof_with_rdb_preamble_and_resp_tail(tmp_path: Path) -> None:
    single = tmp_path / "appendonly.aof"
    single.write_bytes(RDB.read_bytes() + encode_command([b"SET", b"tail:key", b"v"]))
    code, stdout, err = run("rewrite", str(single), "-o", str(tmp_path / "o"), "--json")
    assert code == 0, err
    assert json.loads(stdout)["input_kind"] == "aof"
    got = contents(tmp_path / "o")
    assert {"db": 0, "key": "tail:key", "type": "string", "expire_at_ms": None, "value": "v"} in got
    assert len(got) == len(contents(RDB)) + 1


def test_lz4_input(tmp_path: Path) -> None:
    import lz4.frame

    arch = tmp_path / "dump.rdb.lz4"
    arch.write_bytes(lz4.frame.compress(RDB.read_bytes()))
    assert run("rewrite", str(arch), "-o", str(tmp_path / "o"), "-q")[0] == 0
    assert contents(tmp_path / "o") == contents(RDB)


# ---- output -------------------------------------------------------------------------------


def test_json_schema(tmp_path: Path) -> None:
    code, stdout, _ = run("rewrite", str(PRE), "-o", str(tmp_path / "o"), "--json", "--base", "aof")
    assert code == 0
    doc = json.loads(stdout)
    assert set(doc) == SUMMARY_KEYS
    assert doc["command"] == "rewrite" and doc["input_kind"] == "appendonlydir"
    assert doc["to"] == "aofdir" and doc["base"] == "aof" and doc["rdb_version"] is None
    assert [f["name"] for f in doc["files"]] == [
        "appendonly.aof.1.base.aof", "appendonly.aof.1.incr.aof", "appendonly.aof.manifest",
    ]  # fmt: skip
    assert doc["keys"] == len(contents(PRE)) == sum(doc["keys_by_db"].values())
    assert doc["keys"] == sum(doc["keys_by_type"].values())
    assert isinstance(doc["expires"], int) and isinstance(doc["warnings"], list)
    assert doc["until"] is None and doc["compress"] is None


def test_human_summary_and_quiet(tmp_path: Path) -> None:
    code, stdout, _ = run("rewrite", str(RDB), "-o", str(tmp_path / "o"))
    assert code == 0 and "keys" in stdout and "appendonly.aof.manifest" in stdout
    code, stdout, _ = run("rewrite", str(RDB), "-o", str(tmp_path / "q"), "-q")
    assert code == 0 and stdout == ""


def seen_by(seen: list[tuple[str, int, int | None]]) -> Progress:
    return lambda *a: seen.append(a)


def test_progress_callbacks(tmp_path: Path) -> None:
    for src in (RDB, PRE):
        seen: list[tuple[str, int, int | None]] = []
        rewrite(src, tmp_path / src.name, key_filter=KeyFilter(), progress=seen_by(seen))
        phases = {p for p, _, _ in seen}
        assert phases == {"read", "write"}
        last_read = [s for s in seen if s[0] == "read"][-1]
        assert last_read[1] == last_read[2]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    with progress_bar(quiet=False) as p:  # CliRunner / pytest: not a terminal
        assert p is None
    fake = _Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    with progress_bar(quiet=True) as p:
        assert p is None
    with progress_bar(quiet=False) as p:
        assert p is not None
        p("read", 10, 100)
        p("write", 5, None)


def test_rdb_with_an_unfinished_slot_import_drops_its_keys(tmp_path: Path) -> None:
    # an import still open when the RDB was saved is dropped at load ("Process restarted")
    from persistence.rdb.writer import RdbWriter
    from persistence.records import KeyRecord, StringValue

    kept, imported = b"{a}k", b"{b}k"
    slot = key_slot(imported)
    src = tmp_path / "dump.rdb"
    with src.open("wb") as f:
        w = RdbWriter(f)
        w.write_slot_import(b"job", [(slot, slot)])
        w.begin_db(0, keys=2, expires=0)
        for k in (kept, imported):
            w.write_record(KeyRecord(0, k, StringValue(b"v")))
        w.finish()
    code, stdout, err = run("rewrite", str(src), "-o", str(tmp_path / "o"), "--json")
    assert code == 0, err
    assert json.loads(stdout)["keys"] == 1 and json.loads(stdout)["input_kind"] == "rdb"
    assert [k["key"] for k in contents(tmp_path / "o")] == ["{a}k"]
