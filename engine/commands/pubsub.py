"""Commands: pubsub (to be written)."""
