"""Commands: transactions (to be written)."""
