"""Value type: sets (to be written)."""
