"""One benchmark suite: our figures against the real tools, measured in the same run, with targets.

    python benchmarks/run.py [NAMES...] [--quick] [--json | --markdown] [--runs N] [--gate]

NAMES picks a subset of ``server`` (redis-benchmark), ``durability`` (start-up load of an AOF and
of its RDB-preamble form, RSS of the loaded keys, p99 latency during BGREWRITEAOF), ``tools``
(check, inspect), ``replay`` (standalone, 3-node cluster), ``formats`` (our readers),
``migration`` (when ``benchmarks/migration.py`` exists and has ``measure()``) and ``varied``
(tools, replay and the AOF reader again on keys and values of random lengths, no targets);
default: all.

How it works:
- each script in this folder exposes ``measure(...) -> list[Figure]`` (``_common.Figure``: raw
  samples of ours and of the reference, interleaved run by run so machine noise hits both); its
  ``__main__`` still prints its own table;
- one data set is made once and shared: N ``SET``s in an AOF directory (empty RESP base + incr)
  written by our encoder, and its RDB-preamble form; valkey-server 9.1.2 loads both;
- this process (and every client it starts: redis-benchmark, redis-cli, our tools, the replay and
  latency clients) is pinned to core 1 and every server to core 0 (``taskset``) when the machine
  has two or more cores;
- ``TARGETS`` below is issue 7's table, the one place targets live; each figure shows the median
  of ``--runs`` (>= 3) runs with [min-max], and the ratio of the medians, ours / reference.

Exit status: 0 when every benchmark ran (targets met or not: CI prints figures with no gate);
1 with ``--gate`` when a target is missed; 2 when a benchmark crashed.

A ``benchmarks/migration.py`` joins the suite by exposing ``measure()`` (see ``run_migration``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib.util
import inspect
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# benchmarks/tools.py would shadow the tools package: import the package before adding HERE
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))
import tools.replay  # noqa: E402, F401

sys.path.insert(0, str(HERE))
import durability as bench_durability  # noqa: E402
import formats as bench_formats  # noqa: E402
import replay as bench_replay  # noqa: E402
import server as bench_server  # noqa: E402
from _common import Figure, pin_self_to_client_core, pinning  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402


def _load(name: str, path: Path) -> ModuleType:
    """Import a script of this folder under another module name (tools.py is not ``tools``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bench_tools = _load("bench_tools", HERE / "tools.py")


@dataclass(frozen=True)
class Target:
    op: str  # "<=" or ">="
    value: float
    on: str = "ratio"  # "ratio": ours / reference (medians); "ours": our median, in its unit

    def text(self, unit: str) -> str:
        if self.on == "ratio":
            return f"{self.op} {self.value:.1f}x"
        return f"{self.op} {self.value:g} {unit}"

    def met(self, fig: Figure) -> bool | None:
        value = fig.ratio if self.on == "ratio" else fig.ours_median
        if value is None:
            return None
        return value <= self.value if self.op == "<=" else value >= self.value


# Issue 7's targets (ratios are ours vs the reference measured in the same run).
TARGETS: dict[str, Target] = {
    # redis-benchmark -c 50, unpipelined, AOF everysec: >= 0.9x valkey-server
    "server.set.p1": Target(">=", 0.9),
    "server.get.p1": Target(">=", 0.9),
    "server.hset.p1": Target(">=", 0.9),
    "server.lpush.p1": Target(">=", 0.9),
    # same with -P 16: >= 0.5x valkey-server
    "server.set.p16": Target(">=", 0.5),
    "server.get.p16": Target(">=", 0.5),
    "server.hset.p16": Target(">=", 0.5),
    "server.lpush.p16": Target(">=", 0.5),
    "durability.load_aof": Target("<=", 1.5),  # start-up load of a 1 M-SET AOF (time)
    "durability.load_preamble": Target("<=", 2.0),  # ... of its RDB-preamble form (time)
    "tools.check": Target("<=", 1.0),  # valkey-aof check vs valkey-check-aof (time)
    "tools.inspect": Target("<=", 2.0),  # valkey-aof inspect vs valkey-check-aof (time)
    "replay.standalone": Target(">=", 1.0),  # vs redis-cli --pipe commands/s (SET runs as MSET)
    # "replay.standalone.as_is" (the same with --as-is, the file's own bytes) is an info row
    "replay.cluster": Target(">=", 0.5),  # 3-node cluster vs standalone redis-cli --pipe
    "migration.pause": Target("<=", 50, "ours"),  # longest write pause, 100 k keys, live writer
    "durability.rss": Target("<=", 3.0),  # RSS for 1 M small string keys
    "durability.rewrite_p99": Target("<=", 5, "ours"),  # p99 during BGREWRITEAOF of 1 M keys
    "formats.aof_read": Target("<=", 1.0),  # issue 2: AOF reader vs valkey-server's load
}


@dataclass(frozen=True)
class Sizes:
    keys: int = 1_000_000  # the shared AOF: load, RSS, rewrite, check, inspect, replay, formats
    requests: int = 100_000  # per redis-benchmark test and run
    migration_keys: int = 100_000


FULL = Sizes()
QUICK = Sizes(keys=20_000, requests=2_000, migration_keys=5_000)


@dataclass
class Context:
    sizes: Sizes
    runs: int
    work: Path
    quick: bool = False
    _data: tuple[Path, Path] | None = field(default=None, repr=False)
    _varied: tuple[Path, Path] | None = field(default=None, repr=False)

    def data(self) -> tuple[Path, Path]:
        """(RESP AOF data dir, RDB-preamble data dir) of ``sizes.keys`` SETs, made once."""
        if self._data is None:
            d = self.work / "data"
            self._data = bench_durability.make_dirs(d, self.sizes.keys)
        return self._data

    def varied_data(self) -> tuple[Path, Path]:
        """:meth:`data` with keys and values of random lengths."""
        if self._varied is None:
            d = self.work / "varied"
            self._varied = bench_durability.make_dirs(d, self.sizes.keys, varied=True)
        return self._varied

    def dir(self, name: str) -> Path:
        d = self.work / name
        d.mkdir(parents=True, exist_ok=True)
        return d


MIGRATION = HERE / "migration.py"  # another session's script; joins the suite when present


@functools.cache
def _migration_module() -> ModuleType | None:
    if not MIGRATION.exists():
        return None
    module = _load("bench_migration", MIGRATION)
    return module if callable(getattr(module, "measure", None)) else None


def run_migration(ctx: Context) -> list[Figure]:
    """Figures of benchmarks/migration.py: ``measure()`` called once with ``runs`` or per run.

    It may return ``list[Figure]`` or, per run, a dict with ``longest_write_ms`` (the longest
    write pause a live writer saw) and ``keys_per_s``.
    """
    module = _migration_module()
    if module is None:
        raise RuntimeError("benchmarks/migration.py with a measure() function not found")
    fn = module.measure
    params = inspect.signature(fn).parameters
    keys = ctx.sizes.migration_keys
    offered = {"keys": keys, "runs": ctx.runs, "quick": ctx.quick}

    def call(work: Path) -> Any:
        kw = {k: v for k, v in {**offered, "work": work}.items() if k in params}
        return fn(**kw)

    if "runs" in params:
        result = call(ctx.dir("migration"))
        if isinstance(result, list):
            return result
        results = [result]
    else:
        results = [call(ctx.dir(f"migration/run{i}")) for i in range(ctx.runs)]
    if all(isinstance(r, Figure) for r in results):
        return list(results)
    pause = [float(r["longest_write_ms"]) for r in results]
    figures = [Figure("migration.pause", f"longest write pause, migrating {keys:,} keys", "ms",
                      pause)]  # fmt: skip
    if all("keys_per_s" in r for r in results):
        figures.append(Figure("migration.keys_per_s", f"slot migration of {keys:,} keys", "keys/s",
                              [float(r["keys_per_s"]) for r in results]))  # fmt: skip
    return figures


BENCHMARKS: dict[str, Callable[[Context], list[Figure]]] = {
    "server": lambda c: bench_server.measure(c.sizes.requests, c.runs),
    "durability": lambda c: bench_durability.measure(
        *c.data(), c.sizes.keys, c.runs, c.dir("durability")
    ),
    "tools": lambda c: bench_tools.measure(c.data()[0] / "appendonlydir", c.runs, c.dir("tools")),
    "replay": lambda c: bench_replay.measure(
        c.data()[0] / "appendonlydir", c.sizes.keys, c.runs, c.dir("replay")
    ),
    "formats": lambda c: bench_formats.measure(*c.data(), c.runs),
    "migration": run_migration,
    "varied": lambda c: run_varied(c),
}


def run_varied(ctx: Context) -> list[Figure]:
    """The tool and reader figures again on an AOF whose keys and values have random lengths
    (no target: the shared AOF's commands come in long runs of one size, which the reader,
    inspect and replay each have a fast path for; these rows show the general path)."""
    resp, pre = ctx.varied_data()
    aof = resp / "appendonlydir"
    figures = [
        *bench_tools.measure(aof, ctx.runs, ctx.dir("varied_tools")),
        *bench_replay.measure(aof, ctx.sizes.keys, ctx.runs, ctx.dir("varied_replay"), False),
        *(f for f in bench_formats.measure(resp, pre, ctx.runs) if f.metric == "formats.aof_read"),
    ]
    return [
        dataclasses.replace(f, metric=f"varied.{f.metric}", label=f"{f.label}, varied sizes")
        for f in figures
    ]


def default_names() -> list[str]:
    names = [n for n in BENCHMARKS if n != "migration"]
    return [*names, "migration"] if MIGRATION.exists() else names


def target_for(metric: str) -> Target | None:
    if metric in TARGETS:
        return TARGETS[metric]
    if metric.startswith("migration.") and "pause" in metric:
        return TARGETS["migration.pause"]
    return None


@dataclass
class Outcome:
    figures: list[tuple[str, Figure]] = field(default_factory=list)  # (benchmark, figure)
    errors: dict[str, str] = field(default_factory=dict)  # benchmark -> traceback
    seconds: dict[str, float] = field(default_factory=dict)


def run_suite(
    names: list[str], sizes: Sizes, runs: int, work: Path, quick: bool = False, log: Any = None
) -> Outcome:
    """Run the named benchmarks; a crash of one is recorded and the others still run."""
    ctx = Context(sizes, runs, work, quick)
    out = Outcome()
    for name in names:
        t0 = time.perf_counter()
        if log:
            print(f"[{name}] running ...", file=log, flush=True)
        try:
            for fig in BENCHMARKS[name](ctx):
                out.figures.append((name, fig))
        except (Exception, SystemExit):  # SystemExit: a script's "tool not found"
            out.errors[name] = traceback.format_exc()
            if log:
                print(out.errors[name], file=log, flush=True)
        out.seconds[name] = time.perf_counter() - t0
        if log:
            print(f"[{name}] done in {out.seconds[name]:.1f} s", file=log, flush=True)
    return out


def result_rows(outcome: Outcome) -> list[dict[str, Any]]:
    """One plain dict per figure: the data behind the table and the JSON."""
    rows = []
    for bench, fig in outcome.figures:
        target = target_for(fig.metric)
        met = target.met(fig) if target else None
        rows.append({
            "benchmark": bench, "metric": fig.metric, "label": fig.label, "unit": fig.unit,
            "ours": _stats(fig.ours),
            "reference": {**_stats(fig.reference), "name": fig.reference_name},
            "ratio": fig.ratio,
            "target": target.text(fig.unit) if target else None,
            "pass": met, "note": fig.note,
        })  # fmt: skip
    return rows


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"median": None, "min": None, "max": None, "samples": []}
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values), "samples": values}


