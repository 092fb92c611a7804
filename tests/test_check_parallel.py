"""``valkey-aof check --jobs N``: the parallel range walk gives the --jobs 1 report, byte for byte,
on every fixture and on files damaged in any range (persistence/aof/check_ranges.py), and the
generic range helpers (persistence/aof/ranges.py) split, limit and join as documented."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistence.aof import check as check_mod
from persistence.aof import check_ranges, ranges
from persistence.aof.check import check
from persistence.aof.encoder import encode_command, timestamp_annotation
from tools.app import main
from tools.parallel import fork_map

A = TypeVar("A")
B = TypeVar("B")
ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "fixtures" / "valkey-9.1.2"
CORRUPT = ROOT / "fixtures" / "corrupt"
FIXTURES = sorted(
    str(p.relative_to(ROOT))
    for p in [*REAL.glob("*/*appendonlydir"), *REAL.glob("*/dump.rdb"),
              *CORRUPT.glob("*/appendonlydir"), *CORRUPT.glob("*/dump.rdb")]
)  # fmt: skip


@pytest.fixture
def tiny_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every RESP part goes through the range walk, in ranges of a few hundred bytes."""
    monkeypatch.setattr(check_mod, "PARALLEL_MIN", 0)
    monkeypatch.setattr(check_ranges, "RANGE_MIN", 200)
    monkeypatch.setattr(check_ranges, "RANGES_PER_JOB", 4)


def _inline(fn: Callable[[A], B], items: Sequence[A], jobs: int) -> list[B]:
    """A pmap without processes: the same split and join, fast enough for hypothesis."""
    return [fn(x) for x in items]


def _report(path: Path | str, jobs: int, pmap: ranges.PMap = fork_map) -> dict[str, object]:
    report, _ = check(path, jobs=jobs, pmap=pmap)
    return report.to_json()


@pytest.mark.parametrize("src", FIXTURES)
def test_every_fixture_same_report(src: str, tiny_ranges: None) -> None:
    one = _report(ROOT / src, 1)
    assert _report(ROOT / src, 2) == one
    assert _report(ROOT / src, 3) == one


# ---- hand-made files, damaged in the 2nd or 3rd range ----------------------------------------


def _aof(n: int = 400, *, multi_every: int = 0, tricky: bool = False) -> bytes:
    """``n`` SETs (values of several sizes), a #TS line now and then, MULTI/EXEC blocks, and with
    ``tricky`` values that hold RESP command headers (false range candidates)."""
    out = bytearray()
    for i in range(n):
        if i % 97 == 0:
            out += timestamp_annotation(1_700_000_000 + i)
        if multi_every and i % multi_every == 0:
            out += encode_command([b"MULTI"])
        value = b"v" * (i % 37)
        if tricky and i % 5 == 0:
            value = b"x\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n" * (1 + i % 3)
        out += encode_command([b"SET", b"key:%d" % i, value])
        if multi_every and (i % multi_every == multi_every - 1 or i == n - 1):
            out += encode_command([b"EXEC"])
    return bytes(out)


def _damage(data: bytes, how: str, at: int) -> bytes:
    if how == "garbage":
        return data[:at] + b"garbage!" + data[at:]
    if how == "byte":
        return data[:at] + b"?" + data[at + 1 :]
    if how == "cut":
        return data[:at]
    if how == "zeros":
        return data + b"\0" * 64
    if how == "multi":  # an unexpected MULTI / an EXEC without MULTI / a MULTI left open
        return data[:at] + encode_command([b"multi"]) + data[at:]
    if how == "exec":
        return data[:at] + encode_command([b"Exec"]) + data[at:]
    raise AssertionError(how)


def _command_start(data: bytes, near: int) -> int:
    i = data.find(b"\r\n*", near)
    return len(data) if i < 0 else i + 2


DAMAGES = ["garbage", "byte", "cut", "zeros", "multi", "exec"]


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("where", [0.3, 0.55, 0.8])
@pytest.mark.parametrize("kind", ["plain", "multi", "tricky"])
def test_damage_in_any_range_same_report(
    tmp_path: Path, tiny_ranges: None, how: str, where: float, kind: str
) -> None:
    data = _aof(multi_every=4 if kind == "multi" else 0, tricky=kind == "tricky")
    at = int(len(data) * where)
    if how in ("multi", "exec"):
        at = _command_start(data, at)
    f = tmp_path / "appendonly.aof"
    f.write_bytes(_damage(data, how, at))
    one = _report(f, 1)
    assert _report(f, 3) == one


