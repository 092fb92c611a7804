"""Durability of our server (valkey-engine as a subprocess): the multi-part AOF life cycle
(BGREWRITEAOF, a killed rewrite child, automatic rewrites, #TS lines), SAVE/BGSAVE/LASTSAVE,
save points, SHUTDOWN [SAVE|NOSAVE], TTLs that pass while the server is down, INFO persistence,
and start-up on every damaged fixture of fixtures/corrupt/."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from enginesrv import engine_server
from realserver import free_port
from redis.backoff import NoBackoff
from redis.retry import Retry
from server_snapshot import snapshot as _snapshot
from test_export import normalise
from workload import run_workload

from persistence.aof.manifest import read_manifest

ROOT = Path(__file__).resolve().parent.parent
CORRUPT = ROOT / "fixtures" / "corrupt"


def snapshot(c: redis.Redis) -> list[dict[str, Any]]:
    """Contents, minus what a reload may change (encodings, consumer seen times)."""
    return normalise(_snapshot(c))


def raw(c: redis.Redis) -> redis.Redis:
    """A client whose replies are not post-processed (BGSAVE's status line stays a string)."""
    c.response_callbacks.clear()
    return c


def cmd(c: redis.Redis, *args: Any) -> Any:
    try:
        r = raw(c).execute_command(*args)
    except redis.ResponseError as e:
        return f"ERR {e}"
    except redis.ConnectionError:  # SHUTDOWN closes without a reply
        return None
    return r.decode() if isinstance(r, bytes) else r


def wait_for(pred: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def persistence(c: redis.Redis) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in cmd(c, "INFO", "persistence").splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k] = int(v) if v.lstrip("-").isdigit() else v
    return out


def manifest_lines(d: Path) -> list[str]:
    return (d / "appendonlydir" / "appendonly.aof.manifest").read_text().splitlines()


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def fill(c: redis.Redis, n: int, prefix: str = "k") -> None:
    p = c.pipeline(transaction=False)
    for i in range(n):
        p.set(f"{prefix}{i}", "v" * 20)
        if i % 5000 == 4999:
            p.execute()
    p.execute()


def test_bgrewriteaof_switches_files_and_keeps_contents(tmp_path: Path) -> None:
    with engine_server(tmp_path, "--appendfsync", "always", "--save", "") as srv:
        c = srv.client()
        run_workload(c)
        assert manifest_lines(tmp_path) == [
            "file appendonly.aof.1.base.rdb seq 1 type b",
            "file appendonly.aof.1.incr.aof seq 1 type i",
        ]
        assert cmd(c, "BGREWRITEAOF") == "Background append only file rewriting started"
        c.set("during", "x")
        wait_for(lambda: persistence(c)["aof_rewrite_in_progress"] == 0)
        info = persistence(c)
        assert info["aof_last_bgrewrite_status"] == "ok" and info["aof_rewrites"] == 1
        assert info["aof_current_size"] == info["aof_base_size"] > 0
        c.set("after", "y")
        before = snapshot(c)
    # the old base and incr were history and are gone (aof-disable-auto-gc no)
    assert manifest_lines(tmp_path) == [
        "file appendonly.aof.2.base.rdb seq 2 type b",
        "file appendonly.aof.2.incr.aof seq 2 type i",
    ]
    assert sorted(os.listdir(tmp_path / "appendonlydir")) == [
        "appendonly.aof.2.base.rdb", "appendonly.aof.2.incr.aof", "appendonly.aof.manifest"
    ]  # fmt: skip
    incr = (tmp_path / "appendonlydir" / "appendonly.aof.2.incr.aof").read_bytes()
    assert incr.startswith(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n")  # SELECT reset by the rewrite
    with engine_server(tmp_path, "--save", "") as srv:
        assert snapshot(srv.client()) == before


def test_rewrite_resp_base_and_timestamps(tmp_path: Path) -> None:
    args = ("--aof-use-rdb-preamble", "no", "--aof-timestamp-enabled", "yes", "--save", "")
    with engine_server(tmp_path, *args) as srv:
        c = srv.client()
        c.set("a", "1")
        assert cmd(c, "BGREWRITEAOF").startswith("Background append only file rewriting")
        wait_for(lambda: persistence(c)["aof_rewrite_in_progress"] == 0)
        c.set("b", "2")
        before = snapshot(c)
    d = tmp_path / "appendonlydir"
    assert (d / "appendonly.aof.2.base.aof").read_bytes().startswith(b"#TS:")
    assert (d / "appendonly.aof.2.incr.aof").read_bytes().startswith(b"#TS:")  # spec 8.6
    with engine_server(tmp_path, *args) as srv:
        assert snapshot(srv.client()) == before


def test_killed_rewrite_child_leaves_old_files_and_new_incr(tmp_path: Path) -> None:
    with engine_server(tmp_path, "--save", "") as srv:
        c = srv.client()
        fill(c, 150_000)
        assert cmd(c, "BGREWRITEAOF").startswith("Background append only file rewriting")
        kids = children(srv.proc.pid)
        assert kids, "the rewrite finished before it could be killed"
        os.kill(kids[0], signal.SIGKILL)
        c.set("after-kill", "1")
        wait_for(lambda: persistence(c)["aof_rewrite_in_progress"] == 0)
        info = persistence(c)
        assert info["aof_last_bgrewrite_status"] == "err"
        assert info["aof_rewrites_consecutive_failures"] == 1
        n = c.dbsize()
    # src/aof.c: the incr opened for the failed rewrite stays in the manifest
    assert manifest_lines(tmp_path) == [
        "file appendonly.aof.1.base.rdb seq 1 type b",
        "file appendonly.aof.1.incr.aof seq 1 type i",
        "file appendonly.aof.2.incr.aof seq 2 type i",
    ]
    assert not list(tmp_path.glob("temp-*"))
    with engine_server(tmp_path, "--save", "") as srv:
        c = srv.client()
        assert c.dbsize() == n and c.get("after-kill") == b"1"


def test_automatic_rewrite_on_growth(tmp_path: Path) -> None:
    args = ("--auto-aof-rewrite-min-size", "64kb", "--auto-aof-rewrite-percentage", "100")
    with engine_server(tmp_path, *args, "--save", "") as srv:
        c = srv.client()
        fill(c, 5000)
        wait_for(lambda: persistence(c)["aof_rewrites"] >= 1)
        wait_for(lambda: persistence(c)["aof_rewrite_in_progress"] == 0)
        assert "Starting automatic rewriting of AOF on" in srv.log
        m = read_manifest(tmp_path / "appendonlydir" / "appendonly.aof.manifest")
        assert m.base is not None and m.base.seq >= 2


def test_save_bgsave_lastsave_and_replies(tmp_path: Path) -> None:
    with engine_server(tmp_path, "--appendonly", "no", "--save", "") as srv:
        c = srv.client()
        start = cmd(c, "LASTSAVE")
        assert abs(start - time.time()) < 30  # src/server.c: the start time until a save
        run_workload(c)
        assert persistence(c)["rdb_changes_since_last_save"] > 0
        assert cmd(c, "SAVE") == "OK"
        assert persistence(c)["rdb_changes_since_last_save"] == 0
        assert (tmp_path / "dump.rdb").exists()
        assert cmd(c, "BGSAVE") == "Background saving started"
        assert cmd(c, "BGSAVE", "X") == "ERR syntax error"
        wait_for(lambda: persistence(c)["rdb_bgsave_in_progress"] == 0)
        info = persistence(c)
        assert info["rdb_last_bgsave_status"] == "ok" and info["rdb_saves"] == 2
        assert cmd(c, "BGSAVE", "CANCEL") == (
            "ERR Background saving is currently not in progress or scheduled"
        )
        assert cmd(c, "MULTI") == "OK" and cmd(c, "SAVE").startswith("ERR")
        cmd(c, "DISCARD")
        before = snapshot(c)
        cmd(c, "SHUTDOWN", "NOSAVE")
        srv.proc.wait(10)
    with engine_server(tmp_path, "--appendonly", "no", "--save", "") as srv:
        assert snapshot(srv.client()) == before
        assert "DB loaded from disk" in srv.log


def test_bgsave_cancel_and_schedule_during_rewrite(tmp_path: Path) -> None:
    with engine_server(tmp_path, "--save", "") as srv:
        c = srv.client()
        fill(c, 150_000)
        assert cmd(c, "BGSAVE") == "Background saving started"
        assert cmd(c, "BGSAVE") == "ERR Background save already in progress"
        assert cmd(c, "BGREWRITEAOF") == "Background append only file rewriting scheduled"
        assert persistence(c)["aof_rewrite_scheduled"] == 1
        assert cmd(c, "BGSAVE", "CANCEL") == "Background saving cancelled"
        wait_for(lambda: persistence(c)["aof_rewrites"] == 1)  # the scheduled one ran
        assert cmd(c, "BGSAVE", "SCHEDULE") in (
            "Background saving scheduled", "Background saving started"
        )  # fmt: skip
        wait_for(lambda: persistence(c)["rdb_bgsave_in_progress"] == 0 and
                 persistence(c)["aof_rewrite_in_progress"] == 0)  # fmt: skip
        wait_for(lambda: (tmp_path / "dump.rdb").exists())
        assert not list(tmp_path.glob("temp-*"))


def test_save_points_and_shutdown_save(tmp_path: Path) -> None:
    with engine_server(tmp_path, "--appendonly", "no", "--save", "1 1") as srv:
        c = srv.client()
        c.set("x", "1")
        wait_for(lambda: (tmp_path / "dump.rdb").exists(), timeout=10)
        assert "1 changes in 1 seconds. Saving..." in srv.log
    (tmp_path / "dump.rdb").unlink()
    with engine_server(tmp_path, "--appendonly", "no", "--save", "") as srv:
        srv.client().set("y", "2")
        cmd(srv.client(), "SHUTDOWN", "SAVE")
        srv.proc.wait(10)
    assert (tmp_path / "dump.rdb").exists()
    (tmp_path / "dump.rdb").unlink()
    with engine_server(tmp_path, "--appendonly", "no") as srv:  # default save points
        srv.client().set("z", "3")
        srv.stop()  # SIGTERM saves, as valkey-server does with save points configured
    assert (tmp_path / "dump.rdb").exists()


def test_ttls_that_pass_while_down_expire(tmp_path: Path) -> None:
    with engine_server(tmp_path, "--appendfsync", "always", "--save", "") as srv:
        c = srv.client()
        c.set("short", "v", px=800)
        c.set("long", "v", ex=3600)
        c.hset("h", mapping={"f1": "a", "f2": "b"})
        c.execute_command("HPEXPIRE", "h", 800, "FIELDS", 1, "f1")
    time.sleep(1.2)
    with engine_server(tmp_path, "--save", "") as srv:
        c = srv.client()
        assert c.get("short") is None and c.get("long") == b"v"
        assert c.hgetall("h") == {b"f2": b"b"}
        assert c.dbsize() == 2


def test_info_persistence_fields(tmp_path: Path) -> None:
    with engine_server(tmp_path, "--save", "") as srv:
        info = persistence(srv.client())
    names = ("aof_enabled", "aof_rewrite_in_progress", "aof_rewrite_scheduled",
             "aof_last_rewrite_time_sec", "aof_current_rewrite_time_sec",
             "aof_last_bgrewrite_status", "aof_rewrites", "aof_last_write_status",
             "aof_current_size", "aof_base_size", "rdb_changes_since_last_save",
             "rdb_bgsave_in_progress", "rdb_last_save_time", "rdb_last_bgsave_status")  # fmt: skip
    assert set(names) <= set(info)


# -- damaged data directories -------------------------------------------------------------
CASES: dict[str, dict[str, Any]] = json.loads((CORRUPT / "cases.json").read_text())


def start_on(workdir: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    """Start our server on ``workdir``: None if it came up (then stopped), else the failed run."""
    port = free_port()
    log = str(workdir / "engine.log")
    cmd_ = [sys.executable, "-m", "engine.server.main", "--port", str(port), "--dir",
            str(workdir), "--logfile", log, "--save", "", *args]  # fmt: skip
    proc = subprocess.Popen(cmd_, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            redis.Redis(port=port, socket_timeout=2, retry=Retry(NoBackoff(), 0)).ping()
        except redis.ConnectionError:
            time.sleep(0.05)
            continue
        proc.terminate()
        proc.wait(10)
        for s in (proc.stdout, proc.stderr):
            if s:
                s.close()
        return None
    out, err = proc.communicate(timeout=10)
    return subprocess.CompletedProcess(cmd_, proc.returncode, out, err)


@pytest.mark.parametrize("name", sorted(CASES))
def test_corrupt_fixture(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    src = CORRUPT / case["path"]
    if src.is_dir():
        shutil.copytree(src, tmp_path / "appendonlydir")
        args: tuple[str, ...] = ()
    else:
        shutil.copy(src, tmp_path / "dump.rdb")
        args = ("--appendonly", "no")
    target = next(tmp_path.rglob(case["file"]), None)
    size = target.stat().st_size if target is not None else 0
    res = start_on(tmp_path, *args)
    log = (tmp_path / "engine.log").read_text(errors="replace")
    if case["exit"] == 0:
        assert res is None, (res, log)
        assert target is not None and target.stat().st_size == case["offset"] < size
        assert f"offset {case['offset']}" in log and case["file"] in log
        return
    assert res is not None and res.returncode != 0, log
    assert "Traceback" not in res.stderr
    assert case["file"] in res.stderr
    if "offset" in case:
        assert f"offset {case['offset']}" in res.stderr
    assert "valkey-aof check" in res.stderr
    if target is not None:
        assert target.stat().st_size == size  # nothing was cut


def test_cow_sizes_and_child_log_lines(tmp_path: Path) -> None:
    """INFO rdb_last_cow_size / aof_last_cow_size from the child's Private_Dirty, and the
    child's log lines marked C as valkey-server's (src/childinfo.c, src/server.c)."""
    with engine_server(tmp_path, "--save", "") as srv:
        c = srv.client()
        fill(c, 2000)
        assert cmd(c, "BGSAVE") == "Background saving started"
        wait_for(lambda: persistence(c)["rdb_bgsave_in_progress"] == 0)
        assert cmd(c, "BGREWRITEAOF").startswith("Background append only file rewriting")
        wait_for(lambda: persistence(c)["aof_rewrite_in_progress"] == 0)
        info = persistence(c)
        assert info["rdb_last_cow_size"] > 0 and info["aof_last_cow_size"] > 0
        assert info["current_cow_size"] == 0  # no child now
    lines = srv.log.splitlines()
    assert any(":C " in ln and "Fork CoW for RDB: current" in ln for ln in lines)
    assert any(":C " in ln and "Fork CoW for AOF rewrite" in ln for ln in lines)
    assert any(":M " in ln and "Background saving started" in ln for ln in lines)
