"""nn.LSTM with a PackedSequence: a wrong h_0/c_0 shape passes torch._decomp's
decomposition of aten.lstm.data.

nn.LSTM.forward does not call check_forward_args for a PackedSequence (see the
oneDNN finding in docs/found-bugs.md); aten.lstm.data's C++ kernel then checks the
states, its decomposition (lstm_data_impl) does not. Here h_0/c_0 have one sequence
too many: torch raises RuntimeError, the decomposition returns.

    python repro_decomp_lstm_packed_state_unchecked.py     # exit 1: reproduced
"""
import sys

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.overrides import TorchFunctionMode
from torch._decomp import decomposition_table


class Decomposed(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch._C._VariableFunctions.lstm:
            return decomposition_table[torch.ops.aten.lstm.data](*args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))


lstm = nn.LSTM(3, 4)
packed = pack_padded_sequence(torch.randn(2, 3, 3), torch.tensor([2, 2, 1]))
state = (torch.zeros(1, 4, 4), torch.zeros(1, 4, 4))  # batch 4; the input has 3 sequences
try:
    lstm(packed, state)
    print("nn.LSTM returns")
except RuntimeError as error:
    print("nn.LSTM raises RuntimeError:", error)
with Decomposed():
    try:
        lstm(packed, state)
        print("the decomposition returns")
        sys.exit(1)
    except Exception as error:
        print("the decomposition raises", type(error).__name__, error)
        sys.exit(0)
