"""`torchscript`: the recurrence's forward compiled with ``torch.jit.script``.

The per-step loop (for RNN one in-place ``addmm_`` and activation per step on the
hoisted projection; for LSTM and GRU vectorized's own `lstm_layer_` and
`gru_layer_`, whose source is written to be scriptable) is a TorchScript
function; gradients come from the same hand-written backward through time as
`vectorized`, so the two differ exactly in how the forward loop is executed.

TorchScript is deprecated in recent torch, and ``torch.jit.script`` warns with a
DeprecationWarning each time it is called. We call it once per process, silence
exactly that warning at that call (it is expected, and we chose it), and turn any
failure to compile into `harness.Unavailable`, so a torch without TorchScript makes
this implementation "skipped" rather than broken.
"""

import functools
import warnings
from typing import List

import torch
from torch import Tensor

from harness import Implementation, Unavailable
from impls import BUILTIN_EXAMPLES
from impls.vectorized import StepPlan, VectorizedGRU, VectorizedLSTM, VectorizedRNN, gru_layer_, lstm_layer_


def _recur_(
    projected: Tensor, w_hh: Tensor, h0: Tensor, batch_sizes: List[int], offsets: List[int],
    order: List[int], relu: bool, round_product: bool,
) -> Tensor:
    """Turn ``projected`` into the output in place (see impls.vectorized.recur_)."""
    w_hh_t = w_hh.t()
    h = h0
    for t in order:
        rows = batch_sizes[t]
        start = offsets[t]
        if h.size(0) > rows:  # forward direction: some sequences have ended
            h = h[:rows]
        elif h.size(0) < rows:  # reverse direction: some sequences start here, from h0
            h = torch.cat([h, h0[h.size(0) : rows]])
        step = projected[start : start + rows]
        if round_product:
            step.add_(torch.mm(h, w_hh_t))
        else:
            step.addmm_(h, w_hh_t)
        if relu:
            step.relu_()
        else:
            step.tanh_()
        h = step
    return projected


def _script(function):
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=DeprecationWarning)
            return torch.jit.script(function)
    except Exception as error:  # any failure means TorchScript is unusable here
        raise Unavailable(f"torch.jit.script failed: {type(error).__name__}: {error}") from error


@functools.cache
def compiled_recurrence():
    """Script `_recur_` once per process."""
    return _script(_recur_)


@functools.cache
def compiled_kernels() -> dict:
    """Script vectorized's LSTM and GRU loops once per process, by family."""
    return {"LSTM": _script(lstm_layer_), "GRU": _script(gru_layer_)}


def scripted_kernel(projected: Tensor, w_hh: Tensor, h0: Tensor, plan: StepPlan, relu: bool) -> Tensor:
    """`recur_`'s signature, running the scripted loop."""
    round_product = projected.dtype in (torch.float16, torch.bfloat16)  # as torch rounds; see vectorized
    return compiled_recurrence()(
        projected, w_hh, h0, list(plan.batch_sizes), list(plan.offsets), list(plan.order), relu, round_product
    )


class TorchScriptRNN(VectorizedRNN):
    """`vectorized` with its forward loop run by TorchScript."""

    kernel = staticmethod(scripted_kernel)

    def __init__(self, *args, **kwargs):
        compiled_recurrence()  # fail at construction, as Unavailable, not mid-forward
        super().__init__(*args, **kwargs)


def scripted_lstm_kernel(*arguments) -> None:
    """`lstm_layer_`, scripted."""
    compiled_kernels()["LSTM"](*arguments)


def scripted_gru_kernel(*arguments) -> None:
    """`gru_layer_`, scripted."""
    compiled_kernels()["GRU"](*arguments)


class TorchScriptLSTM(VectorizedLSTM):
    """`vectorized` LSTM with its forward loop run by TorchScript."""

    kernel = staticmethod(scripted_lstm_kernel)

    def __init__(self, *args, **kwargs):
        compiled_kernels()  # fail at construction, as Unavailable, not mid-forward
        super().__init__(*args, **kwargs)


class TorchScriptGRU(VectorizedGRU):
    """`vectorized` GRU with its forward loop run by TorchScript."""

    kernel = staticmethod(scripted_gru_kernel)

    def __init__(self, *args, **kwargs):
        compiled_kernels()
        super().__init__(*args, **kwargs)


IMPLEMENTATION = Implementation(
    name="torchscript",
    factory=TorchScriptRNN,
    family="RNN", default_examples=BUILTIN_EXAMPLES["RNN"],
    description="forward recurrence compiled with torch.jit.script (deprecated in torch, kept while it works); backward shared with vectorized",
)
LSTM = Implementation(
    name="torchscript-lstm",
    factory=TorchScriptLSTM,
    family="LSTM", default_examples=BUILTIN_EXAMPLES["LSTM"],
    description="vectorized's LSTM loop compiled with torch.jit.script (deprecated in torch, kept while it works); backward shared with vectorized",
)
GRU = Implementation(
    name="torchscript-gru",
    factory=TorchScriptGRU,
    family="GRU", default_examples=BUILTIN_EXAMPLES["GRU"],
    description="vectorized's GRU loop compiled with torch.jit.script (deprecated in torch, kept while it works); backward shared with vectorized",
)
