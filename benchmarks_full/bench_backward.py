"""Forward then backward, every built-in at every shape: time, peak memory, and worst
error (gradients included)."""

from harness.bench import asv as suites

from benchmarks_full.common import FullSuite


class RNNBackward(FullSuite, suites.TracksWorstError, suites.BackwardSuite):
    family = "RNN"


class LSTMBackward(RNNBackward):
    family = "LSTM"


class GRUBackward(RNNBackward):
    family = "GRU"
