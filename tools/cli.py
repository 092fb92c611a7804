"""``valkey-aof``: the command-line tools. Each command is a thin click command in its own module
(``tools/cmd_<name>.py``) over a library function; typed library errors become exit codes here, at
one boundary: 0 ok, 1 operational error, 2 usage, 3 corrupt input. Shared options are decorators
in this module.
"""

from __future__ import annotations

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="valkey-aof")
def main() -> None:
    """Inspect, check, rewrite, convert, export and replay Valkey/Redis AOF and RDB files."""


EXIT_OPERATIONAL = 1


class OperationalError(click.ClickException):
    exit_code = EXIT_OPERATIONAL
