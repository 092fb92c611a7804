"""Value type: streams (to be written)."""
