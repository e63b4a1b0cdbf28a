"""asv benchmarks of my-rnn (see asv.conf.json and the README)."""
