"""Mutants that go wrong on memory rather than on maths: aliasing the caller's
tensors, fast paths taken only without autograd, caches that outlive the weights,
and assumptions about strides."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.dropin import step_offsets
from ._base import StepwiseRNN, time_order


class InferenceFastPath(StepwiseRNN):
    """Correct: without autograd, each step is one ``addmm`` written straight into a
    preallocated output, and the state is updated in place. The three mutants below
    each get one detail of this fast path wrong."""

    def run_direction(self, data, batch_sizes, h0, layer, direction):
        if torch.is_grad_enabled():
            return super().run_direction(data, batch_sizes, h0, layer, direction)
        w_ih, w_hh, b_ih, b_hh = self.direction_weights(layer, direction)
        projected = F.linear(data, w_ih, None if b_ih is None else b_ih + b_hh)
        w_hh_t = self.transposed_w_hh(w_hh, layer, direction)
        offsets = step_offsets(batch_sizes)
        output = torch.empty_like(projected)
        h = self.state_buffer(h0)
        for t in time_order(len(batch_sizes), direction):
            rows, start = batch_sizes[t], offsets[t]
            step_output = output[start : start + rows]
            torch.addmm(projected[start : start + rows], h[:rows], w_hh_t, out=step_output)
            step_output.copy_(self.activation(step_output))
            h = self.updated_state(h, step_output)
        return output, h

    def transposed_w_hh(self, w_hh: Tensor, layer: int, direction: int) -> Tensor:
        return w_hh.t()

    def state_buffer(self, h0: Tensor) -> Tensor:
        """A private copy of h_0 to update in place (h_0 may be the caller's tensor)."""
        return h0.clone()

    def updated_state(self, h: Tensor, step_output: Tensor) -> Tensor:
        """Rows that ran this step take its output; the others keep their state."""
        h[: step_output.shape[0]] = step_output
        return h


class InitialStateOverwritten(InferenceFastPath):
    """Writes the running state into the caller's h_0 on the no-autograd fast path.

    The ``h0.clone()`` looks like a needless copy and goes; h_0 is a view of the
    caller's ``hx``, which holds h_n after the call. Results are right, the caller's
    tensor is not. Exposed by: an h_0 passed under ``torch.no_grad()``.
    """

    def state_buffer(self, h0):
        return h0


class NoGradPathDropsFinishedRows(InferenceFastPath):
    """On the no-autograd fast path, replaces the state with the step's output instead
    of updating its first rows.

    Written and benchmarked on equal-length batches, where the two are the same; in a
    packed batch the sequences that have ended lose their state (and the reverse
    direction runs out of rows). Exposed by: ``torch.no_grad()`` with a
    PackedSequence of unequal lengths.
    """

    def updated_state(self, h, step_output):
        return step_output



class FastPathWhenInputNeedsNoGrad(InferenceFastPath):
    """Takes the no-autograd fast path whenever the input and h_0 need no gradient,
    as if only they could: a model's first layer in training gets no parameter
    gradients.

    Exposed by: grad mode on, an input that does not require grad, then backward to
    the parameters (`Case.input_grad`)."""

    def run_direction(self, data, batch_sizes, h0, layer, direction):
        if data.requires_grad or h0.requires_grad:
            return super().run_direction(data, batch_sizes, h0, layer, direction)
        with torch.no_grad():
            return super().run_direction(data, batch_sizes, h0, layer, direction)

class StaleTransposeCache(InferenceFastPath):
    """Caches a contiguous W_hh^T for the fast path, invalidated when ``data_ptr()``
    changes.

    ``load_state_dict`` and optimizer steps update weights in place, so the pointer
    stays and the cache goes stale (``weight._version`` is what changes).
    Exposed by: a forward under ``torch.no_grad()``, an in-place weight update,
    then another forward under ``torch.no_grad()``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._transposed_w_hh: dict[tuple[int, int], tuple[int, Tensor]] = {}

    def transposed_w_hh(self, w_hh, layer, direction):
        cached = self._transposed_w_hh.get((layer, direction))
        if cached is None or cached[0] != w_hh.data_ptr():
            cached = (w_hh.data_ptr(), w_hh.t().contiguous())
            self._transposed_w_hh[(layer, direction)] = cached
        return cached[1]


class BatchFirstViewNotTranspose(StepwiseRNN):
    """Turns batch-first input into time-major with ``view`` instead of ``transpose``.

    ``input.view(steps, batch, features)`` has the right shape and scrambles which
    rows belong to which sequence; on a non-contiguous input it raises instead.
    Exposed by: batch_first=True with batch >= 2 and seq_len >= 2 (values), or a
    non-contiguous batch-first input (exception).
    """

    def _prepare(self, input, hx):
        if self.batch_first and isinstance(input, Tensor) and input.dim() == 3:
            batch, steps, features = input.shape
            time_major = input.view(steps, batch, features)
            # The parent transposes batch-first input itself; hand it the view in
            # batch-first form so that what it recurs over is exactly `time_major`.
            return super()._prepare(time_major.transpose(0, 1), hx)
        return super()._prepare(input, hx)


class AssumesContiguousInput(StepwiseRNN):
    """Reads the input's memory as if it were contiguous, to skip a copy.

    ``input.as_strided(input.shape, contiguous_strides)`` is a free reinterpretation
    for the contiguous tensors it was tested on and a silent reshuffle for a
    transposed, sliced or expanded one. Exposed by: a non-contiguous input tensor.
    """

    def _prepare(self, input, hx):
        if isinstance(input, Tensor):
            input = input.as_strided(input.shape, contiguous_strides(input.shape))
        return super()._prepare(input, hx)


def contiguous_strides(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))
