"""``valkey-aof convert``: RDB / single AOF / appendonlydir / JSON outputs, loaded by a real
valkey-server 9.1.2 where it can load them; LZ4 archives; REDIS0011 refusals; --json."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import lz4.frame
import pytest
from realserver import real_server
from server_snapshot import snapshot
from test_export import normalise
from test_rdb_reader import enc_len, enc_str, lp_build, rdb_file
from test_rewrite import SUMMARY_KEYS, TS_DIR, assert_same_live, contents, expected_keys, run

from persistence.fileio import LZ4_FRAME_MAGIC

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "fixtures" / "valkey-9.1.2"
PRE = REAL / "aof_preamble" / "appendonlydir"
NOPRE = REAL / "aof_nopreamble" / "appendonlydir"
RDB = REAL / "rdb_all_nocomp" / "dump.rdb"
NOT_HASH = ["--type", "string,list,set,zset,stream"]


def convert(src: Path, out: Path, *opts: str) -> dict[str, Any]:
    code, stdout, err = run("convert", str(src), "-o", str(out), "--json", *opts)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(stdout)
    return doc


# ---- a real server loads what convert writes -------------------------------------------------


@pytest.mark.real
@pytest.mark.parametrize("src", [PRE, NOPRE], ids=["preamble", "nopreamble"])
def test_appendonlydir_to_rdb_loads(tmp_path: Path, src: Path) -> None:
    convert(src, tmp_path / "data" / "dump.rdb", "--to", "rdb")
    assert (tmp_path / "data" / "dump.rdb").read_bytes().startswith(b"VALKEY080")
    with real_server(tmp_path / "data") as srv:
        got = snapshot(srv.client())
    assert_same_live(got, expected_keys(f"{src.parent.name}/expected.json"))


@pytest.mark.real
def test_redis_0011_loads_and_refuses_field_ttls(tmp_path: Path) -> None:
    out = tmp_path / "data" / "dump.rdb"
    code, _, err = run("convert", str(PRE), "-o", str(out), "--to", "rdb", "--rdb-version", "11")
    assert code == 1
    assert "can't store key" in err and "in RDB version 11" in err and "Traceback" not in err
    assert not out.exists() and list(out.parent.iterdir()) == []  # nothing half-written
    doc = convert(PRE, out, "--to", "rdb", "--rdb-version", "11", *NOT_HASH)
    assert doc["rdb_version"] == 11 and "hash" not in doc["keys_by_type"]
    assert out.read_bytes().startswith(b"REDIS0011")
    with real_server(tmp_path / "data") as srv:
        got = snapshot(srv.client())
    want = [k for k in expected_keys("aof_preamble/expected.json") if k["type"] != "hash"]
    assert_same_live(got, want)


@pytest.mark.real
def test_rdb_to_single_aof_is_upgraded_by_the_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    doc = convert(RDB, data / "appendonly.aof", "--to", "aof")
    assert doc["files"][0]["name"] == "appendonly.aof"
    assert (data / "appendonly.aof").read_bytes().startswith(b"*2\r\n$6\r\nSELECT")
    # an old-style single appendonly.aof and no appendonlydir: valkey-server 9 migrates it into
    # a manifest directory (src/aof.c aofUpgradePrepare)
    with real_server(data, "--appendonly", "yes") as srv:
        got = snapshot(srv.client())
        assert "Successfully migrated an old-style AOF file" in srv.log
    assert (data / "appendonlydir" / "appendonly.aof.manifest").is_file()
    assert_same_live(got, expected_keys("rdb_all_nocomp/expected.json"))


@pytest.mark.real
def test_rdb_to_aofdir_with_resp_base_loads(tmp_path: Path) -> None:
    out = tmp_path / "data" / "appendonlydir"
    doc = convert(RDB, out, "--to", "aofdir", "--base", "aof")
    assert doc["base"] == "aof" and doc["rdb_version"] is None
    with real_server(tmp_path / "data", "--appendonly", "yes") as srv:
        got = snapshot(srv.client())
    assert_same_live(got, expected_keys("rdb_all_nocomp/expected.json"))


# ---- Redis 7.4 field-TTL hashes -> Valkey 9 --------------------------------------------------


def redis74_rdb(path: Path, t_ms: int) -> None:
    """A REDIS0012 file with Redis 7.4's two field-TTL hash encodings and a key TTL."""
    # HASH_METADATA (24): minExpire u64, len, (ttl relative to minExpire + 1 or 0, field, value)
    md = struct.pack("<q", t_ms) + enc_len(2)
    md += enc_len(1) + enc_str(b"a") + enc_str(b"1") + enc_len(0) + enc_str(b"b") + enc_str(b"2")
    # HASH_LISTPACK_EX (25): minExpire, listpack of field, value, absolute ttl (0 = none)
    lpx = lp_build([b"x", b"1", t_ms + 60_000, b"y", b"2", 0])
    body = b"\xfe\x00" + b"\x18" + enc_str(b"h:meta") + md
    body += b"\xfc" + struct.pack("<q", t_ms + 120_000) + b"\x19" + enc_str(b"h:lpex")
    body += struct.pack("<q", t_ms + 60_000) + enc_str(lpx)
    body += b"\x00" + enc_str(b"plain") + enc_str(b"v")
    path.write_bytes(rdb_file(body, magic=b"REDIS0012"))


