"""Benchmarks behind `anpr-edge bench ...`: each prints measured figures (no timed tests)."""
