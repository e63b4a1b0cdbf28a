"""torch.compile(nn.LSTM) fails on CPU when the input does not require grad but the
parameters do (grad mode on: the first layer of any model being trained).

torch._decomp's select_one_layer_lstm_function lowers the layer to
aten.mkldnn_rnn_layer(train=False); the code torch._inductor generates for that
fallback kernel checks its workspace output with assert_size_stride, and the kernel
does not return it as a tensor: TypeError: expected Tensor() for op:
torch.ops.aten.mkldnn_rnn_layer.default. Static or dynamic shapes alike; under
torch.no_grad(), or with an input that requires grad, it runs.

    python repro_compiled_lstm_mkldnn_grad_mode.py     # exit 1: reproduced (20-60 s)
"""
import sys

import torch
from torch import nn

torch._dynamo.config.allow_rnn = True  # else Dynamo silently runs nn.LSTM eagerly
lstm = nn.LSTM(3, 4)
compiled = torch.compile(lstm, dynamic=True)
x = torch.randn(2, 5, 3)
print("eager returns", tuple(lstm(x)[0].shape))
try:
    print("compiled returns", tuple(compiled(x)[0].shape))
    sys.exit(0)
except TypeError as error:
    print("compiled raises TypeError:", str(error).splitlines()[0])
    sys.exit(1)
