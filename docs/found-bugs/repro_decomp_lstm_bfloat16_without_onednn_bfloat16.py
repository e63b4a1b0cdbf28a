"""torch._decomp's LSTM decomposition picks oneDNN for bfloat16 without asking whether
the CPU has bfloat16: where oneDNN has none (an AVX2 CPU without AVX-512, or
ONEDNN_MAX_CPU_ISA=AVX2 on any x86 CPU), a bfloat16 nn.LSTM whose input needs no
grad raises "could not create a primitive descriptor for the LSTM forward propagation
primitive", where eager nn.LSTM checks the CPU first and runs ATen's kernel.

    ONEDNN_MAX_CPU_ISA=AVX2 python repro_decomp_lstm_bfloat16_without_onednn_bfloat16.py   # exit 1: reproduced
    python repro_decomp_lstm_bfloat16_without_onednn_bfloat16.py   # on a CPU with bfloat16 in oneDNN: exit 0, both run oneDNN
"""
import sys

import torch
from torch import nn
from torch._decomp import decomposition_table

print("oneDNN has bfloat16 on this CPU:", torch.ops.mkldnn._is_mkldnn_bf16_supported())
torch.manual_seed(0)
lstm = nn.LSTM(1, 1, dtype=torch.bfloat16).eval()
x = torch.randn(1, 1, 1, dtype=torch.bfloat16)  # one step, a batch of one, one feature
h0 = torch.zeros(1, 1, 1, dtype=torch.bfloat16)
with torch.no_grad():
    eager = lstm(x)[0]
    print("eager nn.LSTM:", eager.flatten().tolist())
    params = lstm._flat_weights
    decompose = decomposition_table[torch.ops.aten.lstm.input]
    try:
        output = decompose(x, (h0, h0), params, True, 1, 0.0, False, False, False)[0]
    except RuntimeError as error:
        print("torch._decomp's aten.lstm raises:", str(error).splitlines()[0])
        sys.exit(1)
print("torch._decomp's aten.lstm:", output.flatten().tolist())
sys.exit(0)
