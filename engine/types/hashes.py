"""Value type: hashes (to be written)."""
