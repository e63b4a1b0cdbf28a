"""Forward then backward, the default suite: time and peak memory."""

from harness.bench import asv as suites

from .common import BuiltinSuite


class RNNBackward(BuiltinSuite, suites.BackwardSuite):
    family = "RNN"


class LSTMBackward(RNNBackward):
    family = "LSTM"


class GRUBackward(RNNBackward):
    family = "GRU"
