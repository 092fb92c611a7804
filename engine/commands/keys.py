"""Commands: keys (to be written)."""
