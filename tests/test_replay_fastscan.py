"""The fast input path of ``valkey-aof replay`` (tools/replay_fastscan.py) against the exact one.

For every input, ``Source(fast=True)`` must emit the same commands (argv, file, offset, size,
target db, transaction or not), the same bytes and the same warnings as ``Source(fast=False)``,
which reads everything through persistence.aof.reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lz4.frame
import pytest

from persistence.aof.encoder import encode_command
from persistence.errors import PersistenceError
from tools.replay_fastscan import RawCmds, split_run
from tools.replay_source import Source

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "fixtures" / "valkey-9.1.2"


def emitted(path: Path, fast: bool, **kw: Any) -> tuple[list[Any], bytes, list[str], list[str]]:
    src = Source(path, fast=fast, **kw)
    cmds: list[Any] = []
    data = []
    for seg in src.segments():
        data.append(seg.data)
        for c in seg.cmds:
            cmds.append((c.argv, c.file, c.offset, c.size, seg.db, seg.txn))
        if type(seg.cmds) is RawCmds:  # a raw run's bytes are its commands, back to back
            assert seg.data == b"".join(encode_command(c.argv) for c in seg.cmds)
    st = src.stats
    return cmds, b"".join(data), st.warnings, [*st.notes, str(st.unknown)]


def same(path: Path, **kw: Any) -> list[str]:
    fast = emitted(path, True, **kw)
    exact = emitted(path, False, **kw)
    assert fast == exact
    return Source(path, **kw).stats.fast_bails


FIXTURES = [
    *sorted(str(p.relative_to(REAL)) for p in REAL.glob("**/appendonlydir") if p.is_dir()),
    "rdb_all_comp/dump.rdb",
]


@pytest.mark.parametrize("src", FIXTURES)
def test_fixtures_fast_equals_exact(src: str) -> None:
    same(REAL / src)
    same(REAL / src, map_db=lambda db: 0, remaps=True)


def enc(*cmds: list[bytes]) -> bytes:
    return b"".join(encode_command(c) for c in cmds)


SET = [b"SET", b"k", b"v"]


@pytest.mark.parametrize(
    "body",
    [
        enc(*[[b"SET", b"k%d" % i, b"x" * (i % 700)] for i in range(3000)]),
        b"#TS:1700000000\r\n" + enc(SET) + b"#TS:1700000001\r\n" + enc(SET, SET),
        enc(SET, [b"SELECT", b"3"], SET, [b"MULTI"], SET, [b"SELECT", b"5"], SET, [b"EXEC"], SET),
        enc(SET, [b"MULTI"], SET),  # open MULTI at the end
        enc(SET, SET)[:-3],  # torn command
        enc(SET) + b"*1234567\r\n",  # a huge aggregate header: the exact reader judges
        enc(SET, [b"SET", b"*9999999", b"v"], SET),  # ... or a value that looks like one
        enc(SET, [b"NOSUCHCMD", b"a"], SET, [b"CLUSTER", b"INFO"], SET),
        enc(SET) + b"*3\r\n$3\r\nSET\r\n+k\r\n$1\r\nv\r\n" + enc(SET),  # not bulk strings
        enc(SET, [b"set", b"k", b"v"], [b"SeLeCt", b"1"], [b"multi"], SET, [b"exec"]),
        enc(SET, [b"MOVE", b"k", b"2"], [b"FLUSHDB"], [b"SWAPDB", b"0", b"1"], SET),
        enc(SET) + b"#TS:17000",  # torn annotation
        enc(SET, [b"EXEC"]),  # EXEC alone
        enc(
            *[
                [b"SET", b"k%d" % i, b"a\r\n*3\r\n$3\r\nSET\r\n" * (i % 3), b"\r\n$5\r\n"]
                for i in range(5000)
            ]
        ),  # values that look like RESP headers
    ],
    ids=[
        "big",
        "annotations",
        "select-multi",
        "open-multi",
        "torn",
        "huge-header",
        "huge-lookalike",
        "unknown",
        "not-bulk",
        "cases",
        "db-args",
        "torn-annotation",
        "exec-alone",
        "header-lookalikes",
    ],
)
def test_fast_equals_exact(tmp_path: Path, body: bytes) -> None:
    p = tmp_path / "a.aof"
    p.write_bytes(body)
    try:
        exact = emitted(p, False, known=lambda n: n.lower() != b"nosuchcmd")
    except PersistenceError as e:
        with pytest.raises(type(e)):
            emitted(p, True, known=lambda n: n.lower() != b"nosuchcmd")
        return
    assert emitted(p, True, known=lambda n: n.lower() != b"nosuchcmd") == exact
    flat = {2: 0, 3: 0}
    same(p, map_db=lambda db: flat.get(db, db), remaps=True)


def test_annotations_straddling_chunks(tmp_path: Path) -> None:
    cmds = []
    for i in range(40_000):
        if i % 997 == 0:
            cmds.append(b"#TS:%d\r\n" % (1_700_000_000 + i))
        cmds.append(encode_command([b"SET", b"key:%d" % i, b"v" * (i % 50)]))
    p = tmp_path / "a.aof"
    p.write_bytes(b"".join(cmds))
    assert same(p) == []  # no fallback to the exact reader


def test_lz4_and_small_runs(tmp_path: Path) -> None:
    body = enc(*[[b"SET", b"k%d" % i, b"v"] for i in range(5000)])
    p = tmp_path / "a.aof.lz4"
    p.write_bytes(lz4.frame.compress(body))
    same(p)
    cmds, _, _, _ = emitted(p, True, max_run=7)
    assert len(cmds) == 5000
    src = Source(p, max_run=7)
    assert all(len(seg.cmds) <= 7 for seg in src.segments())


def test_split_run_offsets(tmp_path: Path) -> None:
    p = tmp_path / "a.aof"
    p.write_bytes(enc(*[[b"SET", b"k%d" % i, b"v" * i] for i in range(50)]))
    (seg,) = list(Source(p).segments())
    raw = seg.cmds
    assert isinstance(raw, RawCmds)
    assert [raw.end_of(i) for i in range(50)] == [c.offset + c.size for c in raw]
    from tools.replay_fastscan import Run

    parts = split_run(Run(seg.data, raw), 8)
    assert b"".join(r.data for r in parts) == seg.data
    assert [c.offset for r in parts for c in r.cmds] == [c.offset for c in raw]
