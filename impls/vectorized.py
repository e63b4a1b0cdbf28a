"""`vectorized`: the input projection hoisted out of the recurrence, backward by hand.

For each layer and direction, x_t W_ih^T + b_ih + b_hh is one matrix product over
all time steps at once (autograd differentiates it). Only h_{t-1} W_hh^T stays
sequential, inside `BackpropThroughTime`, a custom autograd function:

- forward: per step one in-place ``addmm_`` on the projection's own buffer (it
  becomes the output) and one in-place activation, nothing recorded;
- backward through time: per step only the ``dz_t W_hh`` product and the activation
  derivative, then grad W_hh as one GEMM over all steps at once. Autograd recording
  every step (the price torch's own CPU RNN pays) is what this avoids.

Double backward (create_graph=True) raises instead of being silently wrong.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from harness import DropInRNN, Implementation
from harness.dropin import step_offsets

Rows = slice | Tensor
"""Rows of a packed matrix: a slice where they are contiguous, else an index."""


class StepPlan(NamedTuple):
    """Where every step of one direction reads and writes in the packed matrices.

    Built once per (batch_sizes, direction, device) and cached, so the loops below
    do no bookkeeping.
    """

    batch_sizes: tuple[int, ...]
    offsets: tuple[int, ...]
    order: tuple[int, ...]  # time steps in processing order
    uniform: bool  # every step has every row: views come from one unbind
    recurrent_rows: Rows  # packed rows whose previous state is another output row ...
    previous_rows: Rows  # ... and those previous output rows, in the same order
    h0_reader_rows: Rows  # for each sequence r, the packed row whose previous state is h0[r]
    final_rows: Rows  # for each sequence r, the output row holding its final state


def _as_rows(rows: list[int], device: torch.device) -> Rows:
    if not rows:
        return slice(0, 0)
    if rows == list(range(rows[0], rows[0] + len(rows))):
        return slice(rows[0], rows[0] + len(rows))
    return torch.tensor(rows, dtype=torch.long, device=device)


@functools.lru_cache(maxsize=256)
def step_plan(batch_sizes: tuple[int, ...], reverse: bool, device: torch.device) -> StepPlan:
    offsets = step_offsets(batch_sizes)
    steps = len(batch_sizes)
    order = tuple(range(steps - 1, -1, -1)) if reverse else tuple(range(steps))
    recurrent, previous = [], []
    h0_reader = [0] * batch_sizes[0]
    final = [0] * batch_sizes[0]
    # A step's previous state comes from the step processed just before it; rows
    # that step did not have (reverse direction: sequences not started yet) read h0.
    for position, t in enumerate(order):
        before = order[position - 1] if position > 0 else None
        rows_before = batch_sizes[before] if before is not None else 0
        for r in range(batch_sizes[t]):
            if r < rows_before:
                recurrent.append(offsets[t] + r)
                previous.append(offsets[before] + r)
            else:
                h0_reader[r] = offsets[t] + r
            final[r] = offsets[t] + r  # overwritten until the row's last processed step
    return StepPlan(
        batch_sizes=batch_sizes,
        offsets=tuple(offsets),
        order=order,
        uniform=len(set(batch_sizes)) == 1,
        recurrent_rows=_as_rows(recurrent, device),
        previous_rows=_as_rows(previous, device),
        h0_reader_rows=_as_rows(h0_reader, device),
        final_rows=_as_rows(final, device),
    )


def take(matrix: Tensor, rows: Rows) -> Tensor:
    return matrix[rows] if isinstance(rows, slice) else matrix.index_select(0, rows)


def recur_(projected: Tensor, w_hh: Tensor, h0: Tensor, plan: StepPlan, relu: bool) -> Tensor:
    """Turn ``projected`` into the output in place: h_t = f(projected_t + h_{t-1} W_hh^T).

    In place because the caller made ``projected`` for this and an in-place
    ``addmm_`` per step costs less than filling a second buffer. Never records
    autograd history: the caller runs it under no_grad or inside `BackpropThroughTime`.
    """
    output = projected
    w_hh_t = w_hh.t()
    activate_ = torch.relu_ if relu else torch.tanh_
    # In float16/bfloat16, round h W_hh^T to the dtype before adding it, as torch
    # does (two roundings; addmm_ would make one). Either is correct, but in a
    # chaotic regime a different rounding sends the trajectory elsewhere, and the
    # fuzzer's error model measures chaos with torch's own rounding.
    round_product = projected.dtype in (torch.float16, torch.bfloat16)
    if plan.uniform:
        # One unbind gives every step's view; slicing per step costs more than the
        # arithmetic at small sizes.
        h = h0
        steps = output.view(len(plan.batch_sizes), -1, w_hh.shape[0]).unbind(0)
        for t in plan.order:
            h = steps[t].add_(torch.mm(h, w_hh_t)) if round_product else steps[t].addmm_(h, w_hh_t)
            activate_(h)
        return output
    h = h0
    for t in plan.order:
        rows, start = plan.batch_sizes[t], plan.offsets[t]
        if h.shape[0] > rows:  # forward direction: some sequences have ended
            h = h[:rows]
        elif h.shape[0] < rows:  # reverse direction: some sequences start here, from h0
            h = torch.cat([h, h0[h.shape[0] : rows]])
        step = output[start : start + rows]
        h = step.add_(torch.mm(h, w_hh_t)) if round_product else step.addmm_(h, w_hh_t)
        activate_(h)
    return output


class BackpropThroughTime(torch.autograd.Function):
    """A forward recurrence kernel with a hand-written backward through time.

    ``apply(projected, w_hh, h0, plan, relu, kernel)``: ``kernel`` has `recur_`'s
    signature and contract (turn ``projected`` into the output in place); another
    implementation with its own forward kernel can reuse this backward.
    """

    @staticmethod
    def forward(ctx, projected, w_hh, h0, plan, relu, kernel):
        output = kernel(projected, w_hh, h0, plan, relu)
        ctx.mark_dirty(output)
        ctx.save_for_backward(output, w_hh, h0)
        ctx.plan, ctx.relu = plan, relu
        return output

    @staticmethod
    def backward(ctx, grad_output):
        # Grad mode is on in a backward only under create_graph=True. once_differentiable
        # alone is not enough: it raises only when grad_output itself requires grad,
        # and otherwise returns gradients missing the second-order terms.
        if torch.is_grad_enabled():
            raise RuntimeError(
                "vectorized's backward through time is differentiable once only, so "
                "create_graph=True (double backward) is not supported; use the 'loop' "
                "implementation or torch.nn.RNN for higher-order gradients"
            )
        return BackpropThroughTime.backward_through_time(ctx, grad_output)

    @staticmethod
    @once_differentiable
    def backward_through_time(ctx, grad_output):
        output, w_hh, h0 = ctx.saved_tensors
        plan: StepPlan = ctx.plan
        # grad_z starts as dL/dh_t and becomes dL/dz_t (z the pre-activation) step by
        # step, in place; at the end it is also the gradient of `projected`.
        grad_z = grad_output.clone(memory_format=torch.contiguous_format)
        # In place after the product: `1 - y * y` goes through a scalar rsub that is
        # twenty times slower here.
        derivative = (output > 0).to(output.dtype) if ctx.relu else torch.mul(output, output).neg_().add_(1)
        backward_order = plan.order[::-1]
        if plan.uniform:
            steps, hidden = len(plan.batch_sizes), w_hh.shape[0]
            grads = grad_z.view(steps, -1, hidden).unbind(0)
            derivatives = derivative.view(steps, -1, hidden).unbind(0)
            for position, t in enumerate(backward_order):
                grads[t].mul_(derivatives[t])
                if position + 1 < steps:
                    grads[backward_order[position + 1]].addmm_(grads[t], w_hh)
        else:
            for position, t in enumerate(backward_order):
                rows, start = plan.batch_sizes[t], plan.offsets[t]
                grad_t = grad_z[start : start + rows]
                grad_t.mul_(derivative[start : start + rows])
                if position + 1 < len(backward_order):
                    before = backward_order[position + 1]
                    shared = min(rows, plan.batch_sizes[before])
                    start_before = plan.offsets[before]
                    grad_z[start_before : start_before + shared].addmm_(grad_t[:shared], w_hh)
        grad_w_hh = grad_h0 = None
        h0_readers = take(grad_z, plan.h0_reader_rows)
        if ctx.needs_input_grad[1]:
            # All steps at once: one GEMM over the stacked previous states, plus the
            # rows whose previous state is h0.
            grad_w_hh = take(grad_z, plan.recurrent_rows).t() @ take(output, plan.previous_rows)
            grad_w_hh.addmm_(h0_readers.t(), h0)
        if ctx.needs_input_grad[2]:
            grad_h0 = h0_readers @ w_hh
        return grad_z, grad_w_hh, grad_h0, None, None, None


class VectorizedRNN(DropInRNN):
    kernel = staticmethod(recur_)
    """The forward loop (`recur_`'s contract); a subclass may run it another way."""

    def run_direction(self, data, batch_sizes, h0, layer, direction):
        w_ih, w_hh, b_ih, b_hh = self.direction_weights(layer, direction)
        projected = F.linear(data, w_ih, None if b_ih is None else b_ih + b_hh)
        plan = step_plan(batch_sizes, direction == 1, data.device)
        relu = self.nonlinearity == "relu"
        if torch.is_grad_enabled() and (projected.requires_grad or w_hh.requires_grad or h0.requires_grad):
            output = BackpropThroughTime.apply(projected, w_hh, h0, plan, relu, self.kernel)
        else:
            output = self.kernel(projected, w_hh, h0, plan, relu)
        return output, take(output, plan.final_rows)


IMPLEMENTATION = Implementation(
    name="vectorized",
    factory=VectorizedRNN,
    family="RNN",
    description="input projection hoisted into one GEMM; hand-written backward through time",
)
