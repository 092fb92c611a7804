"""``valkey-aof replay`` into a real valkey-server 9.1.2: contents, options, checkpoint/resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
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
from tools.app import main
from tools.export import load_contents
from tools.jsonview import records_to_json
from tools.replay import ReplayOptions, replay
from tools.replay_conn import parse_target
from tools.replay_verify import verify

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "fixtures" / "valkey-9.1.2"

pytestmark = pytest.mark.real

SOURCES = [
    "aof_preamble/appendonlydir",
    "aof_nopreamble/appendonlydir",
    "aof_timestamp/appendonlydir",
    "rdb_all_comp/dump.rdb",
    "cluster_node/appendonlydir",
    "slot_migration/success_target_appendonlydir",
    "slot_migration/cancel_partial_target_appendonlydir",
]


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["replay", *args], catch_exceptions=False)


def url(srv: RealServer, db: str = "") -> str:
    return f"redis://127.0.0.1:{srv.port}{db}"


def expected_now(path: Path, map_db: dict[int, int] | None = None) -> list[dict[str, Any]]:
    """The input's final contents, minus what the wall clock has expired by now."""
    recs = load_contents(path, now_ms=int(time.time() * 1000)).records
    for r in recs:
        r.db = (map_db or {}).get(r.db, r.db)
    return normalise(records_to_json(recs, with_encoding=False))


def write_aof(path: Path, commands: list[list[bytes]]) -> Path:
    path.write_bytes(b"".join(encode_command(c) for c in commands))
    return path


@pytest.mark.parametrize("src", SOURCES)
def test_replay_gives_the_expected_contents(tmp_path: Path, src: str) -> None:
    with real_server(tmp_path / "srv") as srv:
        res = run(str(REAL / src), "--target", url(srv), "--verify", "--quiet")
        assert res.exit_code == 0, res.output
        assert "no differences" in res.stdout
        got = normalise(snapshot(srv.client()))
        assert got == expected_now(REAL / src)


def test_dry_run_sends_nothing(tmp_path: Path) -> None:
    src = REAL / "aof_preamble" / "appendonlydir"
    with real_server(tmp_path / "srv") as srv:
        res = run(str(src), "--target", url(srv), "--dry-run")
        assert res.exit_code == 0, res.output
        plan = json.loads(res.stdout)
        assert plan["mode"] == "standalone"
        assert plan["commands"] == 238
        assert {"0", "1", "5", "9"} <= set(plan["per_db"])
        assert sum(plan["per_db"].values()) == 238
        assert srv.client().dbsize() == 0


def test_map_db_and_flatten(tmp_path: Path) -> None:
    src = REAL / "aof_preamble" / "appendonlydir"
    with real_server(tmp_path / "a") as srv:
        res = run(str(src), "--target", url(srv), "--map-db", "0:12", "--map-db", "9:3", "--verify")
        assert res.exit_code == 0, res.output
        got = normalise(snapshot(srv.client()))
        assert got == expected_now(src, {0: 12, 9: 3})
    # merging databases: a file without FLUSHDB (a FLUSHDB would empty the merged db)
    multi = write_aof(
        tmp_path / "multi.aof",
        [[b"SELECT", b"0"], [b"SET", b"a", b"0"], [b"SELECT", b"3"], [b"SET", b"b", b"3"],
         [b"MOVE", b"b", b"0"], [b"SET", b"c", b"3"]],
    )  # fmt: skip
    with real_server(tmp_path / "b") as srv:
        res = run(str(multi), "--target", url(srv, "/4"), "--verify", "--quiet")
        assert res.exit_code == 0, res.output
        assert "became a no-op" in res.stderr
        assert sorted(srv.client(db=4).keys()) == [b"a", b"b", b"c"]
        assert srv.client(db=0).dbsize() == 0
    with real_server(tmp_path / "c") as srv:
        assert run(str(multi), "--target", url(srv), "--flatten-db", "--verify").exit_code == 0
        assert srv.client(db=0).dbsize() == 3
    assert run(str(src), "--target", "redis://x:1", "--map-db", "zero:1").exit_code == 2


