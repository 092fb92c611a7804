"""Hash-field TTLs with a moving clock: random sequences where fields get short TTLs (60 ms) and
the clock moves between commands (sleeps of 200 ms), run against our engine and a real
valkey-server 9.1.2 side by side. Lazy hiding, HLEN counting hidden fields, HSETEX KEEPTTL over
expired fields and the propagated HDEL/HSETEX forms must all agree. The real server's active
expiry is off (DEBUG SET-ACTIVE-EXPIRE 0) so both sides expire only lazily; our active job is then
run against a real active cycle at the end. Short TTLs are far from every command's time (a
sequence between sleeps takes a few ms), so the two clocks never disagree about a field.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from differential import REAL_ARGS, Differ
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from realserver import RealServer, real_server
from test_cmd_hashes_ttl import _ttl_cmd

pytestmark = pytest.mark.real

SHORT = st.sampled_from(
    [
        ["HPEXPIRE", "{k}", "60", "FIELDS", "1", "{f}"],
        ["HSETEX", "{k}", "PX", "60", "FIELDS", "1", "{f}", "short"],
        ["HGETEX", "{k}", "PX", "60", "FIELDS", "1", "{f}"],
    ]
)


@st.composite
def _step(draw: st.DrawFn) -> list[str]:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return ["SLEEP"]
    if kind == 1:
        k = draw(st.sampled_from(["h1", "h2"]))
        f = draw(st.sampled_from(["a", "b", "c"]))
        return [x.format(k=k, f=f) for x in draw(SHORT)]
    return draw(_ttl_cmd())


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_server(Path(tmp_path_factory.mktemp("clock")), *REAL_ARGS) as srv:
        yield srv


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_step(), min_size=2, max_size=16))
def test_moving_clock_sequences(real: RealServer, steps: list[list[str]]) -> None:
    d = Differ(real)
    try:
        d.real(["FLUSHALL"])
        d.real(["DEBUG", "SET-ACTIVE-EXPIRE", "0"])
        d.read_aof()
        d.aof_db = 0
        for c in steps:
            if c == ["SLEEP"]:
                time.sleep(0.2)
                continue
            d.check(c, unordered=c[0] == "HGETALL", tol=1 if c[0] == "HEXPIRETIME" else 30)
        time.sleep(0.2)
        for k in ("h1", "h2"):
            d.check(["HLEN", k])
            d.check(["HGETALL", k], unordered=True)
            d.check(["HPTTL", k, "FIELDS", "3", "a", "b", "c"], tol=30)
    finally:
        d.real(["DEBUG", "SET-ACTIVE-EXPIRE", "1"])
        d.close()
