"""The layering rules of ARCHITECTURE.md, enforced by walking every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IO_MODULES = {"asyncio", "socket", "socketserver", "selectors", "uvloop", "subprocess"}


def _modules(pkg: str) -> list[Path]:
    return sorted((ROOT / pkg).rglob("*.py"))


def _imports(path: Path) -> tuple[set[str], bool, bool]:
    """Top-level imported module names, whether it calls os.fork, whether it calls open()."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    forks = False
    opens = False
    rel_pkg = path.relative_to(ROOT).with_suffix("").parts if path.is_relative_to(ROOT) else ()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel_pkg[: len(rel_pkg) - node.level])
                mod = ".".join([*base, node.module] if node.module else base)
                names.add(mod)
            elif node.module:
                names.add(node.module)
        elif isinstance(node, ast.Call):
            f = node.func
            if (
                isinstance(f, ast.Attribute)
                and f.attr in ("fork", "forkpty")
                and (isinstance(f.value, ast.Name) and f.value.id == "os")
            ):
                forks = True
            if isinstance(f, ast.Name) and f.id == "open":
                opens = True
    return names, forks, opens


def _top(name: str) -> str:
    return name.split(".")[0]


def test_persistence_imports_nothing_of_ours() -> None:
    for path in _modules("persistence"):
        names, forks, _ = _imports(path)
        tops = {_top(n) for n in names}
        assert not tops & {"engine", "tools"}, f"{path} imports {tops & {'engine', 'tools'}}"
        assert not tops & IO_MODULES, f"{path} imports socket/asyncio: {tops & IO_MODULES}"
        assert not forks, f"{path} calls os.fork"


def test_engine_does_not_import_tools_and_only_server_does_io() -> None:
    for path in _modules("engine"):
        names, forks, opens = _imports(path)
        tops = {_top(n) for n in names}
        assert "tools" not in tops, f"{path} imports tools"
        in_server = "server" in path.relative_to(ROOT / "engine").parts[:1]
        if not in_server:
            assert not tops & IO_MODULES, f"{path} imports {tops & IO_MODULES}"
            assert not forks, f"{path} calls os.fork"
            assert not opens, f"{path} opens files"


def test_nothing_imports_tools_but_tools() -> None:
    for pkg in ("engine", "persistence"):
        for path in _modules(pkg):
            names, _, _ = _imports(path)
            assert "tools" not in {_top(n) for n in names}, path


def test_the_checker_catches_a_break(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import socket\nimport os\nos.fork()\nfrom engine import x\nopen('f')\n")
    names, forks, opens = _imports(bad)
    assert "socket" in names and "engine" in names and forks and opens
