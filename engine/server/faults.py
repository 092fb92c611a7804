"""Crash injection for the fault tests (issue 8): ``VALKEY_ENGINE_CRASH_AT=<point>`` in the
server's environment makes it SIGKILL itself when it reaches that point, so a test can show the
data directory loads after a kill -9 at every step of a file switch. Unset (always, outside the
tests) :func:`crash_point` is one string comparison.

Points: ``rewrite-base-renamed`` (the new base is in place, the manifest is still the old one),
``manifest-temp-written`` (``temp-<name>.manifest`` written and fsynced, not renamed),
``manifest-renamed`` (the new manifest is in place, history files not removed yet),
``history-removed`` (history files unlinked, the manifest still lists them),
``rdb-save-midway`` (SAVE/BGSAVE has written part of ``temp-<pid>.rdb``). ``<point>:<n>``
crashes the n-th time (a BGREWRITEAOF persists the manifest three times: new incr, new base,
history gone).
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger("valkey-engine")

_SPEC = os.environ.get("VALKEY_ENGINE_CRASH_AT", "")
CRASH_AT, _, _NTH = _SPEC.partition(":")  # "<point>[:<n>]": the n-th time it is reached
_hits = 0


def crash_point(name: str) -> None:
    global _hits
    if CRASH_AT and name == CRASH_AT:
        _hits += 1
        if _hits < int(_NTH or 1):
            return
        log.warning("Crash point %s reached: SIGKILL (VALKEY_ENGINE_CRASH_AT)", _SPEC)
        for h in log.handlers:
            h.flush()
        os.kill(os.getpid(), signal.SIGKILL)
