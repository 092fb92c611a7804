"""Two processes sharing one ``valkey-aof inspect`` report (tools/cmd_inspect.py forks them).

How it works: both processes read the whole input with the same reader, so both see the same
commands in the same runs, the same damage and the same torn tail, and both keep the cheap
counters (names, dbs, TTL forms, MULTI blocks, timeline, imports). The costly per-key
statistics are shared out (``AofStats`` ``parts`` and ``slot_bytes``):

- the top keys (Misra-Gries, the only summary that depends on the order of the keys) are
  counted by the first process alone;
- the distinct keys by the second alone (an exact set, then adaptive sampling: both are a
  function of the set of keys, whatever their order or batching);
- the keys per slot (sums) by both, split at a point of the command stream: the first counts
  the keys of the commands up to ``cut`` bytes, the second those after.

:func:`merge_shares` writes the second's numbers into the first's report: the result is the
one-process report, byte for byte (tests/test_inspect_split.py). Only an AOF whose files are
all RESP is split: an RDB part would be parsed twice for nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from persistence.aof.manifest import find_manifest, read_manifest
from persistence.errors import PersistenceError
from persistence.fileio import open_input
from persistence.stats import rewrite_estimate

SHARES = (frozenset({"top", "slots"}), frozenset({"distinct", "slots"}))
SLOT_SHARE = 0.75  # of the input's bytes: the first process's stretch of slot counting
SPLIT_MIN = 8 << 20  # inputs smaller than this are not worth a second process
_ANY = 1 << 62


def resp_size(path: str | os.PathLike[str]) -> int:
    """Total bytes of the AOF at ``path`` when every file it loads is RESP (or empty), else 0
    (an RDB file or part, or anything the reader would fail on: it reports that itself)."""
    p = Path(path)
    try:
        mp = find_manifest(p)
        if mp is None:
            files = [p] if p.is_file() else []
        else:
            m = read_manifest(mp)
            files = [mp.parent / e.name for e in m.files()]
        total = 0
        for f in files:
            with open_input(f) as fh:
                if fh.read(9).startswith((b"REDIS", b"VALKEY")):
                    return 0
            total += f.stat().st_size
        return total
    except (PersistenceError, OSError):
        return 0


def share_options(index: int, size: int) -> dict[str, Any]:
    """``inspect_path`` keyword arguments of share ``index`` (0 or 1) of an input of ``size``
    bytes."""
    cut = int(size * SLOT_SHARE)
    bounds = (-1, cut) if index == 0 else (cut, _ANY)
    return {"parts": SHARES[index], "slot_bytes": bounds}


def merge_shares(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """``first`` (share 0's report) completed with share 1's distinct keys and slot counts."""
    a, b = first.get("aof"), second.get("aof")
    if a is None or b is None:
        return first
    ta, tb = a["totals"], b["totals"]
    if (ta["commands"], ta["bytes"]) != (tb["commands"], tb["bytes"]):
        raise RuntimeError("the two shares of the inspect report read different commands")
    slots = {int(s): n for s, n in a["slots"].items()}
    for s, n in b["slots"].items():
        slots[int(s)] = slots.get(int(s), 0) + n
    a["slots"] = {str(s): slots[s] for s in sorted(slots)}
    ta["keys_touched"] = keys = tb["keys_touched"]
    ta["keys_touched_exact"] = tb["keys_touched_exact"]
    a["rewrite_estimate"] = rewrite_estimate(ta["commands"], ta["bytes"], keys)
    return first
