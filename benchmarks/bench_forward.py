"""Forward pass under no_grad, the default suite: time and peak memory."""

from harness.bench import asv as suites

from .common import BuiltinSuite


class RNNForward(BuiltinSuite, suites.ForwardSuite):
    family = "RNN"


class LSTMForward(RNNForward):
    family = "LSTM"


class GRUForward(RNNForward):
    family = "GRU"
