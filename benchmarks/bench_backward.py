"""Forward then backward: time, peak memory, and worst error (gradients included)."""

from harness.bench import asv as suites

from .common import BuiltinSuite


class RNNBackward(BuiltinSuite, suites.BackwardSuite):
    family = "RNN"


class LSTMBackward(RNNBackward):
    family = "LSTM"


class GRUBackward(RNNBackward):
    family = "GRU"
