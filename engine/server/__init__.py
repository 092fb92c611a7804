"""The only I/O in the engine: server, durability, cluster links."""
