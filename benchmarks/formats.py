"""Format-layer speed, side by side with valkey-server 9.1.2 loading the same files.

    python benchmarks/formats.py [--commands 1000000] [--runs 3]

A real valkey-server writes an AOF of N ``SET`` commands (appendonly yes, RESP base), then its
RDB-preamble form (BGREWRITEAOF with aof-use-rdb-preamble yes). We time:
- our streaming AOF reader (``persistence.aof.reader.read_aof``) over the RESP form, against the
  load time valkey-server's own log reports for the same directory (target: ours <= 1.0x);
- our RDB reader over the RDB-preamble base, against valkey-server loading that directory.

``measure()`` returns both as figures for ``benchmarks/run.py`` (on any pair of data dirs).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, dir_size, samples, server_load_seconds, table, valkey

from persistence.aof.reader import AofCommand, read_aof
from persistence.rdb.reader import read_rdb
from persistence.records import KeyRecord


def make_aof(work: Path, n: int) -> tuple[Path, Path]:
    """Return (resp_dir, preamble_dir): two data dirs written by valkey-server."""
    resp = work / "resp"
    with valkey(
        resp, "--appendonly", "yes", "--aof-use-rdb-preamble", "no", "--appendfsync", "no"
    ) as (c, _):
        batch = 10_000
        for start in range(0, n, batch):
            p = c.pipeline(transaction=False)
            for i in range(start, min(n, start + batch)):
                p.execute_command("SET", f"key:{i:010d}", f"value:{i:010d}")
            p.execute_command("PING")
            p.execute()
    pre = work / "preamble"
    shutil.copytree(resp, pre)
    with valkey(pre, "--appendonly", "yes", "--aof-use-rdb-preamble", "yes") as (c, _):
        c.bgrewriteaof()
        while (
            c.info("persistence")["aof_rewrite_in_progress"]
            or c.info("persistence")["aof_rewrite_scheduled"]
        ):
            time.sleep(0.05)
    return resp, pre


def count_aof(path: Path) -> int:
    n = 0
    for item in read_aof(path):
        if type(item) is AofCommand:
            n += 1
    return n


def count_rdb(path: Path) -> int:
    """Events of the RDB reader (keys and the aux / db / function events)."""
    return sum(1 for _ in read_rdb(path))


def count_rdb_keys(path: Path) -> int:
    return sum(1 for ev in read_rdb(path) if type(ev) is KeyRecord)


def measure(resp: Path, pre: Path, runs: int) -> list[Figure]:
    """Our AOF / RDB readers against valkey-server loading the same data dirs, ``runs`` each."""
    aof_dir = resp / "appendonlydir"
    base = next((pre / "appendonlydir").glob("*.base.rdb"))
    ncmd = count_aof(aof_dir)
    nkeys = count_rdb_keys(base)
    aof_mb, base_mb = dir_size(aof_dir) / 1e6, base.stat().st_size / 1e6
    ours_aof, theirs_aof, ours_rdb, theirs_rdb = [], [], [], []
    for _ in range(runs):  # interleaved, so machine noise hits both sides alike
        ours_aof += samples(1, lambda: count_aof(aof_dir))
        theirs_aof.append(server_load_seconds(resp, "--appendonly", "yes"))
        ours_rdb += samples(1, lambda: count_rdb(base))
        theirs_rdb.append(server_load_seconds(pre, "--appendonly", "yes"))
    return [
        Figure("formats.aof_read", f"AOF reader, {ncmd:,} commands, {aof_mb:.1f} MB", "s",
               ours_aof, theirs_aof, "valkey-server load",
               note=f"ours {ncmd / min(ours_aof) / 1e6:.2f} M cmd/s at best"),
        Figure("formats.rdb_read", f"RDB reader, preamble base, {nkeys:,} keys, {base_mb:.1f} MB",
               "s", ours_rdb, theirs_rdb, "valkey-server load",
               note=f"ours {nkeys / min(ours_rdb) / 1e6:.2f} M keys/s at best"),
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--commands", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vaof-bench-"))
    try:
        resp, pre = make_aof(work, args.commands)
        aof_read, rdb_read = measure(resp, pre, args.runs)
        rows = [("metric", "ours", "valkey-server 9.1.2", "ratio (time)", "target")]
        for f, target in ((aof_read, "<= 1.0x"), (rdb_read, "(report)")):
            rows.append((f.label, f.fmt(f.ours), f.fmt(f.reference), f"{f.ratio or 0:.2f}x",
                         target))  # fmt: skip
            rows.append(("  throughput", f.note, "", "", ""))
        print(table(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
