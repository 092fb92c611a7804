"""RDB reading and writing: VALKEY080 and REDIS0001-0012."""
