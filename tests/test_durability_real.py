"""Our data directories in a real valkey-server 9.1.2 and its directories in ours: the AOF
directory (RDB-preamble and RESP bases, before and after BGREWRITEAOF) and dump.rdb, with
tests/workload.py's contents (every type, TTLs, hash-field TTLs, several dbs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis
from enginesrv import engine_server
from realserver import real_server
from server_snapshot import snapshot as _snapshot
from test_durability import cmd, persistence, wait_for
from test_export import normalise
from workload import run_workload

pytestmark = pytest.mark.real


def snapshot(c: redis.Redis) -> list[dict[str, Any]]:
    return normalise(_snapshot(c))


def more_writes(c: redis.Redis) -> None:
    c.execute_command("SELECT", 3)
    c.set("after-rewrite", "1", ex=7200)
    c.hset("h-after", mapping={"a": "1", "b": "2"})
    c.execute_command("HPEXPIRE", "h-after", 7_200_000, "FIELDS", 1, "a")
    c.execute_command("SELECT", 0)
    c.delete("db0:s")
    c.rpush("db0:list", "tail")


@pytest.mark.parametrize("preamble", ["yes", "no"])
@pytest.mark.parametrize("rewrite", [False, True])
def test_valkey_loads_our_aof_dir(tmp_path: Path, preamble: str, rewrite: bool) -> None:
    args = ("--aof-use-rdb-preamble", preamble, "--save", "")
    with engine_server(tmp_path, *args) as srv:
        c = srv.client()
        run_workload(c)
        if rewrite:
            assert cmd(c, "BGREWRITEAOF").startswith("Background append only file rewriting")
            more_writes(c)
            wait_for(lambda: persistence(c)["aof_rewrite_in_progress"] == 0)
            assert persistence(c)["aof_last_bgrewrite_status"] == "ok"
            more_writes(c)
        ours = snapshot(c)
    with real_server(tmp_path, "--appendonly", "yes", "--aof-use-rdb-preamble", preamble) as rs:
        assert snapshot(rs.client()) == ours
        assert "DB loaded from append only file" in rs.log


def test_valkey_loads_our_dump_rdb(tmp_path: Path) -> None:
    with engine_server(tmp_path, "--appendonly", "no", "--save", "") as srv:
        c = srv.client()
        run_workload(c)
        assert cmd(c, "BGSAVE") == "Background saving started"
        wait_for(lambda: persistence(c)["rdb_bgsave_in_progress"] == 0)
        ours = snapshot(c)
    with real_server(tmp_path, "--appendonly", "no") as rs:
        assert snapshot(rs.client()) == ours
        assert "DB loaded from disk" in rs.log


@pytest.mark.parametrize("preamble", ["yes", "no"])
def test_we_load_valkeys_aof_dir(tmp_path: Path, preamble: str) -> None:
    with real_server(tmp_path, "--appendonly", "yes", "--aof-use-rdb-preamble", preamble) as rs:
        c = rs.client()
        run_workload(c)
        c.bgrewriteaof()
        more_writes(c)
        wait_for(lambda: c.info("persistence")["aof_rewrite_in_progress"] == 0)
        more_writes(c)
        time.sleep(1.1)  # everysec
        theirs = snapshot(c)
    with engine_server(tmp_path, "--save", "") as srv:
        assert snapshot(srv.client()) == theirs


def test_we_load_valkeys_dump_rdb(tmp_path: Path) -> None:
    with real_server(tmp_path, "--appendonly", "no") as rs:
        c = rs.client()
        run_workload(c)
        c.save()
        theirs = snapshot(c)
    with engine_server(tmp_path, "--appendonly", "no", "--save", "") as srv:
        assert snapshot(srv.client()) == theirs


def test_replies_and_info_fields_as_valkey(tmp_path: Path) -> None:
    with (
        real_server(tmp_path / "real", "--appendonly", "yes") as rs,
        engine_server(tmp_path / "ours", "--save", "") as srv,
    ):
        real, ours = rs.client(), srv.client()
        for c in (real, ours):
            run_workload(c)
        for argv in (["BGSAVE", "CANCEL"], ["BGSAVE", "x"], ["SAVE", "x"], ["LASTSAVE", "x"],
                     ["BGREWRITEAOF", "x"]):  # fmt: skip
            assert cmd(ours, *argv) == cmd(real, *argv), argv
        assert cmd(ours, "SAVE") == cmd(real, "SAVE") == "OK"
        r1, o1 = cmd(real, "BGREWRITEAOF"), cmd(ours, "BGREWRITEAOF")
        assert r1 == o1 == "Background append only file rewriting started"
        wait_for(lambda: persistence(ours)["aof_rewrite_in_progress"] == 0)
        wait_for(lambda: persistence(real)["aof_rewrite_in_progress"] == 0)
        ri, oi = persistence(real), persistence(ours)
        assert set(ri) == set(oi)
        for k in ("aof_enabled", "aof_rewrite_in_progress", "aof_rewrites",
                  "aof_last_bgrewrite_status", "aof_last_write_status",
                  "rdb_bgsave_in_progress", "rdb_last_bgsave_status",
                  "rdb_changes_since_last_save"):  # fmt: skip
            assert oi[k] == ri[k], k
