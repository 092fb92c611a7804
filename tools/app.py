"""The ``valkey-aof`` entry point (commands load lazily: see tools/cli.py LazyGroup)."""

from __future__ import annotations

from tools.cli import COMMANDS, load_all, main

__all__ = ["COMMANDS", "load_all", "main", "run"]


def run() -> None:
    main()
