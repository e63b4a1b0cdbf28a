"""torch.compile of nn.GRU / nn.LSTM (one unidirectional layer) returns h_n as a
view into output's storage; eager torch returns separate tensors, so writing to one
changes the other only in the compiled module.

    python repro_compiled_lstm_gru_h_n_aliases_output.py GRU   # or LSTM; exit 1: reproduced
"""
import sys

import torch
from torch import nn

torch._dynamo.config.allow_rnn = True
kind = sys.argv[1] if len(sys.argv) > 1 else "GRU"
module = getattr(nn, kind)(3, 4)
compiled = torch.compile(module, dynamic=True)
x = torch.randn(2, 6, 3, requires_grad=True)  # with grad: LSTM's oneDNN lowering is not used
for label, run in (("eager", module), ("compiled", compiled)):
    output, state = run(x)
    h_n = state[0] if isinstance(state, tuple) else state
    shared = h_n.untyped_storage().data_ptr() == output.untyped_storage().data_ptr()
    print(f"{label}: h_n {'shares' if shared else 'does not share'} output's storage")
sys.exit(int(shared))
