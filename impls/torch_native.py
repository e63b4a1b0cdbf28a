"""`torch`: torch.nn.RNN itself, with torch's default dispatch (cuDNN on CUDA)."""

from torch import nn

from harness import Implementation

IMPLEMENTATION = Implementation(
    name="torch",
    factory=nn.RNN,
    family="RNN",
    description="torch.nn.RNN with default dispatch (cuDNN on CUDA, ATen on CPU)",
)
