"""Handlers used by the benchmarks."""
