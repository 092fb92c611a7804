"""``valkey-aof check``: validate like valkey-check-aof (VALKEY080 bases included); fix a torn
tail in place; salvage or cut a point-in-time copy into a new directory."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypeVar

import click

from persistence.aof import check as lib
from persistence.errors import PersistenceError
from tools.check_text import plain_report
from tools.cli import CorruptInput, OperationalError, jobs_option, main, no_cyclic_gc, total_size

A = TypeVar("A")
B = TypeVar("B")

# tools.render (and rich with it) is imported only when something is drawn with rich: a plain
# check whose output is not a terminal prints tools/check_text.py lines (start-up time)


def is_command(argv: list[bytes]) -> bool:
    """A known command with a valid arity (the one command table): a resync point."""
    import engine.commands  # noqa: F401 - registers every command
    from engine.commands.table import lookup

    cmd = lookup(argv)
    return cmd is not None and cmd.arity_ok(len(argv))


def _fork_map(fn: Callable[[A], B], items: Sequence[A], jobs: int) -> list[B]:
    """tools/parallel.py ``fork_map``, imported only when a big file is split (start-up)."""
    from tools.parallel import fork_map

    return fork_map(fn, items, jobs)


def _copies() -> ModuleType:
    import persistence.aof.copies

    return persistence.aof.copies


def _render() -> ModuleType:
    import tools.render

    return tools.render


@contextmanager
def _progress(path: str, off: bool) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over PATH when wanted (tools/render.py decides), else no callback."""
    if off:
        yield None
        return
    from tools.render import progress_bar, progress_enabled

    with progress_bar(total_size(path), "check", enabled=progress_enabled(False)) as upd:
        yield upd


def _emit(as_json: bool, doc: dict[str, Any], renderable: object) -> None:
    from tools.render import console, dumps

    if as_json:
        click.echo(dumps(doc))
    else:
        console(soft_wrap=True, highlight=False).print(renderable)


def _emit_check(as_json: bool, doc: dict[str, Any]) -> None:
    """The check report: plain when rich would print the same characters (check_text.py)."""
    text = None if as_json else plain_report(doc, isatty=sys.stdout.isatty())
    if text is not None:
        click.echo(text, nl=False)
        return
    from tools.render import check_report

    _emit(as_json, doc, None if as_json else check_report(doc))


