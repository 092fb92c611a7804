"""``valkey-aof convert``: any input as RDB, single AOF, appendonlydir or JSON (tools.convert)."""

from __future__ import annotations

import click

from tools.cli import main
from tools.cmd_rewrite import (
    content_options,
    errors_to_exit_codes,
    key_filter,
    progress_bar,
    report,
)
from tools.convert import RDB_VERSIONS, TARGETS, check_options
from tools.convert import convert as convert_file


@main.command()
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    metavar="OUT",
    type=click.Path(),
    help="Output file (a directory for --to aofdir).",
)
@click.option(
    "--to",
    "to",
    required=True,
    type=click.Choice(TARGETS),
    help="rdb, aof (one RESP file), aofdir (appendonlydir) or json (export schema).",
)
@click.option(
    "--rdb-version",
    type=click.Choice([str(v) for v in RDB_VERSIONS]),
    default="80",
    show_default=True,
    help="80 writes VALKEY080, 11 writes REDIS0011.",
)
@click.option(
    "--base",
    type=click.Choice(["rdb", "aof"]),
    default=None,
    help="Base file format for --to aofdir (default rdb).",
)
@click.option(
    "--compress",
    type=click.Choice(["lz4"]),
    default=None,
    help="Write single-file outputs as an LZ4 frame (archival).",
)
@content_options
def convert(
    path: str,
    out: str,
    to: str,
    rdb_version: str,
    base: str | None,
    compress: str | None,
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
    """Convert PATH (RDB, AOF file, manifest or appendonlydir) to another format.

    RDB -> appendonlydir or single AOF; AOF/appendonlydir -> RDB (VALKEY080, or
    REDIS0011 with --rdb-version 11, which refuses keys it cannot hold, naming them);
    Redis 7.4+ field-TTL hashes keep their field TTLs; anything -> JSON.

    \b
    Example:
      valkey-aof convert data/appendonlydir -o dump.rdb --to rdb
      valkey-aof convert dump.rdb -o appendonly.aof.lz4 --to aof --compress lz4
    """
    version = int(rdb_version)
    try:
        check_options(to, base=base, rdb_version=version, compress=compress)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    flt = key_filter(dbs, match, slots, types, map_db)
    with errors_to_exit_codes(), progress_bar(quiet) as progress:
        doc = convert_file(
            path,
            out,
            to=to,  # type: ignore[arg-type]
            base=base,  # type: ignore[arg-type]
            rdb_version=version,
            compress=compress,
            key_filter=flt,
            until=until,
            verify_checksum=not no_checksum,
            force=force,
            progress=progress,
        )
    report(doc, as_json=as_json, quiet=quiet)
