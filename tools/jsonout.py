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


def dumps(doc: Any, flat: tuple[str, str] | None = None) -> str:
    """``--json`` output: UTF-8 text, undecodable file-name bytes as escapes.

    ``flat``: the keys of a big str -> int dict at ``doc[flat[0]][flat[1]]`` (inspect's up to
    16,384 slots), encoded by json's C encoder: with ``indent``, json encodes in Python at
    ~0.6 us an item. The text is the same (tests/test_inspect_speedups.py)."""
    big = _big_dict(doc, flat)
    if big is None or flat is None:
        return printable(json.dumps(doc, ensure_ascii=False, indent=1, default=list))
    outer, key = flat
    rest = {**doc, outer: {**doc[outer], key: _MARK}}
    text = json.dumps(rest, ensure_ascii=False, indent=1, default=list)
    mark = json.dumps(_MARK)
    at = text.find(mark)
    if text.find(mark, at + 1) >= 0:  # the report holds the mark elsewhere too
        return printable(json.dumps(doc, ensure_ascii=False, indent=1, default=list))
    key_line = text[text.rfind("\n", 0, at) + 1 : at]
    depth = len(key_line) - len(key_line.lstrip(" "))  # indent=1: one space a level
    # indent=1 puts each item on a line of its own one level deeper than the key, and the
    # closing brace at the key's depth, with "," before each line break
    item = "\n" + " " * (depth + 1)
    body = json.dumps(big, ensure_ascii=False, separators=("," + item, ": "))
    flat_text = "{" + item + body[1:-1] + "\n" + " " * depth + "}"
    return printable(text[:at] + flat_text + text[at + len(mark) :])


_MARK = "\x00valkey-aof: a flat dict goes here\x00"


def _big_dict(doc: Any, flat: tuple[str, str] | None) -> dict[str, int] | None:
    """``doc[flat[0]][flat[1]]`` when it is a dict of over 100 items, str keys, int values."""
    if flat is None or not isinstance(doc, dict):
        return None
    inner = doc.get(flat[0])
    big = inner.get(flat[1]) if isinstance(inner, dict) else None
    if not isinstance(big, dict) or len(big) <= 100:
        return None
    if set(map(type, big)) != {str} or set(map(type, big.values())) != {int}:
        return None
    return big


def progress_enabled(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()
