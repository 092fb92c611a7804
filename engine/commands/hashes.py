"""Commands: hashes (to be written)."""