def field_ttls(client: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in (b"h:meta", b"h:lpex"):
        fields = sorted(client.hkeys(key))
        out[key.decode()] = {
            "fields": {f.decode(): v.decode() for f, v in client.hgetall(key).items()},
            "ttl": client.execute_command("HPEXPIRETIME", key, "FIELDS", len(fields), *fields),
            "key_ttl": client.pexpiretime(key),
        }
    return out


@pytest.mark.real
@pytest.mark.parametrize(
    ("to", "opts", "name"),
    [
        ("rdb", (), "dump.rdb"),
        ("aofdir", ("--base", "rdb"), "appendonlydir"),
        ("aofdir", ("--base", "aof"), "appendonlydir"),
        ("aof", (), "appendonly.aof"),
    ],
    ids=["rdb", "aofdir-rdb", "aofdir-aof", "aof"],
)
def test_redis_74_field_ttls_survive(
    tmp_path: Path, to: str, opts: tuple[str, ...], name: str
) -> None:
    t = (int(time.time()) + 3600) * 1000
    src = tmp_path / "redis74.rdb"
    redis74_rdb(src, t)
    doc = convert(src, tmp_path / "data" / name, "--to", to, *opts)
    assert doc["keys"] == 3 and doc["input_kind"] == "rdb"
    args = () if to == "rdb" else ("--appendonly", "yes")
    with real_server(tmp_path / "data", *args) as srv:
        c = srv.client()
        got = field_ttls(c)
        assert c.get("plain") == b"v"
    assert got == {
        "h:meta": {"fields": {"a": "1", "b": "2"}, "ttl": [t, -1], "key_ttl": -1},
        "h:lpex": {"fields": {"x": "1", "y": "2"}, "ttl": [t + 60_000, -1], "key_ttl": t + 120_000},
    }
    # and REDIS0011 cannot hold them
    code, _, err = run("convert", str(src), "-o", str(tmp_path / "r11"), "--to", "rdb",
                       "--rdb-version", "11")  # fmt: skip
    assert code == 1 and "h:meta" in err


# ---- JSON, LZ4 ------------------------------------------------------------------------------


def test_json_equals_export(tmp_path: Path) -> None:
    for src in (RDB, PRE):
        out = tmp_path / f"{src.name}.json"
        doc = convert(src, out, "--to", "json")
        assert doc["files"][0]["size"] == out.stat().st_size
        code, exported, _ = run("export", str(src))
        assert code == 0
        assert normalise(json.loads(out.read_text())["keys"]) == normalise(
            json.loads(exported)["keys"]
        )


def test_lz4_outputs_read_back(tmp_path: Path) -> None:
    for to in ("rdb", "aof", "json"):
        out = tmp_path / f"out.{to}.lz4"
        doc = convert(PRE, out, "--to", to, "--compress", "lz4")
        assert doc["compress"] == "lz4"
        raw = out.read_bytes()
        assert raw.startswith(LZ4_FRAME_MAGIC)
        if to == "json":
            keys = json.loads(lz4.frame.decompress(raw))["keys"]
            assert normalise(keys) == contents(PRE)
        else:
            assert contents(out) == contents(PRE)  # every reader opens LZ4 transparently
        # an LZ4 input converts like the plain one
        again = tmp_path / f"again.{to}"
        if to != "json":
            convert(out, again, "--to", "rdb")
            assert contents(again) == contents(PRE)


def test_uncompressed_single_files(tmp_path: Path) -> None:
    convert(PRE, tmp_path / "d.rdb", "--to", "rdb")
    convert(PRE, tmp_path / "a.aof", "--to", "aof")
    assert contents(tmp_path / "d.rdb") == contents(tmp_path / "a.aof") == contents(PRE)
    # RDB to RDB (and an RDB in, an RDB out, without replay)
    doc = convert(tmp_path / "d.rdb", tmp_path / "e.rdb", "--to", "rdb")
    assert doc["input_kind"] == "rdb" and contents(tmp_path / "e.rdb") == contents(PRE)


# ---- options --------------------------------------------------------------------------------


def test_usage_errors(tmp_path: Path) -> None:
    out = str(tmp_path / "o")
    for opts in (
        [], ["--to", "xml"], ["--to", "aofdir", "--compress", "lz4"],
        ["--to", "rdb", "--base", "aof"], ["--to", "aof", "--rdb-version", "11"],
        ["--to", "rdb", "--rdb-version", "12"], ["--to", "rdb", "--compress", "gz"],
        ["--to", "aofdir", "--base", "aof", "--rdb-version", "11"],
        ["--to", "rdb", "--slot", "99999"],
    ):  # fmt: skip
        code, _, err = run("convert", str(RDB), "-o", out, *opts)
        assert code == 2, (opts, err)
    assert run("convert", str(RDB), "--to", "rdb")[0] == 2
    assert not (tmp_path / "o").exists()


def test_json_schema(tmp_path: Path) -> None:
    doc = convert(RDB, tmp_path / "o.rdb", "--to", "rdb", "--rdb-version", "11", *NOT_HASH)
    assert set(doc) == SUMMARY_KEYS
    assert doc["command"] == "convert" and doc["to"] == "rdb" and doc["rdb_version"] == 11
    assert doc["base"] is None and doc["compress"] is None and doc["until"] is None
    assert [f["name"] for f in doc["files"]] == ["o.rdb"]
    doc = convert(RDB, tmp_path / "dir", "--to", "aofdir", "--rdb-version", "11", *NOT_HASH)
    assert doc["base"] == "rdb" and doc["rdb_version"] == 11 and len(doc["files"]) == 3
    assert (tmp_path / "dir" / "appendonly.aof.1.base.rdb").read_bytes().startswith(b"REDIS0011")


def test_filters_until_force_quiet(tmp_path: Path) -> None:
    out = tmp_path / "o.rdb"
    doc = convert(RDB, out, "--to", "rdb", "--db", "0", "--match", "hfe:*", "--map-db", "0:4")
    assert doc["keys_by_db"] == {"4": doc["keys"]} and doc["keys"] > 0
    code, _, err = run("convert", str(RDB), "-o", str(out), "--to", "rdb")
    assert code == 1 and "exists" in err
    code, stdout, err = run("convert", str(RDB), "-o", str(out), "--to", "rdb", "--force", "-q")
    assert code == 0 and stdout == "", err
    assert contents(out) == contents(RDB)
    doc = convert(TS_DIR, tmp_path / "ts.aof", "--to", "aof", "--until", "1795694367")
    assert doc["until"] is not None and doc["input_kind"] == "appendonlydir"
    code, stdout, _ = run("convert", str(RDB), "-o", str(tmp_path / "x.json"), "--to", "json")
    assert code == 0 and "keys" in stdout
