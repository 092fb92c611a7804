"""What a blocking command returns when it has to wait (BLPOP, BZPOPMIN, XREAD BLOCK ...).

The engine never waits: the handler returns a :class:`Block`; the server parks the client and
executes the same command again when one of ``keys`` is signalled ready (``ctx.ready(key)`` from
a write) or answers ``timeout_reply`` when ``timeout_ms`` passes (0 = forever). Inside MULTI, or
while loading, ``ctx.may_block`` is False and handlers answer as if the timeout had expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Block:
    db: int
    keys: list[bytes]
    timeout_ms: int  # relative; 0 = block forever
    timeout_reply: Any
    # what to run when woken, if not the command as typed (XREAD BLOCK with `$` resolved to the
    # stream's last ID at the first call: src/t_stream.c xreadCommand rewrites the argument)
    resume_argv: list[bytes] | None = None
