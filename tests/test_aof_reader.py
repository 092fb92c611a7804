from __future__ import annotations

import shutil
from pathlib import Path

import lz4.frame
import pytest
from conftest import REAL

from persistence.aof.encoder import encode_command
from persistence.aof.reader import (
    AofCommand,
    AofFileInfo,
    AofItem,
    AofRecord,
    TornTail,
    parse_syncslots,
    read_aof,
)
from persistence.aof.resp_scan import RespScanner
from persistence.errors import FormatError, MissingFileError, TruncatedError

AOF_SETS = ["aof_preamble", "aof_nopreamble", "aof_timestamp"]


def _decoded_sections(name: str) -> dict[str, list[str]]:
    """decoded_commands.txt: '######## <dir>/<file> ...' headers, one command per line."""
    out: dict[str, list[str]] = {}
    cur: list[str] = []
    for line in (REAL / name / "decoded_commands.txt").read_text(errors="replace").splitlines():
        if line.startswith("######## "):
            cur = out.setdefault(line.split()[1], [])
        elif not line.startswith("#TS:"):
            cur.append(line)
    return out


def _commands(items: list[AofItem], file: str | None = None) -> list[AofCommand]:
    return [i for i in items if isinstance(i, AofCommand) and (file is None or i.file == file)]


@pytest.mark.parametrize("name", AOF_SETS)
@pytest.mark.parametrize("folder", ["appendonlydir", "stage1_appendonlydir"])
def test_fixture_counts_offsets_timestamps(name: str, folder: str) -> None:
    sections = _decoded_sections(name)
    d = REAL / name / folder
    items = list(read_aof(d))
    infos = [i for i in items if isinstance(i, AofFileInfo)]
    assert not [i for i in items if isinstance(i, TornTail)]
    for info in infos:
        cmds = _commands(items, info.name)
        key = f"{folder}/{info.name}"
        if key in sections:
            assert len(cmds) == len(sections[key]), key
            for c, line in zip(cmds, sections[key]):
                assert line.startswith(c.argv[0].decode()), (key, line)
        data = (d / info.name).read_bytes()
        assert info.size == len(data)
        for c in cmds:
            assert data[c.offset : c.offset + 1] == b"*"
            assert data[c.offset : c.offset + c.size] == encode_command(c.argv)
        if info.format == "rdb":
            assert info.rdb_version == 80
            assert any(isinstance(i, AofRecord) and i.file == info.name for i in items)
    if name == "aof_timestamp":
        text = b"".join((d / i.name).read_bytes() for i in infos)
        stamps = {int(x.split(b":")[1]) for x in text.split(b"\r\n") if x.startswith(b"#TS:")}
        cmds = _commands(items)
        assert cmds and all(c.timestamp in stamps for c in cmds)
    else:
        assert all(c.timestamp is None for c in _commands(items))


def test_db_tracking_and_multi() -> None:
    items = list(read_aof(REAL / "aof_preamble/appendonlydir"))
    cmds = _commands(items)
    selects = [c for c in cmds if c.argv[0].upper() == b"SELECT"]
    assert selects and all(c.db == int(c.argv[1]) for c in selects)
    names = [c.argv[0].upper() for c in cmds]
    assert names.count(b"MULTI") == names.count(b"EXEC") > 0


@pytest.mark.parametrize(
    "case",
    sorted(p.name for p in (REAL / "slot_migration").glob("*_appendonlydir")),
)
def test_slot_migration_dirs(case: str) -> None:
    items = list(read_aof(REAL / "slot_migration" / case))
    assert not [i for i in items if isinstance(i, TornTail)]
    marks = [m for c in _commands(items) if (m := parse_syncslots(c.argv)) is not None]
    if "target" in case:
        assert marks and marks[0].kind == "establish"
        assert marks[0].ranges == [(100, 102)] and marks[0].source and len(marks[0].job) == 40
        if case.startswith(("success", "cancel")):
            assert marks[-1].kind == "finish" and marks[-1].job == marks[0].job
            assert marks[-1].state == (b"SUCCESS" if case.startswith("success") else b"FAILED")
            if case.startswith("success"):
                assert marks[-1].message == b""
        else:
            assert [m.kind for m in marks] == ["establish"]
    else:
        assert not marks


def test_parse_syncslots() -> None:
    m = parse_syncslots(
        [b"CLUSTER", b"SYNCSLOTS", b"ESTABLISH", b"SOURCE", b"s1", b"NAME", b"j",
         b"SLOTSRANGE", b"1", b"2", b"10", b"20"]
    )  # fmt: skip
    assert m is not None and m.ranges == [(1, 2), (10, 20)] and m.source == b"s1"
    m = parse_syncslots(
        [b"cluster", b"syncslots", b"FINISH", b"STATE", b"FAILED", b"NAME", b"j", b"MESSAGE", b"x"]
    )
    assert m is not None and m.kind == "finish" and m.state == b"FAILED" and m.message == b"x"
    assert parse_syncslots([b"CLUSTER", b"SYNCSLOTS", b"ACK"]) is None
    assert parse_syncslots([b"SET", b"a", b"b"]) is None


