"""tools/keyspecs.py: the engine-free snapshot of key specs equals the live command table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import engine.engine  # noqa: F401 - registers every command, the cluster ones too
from engine.commands.table import TABLE, lookup
from tools import keyspecs

ROOT = Path(__file__).resolve().parent.parent


def test_snapshot_equals_the_live_table() -> None:
    assert keyspecs.build(TABLE) == keyspecs.SPECS, "run: python -m tools.keyspecs"


def _table_positions(argv: list[bytes]) -> list[int]:
    cmd = lookup(argv)
    return cmd.key_positions(argv) if cmd is not None else []


def _table_single(name: bytes) -> bool:
    cmd = lookup([name])
    return (
        cmd is not None
        and not cmd.container
        and cmd.keys_fn is None
        and cmd.first_key == 1
        and cmd.last_key == 1
    )


def test_answers_equal_the_table_for_every_command() -> None:
    names = [*TABLE, b"nosuchcommand", b"NOSUCH", b"x"]
    args = [b"2", b"k1", b"k2", b"STREAMS", b"a", b"b", b"1", b"2"]
    for name in names:
        for form in (name, name.upper(), name.capitalize()):
            assert keyspecs.single_key(form) == _table_single(form), form
            for n in range(len(args) + 1):
                argv = [form, *args[:n]]
                assert keyspecs.key_positions(argv) == _table_positions(argv), argv
        for sub in TABLE[name].subcommands if name in TABLE else ():
            argv = [name, sub, b"k", b"x"]
            assert keyspecs.key_positions(argv) == _table_positions(argv), argv


def test_inspect_does_not_import_the_engine_for_plain_commands(tmp_path: Path) -> None:
    aof = tmp_path / "a.aof"
    aof.write_bytes(
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
        b"*3\r\n$3\r\nDEL\r\n$1\r\nk\r\n$1\r\nj\r\n*2\r\n$6\r\nNOSUCH\r\n$1\r\nk\r\n"
        b"*3\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n$1\r\nx\r\n"
    )
    code = (
        "import sys; from tools.app import main\n"
        "try: main(['inspect', sys.argv[1], '--json'])\n"
        "except SystemExit as e: assert e.code == 0, e.code\n"
        "assert 'engine.commands' not in sys.modules, 'engine imported'\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(aof)], cwd=ROOT, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr


def test_regenerating_is_idempotent() -> None:
    text = (ROOT / "tools" / "keyspecs.py").read_text()
    head = text.rpartition("\n" + keyspecs.MARKER + "\n")[0]
    assert head + "\n" + keyspecs.render(keyspecs.build(TABLE)) == text
