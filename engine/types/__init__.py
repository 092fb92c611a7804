"""In-memory value types; importing this package registers them (see base.py)."""

from engine.types import hashes, lists, sets, streams, strings, zsets  # noqa: F401
