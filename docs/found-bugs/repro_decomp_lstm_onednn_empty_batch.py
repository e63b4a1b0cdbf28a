"""torch._decomp's LSTM decomposition sends an empty batch to oneDNN, which fails.

select_one_layer_lstm_function (torch/_decomp/decompositions.py) picks
mkldnn_one_layer_lstm (aten.mkldnn_rnn_layer) for CPU float32/bfloat16 input that
does not require grad and no projections; eager torch's use_mkldnn
(aten/src/ATen/native/RNN.cpp) also requires input.numel() != 0. On a batch of 0
nn.LSTM returns empty tensors and the decomposition raises
RuntimeError: could not execute a primitive.

    python repro_decomp_lstm_onednn_empty_batch.py     # exit 1: reproduced
"""
import sys

import torch
from torch import nn
from torch._decomp import decomposition_table

lstm = nn.LSTM(3, 4)
x = torch.randn(2, 0, 3)
state = (torch.zeros(1, 0, 4), torch.zeros(1, 0, 4))
print("nn.LSTM returns", tuple(lstm(x, state)[0].shape))
decomposition = decomposition_table[torch.ops.aten.lstm.input]
try:
    out = decomposition(x, state, lstm._flat_weights, True, 1, 0.0, False, False, False)[0]
    print("decomposition returns", tuple(out.shape))
    sys.exit(0)
except RuntimeError as error:
    print("decomposition raises RuntimeError:", error)
    sys.exit(1)
