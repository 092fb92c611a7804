"""Commands: lists (to be written)."""
