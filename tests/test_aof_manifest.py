from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REAL

from persistence.aof.manifest import (
    Manifest,
    ManifestEntry,
    ManifestLineError,
    base_name,
    cat_repr,
    find_manifest,
    format_manifest,
    incr_name,
    needs_repr,
    parse_manifest,
)
from persistence.errors import ManifestError
from persistence.resp.tokens import split_args


def test_fixture_manifests_roundtrip() -> None:
    paths = sorted(REAL.glob("**/*.manifest"))
    assert len(paths) >= 10
    for p in paths:
        data = p.read_bytes()
        m = parse_manifest(data, file=str(p))
        assert m.base is not None and m.incrs
        assert format_manifest(m) == data


def test_parse_fields() -> None:
    m = parse_manifest(
        b"# comment\n"
        b"file appendonly.aof.2.base.rdb seq 2 type b\n"
        b"file appendonly.aof.1.incr.aof seq 1 type h\n"
        b"FILE appendonly.aof.3.incr.aof SEQ 3 TYPE i extra value\r\n"
        b'file "odd name.aof" seq 4 type i\n'
    )
    assert m.base == ManifestEntry("appendonly.aof.2.base.rdb", 2, "b", 2)
    assert [e.name for e in m.history] == ["appendonly.aof.1.incr.aof"]
    assert [(e.name, e.seq) for e in m.incrs] == [
        ("appendonly.aof.3.incr.aof", 3),
        ("odd name.aof", 4),
    ]
    assert [e.name for e in m.files()] == [
        "appendonly.aof.2.base.rdb",
        "appendonly.aof.3.incr.aof",
        "odd name.aof",
    ]
    # format: base, history, incr; quoting only when needed
    out = format_manifest(m)
    assert out.splitlines()[0] == b"file appendonly.aof.2.base.rdb seq 2 type b"
    assert out.splitlines()[1] == b"file appendonly.aof.1.incr.aof seq 1 type h"
    assert out.splitlines()[-1] == b'file "odd name.aof" seq 4 type i'
    again = parse_manifest(out)
    assert [(e.name, e.seq, e.type) for e in again.files() + again.history] == [
        (e.name, e.seq, e.type) for e in m.files() + m.history
    ]


@pytest.mark.parametrize(
    ("data", "message", "line"),
    [
        (b"", "Found an empty AOF manifest", None),
        (b"file a seq 1 type b", "The AOF manifest file contains too long line", 1),
        (
            b"file a seq 1 type b\n" + b"x" * 1100 + b"\n",
            "The AOF manifest file contains too long line",
            2,
        ),
        (b"\n", "Invalid AOF manifest file format", 1),
        (b"   \t\r\n", "Invalid AOF manifest file format", 1),
        (b"file a seq 1\n", "Invalid AOF manifest file format", 1),
        (b"file a seq 1 type b x\n", "Invalid AOF manifest file format", 1),
        (b'file "a seq 1 type b\n', "Invalid AOF manifest file format", 1),
        (b"file a seq 0 type b\n", "Invalid AOF manifest file format", 1),
        (b"file a seq x type b\n", "Invalid AOF manifest file format", 1),
        (b'file a seq 1 type ""\n', "Invalid AOF manifest file format", 1),
        (b"name a seq 1 type b\n", "Invalid AOF manifest file format", 1),
        (b"file dir/a seq 1 type b\n", "File can't be a path, just a filename", 1),
        (b"file a\\\\b seq 1 type b\n", "File can't be a path, just a filename", 1),
        (b"file a seq 1 type b\nfile b seq 2 type b\n", "Found duplicate base file information", 2),
        (b"file a seq 2 type i\nfile b seq 2 type i\n", "Found a non-monotonic sequence number", 2),
        (b"file a seq 3 type i\nfile b seq 1 type i\n", "Found a non-monotonic sequence number", 2),
        (b"file a seq 1 type x\n", "Unknown AOF file type", 1),
    ],
)
def test_errors(data: bytes, message: str, line: int | None) -> None:
    with pytest.raises(ManifestError) as exc:
        parse_manifest(data, file="m.manifest")
    assert exc.value.message == message
    assert exc.value.file == "m.manifest"
    if line is not None:
        assert isinstance(exc.value, ManifestLineError)
        assert exc.value.line == line
        assert f"line {line}" in str(exc.value)


def test_valkey_quirks() -> None:
    # only comments: not empty (lines were read), no files
    assert parse_manifest(b"# nothing\n") == Manifest()
    # a long comment line: the first 1024 bytes are skipped, the rest is read as the next line
    with pytest.raises(ManifestError, match="Invalid AOF manifest file format"):
        parse_manifest(b"#" + b"y" * 1030 + b"\n")
    # seq goes through atoll; the type is the first byte of its value
    m = parse_manifest(b"file a seq 7abc type incr\n")
    assert m.incrs == [ManifestEntry("a", 7, "i", 1)]


def test_split_args() -> None:
    assert split_args(b"a  b\tc") == [b"a", b"b", b"c"]
    assert split_args(b'"x y" z') == [b"x y", b"z"]
    assert split_args(b"\"\\x41\\n\\\"\" 'it\\'s'") == [b'A\n"', b"it's"]
    # Valkey 9 sdssplitargs concatenates quoted and unquoted parts (valkey PR #2098, checked
    # against valkey-server 9.1.2 in tests/test_resp.py)
    assert split_args(b'"abc"d') == [b"abcd"]
    assert split_args(b'"abc') is None
    assert split_args(b"'abc") is None
    assert split_args(b"") == []


def test_repr() -> None:
    assert not needs_repr(b"appendonly.aof.1.base.rdb")
    assert needs_repr(b"a b") and needs_repr(b"a\xff") and needs_repr(b'a"')
    assert cat_repr(b'a b"\\\n\xff') == b'"a b\\"\\\\\\n\\xff"'
    for raw in [b"a b", b'q"uote', b"new\nline", b"\x01\xfe", b"back\\slash"]:
        assert split_args(cat_repr(raw)) == [raw]


def test_names_and_find(tmp_path: Path) -> None:
    assert base_name("appendonly.aof", 2, True) == "appendonly.aof.2.base.rdb"
    assert base_name("appendonly.aof", 2, False) == "appendonly.aof.2.base.aof"
    assert incr_name("appendonly.aof", 5) == "appendonly.aof.5.incr.aof"
    d = REAL / "aof_preamble/appendonlydir"
    assert find_manifest(d) == d / "appendonly.aof.manifest"
    assert find_manifest(d / "appendonly.aof.manifest") == d / "appendonly.aof.manifest"
    assert find_manifest(d / "appendonly.aof.2.incr.aof") is None
    other = tmp_path / "custom"
    other.write_bytes(b"# hi\nfile x seq 1 type b\n")
    assert find_manifest(other) == other
    (tmp_path / "my.aof.manifest").write_bytes(b"file x seq 1 type b\n")
    (tmp_path / "temp-my.aof.manifest").write_bytes(b"file x seq 1 type b\n")
    assert find_manifest(tmp_path) == tmp_path / "my.aof.manifest"
    (tmp_path / "b.manifest").write_bytes(b"file x seq 1 type b\n")
    with pytest.raises(ManifestError, match="several"):
        find_manifest(tmp_path)
    assert find_manifest(tmp_path / "empty_dir_missing") is None
