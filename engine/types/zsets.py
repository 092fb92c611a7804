"""Value type: zsets (to be written)."""
