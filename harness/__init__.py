"""rnn-harness: differential fuzzing and benchmarks for re-implementations of torch.nn.RNN."""

from harness.dropin import DirectionWeights, DropInRNN
from harness.implementation import Implementation, Unavailable
from harness.registry import discover

__all__ = ["DirectionWeights", "DropInRNN", "Implementation", "Unavailable", "discover"]
