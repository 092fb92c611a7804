"""MULTI EXEC DISCARD WATCH UNWATCH against valkey 9.1.2: replies, errors, and the propagated
form of a transaction (one unit, MULTI/EXEC only around more than one command)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from differential import REAL_ARGS, Differ
from realserver import RealServer, real_server

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_server(tmp_path_factory.mktemp("tx"), *REAL_ARGS) as srv:
        yield srv


@pytest.fixture
def d(real: RealServer) -> Iterator[Differ]:
    differ = Differ(real)
    differ.check(["FLUSHALL"], propagation=False)
    differ.read_aof()
    yield differ
    differ.close()


def run(d: Differ, *cmds: list[str]) -> None:
    for argv in cmds:
        d.check(argv)  # type: ignore[arg-type]


@pytest.mark.parametrize("resp", [2, 3])
def test_errors(d: Differ, resp: int) -> None:
    d.hello(resp)
    run(
        d,
        ["EXEC"],
        ["DISCARD"],
        ["MULTI", "x"],
        ["EXEC", "x"],
        ["DISCARD", "x"],
        ["WATCH"],
        ["UNWATCH", "x"],
        ["UNWATCH"],
        ["MULTI"],
        ["MULTI"],
        ["EXEC"],  # no_multi: aborts
        ["MULTI"],
        ["WATCH", "x"],
        ["EXEC"],
        ["MULTI"],
        ["SET", "a"],
        ["GET", "a"],
        ["EXEC"],
        ["MULTI"],
        ["NOSUCH", "x"],
        ["EXEC"],
        ["MULTI"],
        ["SET", "a", "1"],
        ["DISCARD"],
        ["GET", "a"],
        ["MULTI"],
        ["EXEC", "x"],
        ["EXEC"],
        ["MULTI"],
        ["SHUTDOWN"],
        ["EXEC"],
    )


@pytest.mark.parametrize("resp", [2, 3])
def test_exec_replies_and_propagation(d: Differ, resp: int) -> None:
    d.hello(resp)
    # observed on 9.1.2: MULTI INCR INCR EXEC -> MULTI/INCR/INCR/EXEC in the AOF
    run(d, ["MULTI"], ["INCR", "n"], ["INCR", "n"], ["EXEC"])
    # MULTI INCR GET EXEC -> a bare INCR
    run(d, ["MULTI"], ["INCR", "n"], ["GET", "n"], ["EXEC"])
    # nothing written: nothing propagated
    run(d, ["MULTI"], ["GET", "n"], ["PING"], ["EXEC"])
    # runtime errors stay inside the reply array
    run(d, ["MULTI"], ["SET", "s", "x"], ["INCR", "s"], ["SET", "t", "y"], ["EXEC"])
    # SELECT inside the transaction: the unit carries the db change
    run(
        d,
        ["MULTI"],
        ["SET", "a", "1"],
        ["SELECT", "2"],
        ["SET", "b", "2"],
        ["SELECT", "0"],
        ["EXEC"],
        ["GET", "a"],
    )
    run(d, ["MULTI"], ["EXEC"])


def test_watch(real: RealServer, d: Differ) -> None:
    other = Differ(real, d.engine)  # a second client on both sides

    def touch(argv: list[str]) -> None:
        other.check(argv, propagation=False)  # type: ignore[arg-type]
        d.read_aof()  # the AOF position is per Differ: skip the other client's writes

    try:
        run(d, ["SET", "k", "1"], ["WATCH", "k"])
        touch(["SET", "k", "2"])
        run(d, ["MULTI"], ["SET", "k", "3"], ["EXEC"], ["GET", "k"])  # null array
        run(d, ["WATCH", "k"], ["UNWATCH"])
        touch(["SET", "k", "4"])
        run(d, ["MULTI"], ["SET", "k", "5"], ["EXEC"])
        run(d, ["WATCH", "k", "j"], ["MULTI"], ["INCR", "j"], ["EXEC"])  # untouched: runs
        run(d, ["WATCH", "k"])
        touch(["DEL", "k"])
        run(d, ["MULTI"], ["SET", "k", "x"], ["DISCARD"], ["MULTI"], ["SET", "k", "x"], ["EXEC"])
        run(d, ["WATCH", "nosuch"])
        touch(["GET", "nosuch"])  # reads do not touch
        run(d, ["MULTI"], ["PING"], ["EXEC"])
        run(d, ["WATCH", "k"])
        touch(["FLUSHALL"])
        run(d, ["MULTI"], ["PING"], ["EXEC"])
    finally:
        other.close()


def test_queued_state(d: Differ) -> None:
    e, c = d.engine, d.client
    e.execute(c, [b"MULTI"])
    r, eff = e.execute(c, [b"SET", b"a", b"1"])
    assert r.value == b"QUEUED" and eff == []
    r, eff = e.execute(c, [b"EXEC"])
    assert len(r) == 1 and eff == [(0, [b"SET", b"a", b"1"])]
    d.read_aof()
