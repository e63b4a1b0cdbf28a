"""`torch-aten`: torch.nn.RNN forced onto ATen's own kernel.

With oneDNN and cuDNN switched off, torch falls back to its native recurrence: a
second real implementation inside torch, so the harness can catch a backend bug in
torch itself by comparing the two. The modules are the engine's reference
(harness/references/aten.py); this module registers them as implementations.
"""

from harness import Implementation
from harness.references.aten import ATEN_MODULES, AtenGRU, AtenLSTM, AtenRNN, vendor_backends_disabled
from impls import BUILTIN_EXAMPLES

__all__ = ["ATEN_MODULES", "GRU", "IMPLEMENTATION", "LSTM", "AtenGRU", "AtenLSTM", "AtenRNN", "vendor_backends_disabled"]

_DESCRIPTION = "torch.nn.{} with cuDNN and oneDNN disabled (ATen's native kernel)"
IMPLEMENTATION = Implementation(name="torch-aten", factory=AtenRNN, family="RNN", default_examples=BUILTIN_EXAMPLES["RNN"], description=_DESCRIPTION.format("RNN"))
LSTM = Implementation(name="torch-aten-lstm", factory=AtenLSTM, family="LSTM", default_examples=BUILTIN_EXAMPLES["LSTM"], description=_DESCRIPTION.format("LSTM"))
GRU = Implementation(name="torch-aten-gru", factory=AtenGRU, family="GRU", default_examples=BUILTIN_EXAMPLES["GRU"], description=_DESCRIPTION.format("GRU"))
