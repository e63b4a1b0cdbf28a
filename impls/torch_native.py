"""`torch`: torch's own modules with torch's default dispatch (oneDNN where torch
picks it on CPU, cuDNN on CUDA), one implementation per family."""

from torch import nn

from harness import Implementation

_DESCRIPTION = "torch.nn.{} with default dispatch (oneDNN/ATen on CPU, cuDNN on CUDA)"
IMPLEMENTATION = Implementation(name="torch", factory=nn.RNN, family="RNN", description=_DESCRIPTION.format("RNN"))
LSTM = Implementation(name="torch-lstm", factory=nn.LSTM, family="LSTM", description=_DESCRIPTION.format("LSTM"))
GRU = Implementation(name="torch-gru", factory=nn.GRU, family="GRU", description=_DESCRIPTION.format("GRU"))
RNN_CELL = Implementation(name="torch-rnncell", factory=nn.RNNCell, family="RNNCell", description="torch.nn.RNNCell (ATen's cell kernel; fused kernel on CUDA)")
LSTM_CELL = Implementation(name="torch-lstmcell", factory=nn.LSTMCell, family="LSTMCell", description="torch.nn.LSTMCell (ATen's cell kernel; fused kernel on CUDA)")
GRU_CELL = Implementation(name="torch-grucell", factory=nn.GRUCell, family="GRUCell", description="torch.nn.GRUCell (ATen's cell kernel; fused kernel on CUDA)")
