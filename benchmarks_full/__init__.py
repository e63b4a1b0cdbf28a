"""The full asv suite, opt-in (asv.full.conf.json): every built-in at every shape, with
the worst error beside the timings, and the fuzzer's throughput. The default suite is
benchmarks/; docs/benchmarks.md compares the two."""
