"""Value type: sets, a dict of members plus a model of Valkey's encoding.

How this works: the members are the keys of a ``dict`` (values unused), which keeps insertion
order: that is the order of a listpack-encoded set, where Valkey appends new members and
deletes in place. ``enc`` says which of Valkey's three encodings the set would have:

- ``INTSET``: every member is a canonical 64-bit integer (``string2ll``); iteration is in
  ascending numeric order, as an intset is sorted;
- ``LISTPACK``: insertion order;
- ``HASHTABLE``: any order (ours is insertion order; Valkey's is its hash order).

Random picks (SPOP, SRANDMEMBER) are O(1): the first one builds ``keys``, a list of the members
in any order, and stores each member's index in ``keys`` as its dict value; from then on
:meth:`SetObject.add` appends and :meth:`SetObject.remove` swaps the last key into the hole, so
the index stays exact until the members dict is replaced (which drops it). Without the index the
dict values mean nothing. Iteration order (the dict's) is not affected.

The conversions follow src/t_set.c (setTypeCreate, setTypeMaybeConvert, setTypeAddAux,
maybeConvertToIntset) with the ``set-max-intset-entries`` / ``set-max-listpack-entries`` /
``set-max-listpack-value`` limits, and are sticky: removing members never downgrades a set.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from itertools import islice

from engine.types.base import TypeInfo, register
from persistence.records import SetValue, Value
from persistence.resp.tokens import string2ll

INTSET = 0
LISTPACK = 1
HASHTABLE = 2
ENCODING_NAMES = ("intset", "listpack", "hashtable")

# (set-max-intset-entries, set-max-listpack-entries, set-max-listpack-value)
Limits = tuple[int, int, int]
DEFAULT_LIMITS: Limits = (512, 128, 64)


def limits_of(config_values: dict[str, object]) -> Limits:
    """The three thresholds from ``Config.values``."""
    return (
        min(int(config_values["set-max-intset-entries"]), 1 << 30),  # type: ignore[call-overload]
        int(config_values["set-max-listpack-entries"]),  # type: ignore[call-overload]
        int(config_values["set-max-listpack-value"]),  # type: ignore[call-overload]
    )


def is_int(m: bytes) -> bool:
    return len(m) <= 20 and string2ll(m) is not None


_MISSING = -1
_INDEX_FROM = 64  # smaller sets pick by walking the dict, without building the index


class SetObject:
    __slots__ = ("enc", "keys", "members")

    def __init__(self, enc: int = LISTPACK) -> None:
        # member -> its index in ``keys`` while that exists (see the module docstring)
        self.members: dict[bytes, int | None] = {}
        self.enc = enc
        self.keys: list[bytes] | None = None

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, m: bytes) -> bool:
        return m in self.members

    def __repr__(self) -> str:
        return f"SetObject({ENCODING_NAMES[self.enc]}, {list(self.iter())!r})"

    def iter(self) -> Iterable[bytes]:
        """Members in Valkey's iteration order (intset ascending, listpack insertion)."""
        if self.enc == INTSET:
            return sorted(self.members, key=int)
        return self.members

    def add(self, m: bytes, lim: Limits) -> bool:
        """setTypeAddAux (src/t_set.c): add ``m``, converting the encoding when needed."""
        members = self.members
        if m in members:
            return False
        enc = self.enc
        if enc == INTSET:
            if is_int(m):
                if len(members) >= lim[0]:  # maybeConvertIntset (after this add)
                    self.enc = HASHTABLE
            else:
                self._intset_gets_string(m, lim)
        elif enc == LISTPACK and (len(members) >= lim[1] or len(m) > lim[2]):
            self.enc = HASHTABLE
        keys = self.keys
        if keys is None:
            self.members[m] = None
        else:
            self.members[m] = len(keys)
            keys.append(m)
        return True

    def _intset_gets_string(self, m: bytes, lim: Limits) -> None:
        """src/t_set.c: a non-integer into an intset becomes a listpack when it fits."""
        members = self.members
        n = len(members)
        maxlen = max((len(x) for x in members), default=0)
        if n < lim[1] and len(m) <= lim[2] and maxlen <= lim[2]:
            # the listpack is written from the intset: ascending, then the new member
            self.members = dict.fromkeys(sorted(members, key=int))
            self.keys = None
            self.enc = LISTPACK
        else:
            self.enc = HASHTABLE

    def remove(self, m: bytes) -> bool:
        members = self.members
        i = members.pop(m, _MISSING)
        if i == _MISSING:
            return False
        keys = self.keys
        if keys is not None:
            assert i is not None
            last = keys.pop()
            if i < len(keys):  # the last key fills the hole
                keys[i] = last
                members[last] = i
        return True

    def indexed(self) -> list[bytes]:
        """The members as a list (any order) for random picks; O(n) once, then kept."""
        keys = self.keys
        if keys is None:
            members = self.members
            keys = self.keys = list(members)
            members.update(zip(keys, range(len(keys))))
        return keys

    def pick(self, rng: random.Random) -> bytes:
        """A random member (uniform); the set must not be empty."""
        members = self.members
        n = len(members)
        if self.keys is None and n < _INDEX_FROM:
            return next(islice(members, rng.randrange(n), None)) if n > 1 else next(iter(members))
        keys = self.indexed()
        return keys[rng.randrange(n)]

    def replace(self, other: SetObject) -> None:
        """Take ``other``'s members and encoding (SPOP with a count rebuilds the set)."""
        self.members = other.members
        self.enc = other.enc
        self.keys = other.keys

    def maybe_convert(self, size_hint: int, lim: Limits) -> None:
        """setTypeMaybeConvert: a big SADD goes straight to a hashtable."""
        if (self.enc == LISTPACK and size_hint > lim[1]) or (
            self.enc == INTSET and size_hint > lim[0]
        ):
            self.enc = HASHTABLE

    def maybe_to_intset(self, lim: Limits) -> None:
        """maybeConvertToIntset: the caller knows every member is an integer."""
        if self.enc != INTSET and len(self.members) <= lim[0]:
            self.enc = INTSET

    def copy(self) -> SetObject:
        s = SetObject(self.enc)
        s.members = self.members.copy()
        if self.keys is not None:
            s.keys = self.keys.copy()
        return s


def create(first: bytes, size_hint: int, lim: Limits) -> SetObject:
    """setTypeCreate (src/t_set.c): the encoding a new set starts with."""
    if size_hint <= lim[0] and is_int(first):
        return SetObject(INTSET)
    if size_hint <= lim[1]:
        return SetObject(LISTPACK)
    return SetObject(HASHTABLE)


def from_members(members: Iterable[bytes], lim: Limits = DEFAULT_LIMITS) -> SetObject:
    """A set built the way RDB loading builds one (src/rdb.c rdbLoadObject, RDB_TYPE_SET)."""
    items = list(members)
    s = SetObject(HASHTABLE if len(items) > lim[0] else INTSET)
    if s.enc == HASHTABLE:
        s.members = dict.fromkeys(items)
        return s
    for m in items:
        s.add(m, lim)
    return s


def encoding(value: SetObject) -> str:
    return ENCODING_NAMES[value.enc]


def _to_record(value: SetObject) -> Value:
    return SetValue(list(value.iter()))


def _from_record(value: Value) -> SetObject:
    assert isinstance(value, SetValue)
    return from_members(value.members)


register(TypeInfo("set", SetObject, _to_record, _from_record, encoding, SetObject.copy))