def test_cluster_node_dir() -> None:
    items = list(read_aof(REAL / "cluster_node/appendonlydir"))
    assert any(isinstance(i, AofRecord) for i in items)
    assert _commands(items)


# ---- single files, LZ4, RDB preamble + tail ---------------------------------------------


def test_single_files_and_lz4(tmp_path: Path) -> None:
    src = REAL / "aof_timestamp/appendonlydir/appendonly.aof.2.incr.aof"
    plain = [(c.argv, c.offset, c.size, c.timestamp) for c in _commands(list(read_aof(src)))]
    packed = tmp_path / "incr.aof.lz4"
    packed.write_bytes(lz4.frame.compress(src.read_bytes()))
    items = list(read_aof(packed))
    assert isinstance(items[0], AofFileInfo) and items[0].kind == "single"
    assert [(c.argv, c.offset, c.size, c.timestamp) for c in _commands(items)] == plain
    rdb = REAL / "aof_preamble/appendonlydir/appendonly.aof.2.base.rdb"
    rz = tmp_path / "base.rdb.lz4"
    rz.write_bytes(lz4.frame.compress(rdb.read_bytes()))
    assert len([i for i in read_aof(rz) if isinstance(i, AofRecord)]) == len(
        [i for i in read_aof(rdb) if isinstance(i, AofRecord)]
    )


def test_old_style_preamble_with_tail(tmp_path: Path) -> None:
    rdb = (REAL / "aof_preamble/appendonlydir/appendonly.aof.2.base.rdb").read_bytes()
    tail = encode_command([b"SELECT", b"0"]) + encode_command([b"SET", b"x", b"y"])
    p = tmp_path / "appendonly.aof"
    p.write_bytes(rdb + tail)
    items = list(read_aof(p))
    cmds = _commands(items)
    assert [c.argv for c in cmds] == [[b"SELECT", b"0"], [b"SET", b"x", b"y"]]
    assert cmds[0].offset == len(rdb)
    assert items[0].format == "rdb"  # type: ignore[union-attr]


def test_empty_files(tmp_path: Path) -> None:
    p = tmp_path / "empty.aof"
    p.write_bytes(b"")
    items = list(read_aof(p))
    assert len(items) == 1 and isinstance(items[0], AofFileInfo) and items[0].format == "empty"


# ---- damage ----------------------------------------------------------------------------------


def _copy(tmp_path: Path, name: str = "aof_nopreamble") -> Path:
    d = tmp_path / "appendonlydir"
    shutil.copytree(REAL / name / "appendonlydir", d)
    return d


