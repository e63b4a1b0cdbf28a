"""Forward pass under no_grad, every built-in at every shape: time, peak memory, and
worst error against float64."""

from harness.bench import asv as suites

from benchmarks_full.common import FullSuite


class RNNForward(FullSuite, suites.TracksWorstError, suites.ForwardSuite):
    family = "RNN"


class LSTMForward(RNNForward):
    family = "LSTM"


class GRUForward(RNNForward):
    family = "GRU"
