"""The benchmark harness: ``python -m bench.run`` writes BENCHMARKS.md."""
