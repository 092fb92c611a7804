"""``valkey-aof export``: the logical contents as JSON (schema of the fixtures' expected.json)."""

from __future__ import annotations

import json
import sys
from typing import IO, Any

import click

from persistence.errors import PersistenceError
from tools.cli import corrupt, main
from tools.export import load_contents
from tools.jsonview import records_to_json


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
