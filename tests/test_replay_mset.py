"""``valkey-aof replay`` sends runs of plain SETs as MSET on standalone targets
(tools/replay_mset.py): the same commands, the same end state as ``--as-is``, file-command
accounting, error handling, and the fallback for targets that refuse MSET."""

from __future__ import annotations

import json
import random
import signal
from itertools import pairwise
from pathlib import Path
from typing import Any

import hiredis
import pytest
from click.testing import CliRunner
from realserver import RealServer, real_server
from server_snapshot import snapshot

from persistence.aof.encoder import encode_command
from tools.app import main
from tools.replay import ReplayError, ReplayOptions, ReplayResult, replay
from tools.replay_fastscan import RawCmds
from tools.replay_mset import SET_NAMES, batch, batched_commands
from tools.replay_source import Source

FAR = 4_102_444_800_000  # 2100-01-01 in ms: absolute TTLs read back alike after both replays

# -- the batching itself (no server) -------------------------------------------------------------


def random_commands(rng: random.Random, n: int) -> list[list[bytes]]:
    """SET runs (some long and fixed-width: uniform runs) mixed with everything else."""
    # first a fixed-width run (the fast scanner's uniform run), values holding SET's header
    # bytes in one of two files
    value = rng.choice([b"w:%06d", b"*3\r\n$3\r\nSET\r\n%03d"])
    out = [[b"SET", b"u:%06d" % i, value % i] for i in range(rng.randint(64, 300))]
    keys = [b"k%d" % i for i in range(12)]
    while len(out) < n:
        r = rng.random()
        if r < 0.35:  # a run of plain SETs, duplicate keys included
            for _ in range(rng.randint(1, 40)):
                name = rng.choice([b"SET", b"SET", b"set", b"Set"])
                out.append([name, rng.choice(keys), b"v" * rng.randint(0, 30)])
        elif r < 0.42:  # fixed width: the fast scanner's uniform runs
            base = rng.randint(0, 10_000)
            out += [[b"SET", b"u:%06d" % (base + i), b"w:%06d" % i] for i in range(70, 200)]
        elif r < 0.47:
            out.append([b"SET", rng.choice(keys), b"*3\r\n$3\r\nSET\r\n"])  # header in a value
        elif r < 0.55:
            out.append([b"SELECT", b"%d" % rng.randint(0, 2)])
        elif r < 0.62:
            k = rng.choice(keys)
            out += [[b"MULTI"], [b"SET", k, b"t1"], [b"SET", k + b"x", b"t2"], [b"EXEC"]]
        else:
            k = rng.choice(keys)
            out.append(rng.choice([
                [b"SET", k, b"px", b"PXAT", b"%d" % FAR], [b"SET", k, b"keep", b"KEEPTTL"],
                [b"SET", k, b"nx", b"NX"], [b"DEL", k], [b"PEXPIREAT", k, b"%d" % FAR],
                [b"RPUSH", k, b"a", b"b"], [b"HSET", k, b"f", b"v"], [b"SADD", k, b"m"],
                [b"INCR", k], [b"PERSIST", k], [b"APPEND", k, b"+"],
            ]))  # fmt: skip
    return out


def write_aof(path: Path, commands: list[list[bytes]]) -> Path:
    path.write_bytes(b"".join(encode_command(c) for c in commands))
    return path


def expand(data: bytes) -> list[list[bytes]]:
    reader = hiredis.Reader()
    reader.feed(data)
    out = []
    while (item := reader.gets()) is not False:
        out.append(item)
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fast", [True, False])
def test_batches_carry_the_same_commands(tmp_path: Path, seed: int, fast: bool) -> None:
    rng = random.Random(seed)
    aof = write_aof(tmp_path / "a.aof", random_commands(rng, 1500))
    pairs = rng.choice([2, 3, 16, 64])
    kinds = set()
    for seg in Source(aof, fast=fast, max_run=rng.choice([50, 10_000])).segments():
        if seg.txn:
            continue
        cmds = seg.cmds
        if isinstance(cmds, RawCmds):
            kinds.add("uniform" if cmds.unparsed else "raw")
        else:
            kinds.add("list")
        argvs = [c.argv for c in seg.cmds]
        done = batch(seg.cmds, seg.data, pairs)
        if done is None:  # no two plain SETs in a row
            plain = [len(a) == 3 and a[0] in SET_NAMES for a in argvs]
            assert not any(a and b for a, b in pairwise(plain))
            continue
        data, groups = done
        sent = expand(data)
        assert len(sent) == len(groups) and groups[0] == 0
        ends = [*groups[1:], len(argvs)]
        carried = 0
        for argv, a, b in zip(sent, groups, ends, strict=True):
            if b - a == 1:  # as the file has it, name spelling included
                assert argv == argvs[a]
                continue
            assert argv[0] == b"MSET" and len(argv) == 1 + 2 * (b - a) <= 1 + 2 * pairs
            assert [[b"SET", *argv[i : i + 2]] for i in range(1, len(argv), 2)] == [
                [x[0].upper(), *x[1:]] for x in argvs[a:b]
            ]
            carried += b - a
        assert batched_commands(groups, len(argvs))[0] == carried > 0
    assert kinds >= ({"uniform", "raw"} if fast else {"list"})