def _cells(row: dict[str, Any]) -> list[str]:
    def fig(d: dict[str, Any]) -> str:
        return Figure("", "", row["unit"], []).fmt(d["samples"]) or "-"

    label = row["label"] + (f" (vs {row['reference']['name']})" if row["reference"]["name"] else "")
    ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
    verdict = {True: "pass", False: "FAIL", None: "-"}[row["pass"]]
    return [label, fig(row["ours"]), fig(row["reference"]), ratio, row["target"] or "-", verdict]


HEADERS = ["metric", "ours", "reference", "ratio", "target", "pass/fail"]


def render_table(rows: list[dict[str, Any]], errors: dict[str, str], width: int = 160) -> str:
    table = Table(
        *HEADERS,
        title=escape(
            "valkey-aof vs valkey-server 9.1.2 / redis-tools: median [min-max] of the runs"
        ),
    )
    for row in rows:
        cells = [escape(c) for c in _cells(row)]
        style = {"pass": "green", "FAIL": "red"}.get(cells[-1], "")
        table.add_row(*cells[:-1], f"[{style}]{cells[-1]}[/]" if style else cells[-1])
    for name in errors:
        table.add_row(f"{name}: CRASHED (traceback above)", "-", "-", "-", "-", "[red]error[/]")
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False)
    console.print(table)
    for row in rows:
        if row["note"]:
            console.print(escape(f"  {row['metric']}: {row['note']}"))
    return buf.getvalue()


