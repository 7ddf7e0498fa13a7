"""Benchmarks: time-to-detect and time-to-recover per scenario, reported as percentiles and ratios."""
