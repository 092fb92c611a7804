"""Commands: zsets (to be written)."""