def test_truncated_last_command(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    last = d / "appendonly.aof.3.incr.aof"
    good = _commands(list(read_aof(d)), last.name)
    data = last.read_bytes()
    last.write_bytes(data[:-3])
    items = list(read_aof(d))
    torn = items[-1]
    assert isinstance(torn, TornTail) and torn.kind == "truncated"
    assert torn.offset == good[-1].offset  # end of the last complete command
    assert len(_commands(items, last.name)) == len(good) - 1
    with pytest.raises(TruncatedError) as exc:
        list(read_aof(d, allow_torn_tail=False))
    assert exc.value.offset == good[-1].offset and exc.value.file == last.name


def test_truncated_non_last_file(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    mid = d / "appendonly.aof.2.incr.aof"
    mid.write_bytes(mid.read_bytes()[:-5])
    with pytest.raises(TruncatedError, match="the truncated file is not the last file") as exc:
        list(read_aof(d))
    assert exc.value.file == mid.name


def test_truncated_base_rdb(tmp_path: Path) -> None:
    d = _copy(tmp_path, "aof_preamble")
    base = d / "appendonly.aof.2.base.rdb"
    base.write_bytes(base.read_bytes()[:-100])
    with pytest.raises(TruncatedError) as exc:
        list(read_aof(d))
    assert exc.value.file == base.name


def test_zero_padding_tail(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    last = d / "appendonly.aof.3.incr.aof"
    size = last.stat().st_size
    last.write_bytes(last.read_bytes() + b"\0" * 4096)
    with pytest.raises(FormatError, match="Bad file format") as exc:
        list(read_aof(d))
    assert not isinstance(exc.value, TruncatedError)
    assert exc.value.offset == size and exc.value.file == last.name


def test_dangling_multi(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    last = d / "appendonly.aof.3.incr.aof"
    size = last.stat().st_size
    last.write_bytes(
        last.read_bytes() + encode_command([b"MULTI"]) + encode_command([b"SET", b"a", b"b"])
    )
    items = list(read_aof(d))
    torn = items[-1]
    assert isinstance(torn, TornTail) and torn.kind == "multi" and torn.offset == size
    assert not any(c.argv == [b"SET", b"a", b"b"] for c in _commands(items))
    # the same inside a non-last file is fatal
    mid = d / "appendonly.aof.2.incr.aof"
    mid.write_bytes(mid.read_bytes() + encode_command([b"MULTI"]))
    last.write_bytes(last.read_bytes()[:size])
    with pytest.raises(TruncatedError, match="not the last file"):
        list(read_aof(d))


def test_multi_blocks(tmp_path: Path) -> None:
    p = tmp_path / "a.aof"
    p.write_bytes(
        encode_command([b"MULTI"])
        + encode_command([b"SELECT", b"2"])
        + encode_command([b"SET", b"a", b"1"])
        + encode_command([b"EXEC"])
        + encode_command([b"SET", b"b", b"2"])
    )
    cmds = _commands(list(read_aof(p)))
    assert [c.argv[0] for c in cmds] == [b"MULTI", b"SELECT", b"SET", b"EXEC", b"SET"]
    assert [c.db for c in cmds] == [0, 2, 2, 2, 2]
    p.write_bytes(encode_command([b"MULTI"]) + encode_command([b"multi"]))
    with pytest.raises(FormatError, match="Unexpected MULTI"):
        list(read_aof(p))
    p.write_bytes(encode_command([b"SET", b"a", b"1"]) + encode_command([b"EXEC"]))
    with pytest.raises(FormatError, match="Unexpected EXEC") as exc:
        list(read_aof(p))
    assert exc.value.offset == len(encode_command([b"SET", b"a", b"1"]))


def test_missing_file(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    (d / "appendonly.aof.2.incr.aof").unlink()
    with pytest.raises(MissingFileError, match=r"appendonly\.aof\.2\.incr\.aof"):
        list(read_aof(d))


def test_garbage_in_the_middle(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    mid = d / "appendonly.aof.2.incr.aof"
    good = _commands(list(read_aof(d)), mid.name)
    at = good[10].offset
    data = mid.read_bytes()
    mid.write_bytes(data[:at] + b"hello world\r\n" + data[at:])
    with pytest.raises(FormatError, match="Bad file format reading the append only file") as exc:
        list(read_aof(d))
    assert exc.value.file == mid.name and exc.value.offset == at
    assert not isinstance(exc.value, TruncatedError)


def test_annotations(tmp_path: Path) -> None:
    p = tmp_path / "a.aof"
    set_a = encode_command([b"SET", b"a", b"1"])
    p.write_bytes(b"#TS:100\r\n" + set_a + b"# any comment\r\n#TS:200\r\n" + set_a)
    cmds = _commands(list(read_aof(p)))
    assert [c.timestamp for c in cmds] == [100, 200]
    assert cmds[1].offset == 9 + len(set_a) + 15 + 9
    p.write_bytes(b"#TS:12x\r\n" + set_a)
    with pytest.raises(FormatError, match="Invalid timestamp annotation"):
        list(read_aof(p))
    p.write_bytes(b"#" + b"x" * 1100 + b"\r\n" + set_a)
    with pytest.raises(FormatError, match="annotation line longer"):
        list(read_aof(p))


def test_timestamps_carry_across_files() -> None:
    items = list(read_aof(REAL / "aof_timestamp/appendonlydir"))
    assert all(c.timestamp is not None for c in _commands(items))


def test_truncation_fuzz(tmp_path: Path) -> None:
    src = REAL / "aof_timestamp/appendonlydir/appendonly.aof.2.incr.aof"
    data = src.read_bytes()
    full = _commands(list(read_aof(src)))
    ends = {c.offset + c.size for c in full} | {0}
    p = tmp_path / "t.aof"
    for cut in range(len(data) - 200, len(data) + 1):
        p.write_bytes(data[:cut])
        items = list(read_aof(p))
        cmds = _commands(items)
        tail = items[-1]
        if isinstance(tail, TornTail):
            assert tail.offset in ends or tail.kind == "multi"
            assert tail.offset <= cut
        assert all(c.offset + c.size <= cut for c in cmds)


def test_scanner_chunk_boundaries() -> None:
    # tiny chunks force every item to straddle buffer refills; results must not change
    src = REAL / "aof_timestamp/appendonlydir/appendonly.aof.2.incr.aof"
    with open(src, "rb") as f:
        ref = [(c.argv, c.offset, c.size, c.timestamp) for c in RespScanner(f, file="x")]
    for chunk in (1, 7, 64, 1000):
        with open(src, "rb") as f:
            got = [
                (c.argv, c.offset, c.size, c.timestamp)
                for c in RespScanner(f, file="x", chunk=chunk)
            ]
        assert got == ref


def test_non_canonical_encoding_is_exact(tmp_path: Path) -> None:
    # hiredis rejects what it would miscount; the exact scanner gives right offsets
    p = tmp_path / "a.aof"
    p.write_bytes(b"*1\r\n$04\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
    cmds = _commands(list(read_aof(p)))
    assert [(c.argv, c.offset, c.size) for c in cmds] == [
        ([b"PING"], 0, 15),
        ([b"GET", b"k"], 15, 20),
    ]
    p.write_bytes(b"*1\r\n+OK\r\n*1\r\n$4\r\nPING\r\n")
    with pytest.raises(FormatError, match="expected '\\$'"):
        list(read_aof(p))
