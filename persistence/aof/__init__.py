"""Multi-part AOF: the one encoder, manifest, reader."""
