"""``valkey-aof rewrite``: offline compaction into a fresh appendonlydir (library: tools.rewrite).

Also the options and the error boundary that ``convert`` shares with it: key filters, ``--until``,
``--json``/``--quiet``, and a progress bar on stderr when it is a terminal.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from persistence.errors import PersistenceError
from persistence.rdb.writer import UnsupportedForVersion
from tools.cli import OperationalError, corrupt, main
from tools.render import progress_enabled
from tools.rewrite import TYPE_NAMES, KeyFilter, OutputError, Progress, parse_map_db, parse_slots
from tools.rewrite import rewrite as rewrite_dir

F = TypeVar("F", bound=Callable[..., Any])


def content_options(f: F) -> F:
    """Filters, point in time and output options shared by rewrite and convert."""
    opts = [
        click.option("--db", "dbs", type=click.IntRange(min=0), multiple=True,
                     help="Only keys of this db (repeatable)."),
        click.option("--match", default=None, help="Only keys matching this glob."),
        click.option("--slot", "slots", default=None, metavar="RANGE",
                     help="Only keys in these hash slots: 0-100,200,300-400."),
        click.option("--type", "types", multiple=True, metavar="T",
                     help=f"Only keys of this type ({', '.join(TYPE_NAMES)}; repeatable)."),
        click.option("--map-db", "map_db", multiple=True, metavar="FROM:TO",
                     help="Move the keys of db FROM to db TO (repeatable)."),
        click.option("--until", type=int, default=None, metavar="TS",
                     help="Point in time: replay only up to the last #TS annotation <= TS "
                     "(unix seconds)."),
        click.option("--no-checksum", is_flag=True, help="Do not verify RDB CRC64 checksums."),
        click.option("--force", is_flag=True, help="Overwrite an existing output."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar, no summary."),
    ]  # fmt: skip
    for opt in reversed(opts):
        f = opt(f)
    return f


def key_filter(
    dbs: tuple[int, ...],
    match: str | None,
    slots: str | None,
    types: tuple[str, ...],
    map_db: tuple[str, ...],
) -> KeyFilter:
    """The filter of the shared options; bad values are usage errors (exit 2)."""
    flt = KeyFilter(dbs=set(dbs) or None, match=match.encode() if match is not None else None)
    if slots is not None:
        try:
            flt.slots = parse_slots(slots)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--slot") from None
    if types:
        names = {t.strip().lower() for spec in types for t in spec.split(",") if t.strip()}
        bad = sorted(names - set(TYPE_NAMES))
        if bad:
            raise click.BadParameter(
                f"unknown type {', '.join(bad)} (one of {', '.join(TYPE_NAMES)})",
                param_hint="--type",
            )
        flt.types = names
    try:
        flt.map_db = parse_map_db(map_db)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--map-db") from None
    return flt


@contextlib.contextmanager
def progress_bar(quiet: bool) -> Iterator[Progress | None]:
    """Rich progress on stderr, one bar per phase (input bytes read, keys written) whose totals
    may be unknown; only when stderr is a terminal and not ``--quiet``."""
    if not progress_enabled(quiet):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                label = "reading" if phase == "read" else "writing keys"
                tasks[phase] = bar.add_task(label, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update


@contextlib.contextmanager
def errors_to_exit_codes() -> Iterator[None]:
    """Library errors -> exit codes: 3 corrupt input, 1 operational (refusals, I/O)."""
    try:
        yield
    except UnsupportedForVersion as e:
        raise OperationalError(e.describe()) from e
    except PersistenceError as e:
        raise corrupt(e) from e
    except OutputError as e:
        raise OperationalError(str(e)) from e
    except OSError as e:
        raise OperationalError(f"{e.filename or ''}: {e.strerror or e}") from e


def report(doc: dict[str, Any], *, as_json: bool, quiet: bool) -> None:
    for w in doc["warnings"]:
        click.echo(f"warning: {w}", err=True)
    if as_json:
        click.echo(json.dumps(doc, ensure_ascii=False, indent=1))
        return
    if quiet:
        return
    kinds = ", ".join(f"{n} {t}" for t, n in doc["keys_by_type"].items()) or "no keys"
    click.echo(
        f"{doc['output']}: {doc['keys']} keys ({kinds}) from {doc['input_kind']} {doc['input']}"
    )
    if doc["until"]:
        u = doc["until"]
        click.echo(f"  stopped before {u['file']} offset {u['offset']}, after #TS:{u['timestamp']}")
    for f in doc["files"]:
        click.echo(f"  {f['name']}  {f['size']} bytes")


@main.command()
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "-o",
    "--output",
    "outdir",
    required=True,
    metavar="OUTDIR",
    type=click.Path(),
    help="The new appendonlydir (use it as appenddirname under the server's dir).",
)
@click.option(
    "--base",
    type=click.Choice(["rdb", "aof"]),
    default="rdb",
    show_default=True,
    help="Base file format: RDB preamble or RESP commands.",
)
@content_options
def rewrite(
    path: str,
    outdir: str,
    base: str,
    dbs: tuple[int, ...],
    match: str | None,
    slots: str | None,
    types: tuple[str, ...],
    map_db: tuple[str, ...],
    until: int | None,
    no_checksum: bool,
    force: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Compact PATH (RDB, AOF file, manifest or appendonlydir) into a fresh appendonlydir.

    OUTDIR gets a base file, an empty incr file and appendonly.aof.manifest, which
    valkey-server loads when OUTDIR is its appenddirname under its dir.

    \b
    Example:
      valkey-aof rewrite data/appendonlydir -o /srv/new/appendonlydir --base aof
      valkey-aof rewrite dump.rdb -o out --db 0 --match 'user:*' --until 1795694352
    """
    flt = key_filter(dbs, match, slots, types, map_db)
    with errors_to_exit_codes(), progress_bar(quiet) as progress:
        doc = rewrite_dir(
            path,
            outdir,
            base="aof" if base == "aof" else "rdb",
            key_filter=flt,
            until=until,
            verify_checksum=not no_checksum,
            force=force,
            progress=progress,
        )
    report(doc, as_json=as_json, quiet=quiet)
