"""torch.compile(nn.RNNCell) (or nn.LSTMCell) in float16 on the CPU, and nn.LSTMCell in bfloat16:
Inductor's C++ code for the backward does not compile ("error: conflicting
declaration 'auto at_Half_tmp_acc0_vec'", at_BFloat16_... for bfloat16), so
forward+backward raises InductorError where eager torch runs. The forward alone
compiles (AOTAutograd compiles the backward eagerly, fails, and suppresses the error
until backward is called).

    python repro_compiled_rnncell_half_backward.py [RNNCell|LSTMCell] [float16|bfloat16]   # exit 1: reproduced (about a minute)
"""
import sys

import torch
from torch import nn

dtype = getattr(torch, sys.argv[2] if len(sys.argv) > 2 else "float16")
cell = getattr(nn, sys.argv[1] if len(sys.argv) > 1 else "RNNCell")(3, 4, dtype=dtype)
compiled = torch.compile(cell, dynamic=True)
x = torch.randn(5, 3, dtype=dtype, requires_grad=True)
first = lambda result: result[0] if isinstance(result, tuple) else result  # noqa: E731  (LSTMCell: (h, c))
first(cell(x)).sum().backward()
print("eager: forward+backward ran")
try:
    first(compiled(x)).sum().backward()
    print("compiled: forward+backward ran")
    sys.exit(0)
except Exception as error:  # torch._inductor.exc.InductorError
    print("compiled raises", type(error).__name__, str(error).splitlines()[0])
    sys.exit(1)
