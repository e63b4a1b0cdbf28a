"""`torchscript`: the recurrence compiled with ``torch.jit.script``.

TorchScript is deprecated since torch 2.10-ish and ``torch.jit.script`` warns with a
DeprecationWarning each time it is called. We call it once per process, silence
exactly that warning at that call (it is expected, and we chose it), and turn any
failure to compile into `harness.Unavailable`, so a torch without TorchScript makes
this implementation "skipped" rather than broken.
"""

import functools
import warnings
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from harness import DropInRNN, Implementation, Unavailable


def _recurrence(
    projected: Tensor, w_hh: Tensor, h0: Tensor, batch_sizes: List[int], reverse: bool, relu: bool
) -> Tuple[Tensor, Tensor]:
    steps = len(batch_sizes)
    offsets: List[int] = []
    start = 0
    for rows in batch_sizes:
        offsets.append(start)
        start += rows
    w_hh_t = w_hh.t()
    outputs: List[Tensor] = [projected] * steps  # placeholders, each overwritten below
    h = h0
    for i in range(steps):
        t = steps - 1 - i if reverse else i
        rows = batch_sizes[t]
        pre_activation = torch.addmm(projected[offsets[t] : offsets[t] + rows], h[:rows], w_hh_t)
        h_t = torch.relu(pre_activation) if relu else torch.tanh(pre_activation)
        outputs[t] = h_t
        if rows == h.size(0):
            h = h_t
        else:
            h = torch.cat([h_t, h[rows:]])
    return torch.cat(outputs), h


@functools.cache
def compiled_recurrence():
    """Script `_recurrence` once per process."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=DeprecationWarning)
            return torch.jit.script(_recurrence)
    except Exception as error:  # any failure means TorchScript is unusable here
        raise Unavailable(f"torch.jit.script failed: {type(error).__name__}: {error}") from error


class TorchScriptRNN(DropInRNN):
    def __init__(self, *args, **kwargs):
        compiled_recurrence()  # fail at construction, as Unavailable, not mid-forward
        super().__init__(*args, **kwargs)

    def run_direction(self, data, batch_sizes, h0, layer, direction):
        w_ih, w_hh, b_ih, b_hh = self.direction_weights(layer, direction)
        projected = F.linear(data, w_ih, None if b_ih is None else b_ih + b_hh)
        return compiled_recurrence()(projected, w_hh, h0, list(batch_sizes), direction == 1, self.nonlinearity == "relu")


IMPLEMENTATION = Implementation(
    name="torchscript",
    factory=TorchScriptRNN,
    family="RNN",
    description="recurrence compiled with torch.jit.script (deprecated in torch, kept while it works)",
)
