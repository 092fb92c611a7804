"""No command handler changes ``argv`` in place: the server writes a command propagated as typed
to the AOF as the request's bytes (RequestParser.last_raw), so an ``argv`` changed after
parsing would make the AOF disagree with what ran. A handler that wants another form propagates
a new list with ``ctx.rewrite`` (docs/engine.md)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTATORS = {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"}


def _is_argv(e: ast.expr) -> bool:
    return isinstance(e, ast.Name) and e.id == "argv"


def _mutations_in(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[int]:
    """Lines where ``fn`` changes its ``argv`` parameter in place."""
    lines = []
    for node in ast.walk(fn):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        for t in targets:
            if isinstance(t, ast.Subscript) and _is_argv(t.value):
                lines.append(t.lineno)
            if isinstance(node, ast.AugAssign) and _is_argv(t):
                lines.append(t.lineno)  # argv += [...] extends the list in place
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "argv"
            and node.func.attr in MUTATORS
        ):
            lines.append(node.lineno)
    return lines


def _argv_mutations(tree: ast.AST) -> list[int]:
    """Lines where a function taking ``argv`` changes that list in place (a function that
    binds ``argv`` to a list of its own is building a command, not changing one)."""
    lines = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if "argv" not in {a.arg for a in fn.args.args + fn.args.kwonlyargs}:
            continue
        rebinds = any(
            isinstance(n, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "argv" for t in n.targets)
            for n in ast.walk(fn)
        )
        if not rebinds:
            lines += _mutations_in(fn)
    return sorted(set(lines))


def test_no_handler_mutates_argv() -> None:
    found = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        if "server" in path.relative_to(ROOT / "engine").parts:
            continue  # the I/O layer builds its own argv lists (cluster bus, migration links)
        for line in _argv_mutations(ast.parse(path.read_text(), str(path))):
            found.append(f"{path.relative_to(ROOT)}:{line}")
    assert found == []


def test_the_check_finds_mutations() -> None:
    code = "def h(ctx, argv):\n    argv[1] = b'x'\n    argv.append(b'y')\n    argv += [b'z']\n"
    assert _argv_mutations(ast.parse(code)) == [2, 3, 4]
    builds = "def f(msg):\n    argv = [b'A']\n    argv += [b'B']\n    return argv\n"
    assert _argv_mutations(ast.parse(builds)) == []
