"""The lines of a ``valkey-aof check`` report as plain data, without rich.

``tools/render.py`` styles these lines (and draws the problem panel); ``check`` prints them
directly when rich would print the same characters anyway (stdout is not a terminal, no problem
panel, nothing rich would rewrite): a plain check then never imports rich (~20 ms of start-up).
"""

from __future__ import annotations

import os
from typing import Any

_LABELS = {"base": "BASE AOF", "incr": "INCR AOF", "rdb": "RDB"}
_STYLES = {"ok": "green", "empty": "green", "damaged": "red bold"}
_WORDS = {"ok": "is valid", "empty": "is empty", "damaged": "is not valid"}


def analyzed_line(f: dict[str, Any]) -> str:
    """valkey-check-aof's summary line (src/valkey-check-aof.c checkSingleAof)."""
    return (
        f"AOF analyzed: filename={f['name']}, size={f['size']}, ok_up_to={f['ok_up_to']}, "
        f"ok_up_to_line={f['ok_up_to_line']}, diff={f['diff']}"
    )


def status_lines(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(text, rich style) of each line before the problem panel, from ``CheckReport.to_json``."""
    out: list[tuple[str, str]] = []
    for f in data["files"]:
        if f["status"] == "unchecked":
            out.append((f"{f['name']}: not checked (after the first problem)", "dim"))
            continue
        if f["status"] == "missing":
            continue
        label = _LABELS.get(f["kind"], "AOF")
        if f["format"] in ("resp", "preamble"):
            out.append((analyzed_line(f), ""))
        fmt = f" (RDB v{f['rdb_version']})" if f.get("rdb_version") else ""
        out.append(
            (f"{label} {f['name']}{fmt} {_WORDS[f['status']]}", _STYLES.get(f["status"], ""))
        )
    if data.get("problem") is None and data["input"] == "manifest":
        out.append(("All AOF files and manifest are valid", "green bold"))
    return out


def plain_report(data: dict[str, Any], *, isatty: bool) -> str | None:
    """The report as rich would print it to a file that is not a terminal, or None when only
    rich can print it (a problem panel, a terminal, forced colours, or text rich would clean)."""
    if isatty or data.get("problem") is not None:
        return None
    if "FORCE_COLOR" in os.environ or "TTY_COMPATIBLE" in os.environ:  # rich may style anyway
        return None
    lines = [text for text, _ in status_lines(data)]
    if not all(line.isprintable() for line in lines):  # rich strips control codes, expands tabs
        return None
    return "".join(line + "\n" for line in lines)
