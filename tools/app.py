"""The assembled ``valkey-aof`` CLI: importing a command module registers it on ``main``."""

from __future__ import annotations

from tools import cmd_export  # noqa: F401
from tools.cli import main

__all__ = ["main", "run"]


def run() -> None:
    main()
