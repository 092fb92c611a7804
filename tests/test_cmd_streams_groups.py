"""Stream consumer groups and XREAD against a real valkey-server 9.1.2: XGROUP, XREADGROUP,
XACK, XPENDING, XCLAIM, XAUTOCLAIM, XINFO, lag and entries_read (RESP2 and RESP3, errors,
propagation)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from differential import REAL_ARGS, Differ
from realserver import RealServer, real_server
from test_cmd_streams import reset, resp3, run

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_server(tmp_path_factory.mktemp("stream-groups"), *REAL_ARGS) as srv:
        yield srv


@pytest.fixture
def d(real: RealServer) -> Iterator[Differ]:
    differ = Differ(real)
    reset(differ)
    yield differ
    differ.close()


# ---- groups ----------------------------------------------------------------------------------

GROUP_SCRIPT = """
XGROUP CREATE s g $
XGROUP CREATE s g $ MKSTREAM
XGROUP CREATE s g $ MKSTREAM
XGROUP CREATE s g2 0 ENTRIESREAD -2
XGROUP CREATE s g2 0 ENTRIESREAD x
XGROUP CREATE s g2 0 FOO
XGROUP CREATE s g2 0 ENTRIESREAD 3 MKSTREAM MKSTREAM MKSTREAM
XGROUP CREATE s g2 +
XGROUP CREATE s g2 x
XADD s 1-0 a 1
XADD s 2-0 b 2
XADD s 3-0 c 3
XGROUP CREATE s g2 0 ENTRIESREAD 0
XGROUP SETID s nog 0
XGROUP SETID s g 1 ENTRIESREAD 1
XGROUP SETID s g 1 MKSTREAM
XGROUP SETID s g - ENTRIESREAD 0
XGROUP SETID nokey g 0
XGROUP CREATECONSUMER s g c1
XGROUP CREATECONSUMER s g c1
XGROUP CREATECONSUMER s nog c1
XINFO GROUPS s
XREADGROUP GROUP g c1 STREAMS s >
XREADGROUP GROUP g c1 STREAMS s >
XREADGROUP GROUP g c2 COUNT 1 STREAMS s 0
XREADGROUP GROUP g c1 COUNT 1 STREAMS s 0
XREADGROUP GROUP g c1 STREAMS s 2
XREADGROUP GROUP g2 c3 NOACK COUNT 2 STREAMS s >
XREADGROUP GROUP g2 c3 STREAMS s >
XREADGROUP GROUP g2 c3 STREAMS s $
XREADGROUP GROUP g2 c3 STREAMS s +
XREADGROUP GROUP nog c3 STREAMS s >
XREADGROUP GROUP g c3 STREAMS nokey >
XREADGROUP GROUP g c3 STREAMS s
XREADGROUP STREAMS s >
XREADGROUP GROUP g c3 FOO STREAMS s >
XREADGROUP GROUP g c3 BLOCK x STREAMS s >
XREADGROUP GROUP g c3 BLOCK -1 STREAMS s >
XREADGROUP GROUP g c3 COUNT x STREAMS s >
XREADGROUP GROUP g c3 STREAMS s x
XPENDING s g
XPENDING s g - + 10
XPENDING s g - + 10 c1
XPENDING s g - + 10 nobody
XPENDING s g (1 + 10
XPENDING s g - (3 1
XPENDING s g IDLE 0 - + 10
XPENDING s g IDLE 100000 - + 10
XPENDING s g IDLE x - + 10
XPENDING s g IDLE 5 - +
XPENDING s g - + x
XPENDING s g - + -5
XPENDING s g - +
XPENDING s nog
XPENDING nokey g
XPENDING s g x + 10
XACK s g 1-0 1-0 9-0
XACK s g x
XACK s nog 1-0
XACK nokey g 1-0
XACK s g 1
XPENDING s g
XGROUP DELCONSUMER s g c1
XGROUP DELCONSUMER s g c1
XGROUP DELCONSUMER s g c2
XGROUP DELCONSUMER s nog c2
XINFO GROUPS s
XGROUP DESTROY s g
XGROUP DESTROY s g
XGROUP DESTROY nokey g
XGROUP FOO s g
XGROUP CREATE s
XGROUP DESTROY s g x
XGROUP HELP
XGROUP HELP x
XGROUP
SET str x
XGROUP CREATE str g 0
XGROUP CREATE str g 0 MKSTREAM
XREADGROUP GROUP g c STREAMS str >
XACK str g 1-0
XPENDING str g
"""


def test_groups(d: Differ) -> None:
    run(d, GROUP_SCRIPT, tol=50)


def test_groups_resp3(d: Differ) -> None:
    resp3(d)
    run(d, GROUP_SCRIPT, tol=50)


CLAIM_SCRIPT = """
XADD s 1-0 a 1
XADD s 2-0 b 2
XADD s 3-0 c 3
XADD s 4-0 d 4
XGROUP CREATE s g 0
XREADGROUP GROUP g c1 STREAMS s >
XCLAIM s g c2 0 1-0 2
XCLAIM s g c2 0 1-0 JUSTID
XCLAIM s g c2 100000 3-0
XCLAIM s g c3 0 3-0 RETRYCOUNT 7 JUSTID
XCLAIM s g c3 0 4-0 IDLE 5000 JUSTID
XCLAIM s g c3 0 4-0 TIME 1000 JUSTID
XCLAIM s g c3 0 4-0 RETRYCOUNT x
XCLAIM s g c3 0 4-0 IDLE x
XCLAIM s g c3 0 4-0 TIME x
XCLAIM s g c3 x 4-0
XCLAIM s g c3 0 4-0 BOGUS
XCLAIM s g c3 0 4-0 LASTID x
XCLAIM s g c3 0 4-0 LASTID 10-0 JUSTID
XINFO GROUPS s
XCLAIM s nog c3 0 4-0
XCLAIM nokey g c3 0 4-0
XCLAIM s g c4 0 9-0 FORCE
XADD s 5-0 e 5
XCLAIM s g c4 0 5-0 FORCE JUSTID
XDEL s 2-0
XCLAIM s g c4 0 2-0
XPENDING s g - + 10
XAUTOCLAIM s g c5 0 0 COUNT 2
XAUTOCLAIM s g c5 0 3-0 COUNT 2 JUSTID
XAUTOCLAIM s g c5 100000 0
XDEL s 4-0
XAUTOCLAIM s g c6 0 0
XAUTOCLAIM s g c6 0 (1-0
XAUTOCLAIM s g c6 0 0 COUNT 0
XAUTOCLAIM s g c6 0 0 COUNT x
XAUTOCLAIM s g c6 0 0 FOO
XAUTOCLAIM s g c6 x 0
XAUTOCLAIM s g c6 0 x
XAUTOCLAIM s nog c6 0 0
XAUTOCLAIM nokey g c6 0 0
XINFO CONSUMERS s g
XINFO CONSUMERS s nog
XINFO CONSUMERS nokey g
XINFO STREAM s FULL
XINFO STREAM s FULL COUNT 1
XINFO STREAM s FULL COUNT 0
XINFO STREAM s FULL COUNT -1
XINFO STREAM s FULL COUNT x
XINFO STREAM s FULL x 1
XINFO STREAM s FOO
XINFO STREAM s FULL COUNT
XINFO STREAM nokey
XINFO GROUPS nokey
XINFO FOO s
XINFO HELP
XGROUP CREATECONSUMER s g c9
XINFO STREAM s FULL
"""


def test_claim(d: Differ) -> None:
    run(d, CLAIM_SCRIPT, tol=50)


def test_claim_resp3(d: Differ) -> None:
    resp3(d)
    run(d, CLAIM_SCRIPT, tol=50)


XREAD_SCRIPT = """
XADD s 1-0 a 1
XADD s 2-0 b 2
XADD t 5-0 c 3
XREAD STREAMS s 0
XREAD COUNT 1 STREAMS s t 0 0
XREAD STREAMS s t 1 $
XREAD STREAMS s +
XREAD COUNT 5 STREAMS s t + +
XREAD STREAMS nokey +
XREAD STREAMS s 2
XREAD STREAMS s >
XREAD STREAMS s
XREAD GROUP g c STREAMS s 0
XREAD NOACK STREAMS s 0
XREAD COUNT x STREAMS s 0
XREAD FOO STREAMS s 0
XREAD STREAMS s x
XREAD STREAMS s s 0 1
XREAD COUNT -1 STREAMS s 0
XDEL s 2-0
XREAD STREAMS s +
XREAD STREAMS s (1
XGROUP CREATE e g $ MKSTREAM
XREAD STREAMS e +
SET str x
XREAD STREAMS str 0
"""


def test_xread(d: Differ) -> None:
    run(d, XREAD_SCRIPT)


def test_xread_resp3(d: Differ) -> None:
    resp3(d)
    run(d, XREAD_SCRIPT)


def test_lag_and_entries_read(d: Differ) -> None:
    run(
        d,
        """
        XADD s 1-0 a 1
        XADD s 2-0 a 1
        XADD s 3-0 a 1
        XADD s 4-0 a 1
        XGROUP CREATE s g1 0
        XGROUP CREATE s g2 1-0
        XGROUP CREATE s g3 $
        XGROUP CREATE s g4 2-0 ENTRIESREAD 2
        XINFO GROUPS s
        XDEL s 3-0
        XINFO GROUPS s
        XREADGROUP GROUP g1 c COUNT 1 STREAMS s >
        XREADGROUP GROUP g4 c COUNT 1 STREAMS s >
        XINFO GROUPS s
        XDEL s 1-0
        XINFO GROUPS s
        XREADGROUP GROUP g2 c STREAMS s >
        XINFO GROUPS s
        XADD s 5-0 a 1
        XINFO GROUPS s
        XTRIM s MAXLEN 1
        XINFO GROUPS s
        XREADGROUP GROUP g1 c STREAMS s >
        XINFO GROUPS s
        XINFO STREAM s FULL
        XADD u 1-0 a 1
        XADD u 2-0 a 1
        XADD u 3-0 a 1
        XGROUP CREATE u g 1-0
        XDEL u 1-0 2-0
        XINFO GROUPS u
        XREADGROUP GROUP g c STREAMS u >
        XINFO GROUPS u
    """,
        tol=50,
    )