# -- against a real valkey-server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with real_server(tmp_path_factory.mktemp("mset")) as s:
        yield s


def url(s: RealServer, auth: str = "") -> str:
    return f"redis://{auth}127.0.0.1:{s.port}"


def go(path: Path, s: RealServer, **kw: Any) -> ReplayResult:
    return replay(path, ReplayOptions(target=kw.pop("target", url(s)), **kw))


def state(s: RealServer) -> list[dict[str, Any]]:
    return snapshot(s.client(), range(3))


def cmdstats(s: RealServer) -> dict[str, dict[str, int]]:
    c = s.client()
    return {k: v for k, v in c.info("commandstats").items() if k in ("cmdstat_set", "cmdstat_mset")}


@pytest.mark.real
@pytest.mark.parametrize("seed", range(4))
def test_end_state_equals_as_is(tmp_path: Path, srv: RealServer, seed: int) -> None:
    rng = random.Random(100 + seed)
    aof = write_aof(tmp_path / "r.aof", random_commands(rng, 3000))
    pairs = [16, 2, 3, 64][seed]
    c = srv.client()
    c.flushall()
    ref = go(aof, srv, as_is=True, on_error="skip")
    want = state(srv)
    c.flushall()
    c.config_resetstat()
    got = go(aof, srv, on_error="skip", mset_pairs=pairs, checkpoint_every=rng.choice([37, 10_000]))
    assert state(srv) == want
    assert ref.sent_as_mset == 0 and got.sent_as_mset > 0
    assert (got.commands, got.errors) == (ref.commands, ref.errors)
    assert got.per_node == ref.per_node  # replies counted as if each command had its own
    assert cmdstats(srv)["cmdstat_mset"]["calls"] > 0


@pytest.mark.real
def test_as_is_sends_the_files_bytes(tmp_path: Path) -> None:
    cmds = [[b"SET", b"key:%06d" % i, b"val:%06d" % i] for i in range(300)]
    cmds += [[b"set", b"a", b"1"], [b"SET", b"b", b"22"], [b"DEL", b"a"], [b"SET", b"c", b"3"]]
    aof = write_aof(tmp_path / "s.aof", cmds)
    with real_server(tmp_path / "aof", "--appendonly", "yes", "--appendfsync", "always") as s:
        incr = next((s.dir / "appendonlydir").glob("*.incr.aof"))
        before = incr.stat().st_size
        res = go(aof, s, as_is=True)
        assert res.sent_as_mset == 0 and res.commands == len(cmds)
        written = incr.read_bytes()[before:]
        # valkey-server propagates each command as received, after selecting the db
        assert written == encode_command([b"SELECT", b"0"]) + aof.read_bytes()
        s.client().flushall()
        before = incr.stat().st_size
        res = go(aof, s)
        assert res.commands == len(cmds) and res.sent_as_mset == 302
        sent = expand(incr.read_bytes()[before:])
        assert [a[0] for a in sent].count(b"MSET") == 300 // 16 + 2
        assert [b"DEL", b"a"] in sent and [b"SET", b"c", b"3"] in sent


@pytest.mark.real
def test_resume_inside_a_batch(tmp_path: Path, srv: RealServer) -> None:
    """A checkpoint between two commands that would share an MSET: the replay starts exactly
    there (the index and the offset name file commands)."""
    cmds = [[b"SET", b"k%03d" % i, b"v%d" % i] for i in range(100)]
    aof = write_aof(tmp_path / "s.aof", cmds)
    ck = tmp_path / "ck.json"
    c = srv.client()
    c.flushall()
    go(aof, srv, checkpoint=str(ck), checkpoint_every=7)
    doc = json.loads(ck.read_text())
    assert doc["index"] == 100 and doc["done"] is True
    assert doc["offset"] == aof.stat().st_size
    c.flushall()
    sizes = [len(encode_command(x)) for x in cmds]
    doc.update(index=21, offset=sum(sizes[:21]), done=False)
    ck.write_text(json.dumps(doc))
    res = go(aof, srv, checkpoint=str(ck), resume=True)
    assert (res.commands, res.resumed_from, res.source.warnings) == (79, 21, [])
    assert sorted(c.keys()) == [b"k%03d" % i for i in range(21, 100)]
    assert json.loads(ck.read_text())["index"] == 100


@pytest.mark.real
def test_interrupted_and_resumed(tmp_path: Path, srv: RealServer) -> None:
    rng = random.Random(7)
    aof = write_aof(tmp_path / "r.aof", random_commands(rng, 1200))
    c = srv.client()
    c.flushall()
    ref = go(aof, srv, as_is=True, on_error="skip")
    want = state(srv)
    c.flushall()
    ck = tmp_path / "ck.json"

    def stop(p: Any) -> None:  # as Ctrl-C would, while the replay's handler is installed
        if p.acked and signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            signal.raise_signal(signal.SIGINT)

    first = go(aof, srv, checkpoint=str(ck), checkpoint_every=37, rate=2500, progress=stop,
               on_error="skip")  # fmt: skip
    assert first.interrupted
    done = json.loads(ck.read_text())["index"]
    assert done == first.commands and 0 < done < ref.commands
    rest = go(aof, srv, checkpoint=str(ck), resume=True, on_error="skip")
    assert rest.resumed_from == done and rest.commands == ref.commands - done
    assert rest.source.warnings == []
    assert state(srv) == want


