"""Files written by a real valkey-server 9.1.2 in the test itself, for every type, read by us.

The server runs the workload, then we read its contents back over the wire and compare them with
what ``valkey-aof export`` makes of its files: ``dump.rdb`` (with and without compression) and
its ``appendonlydir`` (RDB-preamble base, RESP base, with ``#TS`` annotations), each with writes
after the rewrite so incr files have content too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from realserver import real_server
from server_snapshot import snapshot
from test_export import normalise
from workload import run_workload

from tools.app import main

pytestmark = pytest.mark.real


def _export(path: Path) -> list[dict[str, object]]:
    res = CliRunner().invoke(main, ["export", "--no-encoding", str(path)])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)["keys"]  # type: ignore[no-any-return]


def _wait_rewrite(c: object) -> None:
    for _ in range(600):
        info = c.info("persistence")  # type: ignore[attr-defined]
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            return
        time.sleep(0.05)
    raise AssertionError("rewrite did not finish")


@pytest.mark.parametrize("compression", ["yes", "no"])
def test_rdb_written_by_valkey(tmp_path: Path, compression: str) -> None:
    with real_server(tmp_path, "--rdbcompression", compression) as srv:
        c = srv.client()
        run_workload(c)
        expected = snapshot(c)
        c.save()
    assert normalise(_export(tmp_path / "dump.rdb")) == normalise(expected)


@pytest.mark.parametrize(
    "args",
    [
        ("--aof-use-rdb-preamble", "yes"),
        ("--aof-use-rdb-preamble", "no"),
        ("--aof-use-rdb-preamble", "no", "--aof-timestamp-enabled", "yes"),
    ],
    ids=["preamble", "resp-base", "timestamps"],
)
def test_appendonlydir_written_by_valkey(tmp_path: Path, args: tuple[str, ...]) -> None:
    with real_server(tmp_path, "--appendonly", "yes", *args) as srv:
        c = srv.client()
        run_workload(c)
        c.bgrewriteaof()
        _wait_rewrite(c)
        # writes after the rewrite land in the new incr file
        c.execute_command("SELECT", 1)
        c.execute_command("HSETEX", "after:hfe", "PX", 3_600_000, "FIELDS", 1, "f", "v")
        c.execute_command("MULTI")
        c.execute_command("INCR", "after:n")
        c.execute_command("RPUSH", "after:l", "a")
        c.execute_command("EXEC")
        c.execute_command("SELECT", 0)
        c.execute_command("XREADGROUP", "GROUP", "g2", "carol", "STREAMS", "db0:stream", ">")
        c.execute_command("XADD", "db0:stream", "*", "late", "1")
        c.execute_command("XREADGROUP", "GROUP", "g2", "carol", "STREAMS", "db0:stream", ">")
        expected = snapshot(c)
    assert normalise(_export(tmp_path / "appendonlydir")) == normalise(expected)
