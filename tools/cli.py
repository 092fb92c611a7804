"""``valkey-aof``: the command-line tools. Each command is a thin click command in its own module
(``tools/cmd_<name>.py``) over a library function; typed library errors become exit codes here, at
one boundary: 0 ok, 1 operational error, 2 usage, 3 corrupt input. Shared options are decorators
in this module.
"""

from __future__ import annotations

import gc
import importlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from persistence.errors import ChecksumError, PersistenceError

EXIT_CORRUPT = 3


class CorruptInput(click.ClickException):
    exit_code = EXIT_CORRUPT


def corrupt(e: PersistenceError) -> CorruptInput:
    msg = e.describe()
    if isinstance(e, ChecksumError):
        msg += " (--no-checksum skips the check)"
    return CorruptInput(msg)


COMMANDS = ("check", "convert", "export", "inspect", "replay", "rewrite")


class LazyGroup(click.Group):
    """Imports ``tools/cmd_<name>.py`` only when that command is used (``check`` does not pay for
    the engine that ``rewrite`` and ``replay`` load), or all of them for ``--help``."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            importlib.import_module(f"tools.cmd_{cmd_name}")
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_all()
        return super().list_commands(ctx)


def load_all() -> None:
    for name in COMMANDS:
        importlib.import_module(f"tools.cmd_{name}")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="valkey-aof")
def main() -> None:
    """Inspect, check, rewrite, convert, export and replay Valkey/Redis AOF and RDB files."""


EXIT_OPERATIONAL = 1


class OperationalError(click.ClickException):
    exit_code = EXIT_OPERATIONAL


def total_size(path: str) -> int:
    """Bytes a progress bar over PATH counts to (every file of an AOF directory)."""
    p = Path(path)
    if p.is_dir():
        return sum(c.stat().st_size for c in p.iterdir() if c.is_file())
    if p.name.endswith(".manifest"):
        return sum(c.stat().st_size for c in p.parent.iterdir() if c.is_file())
    return os.path.getsize(p)


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """A streaming pass makes and drops millions of small containers and no cycles: the
    cyclic GC would only walk them again and again (a third of ``check``'s time)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


_F = TypeVar("_F", bound=Callable[..., Any])


def jobs_option(help: str) -> Callable[[_F], _F]:
    """``-j/--jobs N`` (processes; None: the command's default), for check and inspect."""
    return click.option(
        "-j", "--jobs", type=click.IntRange(min=1), default=None, metavar="N", help=help
    )
