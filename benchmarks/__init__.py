"""Benchmarks for vaultstore_async; run them with `python -m benchmarks.run`."""
