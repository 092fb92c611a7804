"""Format-layer speed, side by side with valkey-server 9.1.2 loading the same files.

    python benchmarks/formats.py [--commands 1000000] [--runs 3]

A real valkey-server writes an AOF of N ``SET`` commands (appendonly yes, RESP base), then its
RDB-preamble form (BGREWRITEAOF with aof-use-rdb-preamble yes). We time:
- our streaming AOF reader (``persistence.aof.reader.read_aof``) over the RESP form, against the
  load time valkey-server's own log reports for the same directory (target: ours <= 1.0x);
- our RDB reader over the RDB-preamble base, against valkey-server loading that directory.
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

from _common import best_of, dir_size, server_load_seconds, table, valkey

from persistence.aof.reader import AofCommand, read_aof
from persistence.rdb.reader import read_rdb


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
    return sum(1 for _ in read_rdb(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--commands", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vaof-bench-"))
    try:
        resp, pre = make_aof(work, args.commands)
        aof_dir = resp / "appendonlydir"
        pre_dir = pre / "appendonlydir"
        base = next(pre_dir.glob("*.base.rdb"))
        ncmd = count_aof(aof_dir)
        aof_bytes = dir_size(aof_dir)
        ours_aof = best_of(args.runs, lambda: count_aof(aof_dir))
        theirs_aof = sorted(
            server_load_seconds(resp, "--appendonly", "yes") for _ in range(args.runs)
        )
        ours_rdb = best_of(args.runs, lambda: count_rdb(base))
        theirs_rdb = sorted(
            server_load_seconds(pre, "--appendonly", "yes") for _ in range(args.runs)
        )
        rows = [("metric", "ours", "valkey-server 9.1.2", "ratio (time)", "target")]

        def fmt(t: tuple[float, float, float]) -> str:
            return f"{t[0]:.3f}s [{t[1]:.3f}-{t[2]:.3f}]"

        tv = theirs_aof[len(theirs_aof) // 2]
        rows.append(
            (
                f"AOF read, {ncmd:,} commands, {aof_bytes / 1e6:.1f} MB",
                fmt(ours_aof),
                f"{tv:.3f}s [{theirs_aof[0]:.3f}-{theirs_aof[-1]:.3f}]",
                f"{ours_aof[0] / tv:.2f}x",
                "<= 1.0x",
            )
        )
        rows.append(
            (
                "  throughput",
                f"{ncmd / ours_aof[0] / 1e6:.2f} M cmd/s, {aof_bytes / ours_aof[0] / 1e6:.0f} MB/s",
                f"{ncmd / tv / 1e6:.2f} M cmd/s",
                "",
                "",
            )
        )
        tr = theirs_rdb[len(theirs_rdb) // 2]
        rows.append(
            (
                f"RDB read, preamble base {base.stat().st_size / 1e6:.1f} MB",
                fmt(ours_rdb),
                f"{tr:.3f}s [{theirs_rdb[0]:.3f}-{theirs_rdb[-1]:.3f}]",
                f"{ours_rdb[0] / tr:.2f}x",
                "(report)",
            )
        )
        rows.append(
            (
                "  throughput",
                f"{args.commands / ours_rdb[0] / 1e6:.2f} M keys/s, "
                f"{base.stat().st_size / ours_rdb[0] / 1e6:.0f} MB/s",
                "",
                "",
                "",
            )
        )
        print(table(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