@main.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--fix", is_flag=True, help="Cut the damaged tail of the last file in place.")
@click.option("--yes", "-y", is_flag=True, help="With --fix: do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="With --fix: only show what would be cut.")
@click.option("--salvage", is_flag=True, help="Write a repaired copy to -o OUTDIR.")
@click.option(
    "--truncate-to-timestamp",
    "ts",
    type=int,
    default=None,
    metavar="TS",
    help="Write a copy ending before the first #TS mark later than TS to -o OUTDIR.",
)
@click.option("--list-timestamps", is_flag=True, help="List the #TS marks and exit.")
@click.option(
    "-o",
    "--output",
    "outdir",
    type=click.Path(),
    default=None,
    help="New directory for --salvage / --truncate-to-timestamp.",
)
@click.option("--no-checksum", is_flag=True, help="Do not verify RDB CRC64 checksums.")
@click.option("--json", "as_json", is_flag=True, help="The result as JSON (stable schema).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@jobs_option(
    "Processes validating a big file in parallel (default: the usable CPUs, at most 4; "
    "1: one process). Same result whatever N."
)
def check(
    path: str,
    fix: bool,
    yes: bool,
    dry_run: bool,
    salvage: bool,
    ts: int | None,
    list_timestamps: bool,
    outdir: str | None,
    no_checksum: bool,
    as_json: bool,
    quiet: bool,
    jobs: int | None,
) -> None:
    """Validate PATH (RDB file, AOF file, manifest or appendonlydir) and report the first
    problem: file, offset, line and an excerpt. Exits 0 when valid, 3 on any damage (a torn
    tail included), 1 on an operational error, 2 on bad usage. The originals are only ever
    changed by --fix (after confirmation, or with --yes).

    \b
    Example:
      valkey-aof check data/appendonlydir
      valkey-aof check data/appendonlydir --jobs 2
      valkey-aof check data/appendonlydir --fix --dry-run
      valkey-aof check data/appendonlydir --salvage -o /tmp/repaired
      valkey-aof check data/appendonlydir --truncate-to-timestamp 1795694366 -o /tmp/pit
    """
    modes = sum([fix, salvage, ts is not None, list_timestamps])
    if modes > 1:
        raise click.UsageError("choose one of --fix, --salvage, --truncate-to-timestamp, "
                               "--list-timestamps")  # fmt: skip
    if (yes or dry_run) and not fix:
        raise click.UsageError("--yes and --dry-run go with --fix")
    if yes and dry_run:
        raise click.UsageError("--yes and --dry-run exclude each other")
    if (salvage or ts is not None) and outdir is None:
        raise click.UsageError("--salvage and --truncate-to-timestamp need -o OUTDIR")
    if outdir is not None and not (salvage or ts is not None):
        raise click.UsageError("-o goes with --salvage or --truncate-to-timestamp")
    try:
        if salvage:
            assert outdir is not None
            rep = _copies().salvage(path, outdir, is_command=is_command,
                              verify_checksum=not no_checksum)  # fmt: skip
            _emit(as_json, rep.to_json(), _render().copy_report(rep.to_json(), "salvaged copy"))
            return
        if ts is not None:
            assert outdir is not None
            rep = _copies().truncate_to_timestamp(path, outdir, ts)
            _emit(as_json, rep.to_json(), _render().copy_report(rep.to_json(), f"copy up to {ts}"))
            return
        if list_timestamps:
            marks, report = _copies().timestamps(path)
            rows = [{"file": f, "offset": o, "timestamp": t} for f, o, t in marks]
            doc = {"timestamps": rows, "ok": report.ok}
            _emit(as_json, doc, _render().timestamps_table(rows))
            _damaged(report)
            return
        with _progress(path, quiet or as_json) as upd, no_cyclic_gc():
            report, _ = lib.check(path, verify_checksum=not no_checksum, is_command=is_command,
                                  progress=upd, jobs=jobs, pmap=_fork_map)  # fmt: skip
    except FileExistsError as e:
        raise OperationalError(str(e)) from e
    except PersistenceError as e:
        raise CorruptInput(e.describe()) from e
    except OSError as e:
        raise OperationalError(f"{e.filename or path}: {e.strerror or e}") from e
    doc = report.to_json()
    if not fix or report.problem is None:
        _emit_check(as_json, doc)
        _damaged(report)
        return
    _fix(report, doc, yes, dry_run, as_json)


def _damaged(report: lib.CheckReport) -> None:
    p = report.problem
    if p is not None:
        where = p.file if p.offset is None else f"{p.file}, offset {p.offset}"
        raise CorruptInput(f"{where}: {p.message}")


def _fix(report: lib.CheckReport, doc: dict[str, Any], yes: bool, dry: bool, as_json: bool) -> None:
    from tools.render import check_report, console, dumps, printable

    p = report.problem
    assert (p is not None and p.offset is not None) or p is not None
    size = next((f.size for f in report.files if f.name == p.file), 0)
    if not p.fixable:
        _emit(as_json, doc, check_report(doc))
        why = "not the last file" if not p.last_file else "valid commands follow the damage"
        raise CorruptInput(f"{p.file}: --fix only cuts a damaged tail of the last file ({why}); "
                           "use --salvage -o OUTDIR")  # fmt: skip
    assert p.offset is not None
    cut = size - p.offset
    doc["fix"] = {"file": p.file, "from_size": size, "cut_bytes": cut, "to_size": p.offset,
                  "applied": False}  # fmt: skip
    # src/valkey-check-aof.c: "This will shrink the AOF ... Continue? [y/N]: "
    msg = (f"This will shrink the AOF {p.file} from {size} bytes, with {cut} bytes, "
           f"to {p.offset} bytes")  # fmt: skip
    if dry:
        _emit(as_json, doc, check_report(doc))
        if not as_json:
            click.echo(printable(f"dry run: {msg}"))
        raise CorruptInput(f"{p.file}: damaged tail of {cut} bytes at offset {p.offset} (dry run)")
    if not yes:
        if not as_json:
            console(soft_wrap=True, highlight=False).print(check_report(doc))
        click.echo(printable(msg), err=as_json)
        answer = click.prompt("Continue? [y/N]", default="", show_default=False,
                              prompt_suffix=": ", err=as_json)  # fmt: skip
        if not answer.lower().startswith("y"):
            click.echo("Aborting...", err=True)
            raise OperationalError("nothing changed")
    try:
        lib.fix(p)
    except OSError as e:
        raise OperationalError(f"Failed to truncate AOF {p.file}: {e.strerror}") from e
    doc["fix"]["applied"] = True
    if as_json:
        click.echo(dumps(doc))
    else:
        if yes:
            console(soft_wrap=True, highlight=False).print(check_report(doc))
        click.echo(f"Successfully truncated AOF {p.file}")
