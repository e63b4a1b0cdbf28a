"""Each implementation of this package against torch's module of its family: time
(forward; forward+backward), peak memory and worst error, at the latency-bound and
the compute-bound shape. `harness.bench.asv` makes the suites (MyRnnForward,
MyRnnBackward, ...); asv finds them among this module's names."""

from harness.bench.asv import suites

globals().update(suites("my-rnn", "my-lstm", "my-grucell"))
