"""asv suites for rnn-harness (see docs/benchmarks.md); the pytest-benchmark suite is in ab/."""
