"""Plain-text output shared by the commands, without rich (``--json`` runs do not import it:
rich costs ~30 ms of every start-up). tools/render.py re-exports these."""

from __future__ import annotations

import json
import sys
from typing import Any


def printable(text: str) -> str:
    """Text that any terminal encoding accepts: a file name decoded with surrogateescape (a
    manifest may name a non-UTF-8 file) keeps its undecodable bytes as ``\\udcXX`` escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def dumps(doc: Any) -> str:
    """``--json`` output: UTF-8 text, undecodable file-name bytes as escapes."""
    return printable(json.dumps(doc, ensure_ascii=False, indent=1, default=list))


def progress_enabled(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()
