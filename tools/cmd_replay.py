"""``valkey-aof replay``: stream an AOF/RDB into a live server or cluster (tools/replay.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from persistence.errors import PersistenceError
from tools.cli import OperationalError, corrupt, main
from tools.replay import Progress as ReplayProgress
from tools.replay import ReplayError, ReplayOptions, ReplayResult, replay
from tools.replay_conn import TlsOptions


def _map_db(values: tuple[str, ...]) -> dict[int, int]:
    out: dict[int, int] = {}
    for v in values:
        a, _, b = v.partition(":")
        if not (a.isdigit() and b.isdigit()):
            raise click.BadParameter(f"{v!r}: expected FROM:TO, e.g. 3:0", param_hint="--map-db")
        out[int(a)] = int(b)
    return out


def _progress_bar(console: Console) -> tuple[Progress, Callable[[ReplayProgress], None]]:
    bar = Progress(
        TextColumn("[bold]replay"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), console=console,
        transient=True,
    )  # fmt: skip
    task: list[TaskID] = []

    def update(p: ReplayProgress) -> None:
        if not task:
            task.append(bar.add_task("replay", total=max(p.input_total, 1), stats=""))
        secs = max(p.elapsed, 1e-9)
        stats = (
            f"{p.acked:,} cmds  {p.acked / secs:,.0f} ops/s  "
            f"{p.bytes_sent / secs / 1e6:.1f} MB/s  errors {p.errors}"
        )
        bar.update(task[0], completed=p.input_done, stats=stats)

    return bar, update


def result_json(res: ReplayResult) -> dict[str, Any]:
    """The result of a replay as JSON (stable schema: keys are only ever added)."""
    st = res.source
    doc: dict[str, Any] = {
        "mode": res.mode,
        "commands": res.commands,
        "resumed_from": res.resumed_from,
        "total_commands": res.total_commands,
        "bytes_sent": res.bytes_sent,
        "elapsed_s": round(res.elapsed, 6),
        "ops_per_sec": round(res.ops_per_sec, 1),
        "errors": res.errors,
        "error_samples": res.error_samples,
        "interrupted": res.interrupted,
        "per_node": res.per_node,
        "cross_slot": res.cross_slot,
        "sent_as_mset": res.sent_as_mset,
        "files": st.files,
        "warnings": st.warnings,
        "notes": st.notes,
        "skipped_syncslots": st.skipped_syncslots,
        "unknown_commands": dict(sorted(st.unknown.items())),
        "dropped_import_commands": st.dropped_import_commands,
        "plan": res.plan,
        "verify": None,
    }
    v = res.verify
    if v is not None:
        doc["verify"] = {
            "clean": v.clean, "compared": v.compared, "missing": v.missing,
            "different": v.different, "extra": v.extra, "unreadable": v.unreadable,
        }  # fmt: skip
    return doc


def _report(res: ReplayResult) -> None:
    st = res.source
    for w in st.warnings:
        click.echo(f"warning: {w}", err=True)
    for n in st.notes:
        click.echo(f"note: {n}", err=True)
    if st.skipped_syncslots:
        click.echo(
            f"note: skipped {st.skipped_syncslots} CLUSTER SYNCSLOTS record(s) "
            "(the source cluster's slot-migration internals)",
            err=True,
        )
    if st.unknown:
        names = ", ".join(f"{k} ({v})" for k, v in sorted(st.unknown.items()))
        click.echo(f"note: skipped commands the target does not know: {names}", err=True)
    if res.cross_slot:
        names = ", ".join(f"{k} ({v})" for k, v in res.cross_slot.items())
        click.echo(f"note: cross-slot commands replayed as their per-slot effects: {names}",
                   err=True)  # fmt: skip
    if res.plan is not None:
        click.echo(json.dumps({"mode": res.mode, **res.plan}, indent=1))
        return
    state = "interrupted" if res.interrupted else "done"
    resumed = f" (resumed after {res.resumed_from:,})" if res.resumed_from else ""
    click.echo(
        f"{state}: {res.commands:,} commands{resumed} to {res.mode} target in "
        f"{res.elapsed:.2f} s ({res.ops_per_sec:,.0f} ops/s, "
        f"{res.bytes_sent / max(res.elapsed, 1e-9) / 1e6:.1f} MB/s), {res.errors} error(s)"
    )
    for line in res.error_samples[:5]:
        click.echo(f"  error: {line}", err=True)


@main.command("replay")
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "--target", required=True, help="redis://[user:pass@]host:port[/db] (rediss:// for TLS)"
)
@click.option("--cluster", is_flag=True, help="Require a cluster target (detected anyway).")
@click.option("--rate", type=float, default=None, help="At most OPS commands per second.")
@click.option("--rate-bytes", type=float, default=None, help="At most BYTES per second.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Save the position here.")
@click.option("--checkpoint-every", type=int, default=10_000, show_default=True)
@click.option("--resume", is_flag=True, help="Continue after the position in --checkpoint.")
@click.option(
    "--on-error", type=click.Choice(["stop", "skip", "log"]), default="stop", show_default=True,
    help="On an error reply: stop, count and go on, or print each and go on.",
)  # fmt: skip
@click.option("--map-db", multiple=True, help="FROM:TO: write source db FROM into db TO.")
@click.option("--flatten-db", is_flag=True, help="Write every database into one (the URL's).")
@click.option("--dry-run", is_flag=True, help="Count and route only; send nothing.")
@click.option(
    "--as-is", "as_is", is_flag=True,
    help="Send every command as the file has it (default: runs of plain SET go as MSET).",
)  # fmt: skip
@click.option("--verify", is_flag=True, help="Afterwards compare the target with the input.")
@click.option("--ttl-tolerance-ms", type=int, default=5_000, show_default=True)
@click.option("--no-checksum", is_flag=True, help="Do not verify RDB CRC64 checksums.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--tls", is_flag=True, help="TLS to the target (same as a rediss:// URL).")
@click.option("--tls-ca-cert", type=click.Path(dir_okay=False), help="CA certificate(s) file.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="Client certificate file.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="Client private key file.")
@click.option("--tls-insecure", is_flag=True, help="Do not check the server's certificate.")
@click.option("--sni", help="Server name for TLS (default: the host of each node).")
@click.option("--json", "as_json", is_flag=True, help="The result as JSON (stable schema).")
def replay_cmd(
    path: str, target: str, cluster: bool, rate: float | None, rate_bytes: float | None,
    checkpoint: str | None, checkpoint_every: int, resume: bool, on_error: str,
    map_db: tuple[str, ...], flatten_db: bool, dry_run: bool, as_is: bool, verify: bool,
    ttl_tolerance_ms: int, no_checksum: bool, quiet: bool, as_json: bool, tls: bool,
    tls_ca_cert: str | None, tls_cert: str | None, tls_key: str | None, tls_insecure: bool,
    sni: str | None,
) -> None:  # fmt: skip
    """Replay PATH (AOF file, manifest, appendonlydir or RDB) into a live server or cluster.

    Commands stream in order with deep pipelining, as the file's own bytes where nothing
    changes, except that on a standalone target runs of plain SET go as MSET (the same end
    state, less server time; --as-is sends them as they are). Cluster targets are detected;
    commands are routed by key slot, MOVED/ASK are followed. Ctrl-C stops cleanly and saves
    the checkpoint.

    \b
    Example:
      valkey-aof replay data/appendonlydir --target redis://10.0.0.5:6379 \\
          --checkpoint replay.ckpt --verify
      valkey-aof replay dump.rdb --target redis://127.0.0.1:7000 --cluster --dry-run
      valkey-aof replay appendonlydir --target rediss://user:pw@db.example:6380/0 --json
    """
    tls_opts = None
    if tls or tls_ca_cert or tls_cert or tls_key or tls_insecure or sni:
        tls_opts = TlsOptions(tls_ca_cert, tls_cert, tls_key or tls_cert, tls_insecure, sni)
        if target.startswith(("redis://", "valkey://")):
            if not tls:
                raise click.UsageError("TLS options need --tls or a rediss:// target")
            target = "rediss://" + target.split("://", 1)[1]
        elif "://" not in target:
            target = f"rediss://{target}"
    opts = ReplayOptions(
        target=target, cluster=cluster or None, rate=rate, rate_bytes=rate_bytes,
        checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
        on_error=on_error, dry_run=dry_run, verify=verify, map_db=_map_db(map_db),
        flatten_db=flatten_db, verify_checksum=not no_checksum, ttl_tolerance_ms=ttl_tolerance_ms,
        log=lambda line: click.echo(line, err=True), tls=tls_opts, as_is=as_is,
    )  # fmt: skip
    bar = None
    if not quiet and not dry_run and not as_json:
        err_console = Console(stderr=True)
        if err_console.is_terminal:
            bar, opts.progress = _progress_bar(err_console)
    try:
        if bar is not None:
            with bar:
                res = replay(path, opts)
        else:
            res = replay(path, opts)
    except PersistenceError as e:
        raise corrupt(e) from e
    except ReplayError as e:
        raise OperationalError(str(e)) from e
    if as_json:
        click.echo(json.dumps(result_json(res), indent=1))
        if res.verify is not None and not res.verify.clean:
            raise OperationalError("the target differs from the input")
        if res.interrupted:
            raise click.exceptions.Exit(130)
        return
    _report(res)
    if res.verify is not None:
        click.echo(res.verify.summary())
        for line in res.verify.details():
            click.echo(line)
        if not res.verify.clean:
            raise OperationalError("the target differs from the input (see above)")
    if res.interrupted:
        raise click.exceptions.Exit(130)
