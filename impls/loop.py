"""`loop`: the textbook recurrence, one time step at a time, for every family.

The modules are the engine's (harness/references/loop.py: the activation probes
perturb them); this module registers them as implementations.
"""

from harness import Implementation
from harness.references.loop import LoopCell, LoopGRU, LoopGRUCell, LoopLayer, LoopLSTM, LoopLSTMCell, LoopRNN, LoopRNNCell
from impls import BUILTIN_EXAMPLES

__all__ = [
    "GRU", "GRU_CELL", "IMPLEMENTATION", "LSTM", "LSTM_CELL", "RNN_CELL",
    "LoopCell", "LoopGRU", "LoopGRUCell", "LoopLSTM", "LoopLSTMCell", "LoopLayer", "LoopRNN", "LoopRNNCell",
]

_DESCRIPTION = "per-step Python loop over the textbook formula (the readable reference)"
IMPLEMENTATION = Implementation(name="loop", factory=LoopRNN, family="RNN", default_examples=BUILTIN_EXAMPLES["RNN"], description=_DESCRIPTION)
LSTM = Implementation(name="loop-lstm", factory=LoopLSTM, family="LSTM", default_examples=BUILTIN_EXAMPLES["LSTM"], description=_DESCRIPTION)
GRU = Implementation(name="loop-gru", factory=LoopGRU, family="GRU", default_examples=BUILTIN_EXAMPLES["GRU"], description=_DESCRIPTION)
RNN_CELL = Implementation(name="loop-rnncell", factory=LoopRNNCell, family="RNNCell", default_examples=BUILTIN_EXAMPLES["RNNCell"], description=_DESCRIPTION)
LSTM_CELL = Implementation(name="loop-lstmcell", factory=LoopLSTMCell, family="LSTMCell", default_examples=BUILTIN_EXAMPLES["LSTMCell"], description=_DESCRIPTION)
GRU_CELL = Implementation(name="loop-grucell", factory=LoopGRUCell, family="GRUCell", default_examples=BUILTIN_EXAMPLES["GRUCell"], description=_DESCRIPTION)
