"""The two double formats, asked of a real valkey-server 9.1.2 (the server wins over the spec)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from realserver import real_server
from test_primitives import CASES

from persistence.aof.reader import AofCommand, read_aof
from persistence.format import format_double

pytestmark = pytest.mark.real


def test_reply_and_aof_rewrite_formats(tmp_path: Path) -> None:
    with real_server(tmp_path, "--appendonly", "yes", "--aof-use-rdb-preamble", "no") as srv:
        c = srv.client()
        members = {f"m{i}": x for i, (x, _, _) in enumerate(CASES)}
        c.zadd("z", members)
        got = dict(c.zrange("z", 0, -1, withscores=True, score_cast_func=bytes))
        for i, (x, reply, _) in enumerate(CASES):
            assert got[f"m{i}".encode()] == reply.encode()
            assert format_double(x) == reply.encode()
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
