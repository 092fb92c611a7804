"""Time, injected: the engine never reads the wall clock itself, so tests can move it."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...

    def now_us(self) -> int: ...


class SystemClock:
    """The wall clock (reading the time is not I/O; sleeping is, and lives in engine/server)."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def now_us(self) -> int:
        return time.time_ns() // 1_000


class ManualClock:
    """A clock tests set and advance by hand."""

    def __init__(self, ms: int = 1_700_000_000_000) -> None:
        self.ms = ms

    def now_ms(self) -> int:
        return self.ms

    def now_us(self) -> int:
        return self.ms * 1000

    def advance(self, ms: int) -> None:
        self.ms += ms