@pytest.mark.parametrize("kind", ["plain", "multi", "tricky"])
def test_valid_files_same_report(tmp_path: Path, tiny_ranges: None, kind: str) -> None:
    f = tmp_path / "appendonly.aof"
    f.write_bytes(_aof(multi_every=3 if kind == "multi" else 0, tricky=kind == "tricky"))
    one = _report(f, 1)
    assert one["ok"], one
    assert _report(f, 2) == one
    assert _report(f, 4) == one


def test_valid_file_joins_without_a_sequential_pass(
    tmp_path: Path, tiny_ranges: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    resumed: list[int] = []
    real = check_ranges.walk_resp

    def spy(*args: object, **kw: object) -> object:
        resumed.append(int(args[2]))  # type: ignore[call-overload]
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(check_ranges, "walk_resp", spy)
    f = tmp_path / "appendonly.aof"
    data = _aof(multi_every=4)
    f.write_bytes(data)
    assert _report(f, 2) == _report(f, 1)
    assert resumed == []  # every range joined: no sequential walk at all
    f.write_bytes(_damage(data, "garbage", int(len(data) * 0.8)))
    bad = _report(f, 2)
    assert bad == _report(f, 1)
    assert len(resumed) == 1 and resumed[0] > len(data) // 2  # ranges before the damage joined


def test_damage_in_an_incr_file_of_a_directory(tmp_path: Path, tiny_ranges: None) -> None:
    d = tmp_path / "appendonlydir"
    shutil.copytree(REAL / "aof_nopreamble" / "appendonlydir", d)
    incr = sorted(d.glob("*.incr.aof"))[0]
    data = incr.read_bytes() + _aof(300)
    incr.write_bytes(_damage(data, "garbage", int(len(data) * 0.6)))
    one = _report(d, 1)
    assert not one["ok"]
    assert _report(d, 2) == one


# ---- property: any file, any damage, tiny ranges ---------------------------------------------


@st.composite
def _files(draw: st.DrawFn) -> bytes:
    cmds = draw(st.lists(st.sampled_from(["set", "multi", "exec", "ts", "tricky"]), max_size=60))
    out = bytearray()
    for i, c in enumerate(cmds):
        if c == "set":
            out += encode_command([b"SET", b"k%d" % i, b"v" * draw(st.integers(0, 300))])
        elif c == "multi":
            out += encode_command([b"MULTI"])
        elif c == "exec":
            out += encode_command([b"EXEC"])
        elif c == "ts":
            out += timestamp_annotation(1_700_000_000 + i)
        else:
            out += encode_command([b"SET", b"t", b"\r\n*1\r\n$4\r\nEXEC\r\n" * 3])
    data = bytes(out)
    if data and draw(st.booleans()):
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["garbage", "byte", "cut"]))
        data = _damage(data, how, at)
    return data


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=_files(), range_min=st.integers(16, 400))
def test_property_parallel_equals_sequential(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_ranges: None,
    monkeypatch: pytest.MonkeyPatch,
    data: bytes,
    range_min: int,
) -> None:
    monkeypatch.setattr(check_ranges, "RANGE_MIN", range_min)
    f = tmp_path_factory.mktemp("prop") / "appendonly.aof"
    f.write_bytes(data)
    assert _report(f, 3, _inline) == _report(f, 1)


# ---- the CLI ---------------------------------------------------------------------------------


def test_cli_jobs_same_output(tmp_path: Path, tiny_ranges: None) -> None:
    f = tmp_path / "appendonly.aof"
    f.write_bytes(_damage(_aof(tricky=True), "garbage", 9000))
    runs = [CliRunner().invoke(main, ["check", str(f), "--json", "--jobs", j]) for j in ("1", "2")]
    assert runs[0].exit_code == runs[1].exit_code == 3
    assert runs[0].output == runs[1].output
    assert json.loads(runs[0].output.split("\nError:")[0])["problem"]["offset"] > 0
    text = [CliRunner().invoke(main, ["check", str(f), "--jobs", j]).output for j in ("1", "3")]
    assert text[0] == text[1]


