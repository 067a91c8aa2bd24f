"""Benchmarks: each measures one thing and returns rows of numbers (they assert nothing)."""
