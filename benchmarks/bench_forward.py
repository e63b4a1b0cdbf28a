"""Forward pass under no_grad: time, peak memory, and worst error against float64."""

from harness.bench import asv as suites

from .common import BuiltinSuite


class RNNForward(BuiltinSuite, suites.ForwardSuite):
    family = "RNN"


class LSTMForward(RNNForward):
    family = "LSTM"


class GRUForward(RNNForward):
    family = "GRU"
