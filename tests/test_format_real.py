"""The two double formats, asked of a real valkey-server 9.1.2 (the server wins over the spec)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from realserver import real_server
from server_snapshot import Raw
from test_primitives import CASES

from persistence.aof.reader import AofCommand, read_aof
from persistence.format import d2string

pytestmark = pytest.mark.real


def test_reply_and_aof_rewrite_formats(tmp_path: Path) -> None:
    with real_server(tmp_path, "--appendonly", "yes", "--aof-use-rdb-preamble", "no") as srv:
        c = srv.client()
        members = {f"m{i}": x for i, (x, _, _) in enumerate(CASES)}
        raw = Raw(c)  # redis-py would parse the scores; we want the server's bytes
        raw.execute_command("ZADD", "z", *[a for m, x in members.items() for a in (repr(x), m)])
        flat = raw.execute_command("ZRANGE", "z", 0, -1, "WITHSCORES")
        got = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
        for i, (x, reply, _) in enumerate(CASES):
            assert got[f"m{i}".encode()] == reply.encode()
            assert d2string(x) == reply.encode()
        c.bgrewriteaof()
        while c.info("persistence")["aof_rewrite_in_progress"]:
            time.sleep(0.05)
        time.sleep(0.2)
    zadds = [
        i.argv
        for i in read_aof(tmp_path / "appendonlydir")
        if isinstance(i, AofCommand) and i.argv[0] == b"ZADD"
    ]
    scores = {}
    for argv in zadds:
        for k in range(2, len(argv), 2):
            scores[argv[k + 1].decode()] = argv[k].decode()
    for i, (_, _, aof) in enumerate(CASES):
        assert scores[f"m{i}"] == aof
