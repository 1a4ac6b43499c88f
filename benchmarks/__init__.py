"""Benchmarks, diagnostics and the CPU reproduction study; run each from the repository root as a module,
e.g. `python -m benchmarks.throughput --quick`. Committed results are in `benchmarks/results/`."""
