"""Command-line tools: valkey-aof."""
