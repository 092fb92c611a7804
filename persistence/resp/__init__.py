"""Sans-IO RESP2/RESP3 codec."""
