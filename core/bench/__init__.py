"""Benchmarks behind `tenon bench ...`: workloads, baselines run in the same process, reports."""
