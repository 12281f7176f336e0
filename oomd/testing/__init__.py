"""Helpers for tests and benchmarks that are useful outside this repository too (fake trees)."""
