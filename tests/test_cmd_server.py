"""Server commands against valkey 9.1.2: INFO (field names per section), CONFIG, COMMAND
(INFO/DOCS/GETKEYS/LIST/COUNT), TIME, LASTSAVE, DEBUG, SHUTDOWN and MONITOR errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from differential import REAL_ARGS, Differ
from realserver import RealServer, real_server

from engine.commands.table import TABLE
from persistence.resp.frames import Array, Bulk, Integer, Verbatim

pytestmark = pytest.mark.real

MINE = [
    "ping",
    "echo",
    "select",
    "quit",
    "reset",
    "hello",
    "auth",
    "client",
    "info",
    "config",
    "command",
    "time",
    "lastsave",
    "debug",
    "shutdown",
    "monitor",
    "multi",
    "exec",
    "discard",
    "watch",
    "unwatch",
    "subscribe",
    "unsubscribe",
    "psubscribe",
    "punsubscribe",
    "publish",
    "pubsub",
    "ssubscribe",
    "sunsubscribe",
    "spublish",
]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_server(tmp_path_factory.mktemp("srv"), *REAL_ARGS) as srv:
        yield srv


@pytest.fixture
def d(real: RealServer) -> Iterator[Differ]:
    differ = Differ(real)
    differ.check(["FLUSHALL"], propagation=False)
    differ.read_aof()
    yield differ
    differ.close()


def _sections(text: bytes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    cur = ""
    for line in text.decode().split("\r\n"):
        if line.startswith("# "):
            cur = line[2:]
            out[cur] = []
        elif line:
            out[cur].append(line.split(":", 1)[0])
    return out


def _text(f: Any) -> bytes:
    return f.data if isinstance(f, Verbatim) else f.value  # type: ignore[no-any-return]


# sections whose field names we match; Modules (9.1.2 lists lua), TLS, Latencystats, Cluster
# Info and Scripting Engines are not ours
COMPARED = (
    "Server",
    "Clients",
    "Memory",
    "Persistence",
    "Stats",
    "Replication",
    "CPU",
    "Cluster",
    "Keyspace",
    "Commandstats",
    "Errorstats",
)


@pytest.mark.parametrize("resp", [2, 3])
def test_info_field_names(d: Differ, resp: int) -> None:
    d.hello(resp)
    for argv in (
        ["SET", "k", "v"],
        ["SET", "e", "v", "EX", "100"],
        ["GET", "k"],
        ["NOSUCH"],
        ["INCR", "k"],
    ):
        d.check(argv)  # type: ignore[arg-type]
    for args in (
        [],
        ["default"],
        ["all"],
        ["everything"],
        ["server", "keyspace"],
        ["KEYSPACE"],
        ["commandstats"],
        ["errorstats"],
        ["nosuch"],
        ["persistence", "stats"],
    ):
        ours, theirs = d.both(["INFO", *args])
        assert type(ours) is type(theirs)
        o, t = _sections(_text(ours)), _sections(_text(theirs))
        assert [s for s in t if s in COMPARED] == [s for s in o if s in COMPARED], args
        for sec in COMPARED:
            if sec in t:
                names = o[sec]
                if sec == "Commandstats":  # only the commands both ran
                    assert set(names) <= set(t[sec]) and "cmdstat_set" in names
                else:
                    assert names == t[sec], sec
    ours, _ = d.ours(["INFO", "keyspace"])
    assert b"db0:keys=2,expires=1,avg_ttl=" in _text(ours)
    assert b",keys_with_volatile_items=0" in _text(ours)


def test_info_providers(d: Differ) -> None:
    e = d.engine
    e.info_providers["persistence"] = lambda: [("aof_current_size", "123"), ("extra_x", "1")]
    e.server_info.update(tcp_port=7777, process_id=42)
    text = _text(d.ours(["INFO", "persistence", "server"])[0]).decode()
    assert "aof_current_size:123\r\n" in text and text.index("aof_base_size") > text.index(
        "aof_current_size"
    )
    assert "extra_x:1\r\n" in text and "tcp_port:7777\r\n" in text and "process_id:42\r\n" in text


@pytest.mark.parametrize("resp", [2, 3])
def test_config(d: Differ, resp: int) -> None:
    d.hello(resp)
    for argv in (
        ["CONFIG"],
        ["CONFIG", "FOO"],
        ["CONFIG", "GET"],
        ["CONFIG", "GET", "nosuch"],
        ["CONFIG", "GET", "hz"],
        ["CONFIG", "GET", "hz", "maxmemory", "hz"],
        ["CONFIG", "GET", "hash-max-listpack-*"],
        ["CONFIG", "SET", "hz"],
        ["CONFIG", "SET", "hz", "11", "hz", "12"],
        ["CONFIG", "SET", "hz", "x"],
        ["CONFIG", "SET", "nosuch", "1"],
        ["CONFIG", "SET", "hz", "11", "nosuch", "1"],
        ["CONFIG", "SET", "maxmemory-policy", "foo"],
        ["CONFIG", "SET", "hz", "12", "appendonly", "maybe"],
        ["CONFIG", "GET", "hz"],
        ["CONFIG", "SET", "hz", "11", "maxmemory", "10mb"],
        ["CONFIG", "GET", "hz", "maxmemory"],
        ["CONFIG", "SET", "hz", "10", "maxmemory", "0"],
        ["CONFIG", "RESETSTAT"],
        ["CONFIG", "RESETSTAT", "x"],
        ["CONFIG", "REWRITE"],
        ["CONFIG", "HELP"],
        ["TIME", "x"],
        ["LASTSAVE", "x"],
        ["DEBUG"],
        ["DEBUG", "FOO"],
        ["DEBUG", "SLEEP", "0"],
        ["MONITOR", "x"],
        ["SHUTDOWN", "FOO"],
        ["SHUTDOWN", "NOSAVE", "SAVE"],
        ["SHUTDOWN", "ABORT", "NOW"],
    ):
        d.check(argv, unordered=True)  # type: ignore[arg-type]


def test_time_lastsave_monitor_shutdown(d: Differ) -> None:
    ours, theirs = d.both(["TIME"])
    assert isinstance(ours, Array) and len(ours.items) == 2  # type: ignore[arg-type]
    assert abs(int(ours.items[0].value) - int(theirs.items[0].value)) <= 2  # type: ignore
    ours, theirs = d.both(["LASTSAVE"])
    assert type(ours) is type(theirs) is Integer
    e, c = d.engine, d.client
    e.execute(c, [b"MONITOR"])
    assert "monitor" in c.flags
    e.execute(c, [b"DEBUG", b"SLEEP", b"0.5"])
    assert "sleep" in c.flags and c.conn["sleep_us"] == 500_000
    r, _ = e.execute(c, [b"SHUTDOWN", b"NOSAVE"])
    assert "shutdown" in c.flags and e.server_info["shutdown"] == {"nosave"}
    r, _ = e.execute(c, [b"MULTI"])
    r, _ = e.execute(c, [b"SHUTDOWN"])
    assert b"not allowed inside a transaction" in r.message


def same_entry(o: Any, t: Any) -> bool:
    """COMMAND INFO entries equal; a container's subcommands are compared by name, ours only
    (the real server lists every subcommand, in its hash order)."""
    if o == t:
        return True
    if o is None or t is None or o.items is None or t.items is None:
        return False
    if o.items[:9] != t.items[:9]:
        return False
    theirs = {e.items[0]: e for e in t.items[9].items}
    return all(same_entry(e, theirs.get(e.items[0])) for e in o.items[9].items)


@pytest.mark.parametrize("resp", [2, 3])
def test_command_info_for_our_commands(d: Differ, resp: int) -> None:
    d.hello(resp)
    ours, theirs = d.both(["COMMAND", "INFO", *MINE])
    for name, o, t in zip(MINE, ours.items, theirs.items):
        assert same_entry(o, t), name
    d.check(["COMMAND", "INFO", "nosuch", "get", "config|get", "CONFIG|GET", "client|nosuch"])
    # DOCS of containers list every real subcommand; compare the plain commands
    plain = [n for n in MINE if not TABLE[n.encode()].container]
    d.check(["COMMAND", "DOCS", *plain], unordered=True)
    d.check(["COMMAND", "DOCS", "get", "nosuch"])


def test_command_info_whole_table(d: Differ) -> None:
    """Every command in the table against the real server (other modules' entries too)."""
    names = [k.decode() for k in TABLE]
    ours, theirs = d.both(["COMMAND", "INFO", *names])
    bad = [n for n, o, t in zip(names, ours.items, theirs.items) if not same_entry(o, t)]
    assert not [n for n in bad if n in MINE]
    if bad:
        print("COMMAND INFO differs for:", bad)


@pytest.mark.parametrize("resp", [2, 3])
def test_command_subcommands(d: Differ, resp: int) -> None:
    d.hello(resp)
    for argv in (
        ["COMMAND", "COUNT", "x"],
        ["COMMAND", "GETKEYS"],
        ["COMMAND", "GETKEYS", "get"],
        ["COMMAND", "GETKEYS", "get", "a"],
        ["COMMAND", "GETKEYS", "nosuch", "a"],
        ["COMMAND", "GETKEYS", "set", "a"],
        ["COMMAND", "GETKEYS", "ping"],
        ["COMMAND", "GETKEYS", "config", "get", "x"],
        ["COMMAND", "GETKEYS", "watch", "k"],
        ["COMMAND", "GETKEYS", "mset", "a", "1", "b", "2"],
        ["COMMAND", "GETKEYS", "zunionstore", "d", "2", "a", "b"],
        ["COMMAND", "GETKEYSANDFLAGS", "lmove", "a", "b", "left", "right"],
        ["COMMAND", "GETKEYSANDFLAGS", "zunionstore", "d", "2", "a", "b"],
        ["COMMAND", "GETKEYSANDFLAGS", "mset", "a", "b", "c", "d"],
        ["COMMAND", "LIST", "FILTERBY", "module", "x"],
        ["COMMAND", "LIST", "FILTERBY"],
        ["COMMAND", "LIST", "foo"],
        ["COMMAND", "LIST", "FILTERBY", "foo", "x"],
        ["COMMAND", "LIST", "FILTERBY", "pattern", "config*"],
        ["COMMAND", "LIST", "FILTERBY", "aclcat", "transaction"],
        ["COMMAND", "LIST", "FILTERBY", "aclcat", "pubsub"],
        ["COMMAND", "HELP"],
        ["COMMAND", "FOO"],
    ):
        d.check(argv, unordered=True)  # type: ignore[arg-type]
    # out of scope: scripting, functions, HyperLogLog, geo, modules answer unknown command
    for argv in (
        ["EVAL", "return 1", "0"],
        ["PFADD", "h", "a"],
        ["GEOADD", "g", "1", "2", "m"],
        ["FUNCTION", "LIST"],
        ["MODULE", "LIST"],
    ):
        ours, _ = d.ours(argv)  # type: ignore[arg-type]
        assert ours.message.startswith(b"ERR unknown command '" + argv[0].encode())
    ours, _ = d.ours(["COMMAND", "COUNT"])
    assert ours == Integer(len(TABLE))
    ours, _ = d.ours(["COMMAND"])
    assert len(ours.items) == len(TABLE)
    ours, _ = d.ours(["COMMAND", "LIST"])
    assert Bulk(b"client|list") in ours.items
