"""The O(1) random-pick index of set values (engine/types/sets.py): whatever the sequence of
adds, removes, picks, copies and SPOP-with-count rebuilds, the index stays exact, the members
keep their (encoding-defined) iteration order, and SPOP / SRANDMEMBER only ever answer members.
"""

from __future__ import annotations

import random

from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.engine import Engine
from engine.types.sets import DEFAULT_LIMITS, SetObject, create

_MEMBERS = st.sampled_from([b"%d" % i for i in range(40)] + [b"m%d" % i for i in range(120)])
_OPS = st.lists(
    st.tuples(st.sampled_from(["add", "remove", "pick", "copy", "indexed"]), _MEMBERS),
    max_size=400,
)


def _check(s: SetObject, twin: SetObject) -> None:
    # same members, same iteration order and encoding as a set that never built the index
    assert list(s.members) == list(twin.members)
    assert s.enc == twin.enc
    if s.keys is not None:
        assert len(s.keys) == len(s.members)
        assert sorted(s.keys) == sorted(s.members)
        for i, m in enumerate(s.keys):
            assert s.members[m] == i


@settings(max_examples=300, deadline=None)
@given(first=_MEMBERS, ops=_OPS, seed=st.integers(0, 2**32))
@example(first=b"1", ops=[("indexed", b"0"), ("add", b"0")], seed=0)  # intset add, indexed
@example(first=b"1", ops=[("indexed", b"0"), ("add", b"m1"), ("pick", b"0")], seed=0)
def test_index_stays_exact(first: bytes, ops: list[tuple[str, bytes]], seed: int) -> None:
    rng = random.Random(seed)
    s = create(first, 1, DEFAULT_LIMITS)
    twin = create(first, 1, DEFAULT_LIMITS)
    s.add(first, DEFAULT_LIMITS)
    twin.add(first, DEFAULT_LIMITS)
    for op, m in ops:
        if op == "add":
            assert s.add(m, DEFAULT_LIMITS) == twin.add(m, DEFAULT_LIMITS)
        elif op == "remove":
            assert s.remove(m) == twin.remove(m)
        elif op == "pick" and twin.members:
            assert s.pick(rng) in twin.members
        elif op == "copy":
            s = s.copy()
        elif op == "indexed":
            s.indexed()
        _check(s, twin)


def test_spop_and_srandmember_on_a_big_set() -> None:
    e = Engine()
    c = e.new_client()
    members = [b"e%d" % i for i in range(5000)]
    for i in range(0, len(members), 500):
        e.execute(c, [b"SADD", b"s", *members[i : i + 500]])
    seen = set()
    for _ in range(1000):
        reply, effects = e.execute(c, [b"SPOP", b"s"])
        assert reply in members and reply not in seen
        assert effects == [(0, [b"SREM", b"s", reply])]
        seen.add(reply)
    e.execute(c, [b"SADD", b"s", b"new1", b"new2"])
    left = set(members) - seen | {b"new1", b"new2"}
    assert e.execute(c, [b"SCARD", b"s"])[0] == len(left)
    assert e.execute(c, [b"SRANDMEMBER", b"s"])[0] in left
    picked = e.execute(c, [b"SRANDMEMBER", b"s", b"50"])[0]
    assert len(set(picked)) == 50 and set(picked) <= left
    assert set(e.execute(c, [b"SRANDMEMBER", b"s", b"-20"])[0]) <= left
    popped = e.execute(c, [b"SPOP", b"s", b"100"])[0]
    got = {f.value for f in popped.items}
    assert len(got) == 100 and got <= left
    left -= got
    rest = {f.value for f in e.execute(c, [b"SMEMBERS", b"s"])[0].items}
    assert rest == left
    # popping nearly everything takes the rebuild path (src/t_set.c CASE 3)
    popped = e.execute(c, [b"SPOP", b"s", str(len(left) - 3).encode()])[0]
    assert len(popped.items) == len(left) - 3
    remaining = {f.value for f in e.execute(c, [b"SMEMBERS", b"s"])[0].items}
    assert len(remaining) == 3 and remaining <= left
    while e.execute(c, [b"SPOP", b"s"])[0] is not None:
        pass
    assert e.execute(c, [b"EXISTS", b"s"])[0] == 0
