"""Our files, loaded by a real valkey-server 9.1.2: an appendonlydir built with the one encoder
(RESP base) and with the RDB writer (preamble base), each from records a real server saved."""

from __future__ import annotations

from pathlib import Path

import pytest
from realserver import real_server
from server_snapshot import snapshot
from test_export import normalise
from workload import run_workload

from persistence.aof.dirwriter import write_aof_dir
from persistence.aof.reader import AofCommand, read_aof
from persistence.rdb.reader import read_rdb
from persistence.records import KeyRecord

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def saved(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[KeyRecord], list[dict[str, object]]]:
    work = tmp_path_factory.mktemp("source")
    with real_server(work) as srv:
        c = srv.client()
        run_workload(c)
        expected = snapshot(c)
        c.save()
    records = [e for e in read_rdb(work / "dump.rdb") if isinstance(e, KeyRecord)]
    return records, expected


@pytest.mark.parametrize("base", ["aof", "rdb"])
def test_valkey_loads_our_appendonlydir(
    tmp_path: Path, base: str, saved: tuple[list[KeyRecord], list[dict[str, object]]]
) -> None:
    records, expected = saved
    write_aof_dir(tmp_path / "appendonlydir", records, base=base)  # type: ignore[arg-type]
    with real_server(tmp_path, "--appendonly", "yes") as srv:
        got = snapshot(srv.client())
        assert "DB loaded from" in srv.log or "Done loading" in srv.log
    assert normalise(got) == normalise(expected)  # type: ignore[arg-type]


def test_resp_base_is_what_the_encoder_writes(
    tmp_path: Path, saved: tuple[list[KeyRecord], list[dict[str, object]]]
) -> None:
    records, _ = saved
    write_aof_dir(tmp_path / "d", records, base="aof", timestamp=1_700_000_000)
    cmds = [i for i in read_aof(tmp_path / "d") if isinstance(i, AofCommand)]
    assert cmds[0].argv == [b"SELECT", b"0"] and cmds[0].timestamp == 1_700_000_000
    assert {c.argv[0] for c in cmds} >= {b"SET", b"RPUSH", b"SADD", b"ZADD", b"HMSET", b"HSETEX"}
