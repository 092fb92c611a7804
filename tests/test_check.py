"""``valkey-aof check``: real directories, every corrupt variant, --fix, --salvage,
--truncate-to-timestamp, and the real valkey-check-aof / valkey-server beside it."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from persistence.aof.check import check, find_next_command
from tests.realserver import real_server, valkey_tool
from tools.app import main
from tools.render import check_report

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "fixtures" / "valkey-9.1.2"
CORRUPT = ROOT / "fixtures" / "corrupt"
CASES = json.loads((CORRUPT / "cases.json").read_text())
REAL_DIRS = sorted(
    str(p.relative_to(REAL)) for p in [*REAL.glob("*/*appendonlydir"), *REAL.glob("*/dump.rdb")]
)


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["check", *args], input=input, catch_exceptions=False)
    return res.exit_code, res.output


@pytest.mark.parametrize("src", REAL_DIRS)
def test_every_real_input_is_valid(src: str) -> None:
    code, out = run(str(REAL / src), "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["ok"] and doc["problem"] is None
    assert all(f["status"] in ("ok", "empty") for f in doc["files"])


def test_line_numbers_match_valkey_check_aof() -> None:
    # valkey-check-aof 9.1.2 on aof_nopreamble: ok_up_to_line=10193, 11489, 11535
    report, _ = check(REAL / "aof_nopreamble" / "appendonlydir")
    assert [f.ok_up_to_line for f in report.files] == [10193, 11489, 11535]
    _, out = run(str(REAL / "aof_nopreamble" / "appendonlydir"))
    assert "AOF analyzed: filename=appendonly.aof.2.base.aof, size=112584, ok_up_to=112584, " \
        "ok_up_to_line=10193, diff=0" in out  # fmt: skip
    assert "All AOF files and manifest are valid" in out


@pytest.mark.real
def test_real_checker_fails_valkey_base_we_pass(tmp_path: Path) -> None:
    d = tmp_path / "appendonlydir"
    shutil.copytree(REAL / "aof_preamble" / "appendonlydir", d)
    tool = valkey_tool("valkey-check-aof", tmp_path)
    res = subprocess.run(
        [tool, str(d / "appendonly.aof.manifest")], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 1
    assert "appendonly.aof.2.base.rdb format error" in res.stdout  # 9.1.2 only knows REDIS
    assert run(str(d / "appendonly.aof.manifest"))[0] == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_corrupt_case_exact_offset(case: str) -> None:
    c = CASES[case]
    code, out = run(str(CORRUPT / c["path"]), "--json")
    assert code == 3, out  # check is strict: a torn tail is damage too
    p = json.loads(out.split("\nError:")[0])["problem"]
    assert Path(p["file"]).name == c["file"]
    if "offset" in c:
        assert p["offset"] == c["offset"]


def test_single_file_line_number_like_valkey_check_aof() -> None:
    # valkey-check-aof on the torn single file prints ok_up_to=261, ok_up_to_line=44, diff=9
    f = CORRUPT / "truncated_last_command" / "appendonlydir" / "appendonly.aof.3.incr.aof"
    report, _ = check(f)
    fc = report.files[0]
    assert (fc.ok_up_to, fc.ok_up_to_line, fc.diff) == (261, 44, 9)


def _copy(case: str, tmp: Path) -> Path:
    d = tmp / "appendonlydir"
    shutil.copytree(CORRUPT / case / "appendonlydir", d)
    return d


@pytest.mark.parametrize("case", ["truncated_last_command", "dangling_multi", "zero_padding"])
def test_fix_cuts_tail(case: str, tmp_path: Path) -> None:
    d = _copy(case, tmp_path)
    last = d / CASES[case]["file"]
    before = last.read_bytes()
    code, out = run(str(d), "--fix", "--dry-run")
    assert code == 3 and "dry run" in out
    assert last.read_bytes() == before
    code, out = run(str(d), "--fix", "--yes")
    assert code == 0, out
    assert last.stat().st_size == CASES[case]["offset"]
    assert run(str(d))[0] == 0


def test_fix_asks_and_aborts(tmp_path: Path) -> None:
    d = _copy("truncated_last_command", tmp_path)
    size = (d / "appendonly.aof.3.incr.aof").stat().st_size
    code, out = run(str(d), "--fix", input="n\n")
    assert code == 1 and "Continue? [y/N]: " in out
    assert (d / "appendonly.aof.3.incr.aof").stat().st_size == size
    code, out = run(str(d), "--fix", input="y\n")
    assert code == 0 and "Successfully truncated AOF appendonly.aof.3.incr.aof" in out


def test_fix_refuses_damage_with_valid_commands_after(tmp_path: Path) -> None:
    d = _copy("garbage_middle", tmp_path)
    code, out = run(str(d), "--fix", "--yes")
    assert code == 3 and "--salvage" in out


@pytest.mark.parametrize(
    "case", ["garbage_middle", "zero_padding", "dangling_multi", "truncated_not_last",
             "truncated_base_rdb", "missing_file", "bad_manifest", "truncated_last_command"]
)  # fmt: skip
def test_salvage_gives_a_valid_copy(case: str, tmp_path: Path) -> None:
    src = CORRUPT / CASES[case]["path"]
    out = tmp_path / "out"
    code, text = run(str(src), "--salvage", "-o", str(out), "--json")
    assert code == 0, text
    assert run(str(out))[0] == 0
    # the original is untouched and an existing output is refused
    assert run(str(src))[0] == 3
    assert run(str(src), "--salvage", "-o", str(out))[0] == 1


def test_resync_skips_garbage() -> None:
    f = CORRUPT / "garbage_middle" / "appendonlydir" / "appendonly.aof.2.incr.aof"
    assert find_next_command(f, 24670) == 24669 + len(b"this is not RESP\r\n")


@pytest.mark.real
@pytest.mark.parametrize("how", ["fix", "salvage"])
def test_repaired_dirs_load_in_real_server(how: str, tmp_path: Path) -> None:
    work = tmp_path / "srv"
    work.mkdir()
    if how == "fix":
        d = _copy("truncated_last_command", work)
        assert run(str(d), "--fix", "--yes")[0] == 0
    else:
        assert run(str(CORRUPT / "garbage_middle" / "appendonlydir"), "--salvage", "-o",
                   str(work / "appendonlydir"))[0] == 0  # fmt: skip
    with real_server(work, "--appendonly", "yes", "--aof-load-truncated", "no") as srv:
        c = srv.client()
        assert c.dbsize() > 0
        assert "truncated" not in srv.log.lower() or how == "salvage"


def test_timestamps_list_and_point_in_time_copy(tmp_path: Path) -> None:
    src = REAL / "aof_timestamp" / "appendonlydir"
    code, out = run(str(src), "--list-timestamps", "--json")
    assert code == 0
    marks = json.loads(out)["timestamps"]
    assert len(marks) >= 2 and marks == sorted(marks, key=lambda m: m["timestamp"])
    cut_ts = marks[-2]["timestamp"]
    out_dir = tmp_path / "pit"
    code, text = run(str(src), "--truncate-to-timestamp", str(cut_ts), "-o", str(out_dir))
    assert code == 0, text
    assert run(str(out_dir))[0] == 0
    report, got = check(out_dir, want_marks=True)
    assert report.ok and max(t for _, _, t in got) <= cut_ts
    # before the very first mark there is nothing: refused like valkey-check-aof
    code, text = run(str(src), "--truncate-to-timestamp", "1", "-o", str(tmp_path / "x"))
    assert code == 3 and "nothing before timestamp" in text


@pytest.mark.parametrize(
    "args",
    [
        ["--yes"],
        ["--fix", "--salvage"],
        ["--salvage"],
        ["-o", "x"],
        ["--fix", "--yes", "--dry-run"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert run(str(REAL / "aof_preamble" / "appendonlydir"), *args)[0] == 2


def test_render_check_report() -> None:
    report, _ = check(CORRUPT / "garbage_middle" / "appendonlydir")
    buf = io.StringIO()
    Console(file=buf, width=100).print(check_report(report.to_json()))
    text = buf.getvalue()
    assert "AOF analyzed: filename=appendonly.aof.2.incr.aof" in text
    assert "24669" in text and "this is not RESP" in text
    assert "--salvage" in text
