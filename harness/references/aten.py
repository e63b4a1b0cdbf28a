"""torch's recurrent layers forced onto ATen's own kernel: the oracle's reference.

With oneDNN and cuDNN switched off, torch falls back to its native recurrence: a
second real implementation inside torch, so the harness can catch a backend bug in
torch itself by comparing the two (the ``torch-aten*`` built-ins register these).
"""

import contextlib

import torch
from torch import nn


@contextlib.contextmanager
def vendor_backends_disabled():
    """Switch cuDNN and oneDNN off, touching no other flag.

    ``torch.backends.cudnn.flags()`` and ``mkldnn.flags()`` would also reset TF32 and
    determinism settings (and warn about oneDNN TF32), so only ``enabled`` is toggled.
    """
    cudnn_was, mkldnn_was = torch.backends.cudnn.enabled, torch.backends.mkldnn.enabled
    torch.backends.cudnn.enabled = False
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.cudnn.enabled = cudnn_was
        torch.backends.mkldnn.enabled = mkldnn_was


class _VendorBackendsOff:
    """Runs the module's forward with the vendor backends disabled."""

    def forward(self, input, hx=None):
        with vendor_backends_disabled():
            return super().forward(input, hx)


class AtenRNN(_VendorBackendsOff, nn.RNN):
    pass


class AtenLSTM(_VendorBackendsOff, nn.LSTM):
    pass


class AtenGRU(_VendorBackendsOff, nn.GRU):
    pass


ATEN_MODULES = {"RNN": AtenRNN, "LSTM": AtenLSTM, "GRU": AtenGRU}
"""The layer families on ATen's native kernel. The cells have no vendor kernel on the
CPU, so torch's own cell modules are already ATen's there."""