@pytest.mark.real
def test_errors_on_a_batch_count_every_command(tmp_path: Path, srv: RealServer) -> None:
    cmds = [[b"DEL", b"x"], *([b"SET", b"k%d" % i, b"v"] for i in range(40)), [b"DEL", b"y"]]
    aof = write_aof(tmp_path / "s.aof", cmds)
    c = srv.client()
    c.flushall()
    c.config_set("maxmemory", "1")  # every SET/MSET is refused: OOM
    try:
        for as_is in (True, False):
            res = go(aof, srv, on_error="skip", as_is=as_is)
            assert (res.commands, res.errors) == (42, 40)
            assert all(": SET: OOM command not allowed" in e for e in res.error_samples)
        runner = CliRunner()
        out = runner.invoke(main, ["replay", str(aof), "--target", url(srv), "--on-error",
                                   "log", "--json"])  # fmt: skip
        assert out.exit_code == 0 and out.stderr.count("error: ") == 40
        ck = tmp_path / "ck.json"
        with pytest.raises(ReplayError) as e:
            go(aof, srv, checkpoint=str(ck))
        size = len(encode_command(cmds[0]))
        assert f"s.aof offset {size}: SET: OOM command not allowed" in str(e.value)
        assert "stopped at the first error" in str(e.value)
        assert json.loads(ck.read_text())["index"] == 42  # as --as-is: all was acknowledged
    finally:
        c.config_set("maxmemory", "0")
    assert c.dbsize() == 0


def fallback_aof(tmp_path: Path) -> tuple[Path, list[list[bytes]]]:
    cmds = [[b"RPUSH", b"a", b"x"], [b"SET", b"b", b"1"], [b"DEL", b"b"]]
    cmds += [[b"SET", b"a", b"over"], [b"SET", b"b", b"2"], [b"SET", b"a", b"again"]]
    cmds += [[b"SET", b"k%d" % i, b"v%d" % i] for i in range(50)] + [[b"INCR", b"k1"]]
    return write_aof(tmp_path / "f.aof", cmds), cmds


def check_fallback(s: RealServer, res: ReplayResult, why: str) -> None:
    assert any(why in n and "sent as the file has it" in n for n in res.source.notes)
    assert (res.commands, res.errors, res.sent_as_mset) == (57, 1, 0)
    c = s.client()
    assert c.get("a") == b"again" and c.get("b") == b"2" and c.dbsize() == 52


@pytest.mark.real
def test_noperm_falls_back_to_as_is(tmp_path: Path, srv: RealServer) -> None:
    aof, _ = fallback_aof(tmp_path)
    c = srv.client()
    c.flushall()
    c.acl_setuser(
        "nomset", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-mset"]
    )
    try:
        res = go(aof, srv, target=url(srv, "nomset:pw@"), on_error="skip")
        check_fallback(srv, res, "the target refuses MSET (NOPERM")
    finally:
        c.acl_deluser("nomset")


@pytest.mark.real
def test_renamed_mset_falls_back_to_as_is(tmp_path: Path) -> None:
    aof, _ = fallback_aof(tmp_path)
    conf = tmp_path / "renamed.conf"  # valkey 9 takes rename-command from a config file
    conf.write_text('rename-command MSET ""\nuser nocmd on >pw ~* &* +@all -command\n')
    with real_server(tmp_path / "srv", "--include", str(conf)) as s:
        res = go(aof, s, on_error="skip")  # COMMAND LIST shows no MSET
        check_fallback(s, res, "the target has no MSET command")
        s.client().flushall()
        res = go(aof, s, target=url(s, "nocmd:pw@"), on_error="skip")  # found by sending one
        check_fallback(s, res, "the target refuses MSET (ERR unknown command")


@pytest.mark.real
def test_cli_as_is_and_dry_run(tmp_path: Path, srv: RealServer) -> None:
    aof = write_aof(tmp_path / "s.aof", [[b"SET", b"k%d" % i, b"v"] for i in range(20)])
    srv.client().flushall()
    for extra in ([], ["--as-is"]):
        out = CliRunner().invoke(main, ["replay", str(aof), "--target", url(srv), "--json",
                                        "--verify", *extra])  # fmt: skip
        assert out.exit_code == 0, out.output
        doc = json.loads(out.stdout)
        assert doc["commands"] == 20 and doc["verify"]["clean"]
        assert doc["sent_as_mset"] == (0 if extra else 20)
        out = CliRunner().invoke(main, ["replay", str(aof), "--target", url(srv), "--dry-run",
                                        *extra])  # fmt: skip
        assert out.exit_code == 0 and json.loads(out.stdout)["commands"] == 20
