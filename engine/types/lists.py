"""Value type: lists (to be written)."""
