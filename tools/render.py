"""THE one module that builds rich renderables from plain data (the ``--json`` dicts).

Commands print what these functions return; tests render them with
``Console(file=io.StringIO(), width=100)``. Nothing here reads files or computes statistics.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

# re-exported: the commands import these from here
from tools.jsonout import dumps as dumps
from tools.jsonout import printable as printable
from tools.jsonout import progress_enabled as progress_enabled

SPARKS = "▁▂▃▄▅▆▇█"
BLOCKS = " ▏▎▍▌▋▊▉█"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def sparkline(values: Sequence[int], width: int = 60) -> str:
    """Values as one line of block characters, resampled to at most ``width`` cells."""
    if not values:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [
            sum(values[int(i * step) : max(int((i + 1) * step), int(i * step) + 1)])
            for i in range(width)
        ]
    top = max(values) or 1
    return "".join(SPARKS[min(len(SPARKS) - 1, v * (len(SPARKS) - 1) // top)] for v in values)


def bar(value: int, top: int, width: int = 30) -> str:
    """A horizontal bar of ``width`` cells at full scale, in eighths."""
    if top <= 0:
        return ""
    eighths = value * width * 8 // top
    full, part = divmod(eighths, 8)
    return "█" * full + (BLOCKS[part] if part else "")


def slot_histogram(slots: dict[str, int], buckets: int = 32) -> Table:
    """16384 slots folded into ``buckets`` ranges, one bar each."""
    size = 16384 // buckets
    sums = [0] * buckets
    for s, n in slots.items():
        sums[int(s) // size] += n
    t = Table(title="Writes per slot range", show_edge=False, box=None, pad_edge=False)
    t.add_column("slots", justify="right", style="dim")
    t.add_column("writes", justify="right")
    t.add_column("")
    top = max(sums) or 1
    for i, n in enumerate(sums):
        t.add_row(f"{i * size}-{(i + 1) * size - 1}", f"{n:,}", bar(n, top))
    return t


def _time(ts: int | None) -> str:
    if ts is None:
        return "-"
    try:
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):  # a #TS annotation no calendar holds
        return f"{ts} (out of range)"


def _ms(ms: int | None) -> str:
    return "-" if ms is None else _time(ms // 1000)


def files_table(files: list[dict[str, Any]], history: list[dict[str, Any]] | None = None) -> Table:
    t = Table(title="Files")
    for col in ("file", "kind", "format", "seq", "size"):
        t.add_column(col, justify="right" if col in ("seq", "size") else "left")
    for f in files:
        fmt = f["format"]
        if fmt == "rdb" and f.get("rdb_version") is not None:
            fmt = f"RDB v{f['rdb_version']}"
        elif fmt == "resp":
            fmt = "RESP"
        seq = "" if f.get("seq") is None else str(f["seq"])
        t.add_row(f["name"], f["kind"], fmt, seq, human_bytes(f["size"]))
    for h in history or []:
        t.add_row(Text(h["name"], style="yellow"), h["kind"], "", str(h["seq"] or ""), "")
    return t


def _name_table(title: str, rows: Sequence[Sequence[str]], cols: Sequence[str]) -> Table:
    t = Table(title=title)
    for i, c in enumerate(cols):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*r)
    return t


def inspect_report(data: dict[str, Any]) -> RenderableType:
    """The ``valkey-aof inspect`` report from :func:`persistence.stats.inspect_path` data."""
    parts: list[RenderableType] = [files_table(data["files"], data.get("history"))]
    if data.get("problem"):
        p = data["problem"]
        parts.append(
            Panel(f"{p['file']} offset {p['offset']}: {p['message']}", title="damaged", style="red")
        )
    for t in data.get("torn") or []:
        parts.append(Text(f"torn tail: {t['file']} offset {t['offset']}: {t['detail']}", "yellow"))
    aof = data.get("aof")
    if aof is not None and aof["totals"]["commands"]:
        parts.extend(_aof_parts(aof))
    rdb = data.get("rdb")
    if rdb is not None:
        parts.extend(_rdb_parts(rdb))
    return Group(*parts)


def _aof_parts(a: dict[str, Any]) -> list[RenderableType]:
    tot = a["totals"]
    approx = "" if tot["keys_touched_exact"] else " (estimated)"
    est = a["rewrite_estimate"]
    summary = Table.grid(padding=(0, 2))
    summary.add_row("commands", f"{tot['commands']:,}")
    summary.add_row("bytes", human_bytes(tot["bytes"]))
    summary.add_row("keys touched", f"{tot['keys_touched']:,}{approx}")
    summary.add_row(
        "rewrite would save",
        f"~{human_bytes(est['estimated_saving'])} of {human_bytes(est['current_bytes'])} "
        f"(estimated: {est['method']})",
    )
    m = a["multi"]
    summary.add_row(
        "MULTI/EXEC", f"{m['blocks']:,} blocks, {m['commands']:,} commands, largest {m['largest']}"
    )
    out: list[RenderableType] = [Panel(summary, title="Totals")]
    cmds = a["commands"][:20]
    out.append(
        _name_table(
            "Commands by name",
            [(c["name"], f"{c['count']:,}", human_bytes(c["bytes"])) for c in cmds],
            ("command", "count", "bytes"),
        )
    )
    out.append(
        _name_table(
            "Per db",
            [(str(d["db"]), f"{d['commands']:,}", human_bytes(d["bytes"])) for d in a["dbs"]],
            ("db", "commands", "bytes"),
        )
    )
    if a["slots"]:
        out.append(slot_histogram(a["slots"]))
    ttl = [(k, f"{v:,}") for k, v in a["ttl_records"].items() if v]
    if ttl:
        out.append(_name_table("TTL records", ttl, ("form", "count")))
    tl = a["timeline"]
    if tl["first"] is not None:
        g = Table.grid(padding=(0, 2))
        g.add_row("first", _time(tl["first"]))
        g.add_row("last", _time(tl["last"]))
        g.add_row(f"writes / {tl['bucket_seconds'] // 60} min", sparkline(tl["writes"]))
        out.append(Panel(g, title="#TS timeline"))
    if a["imports"]:
        rows = [
            (
                i["job"][:16],
                str(i.get("source", ""))[:16],
                " ".join(f"{lo}-{hi}" for lo, hi in i.get("slot_ranges", [])),
                i["outcome"],
            )
            for i in a["imports"]
        ]
        out.append(
            _name_table("CLUSTER SYNCSLOTS imports", rows, ("job", "source", "slots", "outcome"))
        )
    for title, key, fmt in (
        ("Top keys by writes", "top_keys_by_writes", lambda v: f"{v:,}"),
        ("Top keys by bytes", "top_keys_by_bytes", human_bytes),
    ):
        top = a[key]
        if top["keys"]:
            note = " (approximate)" if top["approximate"] else ""
            pairs = [(k["key"], fmt(k["value"])) for k in top["keys"]]
            out.append(_name_table(title + note, pairs, ("key", "value")))
    return out


def _rdb_parts(r: dict[str, Any]) -> list[RenderableType]:
    out: list[RenderableType] = []
    rows = [
        (str(x["db"]), x["type"], f"{x['keys']:,}", human_bytes(x["bytes"]))
        for x in r["per_db_type"]
    ]
    out.append(_name_table(f"RDB: {r['keys']:,} keys", rows, ("db", "type", "keys", "bytes")))
    if r["biggest_keys"]:
        rows = [
            (k["key"], str(k["db"]), k["type"], human_bytes(k["bytes"])) for k in r["biggest_keys"]
        ]
        out.append(_name_table("Biggest keys", rows, ("key", "db", "type", "bytes")))
    g = Table.grid(padding=(0, 2))
    e = r["expires"]
    g.add_row("keys with TTL", f"{e['keys']:,} ({_ms(e['first_ms'])} .. {_ms(e['last_ms'])})")
    v = r["volatile_hash_fields"]
    g.add_row("volatile hash fields", f"{v['fields']:,} in {v['hashes']:,} hashes")
    g.add_row("functions", str(r["functions"]))
    for k, val in r["aux"].items():
        g.add_row(f"aux {k}", val)
    out.append(Panel(g, title="RDB metadata"))
    return out


# ---- check --------------------------------------------------------------------------------


def check_report(data: dict[str, Any]) -> RenderableType:
    """The ``valkey-aof check`` report from :meth:`CheckReport.to_json` data (its lines come from
    tools/check_text.py, which ``check`` also prints without rich)."""
    from tools.check_text import status_lines

    parts: list[RenderableType] = [Text(text, style) for text, style in status_lines(data)]
    p = data.get("problem")
    if p is None:
        return Group(*parts)
    body = Table.grid(padding=(0, 2))
    body.add_row("file", p["file"])
    body.add_row("offset", "-" if p["offset"] is None else f"{p['offset']} (0x{p['offset']:x})")
    if p.get("line") is not None:
        body.add_row("line", str(p["line"]))
    body.add_row("problem", p["message"])
    if p.get("excerpt_hex"):
        body.add_row("bytes", Text("\n".join(p["excerpt_hex"]), "cyan"))
        body.add_row("as RESP", Text(p["excerpt_text"], "cyan"))
    if p.get("fixable"):
        hint = "a damaged tail of the last file: --fix cuts it (or --salvage -o DIR copies)"
    else:
        hint = "use --salvage -o DIR for a repaired copy"
    body.add_row("next", hint)
    parts.append(Panel(body, title=f"first problem: {p['kind']}", style="red"))
    return Group(*parts)


def copy_report(data: dict[str, Any], title: str) -> RenderableType:
    """What --salvage / --truncate-to-timestamp wrote."""
    t = Table(title=f"{title}: {data['out']}")
    t.add_column("file")
    t.add_column("size", justify="right")
    t.add_column("dropped")
    for f in data["files"]:
        dropped = "; ".join(f"{n} bytes at {off} ({why})" for off, n, why in f["dropped"])
        t.add_row(f["name"], human_bytes(f["size"]), dropped or "-")
    parts: list[RenderableType] = [t]
    parts.extend(Text(f"warning: {w}", "yellow") for w in data["warnings"])
    return Group(*parts)


def timestamps_table(marks: list[dict[str, Any]]) -> Table:
    t = Table(title="#TS marks")
    for c in ("file", "offset", "timestamp", "time"):
        t.add_column(c, justify="right" if c in ("offset", "timestamp") else "left")
    for m in marks:
        t.add_row(m["file"], str(m["offset"]), str(m["timestamp"]), _time(m["timestamp"]))
    return t


# ---- progress -----------------------------------------------------------------------------


@contextlib.contextmanager
def progress_bar(total: int, label: str, *, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A transient progress bar on stderr; yields ``update(done_bytes)``. A no-op when not
    ``enabled`` (``--quiet``, ``--json`` or stderr is not a terminal)."""
    if not enabled or total <= 0:
        yield lambda done: None
        return
    # rich.progress is imported only when a bar is shown (it costs ~10 ms of every start-up)
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as prog:
        task = prog.add_task(label, total=total)
        yield lambda done: prog.update(task, completed=done)


class _SafeFile:
    """stdout for rich that never raises on lone surrogates."""

    def __init__(self, f: Any) -> None:
        self.f = f

    def write(self, s: str) -> int:
        return int(self.f.write(printable(s)))

    def flush(self) -> None:
        self.f.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.f, "isatty", lambda: False)())


def console(**kw: Any) -> Console:
    """The Console every command prints with (stdout, safe for any file name)."""
    import sys

    return Console(file=_SafeFile(sys.stdout), **kw)  # type: ignore[arg-type]