def test_flatten_warns_about_flushdb_swapdb_move(tmp_path: Path) -> None:
    aof = write_aof(
        tmp_path / "f.aof",
        [[b"SELECT", b"0"], [b"SET", b"a", b"0"], [b"SELECT", b"1"], [b"FLUSHDB"],
         [b"SET", b"b", b"1"], [b"SWAPDB", b"1", b"2"], [b"SELECT", b"2"], [b"FLUSHDB"],
         [b"SET", b"c", b"2"], [b"MOVE", b"c", b"5"],
         [b"SELECT", b"7"], [b"FLUSHDB"], [b"SET", b"alone", b"7"]],
    )  # fmt: skip
    with real_server(tmp_path / "a") as srv:
        res = run(str(aof), "--target", url(srv), "--flatten-db", "--json")
        assert res.exit_code == 0, res.output
        warnings = json.loads(res.stdout)["warnings"]
        assert any(w.startswith("FLUSHDB ran 3 time(s) in a database that --flatten-db") and
                   "source db 1 into db 0, which holds keys of source db(s) 0" in w
                   for w in warnings), warnings  # fmt: skip
        assert any(w.startswith("SWAPDB ran 1 time(s)") for w in warnings), warnings
        assert any(w.startswith("MOVE ran 1 time(s)") for w in warnings), warnings
        res = run(str(aof), "--target", url(srv), "--flatten-db")
        assert "warning: FLUSHDB ran 3 time(s)" in res.stderr
    with real_server(tmp_path / "b") as srv:  # no merging: no warning
        res = run(str(aof), "--target", url(srv), "--json", "--verify")
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["warnings"] == []


def test_on_error_stop_skip_log(tmp_path: Path) -> None:
    aof = write_aof(
        tmp_path / "err.aof",
        [[b"SET", b"a", b"x"], [b"INCR", b"a"], [b"SET", b"b", b"1"], [b"INCR", b"b"]],
    )
    with real_server(tmp_path / "s1") as srv:
        res = run(str(aof), "--target", url(srv), "--quiet")
        assert res.exit_code == 1
        assert "err.aof offset 27: INCR: ERR value is not an integer" in res.stderr
        assert "Traceback" not in res.output
    with real_server(tmp_path / "s2") as srv:
        res = run(str(aof), "--target", url(srv), "--on-error", "skip")
        assert res.exit_code == 0, res.output
        assert "1 error(s)" in res.stdout
        assert srv.client().get("b") == b"2"
    with real_server(tmp_path / "s3") as srv:
        res = run(str(aof), "--target", url(srv), "--on-error", "log")
        assert res.exit_code == 0
        assert res.stderr.count("error: ") >= 1 and "not an integer" in res.stderr


def test_unknown_commands_and_syncslots_are_skipped_with_a_note(tmp_path: Path) -> None:
    aof = write_aof(
        tmp_path / "odd.aof",
        [
            [b"SET", b"k", b"v"],
            [b"NOSUCHCMD", b"k"],
            [b"CLUSTER", b"SYNCSLOTS", b"ESTABLISH", b"SOURCE", b"x" * 40, b"NAME", b"j" * 40,
             b"SLOTSRANGE", b"0", b"16383"],
            [b"SET", b"imported", b"1"],
            [b"CLUSTER", b"SYNCSLOTS", b"FINISH", b"STATE", b"SUCCESS", b"NAME", b"j" * 40,
             b"MESSAGE", b""],
        ],
    )  # fmt: skip
    with real_server(tmp_path / "srv") as srv:
        res = run(str(aof), "--target", url(srv))
        assert res.exit_code == 0, res.output
        assert "nosuchcmd (1)" in res.stderr
        assert "2 CLUSTER SYNCSLOTS" in res.stderr
        assert srv.client().get("imported") == b"1"


def test_rate_limits(tmp_path: Path) -> None:
    aof = write_aof(tmp_path / "r.aof", [[b"SET", b"k%d" % i, b"v"] for i in range(600)])
    with real_server(tmp_path / "srv") as srv:
        t = time.monotonic()
        assert run(str(aof), "--target", url(srv), "--rate", "1000").exit_code == 0
        assert time.monotonic() - t >= 0.3
        size = aof.stat().st_size
        t = time.monotonic()
        res = run(str(aof), "--target", url(srv), "--rate-bytes", str(size * 2))
        assert res.exit_code == 0
        assert time.monotonic() - t >= 0.2
        assert srv.client().dbsize() == 600


def test_bad_targets_and_usage(tmp_path: Path) -> None:
    src = str(REAL / "aof_preamble" / "appendonlydir")
    res = run(src, "--target", "http://127.0.0.1:1")
    assert res.exit_code == 1 and "scheme" in res.stderr
    res = run(src, "--target", "redis://127.0.0.1:1")
    assert res.exit_code == 1 and "cannot connect" in res.stderr
    res = run(src, "--target", "redis://127.0.0.1:1", "--resume")
    assert res.exit_code == 1 and "--checkpoint" in res.stderr
    with real_server(tmp_path / "srv") as srv:
        res = run(src, "--target", url(srv), "--cluster")
        assert res.exit_code == 1 and "not a cluster" in res.stderr
    assert parse_target("redis://u:p%40ss@h:7/3").password == "p@ss"
    assert parse_target("h:7").port == 7


