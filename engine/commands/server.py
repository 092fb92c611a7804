"""Commands: server (to be written)."""
