"""Benchmarks and the tools that make their data (kept apart from tests)."""
