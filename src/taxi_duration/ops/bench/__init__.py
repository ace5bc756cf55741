"""Benchmarks as a product feature: the same job on every engine and on the hand-written references."""