def test_cli_jobs_must_be_positive(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["check", str(REAL / "aof_nopreamble"), "--jobs", "0"])
    assert res.exit_code == 2


# ---- persistence/aof/ranges.py ---------------------------------------------------------------


def test_split_gives_increasing_candidates(tmp_path: Path) -> None:
    data = _aof(2000)
    f = tmp_path / "a.aof"
    f.write_bytes(data)
    bounds = ranges.split(f, 0, len(data), 8)
    assert bounds[0] == 0 and bounds[-1] == len(data)
    assert bounds == sorted(set(bounds))
    assert all(data[b - 2 : b + 1] == b"\r\n*" for b in bounds[1:-1])
    assert ranges.split(f, 0, len(data), 1) == [0, len(data)]


def test_open_range_ends_at_the_limit(tmp_path: Path) -> None:
    f = tmp_path / "a"
    f.write_bytes(bytes(range(100)))
    with ranges.open_range(f, 10, 20) as r:
        assert r.read(4) == bytes(range(10, 14))
        assert r.read() == bytes(range(14, 20))
        assert r.read(5) == b""
        r.seek(-3, 1)  # the scanner's refill reads its unconsumed tail again
        assert r.read(100) == bytes(range(17, 20))
        buf = bytearray(50)
        r.seek(15)
        assert r.readinto(buf) == 5 and bytes(buf[:5]) == bytes(range(15, 20))


def _count_lines(path: str, start: int, limit: int) -> tuple[int | None, int]:
    """A RangeFn: newline-terminated records; ends where its last complete line ends."""
    with ranges.open_range(path, start, limit) as f:
        data = f.read()
    end = data.rfind(b"\n") + 1
    return (start + end if end == len(data) else None), data.count(b"\n")


def _lines_file(tmp_path: Path) -> tuple[Path, bytes]:
    f = tmp_path / "lines"
    data = b"".join(b"line %d\n" % i for i in range(1000))
    f.write_bytes(data)
    return f, data


@pytest.mark.parametrize("jobs", [1, 2])
def test_run_ranges_joins(tmp_path: Path, jobs: int) -> None:
    f, data = _lines_file(tmp_path)
    bounds = ranges.split(f, 0, len(data), 4, align=lambda w, at: w.find(b"\n", at) + 1 or -1)
    joined = ranges.run_ranges(f, bounds, _count_lines, jobs, pmap=fork_map)
    assert joined.trusted == len(joined.results) and joined.resume_at is None
    assert sum(r.value for r in joined.results) == 1000


def test_run_ranges_stops_trusting_at_a_bad_guess(tmp_path: Path) -> None:
    f, data = _lines_file(tmp_path)
    good = data.index(b"line 10\n")
    bad = data.index(b"line 500") + 2  # inside a line
    joined = ranges.run_ranges(f, [0, good, bad, len(data)], _count_lines, 1)
    assert joined.trusted == 1  # [good, bad) ends inside a line
    assert joined.resume_at == good


def test_default_jobs_follows_affinity() -> None:
    assert 1 <= ranges.default_jobs() <= ranges.MAX_JOBS
    if hasattr(os, "sched_getaffinity"):
        assert ranges.default_jobs() <= len(os.sched_getaffinity(0))


# ---- tools/parallel.py -----------------------------------------------------------------------


def _square_or_fail(x: int) -> int:
    if x == 13:
        raise ValueError("thirteen")
    return x * x


@pytest.mark.parametrize("jobs", [1, 2, 3, 8])
def test_fork_map_keeps_order(jobs: int) -> None:
    assert fork_map(_square_or_fail, list(range(10)), jobs) == [x * x for x in range(10)]
    assert fork_map(_square_or_fail, [], jobs) == []


def test_fork_map_raises_a_worker_error() -> None:
    with pytest.raises(ValueError, match="thirteen"):
        fork_map(_square_or_fail, list(range(20)), 3)  # 13 is in a child's block