def test_verify_reports_differences(tmp_path: Path) -> None:
    src = REAL / "aof_preamble" / "appendonlydir"
    with real_server(tmp_path / "srv") as srv:
        res = replay(src, ReplayOptions(target=url(srv)))
        assert res.commands == 238
        c = srv.client()
        key = sorted(c.keys("*"))[0]
        c.delete(key)
        c.set("not-in-the-file", "x")
        rep = verify(src, [f"127.0.0.1:{srv.port}"], parse_target(url(srv)))
        assert not rep.clean
        assert len(rep.missing) == 1 and len(rep.extra) == 1
        c.set(key, "changed")
        rep = verify(src, [f"127.0.0.1:{srv.port}"], parse_target(url(srv)))
        assert len(rep.different) + len(rep.missing) == 1


def counter_aof(path: Path, n: int) -> Path:
    """Non-idempotent commands: replaying any of them twice changes the result."""
    cmds = [[b"INCR", b"counter:%d" % (i % 50)] for i in range(n)]
    cmds += [[b"RPUSH", b"log", b"%d" % i] for i in range(n // 10)]
    return write_aof(path, cmds)


def _cli(*args: str) -> subprocess.Popen[bytes]:
    code = "from tools.app import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "replay", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_replay_resumes_exactly(tmp_path: Path, sig: int) -> None:
    n = 20_000
    aof = counter_aof(tmp_path / "c.aof", n)
    ck = tmp_path / "ckpt.json"
    with real_server(tmp_path / "srv") as srv:
        p = _cli(
            str(aof), "--target", url(srv), "--checkpoint", str(ck), "--rate", "8000",
            "--checkpoint-every", "500",
        )  # fmt: skip
        wait_for_progress(ck)
        p.send_signal(sig)
        _, err = p.communicate(timeout=30)
        assert p.returncode == 130, err
        done = json.loads(ck.read_text())["index"]
        assert 0 < done < n + n // 10
        res = run(str(aof), "--target", url(srv), "--checkpoint", str(ck), "--resume", "--verify")
        assert res.exit_code == 0, res.output
        assert f"resumed after {done:,}" in res.stdout
        c = srv.client()
        assert sum(int(c.get(f"counter:{i}") or 0) for i in range(50)) == n
        assert c.llen("log") == n // 10
        assert json.loads(ck.read_text())["done"] is True


def wait_for_progress(ck: Path, timeout: float = 30.0) -> None:
    """Until the checkpoint shows acknowledged commands (the replay is under way, its signal
    handlers installed): a fixed sleep is too short on a loaded machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(ck.read_text())["index"] > 0:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    raise AssertionError("the replay made no progress")


def test_killed_replay_resumes_to_identical_contents(tmp_path: Path) -> None:
    aof = write_aof(tmp_path / "s.aof", [[b"SET", b"k%d" % i, b"v%d" % i] for i in range(20_000)])
    ck = tmp_path / "ckpt.json"
    with real_server(tmp_path / "srv") as srv:
        args = ["--target", url(srv), "--checkpoint", str(ck), "--checkpoint-every", "100"]
        p = _cli(str(aof), *args, "--rate", "10000")
        wait_for_progress(ck)
        os.kill(p.pid, signal.SIGKILL)
        p.communicate(timeout=30)
        before = json.loads(ck.read_text())["index"]
        assert 0 < before < 20_000
        res = run(str(aof), *args, "--resume", "--verify")
        assert res.exit_code == 0, res.output
        assert srv.client().dbsize() == 20_000


def test_preamble_dir_interrupted_and_resumed(tmp_path: Path) -> None:
    """The resume point may fall inside the RDB base's records: none are sent twice."""
    src = REAL / "aof_preamble" / "appendonlydir"
    ck = tmp_path / "ckpt.json"
    with real_server(tmp_path / "srv") as srv:
        p = _cli(
            str(src), "--target", url(srv), "--checkpoint", str(ck), "--rate", "150",
            "--checkpoint-every", "10",
        )  # fmt: skip
        wait_for_progress(ck)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        assert p.returncode == 130, err
        done = json.loads(ck.read_text())["index"]
        assert 0 < done < 238
        res = run(str(src), "--target", url(srv), "--checkpoint", str(ck), "--resume", "--verify")
        assert res.exit_code == 0, res.output
        assert f"{238 - done:,} commands (resumed after {done:,})" in res.stdout
        assert normalise(snapshot(srv.client())) == expected_now(src)
