"""Generated data with known answers, for the tests and the benchmarks (not installed with avepipe)."""
