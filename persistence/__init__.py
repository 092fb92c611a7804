"""Formats and files: RESP, AOF, RDB. Imports nothing else of ours."""
