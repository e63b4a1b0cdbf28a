"""my-rnn: hand-written torch.nn.RNN, nn.LSTM and nn.GRUCell, registered with rnn-harness.

Each `Implementation` here is what one ``rnn_harness.impls`` entry point in
pyproject.toml points at: the name, the factory the harness calls with the torch
class's constructor keywords, the family (torch's class name), and what the
implementation claims to support. Keep the families you write, delete the others
(and their entry points).
"""

from harness import Implementation

from my_rnn.cell import MyGRUCell
from my_rnn.lstm import MyLSTM
from my_rnn.rnn import MyRNN

IMPLEMENTATION = Implementation(
    name="my-rnn",
    factory=MyRNN,
    description="input projection for all steps at once, then a per-step loop",
    # Every capability defaults to "everything torch.nn.RNN does". Narrow what you do
    # not support and the harness never generates such a case, for example:
    #   dtypes={torch.float32, torch.float64}, devices={"cpu"}, max_layers=2,
    #   bidirectional=False, packed=False, unbatched=False, backward=False,
)

LSTM = Implementation(
    name="my-lstm",
    factory=MyLSTM,
    family="LSTM",
    description="nn.LSTM with proj_size: input projection for all steps at once, then a per-step loop",
    # LSTM also has projections=False, for an implementation without proj_size.
)

GRU_CELL = Implementation(
    name="my-grucell",
    factory=MyGRUCell,
    family="GRUCell",
    description="nn.GRUCell: one step of the textbook formula",
)

__all__ = ["GRU_CELL", "IMPLEMENTATION", "LSTM", "MyGRUCell", "MyLSTM", "MyRNN"]
