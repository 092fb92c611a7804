"""Fuzz the CLI (issue 8): ``valkey-aof check``, ``export`` and ``inspect`` on the same mutants of
real files and appendonlydirs from fixtures/. Each run exits 0 or 3 with a message, never with a
traceback (tools/app.py ``main`` through click's CliRunner).
"""

from __future__ import annotations

import random
import shutil
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fuzzing import REAL, RdbMutator, case_count, mutate_generic, mutate_resp, rng_for

from tools.app import main

SINGLE = [
    "rdb_lzf/dump.rdb",
    "cluster_node/dump.rdb",
    "aof_timestamp/appendonlydir/appendonly.aof.3.incr.aof",
    "slot_migration/dbbug_target_incr.aof",
    "slot_migration/success_target_appendonlydir/appendonly.aof.1.incr.aof",
]
DIRS = [
    "cluster_node/appendonlydir",
    "slot_migration/success_target_appendonlydir",
    "slot_migration/cancel_target_appendonlydir",
    "aof_timestamp/appendonlydir",
]
COMMANDS = (["check"], ["export", "--now-ms", "1795694332952"], ["inspect", "-q"])


def _mutate(rng: random.Random, path: Path) -> list[str]:
    data = path.read_bytes()
    if data.startswith((b"REDIS", b"VALKEY")):
        new, log = RdbMutator(data).mutate(rng)
    elif path.suffix == ".aof":
        new, log = mutate_resp(rng, data)
    else:
        new, log = mutate_generic(rng, data)
    path.write_bytes(new)
    return [path.name, *log]


def _run(args: list[str]) -> Result:
    return CliRunner().invoke(main, args)


def _verdict(i: int, log: list[str], args: list[str], res: Result) -> str | None:
    out = res.output
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        tb = "".join(traceback.format_exception(res.exception))
        return f"case {i} {log} {args}: exception\n{tb}"
    if res.exit_code not in (0, 3):
        return f"case {i} {log} {args}: exit {res.exit_code}\n{out[-2000:]}"
    if "Traceback" in out:
        return f"case {i} {log} {args}: traceback in the output\n{out[-2000:]}"
    if res.exit_code == 3 and "Error" not in out:
        return f"case {i} {log} {args}: exit 3 without a message\n{out[-2000:]}"
    return None


def test_fuzz_cli(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    rng = rng_for("cli")
    n = case_count(request.config, 240)
    failures: list[str] = []
    exits: dict[int, int] = {}
    for i in range(n):
        work = tmp_path / f"case{i % 3}"
        shutil.rmtree(work, ignore_errors=True)
        if i % 2:
            src = REAL / DIRS[i // 2 % len(DIRS)]
            shutil.copytree(src, work)
            victim = rng.choice(sorted(work.iterdir()))
            target = work
        else:
            src = REAL / SINGLE[i // 2 % len(SINGLE)]
            work.mkdir()
            victim = target = work / src.name
            shutil.copy(src, victim)
        log = _mutate(rng, victim)
        for cmd in COMMANDS:
            args = [*cmd, str(target)]
            res = _run(args)
            exits[res.exit_code] = exits.get(res.exit_code, 0) + 1
            bad = _verdict(i, log, args, res)
            if bad:
                failures.append(bad)
        assert len(failures) < 5, "\n\n".join(failures)
    print(f"fuzz cli: {n} mutants x {len(COMMANDS)} commands, exit codes {exits}")
    assert not failures, "\n\n".join(failures)
    assert exits.get(3) and exits.get(0)


def test_cli_prints_undecodable_manifest_names(tmp_path: Path) -> None:
    # found by test_fuzz_cli: a manifest naming "appendonly.aof.\xc3.incr.aof" made check and
    # inspect crash with UnicodeEncodeError while printing the (missing) file's name
    work = tmp_path / "appendonlydir"
    shutil.copytree(REAL / "cluster_node/appendonlydir", work)
    manifest = work / "appendonly.aof.manifest"
    manifest.write_bytes(manifest.read_bytes().replace(b".2.incr", b".\xc3.incr"))
    for cmd in (["check"], ["inspect", "-q"]):
        res = _run([*cmd, str(work)])
        assert res.exit_code == 3, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit), res.output


def test_cli_inspect_huge_timestamp_annotation(tmp_path: Path) -> None:
    # found by test_fuzz_cli: "#TS:99999999999..." loads (Valkey's strtoll takes it) but inspect
    # dies with OverflowError rendering it as a date
    path = tmp_path / "x.aof"
    path.write_bytes(b"#TS:" + b"9" * 30 + b"\r\n*1\r\n$4\r\nPING\r\n")
    res = _run(["inspect", "-q", str(path)])
    assert res.exit_code in (0, 3), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
