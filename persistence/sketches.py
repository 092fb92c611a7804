"""Constant-memory summaries for streaming statistics (``valkey-aof inspect``): top items with
weights (Misra-Gries), distinct items (exact, then adaptive sampling) and a time series whose
bucket width doubles as it grows."""

from __future__ import annotations

import heapq
from collections import Counter
from functools import partial
from itertools import repeat
from operator import add, gt

EXACT_KEYS = 100_000  # distinct items counted exactly up to here, estimated beyond
PRUNE_CHECK_EVERY = 4096  # keys between two prune checks of HeavyHitters
TIMELINE_BUCKETS = 240


class HeavyHitters:
    """Misra-Gries frequent items with weights: at most ``4 * capacity`` counters. A pruning
    subtracts the (capacity+1)-th largest count from all; each count is a lower bound, short of
    the truth by at most the total pruned (``error``). Prunes are checked at fixed places of
    the key stream (every ``check_every`` keys), so how the keys were split into calls (the
    reader's runs, which change with its internals) does not change the result.

    While every weight added since the counters were last empty was one same ``unit`` (as for
    commands of one size), ``counts`` holds the counts divided by it, added by ``Counter.update``
    in C: the prunes and the order are those of the real counts (all scaled by ``unit``).
    A window of new keys each counted one unit (a bulk load) is pruned to nothing without
    sorting its counts (:meth:`maybe_prune`)."""

    def __init__(self, capacity: int = 1000, check_every: int = PRUNE_CHECK_EVERY) -> None:
        self.capacity = capacity
        self.check_every = check_every
        self.counts: Counter[bytes] = Counter()
        self.unit = 1  # every count is counts[key] * unit
        self.error = 0
        self._to_check = check_every  # keys before the next prune check
        self.seen = 0  # keys added so far: a place in the key stream
        self.emptied_at = -1  # the check place where a prune last kept no counter
        # since the last check place: the counters were empty there (_fresh), and every key
        # added counted one unit (_plain); with as many counters as keys, each holds one unit
        self._fresh = True
        self._plain = True

    def add(self, key: bytes, weight: int = 1) -> None:
        self.add_weights([key], weight)

    def add_many(self, keys: list[bytes]) -> None:
        self.add_weights(keys, 1)

    def add_weights(self, keys: list[bytes], weights: list[int] | int) -> None:
        """Add ``weights[i]`` to ``keys[i]`` (or one weight to every key), pruning at each
        check place the keys pass."""
        n = len(keys)
        left = self._to_check
        if n < left:  # (the common case) no check place among these keys
            self._to_check = left - n
            self.seen += n
            self._add(keys, weights)
            return
        i = 0
        while n - i >= left:
            j = i + left
            self._add(keys[i:j], weights if isinstance(weights, int) else weights[i:j])
            self.maybe_prune()
            self._fresh = not self.counts
            self._plain = True
            if self._fresh:
                self.emptied_at = self.seen + j
            i = j
            left = self.check_every
        self._to_check = left - (n - i)
        self.seen += n
        if i < n:
            self._add(keys[i:], weights if isinstance(weights, int) else weights[i:])

    def _add(self, keys: list[bytes], weights: list[int] | int) -> None:
        counts = self.counts
        if isinstance(weights, int):
            if weights != self.unit and not counts and weights > 0:
                self.unit = weights
            if weights == self.unit:
                counts.update(keys)  # Counter.update counts in C
                return
        self._plain = False
        if self.unit != 1:
            self._unit_one()
            counts = self.counts
        # one C pass: dict.update stores each (key, get(key) + weight) pair before the next
        # pair's get runs (every iterator here is lazy), so a key twice in ``keys`` adds up
        w = repeat(weights) if isinstance(weights, int) else weights
        dict.update(counts, zip(keys, map(add, map(counts.get, keys, repeat(0)), w)))

    def _unit_one(self) -> None:
        unit, counts = self.unit, self.counts
        self.counts = Counter()
        dict.update(self.counts, zip(counts.keys(), map(unit.__mul__, counts.values())))
        self.unit = 1

    def real_counts(self) -> dict[bytes, int]:
        """Each key's count (a lower bound), in insertion order."""
        unit = self.unit
        return dict(zip(self.counts.keys(), map(unit.__mul__, self.counts.values())))

    def scaled(self, factor: int) -> HeavyHitters:
        """A copy with every count and the error times ``factor`` (> 0): what the same adds
        with every weight times ``factor`` would have made (same prunes, same order)."""
        out = HeavyHitters(self.capacity, self.check_every)
        out._to_check = self._to_check
        out.seen = self.seen
        out.emptied_at = self.emptied_at
        out._fresh, out._plain = self._fresh, self._plain
        dict.update(out.counts, self.counts)
        out.unit = self.unit * factor
        out.error = self.error * factor
        return out

    def maybe_prune(self) -> None:
        n = len(self.counts)
        if n <= 4 * self.capacity:
            return
        if self._fresh and self._plain and n == self.check_every:
            # (a window of new keys, as in a bulk load) every count is one unit, so is the
            # (capacity+1)-th largest: _prune would subtract it and keep nothing
            self.error += self.unit
            self.counts = Counter()
            return
        self._prune()

    def _prune(self) -> None:
        values = sorted(self.counts.values())  # in C
        cut = values[-(self.capacity + 1)]
        self.error += cut * self.unit
        kept: Counter[bytes] = Counter()
        if values[-1] > cut:  # else every count goes (as when all keys were new)
            dict.update(kept, {k: v - cut for k, v in self.counts.items() if v > cut})
        self.counts = kept

    def top(self, n: int) -> list[tuple[bytes, int]]:
        unit = self.unit
        return [
            (k, v * unit) for k, v in heapq.nlargest(n, self.counts.items(), key=lambda kv: kv[1])
        ]


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
        self._keep = partial(gt, self._below)  # h -> below > h, a C call (faster than __gt__)

    def add(self, item: bytes) -> None:
        self.add_many([item])

    def add_many(self, items: list[bytes]) -> None:
        if self.exact is not None:
            self.exact.update(items)
            if len(self.exact) <= self.limit:
                return
            # past the limit: a set of the hashes (two keys may share one), then the level is
            # found on lists of its members (cheaper than a set's trims)
            kept: set[int] | list[int] = set(filter(self._keep, map(hash, self.exact)))
            self.exact = None
            while len(kept) > self.SAMPLE:
                self._level_up()
                kept = list(filter(self._keep, kept))
            self.sample.update(kept)
            return
        self.sample.update(filter(self._keep, map(hash, items)))
        while len(self.sample) > self.SAMPLE:
            self._level_up()
            self.sample = set(filter(self._keep, self.sample))

    def _level_up(self) -> None:
        self.level += 1
        self._below = (1 << (64 - self.level)) - (1 << 63)
        self._keep = partial(gt, self._below)

    @property
    def is_exact(self) -> bool:
        return self.exact is not None

    def count(self) -> int:
        if self.exact is not None:
            return len(self.exact)
        return len(self.sample) << self.level


class Timeline:
    """Writes per time bucket from ``#TS`` seconds; buckets start at one minute and double.
    (A plain class: a dataclass compiles its methods at import, on every start-up.)"""

    __slots__ = ("buckets", "first", "last", "width")

    def __init__(self) -> None:
        self.first: int | None = None
        self.last: int | None = None
        self.width = 60
        self.buckets: dict[int, int] = {}

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
