"""``valkey-aof inspect``: a report of what an RDB or AOF holds and how it was written."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import click

from persistence.errors import PersistenceError
from persistence.stats import inspect_path
from tools.cli import CorruptInput, corrupt, jobs_option, main, no_cyclic_gc, total_size
from tools.jsonout import dumps, progress_enabled
from tools.keyspecs import key_positions, single_key
from tools.keyspecs import load_table as _load_table

__all__ = ["_load_table", "inspect", "key_positions", "single_key"]


@main.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="The report as JSON (stable schema).")
@click.option("--top", type=click.IntRange(1, 1000), default=10, help="How many top keys.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@jobs_option(
    "Processes sharing the statistics of an AOF (default: 2 for a big one when 2 CPUs "
    "are usable; 1: one process; more than 2 counts as 2). Same report whatever N."
)
def inspect(path: str, as_json: bool, top: int, quiet: bool, jobs: int | None) -> None:
    """Report on PATH (RDB file, AOF file, manifest or appendonlydir) in constant memory.

    Files, totals, commands by name, per-db and per-slot activity, TTL records, MULTI/EXEC
    blocks, the #TS timeline, CLUSTER SYNCSLOTS imports, top keys, and what a rewrite would
    save; for an RDB: keys and bytes per db and type, biggest keys, expiries, AUX fields.
    Exits 3 when the input is damaged (the report covers what was read before the damage).

    \b
    Example:
      valkey-aof inspect data/appendonlydir
      valkey-aof inspect data/appendonlydir --jobs 1
      valkey-aof inspect dump.rdb --json | jq .rdb.biggest_keys
    """
    # rich (tools.render) only for a progress bar or the text report: --json does without it
    bar = progress_enabled(quiet or as_json)
    with _progress(total_size(path)) if bar else contextlib.nullcontext(None) as upd:
        try:
            with no_cyclic_gc():
                data = _inspect(path, top, upd, jobs)
        except PersistenceError as e:
            raise corrupt(e) from e
    if as_json:
        click.echo(dumps(data))
    else:
        from tools.render import console, inspect_report

        console(soft_wrap=False).print(inspect_report(data))
    p = data.get("problem")
    if p:
        where = f"{p['file']}, offset {p['offset']}" if p["offset"] is not None else p["file"]
        raise CorruptInput(f"{where}: {p['message']}")


def _inspect(
    path: str, top: int, upd: Callable[[int], None] | None, jobs: int | None
) -> dict[str, Any]:
    """The report, by two processes when the input is an all-RESP AOF and big enough (or
    --jobs 2 says so): persistence/stats_split.py shares the work and merges the halves."""
    if jobs is None:
        from persistence.aof.ranges import default_jobs  # (check's rule; only when needed)

        if default_jobs() < 2:  # one usable CPU (taskset): one process
            jobs = 1
    if jobs != 1 and hasattr(os, "fork"):
        from persistence.stats_split import SPLIT_MIN, merge_shares, resp_size, share_options

        size = resp_size(path)
        if size > 0 and (size >= SPLIT_MIN or jobs is not None):
            from tools.parallel import fork_map

            def share(index: int) -> dict[str, Any]:
                return inspect_path(path, key_positions=key_positions, top_n=top,
                                    progress=upd if index == 0 else None, single_key=single_key,
                                    **share_options(index, size))  # fmt: skip

            first, second = fork_map(share, [0, 1], 2)
            return merge_shares(first, second)
    return inspect_path(path, key_positions=key_positions, top_n=top, progress=upd,
                        single_key=single_key)  # fmt: skip


def _progress(total: int) -> contextlib.AbstractContextManager[Callable[[int], None]]:
    from tools.render import progress_bar

    return progress_bar(total, "inspect", enabled=True)
