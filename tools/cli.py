"""``valkey-aof``: the command-line tools. Each command is a thin layer over a library function;
typed library errors become exit codes here: 0 ok, 1 operational error, 2 usage, 3 corrupt input.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

import click

from persistence.errors import ChecksumError, PersistenceError
from tools.export import load_contents
from tools.jsonview import records_to_json

EXIT_CORRUPT = 3


class CorruptInput(click.ClickException):
    exit_code = EXIT_CORRUPT


def corrupt(e: PersistenceError) -> CorruptInput:
    msg = e.describe()
    if isinstance(e, ChecksumError):
        msg += " (--no-checksum skips the check)"
    return CorruptInput(msg)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="valkey-aof")
def main() -> None:
    """Inspect, check, rewrite, convert, export and replay Valkey/Redis AOF and RDB files."""


@main.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--format", "fmt", type=click.Choice(["json", "jsonl"]), default="json")
@click.option("--now-ms", type=int, default=None, help="Drop keys/fields expiring at or before MS.")
@click.option("--db", type=int, default=None, help="Only this database.")
@click.option("--match", default=None, help="Only keys matching this glob.")
@click.option("--no-checksum", is_flag=True, help="Do not verify RDB CRC64 checksums.")
@click.option("--no-encoding", is_flag=True, help="Leave out the encoding hints.")
def export(
    path: str,
    fmt: str,
    now_ms: int | None,
    db: int | None,
    match: str | None,
    no_checksum: bool,
    no_encoding: bool,
) -> None:
    """Print the logical contents of PATH (RDB, AOF file, manifest or appendonlydir) as JSON.

    \b
    Example:
      valkey-aof export data/appendonlydir --now-ms 1795694332952 > contents.json
    """
    try:
        result = load_contents(
            path,
            verify_checksum=not no_checksum,
            now_ms=now_ms,
            db=db,
            match=match.encode() if match is not None else None,
        )
    except PersistenceError as e:
        raise corrupt(e) from e
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    keys = records_to_json(result.records, with_encoding=not no_encoding)
    out: IO[str] = sys.stdout
    if fmt == "jsonl":
        for k in keys:
            out.write(json.dumps(k, ensure_ascii=False) + "\n")
    else:
        doc: dict[str, Any] = {"keys": keys}
        json.dump(doc, out, ensure_ascii=False, indent=1)
        out.write("\n")
