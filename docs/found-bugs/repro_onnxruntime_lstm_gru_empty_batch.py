"""onnxruntime's CPU LSTM and GRU kernels end the process on a batch of 0.

torch returns empty tensors for nn.LSTM / nn.GRU on input of shape (L, 0, I); the
same module exported by torch.onnx.export (TorchScript exporter, ONNX LSTM/GRU op)
and run by onnxruntime's CPUExecutionProvider aborts with "terminate called without
an active exception". onnxruntime's RNN kernel returns empty tensors.

    python repro_onnxruntime_lstm_gru_empty_batch.py LSTM   # or GRU, RNN
Exit status non-zero (SIGABRT): reproduced. Exit 0 and "returned": not.
"""
import io
import sys
import warnings

import onnxruntime
import torch
from torch import nn

warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
kind = sys.argv[1] if len(sys.argv) > 1 else "LSTM"
module = getattr(nn, kind)(1, 1).eval()
outputs = ["output", "h_n", "c_n"] if kind == "LSTM" else ["output", "h_n"]
axes = {"input": {0: "steps", 1: "batch"}, "output": {0: "steps", 1: "batch"}, **{name: {1: "batch"} for name in outputs[1:]}}
buffer = io.BytesIO()
torch.onnx.export(module, (torch.randn(1, 2, 1),), buffer, dynamo=False, input_names=["input"], output_names=outputs, dynamic_axes=axes)
session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
empty = torch.randn(1, 0, 1)
with torch.no_grad():
    print("torch returns", tuple(module(empty)[0].shape), flush=True)
print("onnxruntime", onnxruntime.__version__, "returns", [a.shape for a in session.run(None, {"input": empty.numpy()})])
print("returned")
