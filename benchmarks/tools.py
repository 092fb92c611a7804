"""Tool speed, side by side with valkey-check-aof 9.1.2 on the same AOF.

    python benchmarks/tools.py [--commands 1000000] [--runs 3] [--aof-dir DIR]

A real valkey-server writes an AOF of N ``SET`` commands (``benchmarks/formats.py`` make_aof,
RESP base); we time, as whole processes (start-up included, as a user runs them):
- ``valkey-aof check DIR --quiet`` against ``valkey-check-aof DIR/appendonly.aof.manifest``
  (target: <= 1.0x);
- ``valkey-aof inspect DIR --json`` against the same checker run (target: <= 2.0x).
Median of ``--runs`` runs, min-max in brackets. Other tools add their rows below this part.
``measure()`` returns the same as figures for ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, compile_packages, dir_size, samples, table
from formats import make_aof
from realserver import valkey_tool

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str], ok: tuple[int, ...] = (0,)) -> None:
    # cwd=ROOT: from benchmarks/, ``python -c`` would import this file as the tools package
    res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    if res.returncode not in ok:
        raise SystemExit(f"{cmd[0]} exited {res.returncode}: {res.stderr.decode()[-500:]}")


def measure(aof_dir: Path, runs: int, work: Path) -> list[Figure]:
    """``valkey-aof check`` / ``inspect`` against valkey-check-aof, whole processes, ``runs``."""
    checker = valkey_tool("valkey-check-aof", work)
    manifest = str(aof_dir / "appendonly.aof.manifest")
    me = [sys.executable, "-c", "from tools.app import run; run()"]
    compile_packages()
    theirs, check, inspect = [], [], []
    for _ in range(runs):  # interleaved, so machine noise hits all three alike
        theirs += samples(1, lambda: run([checker, manifest]))
        check += samples(1, lambda: run([*me, "check", str(aof_dir), "--quiet"]))
        inspect += samples(1, lambda: run([*me, "inspect", str(aof_dir), "--json"]))
    size = dir_size(aof_dir) / 1e6
    ref = "valkey-check-aof"
    return [
        Figure("tools.check", f"valkey-aof check, {size:.1f} MB AOF", "s", check, theirs, ref),
        Figure("tools.inspect", f"valkey-aof inspect --json, {size:.1f} MB AOF", "s", inspect,
               theirs, ref),
    ]  # fmt: skip


def check_inspect_rows(aof_dir: Path, runs: int, work: Path) -> list[tuple[str, ...]]:
    check, inspect = measure(aof_dir, runs, work)
    size = dir_size(aof_dir) / 1e6
    return [
        ("metric", "ours", "valkey-check-aof 9.1.2", "ratio (time)", "target"),
        (f"check, {size:.1f} MB", check.fmt(check.ours), check.fmt(check.reference),
         f"{check.ratio or 0:.2f}x", "<= 1.0x"),
        (f"inspect, {size:.1f} MB", inspect.fmt(inspect.ours), inspect.fmt(inspect.reference),
         f"{inspect.ratio or 0:.2f}x", "<= 2.0x"),
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--commands", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--aof-dir", type=Path, default=None, help="reuse an appendonlydir")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vaof-bench-tools-"))
    try:
        aof_dir = args.aof_dir
        if aof_dir is None:
            resp, _ = make_aof(work, args.commands)
            aof_dir = resp / "appendonlydir"
        print(table(check_inspect_rows(aof_dir, args.runs, work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
