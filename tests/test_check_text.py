"""``valkey-aof check`` prints a report without rich only when rich would print the very same
characters (tools/check_text.py): compared here on every valid fixture and on odd file names."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from persistence.aof.check import check
from tools.check_text import plain_report
from tools.render import check_report

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "fixtures" / "valkey-9.1.2"
VALID = sorted(
    str(p.relative_to(ROOT)) for p in [*REAL.glob("*/*appendonlydir"), *REAL.glob("*/dump.rdb")]
)


def _rich(doc: dict[str, object]) -> str:
    buf = io.StringIO()
    Console(file=buf, soft_wrap=True, highlight=False).print(check_report(doc))
    return buf.getvalue()


@pytest.mark.parametrize("src", VALID)
def test_plain_equals_rich(src: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    doc = check(ROOT / src)[0].to_json()
    assert plain_report(doc, isatty=False) == _rich(doc)


def test_rich_where_it_would_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    doc = check(REAL / "aof_nopreamble" / "appendonlydir")[0].to_json()
    assert plain_report(doc, isatty=True) is None  # a terminal: colours
    odd = {**doc, "files": [{**f, "name": "a\tb\x07"} for f in doc["files"]]}
    assert plain_report(odd, isatty=False) is None  # rich expands tabs, drops control codes
    assert plain_report({**doc, "problem": {"kind": "format"}}, isatty=False) is None
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert plain_report(doc, isatty=False) is None
