"""Commands: streams (to be written)."""