def render_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError, ValueError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    return {
        "cpu": model or platform.processor(), "cores": os.cpu_count(),
        "memory_gb": round(mem / 2**30, 1), "python": platform.python_version(),
        "pinning": "servers on core 0, clients on core 1" if pinning() else "none",
        "loadavg": os.getloadavg(),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Run the benchmark suite against the real tools and print one table.",
        epilog="example: python benchmarks/run.py tools replay --quick --runs 3",
    )
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"subset of {', '.join(BENCHMARKS)}")
    ap.add_argument("--quick", action="store_true", help="small sizes (CI; < 2 min in all)")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    ap.add_argument("--json", action="store_true", help="machine-readable results on stdout")
    ap.add_argument("--markdown", action="store_true", help="the table as GitHub markdown")
    ap.add_argument("--skip", action="append", default=[], metavar="NAME",
                    help="leave a benchmark out (repeatable)")  # fmt: skip
    ap.add_argument("--gate", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--from-json", type=Path, metavar="FILE", help="print a saved --json run")
    ap.add_argument("--keys", type=int, help="override the data set size")
    ap.add_argument("--requests", type=int, help="override the redis-benchmark requests")
    args = ap.parse_args(argv)
    unknown = [n for n in [*args.names, *args.skip] if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    if args.from_json:
        doc = json.loads(args.from_json.read_text())
        rows, errors = doc["results"], doc.get("errors", {})
        print(render_markdown(rows) if args.markdown else render_table(rows, errors), end="\n")
        return 0
    sizes = QUICK if args.quick else FULL
    if args.keys:
        sizes = Sizes(args.keys, sizes.requests, min(sizes.migration_keys, args.keys))
    if args.requests:
        sizes = Sizes(sizes.keys, args.requests, sizes.migration_keys)
    names = [n for n in args.names or default_names() if n not in args.skip]
    pin_self_to_client_core()
    info = machine()
    log = sys.stderr
    print(f"sizes {asdict(sizes)}, runs {args.runs}, machine {info}", file=log, flush=True)
    work = Path(tempfile.mkdtemp(prefix="vaof-suite-"))
    t0 = time.perf_counter()
    try:
        outcome = run_suite(names, sizes, args.runs, work, args.quick, log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = result_rows(outcome)
    if args.json:
        doc = {"sizes": asdict(sizes), "runs": args.runs, "quick": args.quick, "machine": info,
               "seconds": round(time.perf_counter() - t0, 1), "loadavg_end": os.getloadavg(),
               "results": rows,
               "errors": outcome.errors}  # fmt: skip
        print(json.dumps(doc, indent=2))
    elif args.markdown:
        print(render_markdown(rows))
    else:
        print(render_table(rows, outcome.errors), end="")
        print(f"{len(rows)} figures in {time.perf_counter() - t0:.0f} s; sizes {asdict(sizes)}; "
              f"{info['cores']} cores, {info['cpu']}; pinning: {info['pinning']}")  # fmt: skip
    if outcome.errors:
        return 2
    if args.gate and any(r["pass"] is False for r in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
