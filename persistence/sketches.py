"""Constant-memory summaries for streaming statistics (``valkey-aof inspect``): top items with
weights (Misra-Gries), distinct items (exact, then adaptive sampling) and a time series whose
bucket width doubles as it grows."""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field

EXACT_KEYS = 100_000  # distinct items counted exactly up to here, estimated beyond
TIMELINE_BUCKETS = 240


class HeavyHitters:
    """Misra-Gries frequent items with weights: at most ``4 * capacity`` counters. A pruning
    subtracts the (capacity+1)-th largest count from all; each count is a lower bound, short of
    the truth by at most the total pruned (``error``)."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self.counts: Counter[bytes] = Counter()
        self.error = 0

    def add(self, key: bytes, weight: int = 1) -> None:
        c = self.counts
        c[key] = c.get(key, 0) + weight
        self.maybe_prune()

    def add_many(self, keys: list[bytes]) -> None:
        self.counts.update(keys)  # Counter.update counts in C
        self.maybe_prune()

    def maybe_prune(self) -> None:
        if len(self.counts) > 4 * self.capacity:
            self._prune()

    def _prune(self) -> None:
        values = sorted(self.counts.values())  # in C
        cut = values[-(self.capacity + 1)]
        self.error += cut
        kept: Counter[bytes] = Counter()
        if values[-1] > cut:  # else every count goes (as when all keys were new)
            dict.update(kept, {k: v - cut for k, v in self.counts.items() if v > cut})
        self.counts = kept

    def top(self, n: int) -> list[tuple[bytes, int]]:
        return heapq.nlargest(n, self.counts.items(), key=lambda kv: kv[1])


class DistinctCounter:
    """Exact up to ``limit`` distinct items, then adaptive sampling (Flajolet 1990; Gibbons'
    distinct sampling): keep the item hashes that fall below a threshold, halving the threshold
    (and dropping the hashes above it) whenever more than :data:`SAMPLE` are kept; the estimate
    is kept / (threshold fraction). Constant memory, a relative error of about 1/sqrt(SAMPLE)
    (0.4 %), and every step in C (``set.update(filter(...))``)."""

    SAMPLE = 1 << 16

    def __init__(self, limit: int = EXACT_KEYS) -> None:
        self.limit = limit
        self.exact: set[bytes] | None = set()
        self.sample: set[int] = set()
        self.level = 0  # hashes h with h + 2**63 < 2**64 >> level are kept
        self._below = (1 << 63) - 1  # i.e. h < this (hash() is a signed 64-bit int)

    def add(self, item: bytes) -> None:
        self.add_many([item])

    def add_many(self, items: list[bytes]) -> None:
        if self.exact is not None:
            self.exact.update(items)
            if len(self.exact) <= self.limit:
                return
            items = list(self.exact)
            self.exact = None
        self.sample.update(filter(self._below.__gt__, map(hash, items)))
        while len(self.sample) > self.SAMPLE:
            self.level += 1
            self._below = (1 << (64 - self.level)) - (1 << 63)
            below = self._below
            self.sample = {h for h in self.sample if h < below}

    @property
    def is_exact(self) -> bool:
        return self.exact is not None

    def count(self) -> int:
        if self.exact is not None:
            return len(self.exact)
        return len(self.sample) << self.level


@dataclass(slots=True)
class Timeline:
    """Writes per time bucket from ``#TS`` seconds; buckets start at one minute and double."""

    first: int | None = None
    last: int | None = None
    width: int = 60
    buckets: dict[int, int] = field(default_factory=dict)

    def add(self, ts: int, n: int) -> None:
        if self.first is None:
            self.first = ts
        self.last = ts if self.last is None or ts > self.last else self.last
        b = (ts - self.first) // self.width
        self.buckets[b] = self.buckets.get(b, 0) + n
        while len(self.buckets) > TIMELINE_BUCKETS or b >= 4 * TIMELINE_BUCKETS:
            self.width *= 2
            merged: dict[int, int] = {}
            for k, v in self.buckets.items():
                merged[k // 2] = merged.get(k // 2, 0) + v
            self.buckets = merged
            b //= 2

    def series(self) -> list[int]:
        if not self.buckets:
            return []
        return [self.buckets.get(i, 0) for i in range(max(self.buckets) + 1)]
