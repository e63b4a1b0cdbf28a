"""The default asv suite of rnn-harness (asv.conf.json; docs/benchmarks.md); the full,
opt-in one is benchmarks_full/, the pytest-benchmark suite is in ab/."""
