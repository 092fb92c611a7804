"""``valkey-aof inspect``: a report of what an RDB or AOF holds and how it was written."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from persistence.errors import PersistenceError
from persistence.stats import inspect_path
from tools.cli import CorruptInput, corrupt, main, no_cyclic_gc, total_size
from tools.render import console, dumps, inspect_report, progress_bar, progress_enabled

if TYPE_CHECKING:
    from engine.commands.table import Command


def key_positions(argv: list[bytes]) -> list[int]:
    """Where the keys are, from the one command table."""
    lookup = _load_table()
    cmd = lookup(argv)
    return cmd.key_positions(argv) if cmd is not None else []


def single_key(name: bytes) -> bool:
    """True when the command's only key is argv[1] (a fast path for the statistics)."""
    lookup = _load_table()
    cmd = lookup([name])
    return (
        cmd is not None
        and not cmd.container
        and cmd.keys_fn is None
        and cmd.first_key == 1
        and cmd.last_key == 1
    )


_lookup: list[Callable[[list[bytes]], Command | None]] = []


def _load_table() -> Callable[[list[bytes]], Command | None]:
    """The table's lookup, importing the engine's commands on first use only: an RDB input
    (no commands) does not pay for them."""
    if not _lookup:
        import engine.commands  # noqa: F401 - registers every command in the table
        from engine.commands.table import lookup

        _lookup.append(lookup)
    return _lookup[0]


@main.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="The report as JSON (stable schema).")
@click.option("--top", type=click.IntRange(1, 1000), default=10, help="How many top keys.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def inspect(path: str, as_json: bool, top: int, quiet: bool) -> None:
    """Report on PATH (RDB file, AOF file, manifest or appendonlydir) in constant memory.

    Files, totals, commands by name, per-db and per-slot activity, TTL records, MULTI/EXEC
    blocks, the #TS timeline, CLUSTER SYNCSLOTS imports, top keys, and what a rewrite would
    save; for an RDB: keys and bytes per db and type, biggest keys, expiries, AUX fields.
    Exits 3 when the input is damaged (the report covers what was read before the damage).

    \b
    Example:
      valkey-aof inspect data/appendonlydir
      valkey-aof inspect dump.rdb --json | jq .rdb.biggest_keys
    """
    with progress_bar(
        total_size(path), "inspect", enabled=progress_enabled(quiet or as_json)
    ) as upd:
        try:
            with no_cyclic_gc():
                data: dict[str, Any] = inspect_path(
                    path, key_positions=key_positions, top_n=top, progress=upd,
                    single_key=single_key,
                )  # fmt: skip
        except PersistenceError as e:
            raise corrupt(e) from e
    if as_json:
        click.echo(dumps(data))
    else:
        console(soft_wrap=False).print(inspect_report(data))
    p = data.get("problem")
    if p:
        where = f"{p['file']}, offset {p['offset']}" if p["offset"] is not None else p["file"]
        raise CorruptInput(f"{where}: {p['message']}")
