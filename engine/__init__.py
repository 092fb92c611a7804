"""valkey-aof in-memory engine (issue 3)."""
