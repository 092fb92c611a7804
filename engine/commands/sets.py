"""Commands: sets (to be written)."""
