"""Value type: sorted sets, a dict member -> score plus a sorted list of (score, member).

How this works: ``scores`` answers ZSCORE/ZADD lookups in O(1); ``sl`` (a
``sortedcontainers.SortedList`` of ``(score, member)`` tuples) keeps Valkey's order: by score,
then by member bytes (memcmp, like sdscmp), and gives ranks and ranges in O(log n).
``listpack`` says whether Valkey would keep the set in a listpack or in a skiplist; the rules
are src/t_zset.c (zsetTypeCreate, zsetTypeMaybeConvert, zsetAdd, zsetConvertToListpackIfNeeded)
with ``zset-max-listpack-entries`` / ``zset-max-listpack-value``; upgrades are sticky.

A listpack stores an integral score as an integer, so ``-0`` is read back as ``0``: while in a
listpack we store ``0.0`` for a zero score (src/t_zset.c zzlInsertAt uses double2ll).
"""

from __future__ import annotations

from collections.abc import Iterable

from sortedcontainers import SortedList  # type: ignore[import-untyped]

from engine.types.base import TypeInfo, register
from persistence.records import Value, ZSetValue

# (zset-max-listpack-entries, zset-max-listpack-value)
Limits = tuple[int, int]
DEFAULT_LIMITS: Limits = (128, 64)


def limits_of(config_values: dict[str, object]) -> Limits:
    return (
        int(config_values["zset-max-listpack-entries"]),  # type: ignore[call-overload]
        int(config_values["zset-max-listpack-value"]),  # type: ignore[call-overload]
    )


class _Top:
    """Compares greater than any bytes: ``(score, TOP)`` sorts after every member of score."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return True

    def __le__(self, other: object) -> bool:
        return other is self

    def __ge__(self, other: object) -> bool:
        return True


TOP = _Top()


class ZSetObject:
    __slots__ = ("listpack", "scores", "sl")

    def __init__(self, listpack: bool = True) -> None:
        self.scores: dict[bytes, float] = {}
        self.sl: SortedList = SortedList()
        self.listpack = listpack

    def __len__(self) -> int:
        return len(self.scores)

    def __repr__(self) -> str:
        enc = "listpack" if self.listpack else "skiplist"
        return f"ZSetObject({enc}, {list(self.sl)!r})"

    # -- changes --------------------------------------------------------------------------
    def insert(self, member: bytes, score: float, lim: Limits) -> None:
        """Add a member that is not there (zsetAdd's insert branch)."""
        if self.listpack and (len(self.scores) + 1 > lim[0] or len(member) > lim[1]):
            self.listpack = False
        if self.listpack and score == 0.0:
            score = 0.0  # src/t_zset.c zzlInsertAt: double2ll stores -0 as integer 0
        self.scores[member] = score
        self.sl.add((score, member))

    def update(self, member: bytes, old: float, new: float) -> None:
        if self.listpack and new == 0.0:
            new = 0.0
        sl = self.sl
        sl.remove((old, member))
        sl.add((new, member))
        self.scores[member] = new

    def remove(self, member: bytes) -> bool:
        score = self.scores.pop(member, None)
        if score is None:
            return False
        self.sl.remove((score, member))
        return True

    def pop_at(self, index: int) -> tuple[float, bytes]:
        score, member = self.sl.pop(index)
        del self.scores[member]
        return score, member

    def delete_slice(self, start: int, stop: int) -> int:
        """Remove ranks [start, stop); returns how many."""
        sl = self.sl
        items = sl[start:stop]
        if not items:
            return 0
        del sl[start:stop]
        scores = self.scores
        for _, m in items:
            del scores[m]
        return len(items)

    def maybe_convert(self, size_hint: int, value_len_hint: int, lim: Limits) -> None:
        """zsetTypeMaybeConvert: ZADD of many or long members goes to a skiplist first."""
        if self.listpack and (size_hint > lim[0] or value_len_hint > lim[1]):
            self.listpack = False

    def convert_to_listpack_if_needed(self, lim: Limits) -> None:
        """zsetConvertToListpackIfNeeded (ZUNIONSTORE/ZINTERSTORE/ZDIFFSTORE results)."""
        if self.listpack:
            return
        if len(self.scores) <= lim[0] and max(map(len, self.scores), default=0) <= lim[1]:
            self._to_listpack()

    def _to_listpack(self) -> None:
        self.listpack = True
        if 0.0 in self.scores.values():
            for m, sc in list(self.scores.items()):
                if sc == 0.0:
                    self.update(m, sc, 0.0)

    def copy(self) -> ZSetObject:
        z = ZSetObject(self.listpack)
        z.scores = self.scores.copy()
        z.sl = SortedList(self.sl)
        return z


def create(size_hint: int, value_len_hint: int, lim: Limits) -> ZSetObject:
    """zsetTypeCreate (src/t_zset.c)."""
    return ZSetObject(size_hint <= lim[0] and value_len_hint <= lim[1])


def from_items(items: Iterable[tuple[bytes, float]], lim: Limits = DEFAULT_LIMITS) -> ZSetObject:
    """A sorted set as RDB loading leaves it: a listpack when small enough (src/rdb.c)."""
    z = ZSetObject(False)
    scores = z.scores
    for m, sc in items:
        scores[m] = sc
    z.sl = SortedList((sc, m) for m, sc in scores.items())
    z.convert_to_listpack_if_needed(lim)
    return z


def encoding(value: ZSetObject) -> str:
    return "listpack" if value.listpack else "skiplist"


def _to_record(value: ZSetObject) -> Value:
    return ZSetValue([(m, sc) for sc, m in value.sl])


def _from_record(value: Value) -> ZSetObject:
    assert isinstance(value, ZSetValue)
    return from_items(value.items)


register(TypeInfo("zset", ZSetObject, _to_record, _from_record, encoding, ZSetObject.copy))
