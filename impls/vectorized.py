"""`vectorized`: the input projection hoisted out of the recurrence, backward by hand.

For each layer and direction, x_t W_ih^T + b_ih (+ b_hh where the formula allows)
is one matrix product over all time steps at once (autograd differentiates it).
Only h_{t-1} W_hh^T and the cell's elementwise work stay sequential, inside a custom
autograd function per family (`BackpropThroughTime` for RNN, `LSTMBackpropThroughTime`,
`GRUBackpropThroughTime`):

- forward: per step one in-place ``addmm_`` on the projection's own buffer (it
  becomes the output) and one in-place activation, nothing recorded;
- backward through time: per step only the ``dz_t W_hh`` product and the few
  elementwise products that carry the gradient to the previous step; every
  derivative that does not depend on the incoming gradient (gate derivatives,
  tanh(c_t), ...) is computed for all steps at once before the loop, and grad W_hh
  (and W_hr) as one GEMM over all steps after it. Autograd recording every step
  (the price torch's own CPU RNN pays) is what this avoids.

The LSTM and GRU forward loops (`lstm_layer_`, `gru_layer_`: per-step views cut once,
then `lstm_recurrence_`, `gru_recurrence_` over them) are written in the subset of
Python that TorchScript compiles; `torchscript` runs the same source scripted.

Double backward (create_graph=True) raises instead of being silently wrong.
"""

from __future__ import annotations

import functools
from typing import List, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from harness import DropInRNN, Implementation
from harness.dropin import DropInGRU, DropInLSTM
from harness.dropin import step_offsets
from impls import BUILTIN_EXAMPLES

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


def refuse_double_backward() -> None:
    # Grad mode is on in a backward only under create_graph=True. once_differentiable
    # alone is not enough: it raises only when a grad_output itself requires grad,
    # and otherwise returns gradients missing the second-order terms.
    if torch.is_grad_enabled():
        raise RuntimeError(
            "vectorized's backward through time is differentiable once only, so "
            "create_graph=True (double backward) is not supported; use the 'loop' "
            "implementation or torch.nn's module for higher-order gradients"
        )


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
        refuse_double_backward()
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


# -- LSTM and GRU ---------------------------------------------------------------------
#
# The same plan, with more state: the forward loops write every step's activated
# gates (in place, over the hoisted projection), and LSTM's c_t, into buffers the
# backward reads. The matrices are cut into per-step views once, before each loop
# (`rows_by_step`: one unbind when every step has every row), so the loops do no
# slicing of their own.


def rows_by_step(matrix: Tensor, batch_sizes: List[int], offsets: List[int], uniform: bool) -> List[Tensor]:
    """Each time step's block of rows of a packed matrix (or of a column slice of one), by t."""
    if uniform:
        return matrix.unflatten(0, [len(batch_sizes), batch_sizes[0]]).unbind(0)
    return [matrix[offsets[k] : offsets[k] + batch_sizes[k]] for k in range(len(batch_sizes))]


def step_views(matrix: Tensor, plan: StepPlan) -> List[Tensor]:
    """`rows_by_step` with a plan's bookkeeping."""
    return rows_by_step(matrix, list(plan.batch_sizes), list(plan.offsets), plan.uniform)


def previous_states(states: Tensor, initial: Tensor, plan: StepPlan) -> Tensor:
    """For every packed row, the state its step started from: another row's, or the initial one."""
    previous = torch.empty_like(states)
    for rows, source in ((plan.recurrent_rows, take(states, plan.previous_rows)), (plan.h0_reader_rows, initial)):
        if isinstance(rows, slice):
            previous[rows] = source
        else:
            previous.index_copy_(0, rows, source)
    return previous


LSTM_INTERNAL_ORDER = (3, 0, 1, 2)
"""torch stacks LSTM's gate blocks i, f, g, o; inside, vectorized stacks them o, i, f, g,
so that the three sigmoid gates are one block (one sigmoid_ per step, not two) and
the three gates whose gradient comes from dc are one block in the backward."""


@functools.lru_cache(maxsize=64)
def lstm_internal_rows(hidden: int, device: torch.device) -> Tensor:
    """Row index that takes torch's (i, f, g, o) gate blocks to (o, i, f, g)."""
    blocks = torch.arange(4 * hidden, device=device).view(4, hidden)
    return blocks[list(LSTM_INTERNAL_ORDER)].flatten()


def lstm_recurrence_(
    gates: List[Tensor], sigmoid_gates: List[Tensor], o: List[Tensor], i: List[Tensor], f: List[Tensor], g: List[Tensor],
    cells: List[Tensor], outputs: List[Tensor], h0: Tensor, c0: Tensor, w_hh: Tensor, w_hr: Optional[Tensor],
    order: List[int], round_product: bool,
) -> None:
    """Run the LSTM over the steps in ``order``, writing into the views it is given.

    ``gates[t]`` (rows, 4H) holds x_t W_ih^T + b_ih + b_hh with the gate blocks in
    the order o, i, f, g (`LSTM_INTERNAL_ORDER`; ``w_hh``'s rows likewise) and is
    activated in place (``sigmoid_gates`` is its o, i, f block, ``o``...``g`` each
    gate's); ``cells[t]`` receives c_t and ``outputs[t]`` h_t (projected by W_hr
    when given).
    """
    w_hh_t = w_hh.t().contiguous()  # MKL multiplies by it faster untransposed (~10% per step)
    h = h0
    c = c0
    for t in order:
        rows = gates[t].size(0)
        if h.size(0) > rows:  # forward direction: some sequences have ended
            h = h[:rows]
            c = c[:rows]
        elif h.size(0) < rows:  # reverse direction: some sequences start here, from h0 and c0
            h = torch.cat([h, h0[h.size(0) : rows]])
            c = torch.cat([c, c0[c.size(0) : rows]])
        if round_product:
            gates[t].add_(torch.mm(h, w_hh_t))
        else:
            gates[t].addmm_(h, w_hh_t)
        sigmoid_gates[t].sigmoid_()
        g[t].tanh_()
        c = torch.mul(f[t], c, out=cells[t])
        c.addcmul_(i[t], g[t])
        if w_hr is None:
            h = torch.tanh(c, out=outputs[t])
            h.mul_(o[t])
        else:
            h = torch.mm(torch.tanh(c).mul_(o[t]), w_hr.t(), out=outputs[t])


def lstm_layer_(
    projected: Tensor, cells: Tensor, output: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, w_hr: Optional[Tensor],
    batch_sizes: List[int], offsets: List[int], order: List[int], uniform: bool, round_product: bool,
) -> None:
    """`lstm_recurrence_` over whole packed matrices: cut them into per-step views, run it."""
    hidden = cells.size(1)
    gates = rows_by_step(projected, batch_sizes, offsets, uniform)
    sigmoid_gates = rows_by_step(projected[:, : 3 * hidden], batch_sizes, offsets, uniform)
    o = rows_by_step(projected[:, :hidden], batch_sizes, offsets, uniform)
    i = rows_by_step(projected[:, hidden : 2 * hidden], batch_sizes, offsets, uniform)
    f = rows_by_step(projected[:, 2 * hidden : 3 * hidden], batch_sizes, offsets, uniform)
    g = rows_by_step(projected[:, 3 * hidden :], batch_sizes, offsets, uniform)
    lstm_recurrence_(
        gates, sigmoid_gates, o, i, f, g, rows_by_step(cells, batch_sizes, offsets, uniform),
        rows_by_step(output, batch_sizes, offsets, uniform), h0, c0, w_hh, w_hr, order, round_product,
    )


def gru_recurrence_(
    reset_update: List[Tensor], r: List[Tensor], z: List[Tensor], n: List[Tensor],
    hidden: List[Tensor], hidden_reset_update: List[Tensor], hidden_n: List[Tensor], outputs: List[Tensor],
    h0: Tensor, w_hh: Tensor, b_hh: Optional[Tensor], order: List[int], round_product: bool,
) -> None:
    """Run the GRU over the steps in ``order``, writing into the views it is given.

    ``reset_update[t]`` and ``n[t]`` are the blocks of x_t W_ih^T + b_ih, activated in
    place (``r``, ``z`` views of the first); ``hidden[t]`` (rows, 3H) receives
    h_{t-1} W_hh^T + b_hh (its blocks ``hidden_reset_update``, ``hidden_n``), and
    ``outputs[t]`` h_t.
    """
    w_hh_t = w_hh.t().contiguous()
    h = h0
    for t in order:
        rows = outputs[t].size(0)
        if h.size(0) > rows:
            h = h[:rows]
        elif h.size(0) < rows:
            h = torch.cat([h, h0[h.size(0) : rows]])
        if b_hh is None:
            torch.mm(h, w_hh_t, out=hidden[t])
        elif round_product:
            torch.add(torch.mm(h, w_hh_t), b_hh, out=hidden[t])
        else:
            torch.addmm(b_hh, h, w_hh_t, out=hidden[t])
        reset_update[t].add_(hidden_reset_update[t]).sigmoid_()
        n[t].addcmul_(r[t], hidden_n[t]).tanh_()
        if round_product:
            # n + z (h - n) in the order torch rounds it: in half precision a chaotic
            # trajectory follows torch's rounding only (see recur_).
            h = torch.sub(h, n[t], out=outputs[t])
            h.mul_(z[t]).add_(n[t])
        else:
            h = torch.lerp(n[t], h, z[t], out=outputs[t])  # n + z (h - n), one op


def gru_layer_(
    projected: Tensor, hidden: Tensor, output: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Optional[Tensor],
    batch_sizes: List[int], offsets: List[int], order: List[int], uniform: bool, round_product: bool,
) -> None:
    """`gru_recurrence_` over whole packed matrices: cut them into per-step views, run it."""
    width = output.size(1)
    gru_recurrence_(
        rows_by_step(projected[:, : 2 * width], batch_sizes, offsets, uniform),
        rows_by_step(projected[:, :width], batch_sizes, offsets, uniform),
        rows_by_step(projected[:, width : 2 * width], batch_sizes, offsets, uniform),
        rows_by_step(projected[:, 2 * width :], batch_sizes, offsets, uniform),
        rows_by_step(hidden, batch_sizes, offsets, uniform),
        rows_by_step(hidden[:, : 2 * width], batch_sizes, offsets, uniform),
        rows_by_step(hidden[:, 2 * width :], batch_sizes, offsets, uniform),
        rows_by_step(output, batch_sizes, offsets, uniform),
        h0, w_hh, b_hh, order, round_product,
    )


def lstm_forward(projected, w_hh, w_hr, h0, c0, plan: StepPlan, kernel) -> tuple[Tensor, Tensor]:
    """Activate ``projected`` (gate blocks o, i, f, g) in place; return the output (h_t)
    and cell (c_t) matrices."""
    hidden = projected.shape[1] // 4
    output = projected.new_empty(projected.shape[0], w_hh.shape[1])
    cells = projected.new_empty(projected.shape[0], hidden)
    round_product = projected.dtype in (torch.float16, torch.bfloat16)  # as torch rounds; see recur_
    kernel(projected, cells, output, h0, c0, w_hh, w_hr, *_bookkeeping(plan), round_product)
    return output, cells


def gru_forward(projected, w_hh, b_hh, h0, plan: StepPlan, kernel) -> tuple[Tensor, Tensor]:
    """Activate ``projected`` in place; return the output matrix and the hidden products."""
    width = h0.shape[1]
    output = projected.new_empty(projected.shape[0], width)
    hidden = projected.new_empty(projected.shape[0], 3 * width)
    round_product = projected.dtype in (torch.float16, torch.bfloat16)
    kernel(projected, hidden, output, h0, w_hh, b_hh, *_bookkeeping(plan), round_product)
    return output, hidden


def _bookkeeping(plan: StepPlan) -> tuple[list[int], list[int], list[int], bool]:
    return list(plan.batch_sizes), list(plan.offsets), list(plan.order), plan.uniform


def _transfer(rows: int, rows_before: int) -> int:
    """How many rows of a step hand their gradient to the step processed before it."""
    return min(rows, rows_before)


class LSTMBackpropThroughTime(torch.autograd.Function):
    """LSTM's recurrence with a hand-written backward through time.

    ``apply(projected, w_hh, w_hr, h0, c0, plan, kernel)`` returns ``(output, cells,
    gates)``: h_t and c_t for every packed row, and ``projected`` itself, activated
    in place (returned only because it was written to; its gradient is ignored).
    ``projected`` and ``w_hh`` have their gate blocks in `LSTM_INTERNAL_ORDER`.
    """

    @staticmethod
    def forward(ctx, projected, w_hh, w_hr, h0, c0, plan, kernel):
        output, cells = lstm_forward(projected, w_hh, w_hr, h0, c0, plan, kernel)
        ctx.mark_dirty(projected)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(projected, cells, output, w_hh, w_hr, h0, c0)
        ctx.plan = plan
        return output, cells, projected

    @staticmethod
    def backward(ctx, grad_output, grad_cells, _grad_gates):
        refuse_double_backward()
        return LSTMBackpropThroughTime.backward_through_time(ctx, grad_output, grad_cells)

    @staticmethod
    @once_differentiable
    def backward_through_time(ctx, grad_output, grad_cells):
        gates, cells, output, w_hh, w_hr, h0, c0 = ctx.saved_tensors
        plan: StepPlan = ctx.plan
        hidden = cells.shape[1]
        # grad_h and grad_c start as the gradients flowing in from outside (output,
        # h_n, c_n) and accumulate, step by step, what each step hands the one before.
        grad_h = torch.zeros_like(output) if grad_output is None else grad_output.clone(memory_format=torch.contiguous_format)
        grad_c = torch.zeros_like(cells) if grad_cells is None else grad_cells.clone(memory_format=torch.contiguous_format)
        o, i, f, g = gates.chunk(4, dim=1)
        previous_c = previous_states(cells, c0, plan)
        tanh_c = torch.tanh(cells)
        unprojected = output if w_hr is None else torch.mul(o, tanh_c)  # o tanh(c)
        # What does not depend on the incoming gradient, for every step at once:
        # dz_o = dh * tanh(c) o (1-o); dc += dh * o (1 - tanh(c)^2);
        # dz_i, dz_f, dz_g = dc * (g i (1-i), c_{t-1} f (1-f), i (1-g^2)); dc_{t-1} = dc * f.
        # (x - x*x and x - x*y*y as one addcmul each: fewer passes over the matrices.)
        to_output_gate = torch.addcmul(o, o, o, value=-1).mul_(tanh_c)
        to_cell = torch.addcmul(o, unprojected, tanh_c, value=-1)
        to_ifg = gates.new_empty(gates.shape[0], 3, hidden)
        torch.mul(torch.addcmul(i, i, i, value=-1), g, out=to_ifg[:, 0])
        torch.mul(torch.addcmul(f, f, f, value=-1), previous_c, out=to_ifg[:, 1])
        torch.addcmul(i, torch.mul(i, g), g, value=-1, out=to_ifg[:, 2])
        grad_z = torch.empty_like(gates)  # d loss / d pre-activation gates, o i f g

        grad_h_steps, grad_c_steps = step_views(grad_h, plan), step_views(grad_c, plan)
        grad_z_steps = step_views(grad_z, plan)
        grad_o_steps = step_views(grad_z[:, :hidden], plan)
        grad_ifg_steps = step_views(grad_z[:, hidden:].unflatten(1, (3, hidden)), plan)
        output_gate_steps, cell_steps = step_views(to_output_gate, plan), step_views(to_cell, plan)
        ifg_steps, forget_steps = step_views(to_ifg, plan), step_views(f, plan)
        backward_order = plan.order[::-1]
        for position, t in enumerate(backward_order):
            grad_full = grad_h_steps[t] if w_hr is None else torch.mm(grad_h_steps[t], w_hr)
            torch.mul(grad_full, output_gate_steps[t], out=grad_o_steps[t])
            grad_c_steps[t].addcmul_(grad_full, cell_steps[t])
            torch.mul(ifg_steps[t], grad_c_steps[t].unsqueeze(1), out=grad_ifg_steps[t])
            if position + 1 < len(backward_order):
                before = backward_order[position + 1]
                shared = _transfer(plan.batch_sizes[t], plan.batch_sizes[before])
                if shared == plan.batch_sizes[t] == plan.batch_sizes[before]:
                    grad_c_steps[before].addcmul_(grad_c_steps[t], forget_steps[t])
                    grad_h_steps[before].addmm_(grad_z_steps[t], w_hh)
                else:
                    grad_c_steps[before][:shared].addcmul_(grad_c_steps[t][:shared], forget_steps[t][:shared])
                    grad_h_steps[before][:shared].addmm_(grad_z_steps[t][:shared], w_hh)

        grad_w_hh = grad_w_hr = grad_h0 = grad_c0 = None
        readers = plan.h0_reader_rows
        if ctx.needs_input_grad[1]:
            grad_w_hh = grad_z.t() @ previous_states(output, h0, plan)
        if w_hr is not None and ctx.needs_input_grad[2]:
            grad_w_hr = grad_h.t() @ unprojected
        if ctx.needs_input_grad[3]:
            grad_h0 = take(grad_z, readers) @ w_hh
        if ctx.needs_input_grad[4]:
            grad_c0 = take(grad_c, readers) * take(f, readers)
        return grad_z, grad_w_hh, grad_w_hr, grad_h0, grad_c0, None, None


class GRUBackpropThroughTime(torch.autograd.Function):
    """GRU's recurrence with a hand-written backward through time.

    ``apply(projected, w_hh, b_hh, h0, plan, kernel)`` returns ``(output, gates)``:
    h_t for every packed row, and ``projected`` activated in place (returned only
    because it was written to; its gradient is ignored).
    """

    @staticmethod
    def forward(ctx, projected, w_hh, b_hh, h0, plan, kernel):
        output, hidden = gru_forward(projected, w_hh, b_hh, h0, plan, kernel)
        ctx.mark_dirty(projected)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(projected, hidden, output, w_hh, h0)
        ctx.plan = plan
        return output, projected

    @staticmethod
    def backward(ctx, grad_output, _grad_gates):
        refuse_double_backward()
        return GRUBackpropThroughTime.backward_through_time(ctx, grad_output)

    @staticmethod
    @once_differentiable
    def backward_through_time(ctx, grad_output):
        gates, hidden_products, output, w_hh, h0 = ctx.saved_tensors
        plan: StepPlan = ctx.plan
        width = output.shape[1]
        rows_total = output.shape[0]
        grad_h = torch.zeros_like(output) if grad_output is None else grad_output.clone(memory_format=torch.contiguous_format)
        r, z, n = gates.chunk(3, dim=1)
        hidden_n = hidden_products[:, 2 * width :]
        previous_h = previous_states(output, h0, plan)
        # For every step at once: with h' = n + z (h - n) and n = tanh(gi_n + r gh_n),
        # dn_pre = dh (1-z)(1-n^2), dz_pre = dh (h-n) z (1-z), then from dn_pre:
        # dr_pre = dn_pre gh_n r (1-r) and d gh_n = dn_pre r.
        # (x - x*x as one addcmul, and no `1 - x`, whose scalar rsub is slow: fewer,
        # cheaper passes over the matrices.)
        from_h = gates.new_empty(rows_total, 2, width)
        keep = torch.neg(z).add_(1)
        torch.addcmul(keep, torch.mul(keep, n), n, value=-1, out=from_h[:, 0])
        torch.mul(previous_h - n, torch.addcmul(z, z, z, value=-1), out=from_h[:, 1])
        from_n = gates.new_empty(rows_total, 2, width)
        torch.mul(hidden_n, torch.addcmul(r, r, r, value=-1), out=from_n[:, 0])
        from_n[:, 1] = r
        # Per row: dn_pre (= d gi_n), dz_pre, dr_pre, d gh_n. The last three are the
        # gradient of the hidden products in z, r, n order, so W_hh's blocks are
        # taken in that order for the per-step product.
        work = gates.new_empty(rows_total, 4, width)
        w_zrn = w_hh.unflatten(0, (3, width))[[1, 0, 2]].flatten(0, 1)

        grad_h_steps, update_steps = step_views(grad_h, plan), step_views(z, plan)
        from_h_steps, from_n_steps = step_views(from_h, plan), step_views(from_n, plan)
        first_two, first = step_views(work[:, 0:2], plan), step_views(work[:, 0:1], plan)
        last_two, hidden_grad = step_views(work[:, 2:4], plan), step_views(work[:, 1:].flatten(1), plan)
        backward_order = plan.order[::-1]
        for position, t in enumerate(backward_order):
            torch.mul(grad_h_steps[t].unsqueeze(1), from_h_steps[t], out=first_two[t])
            torch.mul(first[t], from_n_steps[t], out=last_two[t])
            if position + 1 < len(backward_order):
                before = backward_order[position + 1]
                shared = _transfer(plan.batch_sizes[t], plan.batch_sizes[before])
                if shared == plan.batch_sizes[t] == plan.batch_sizes[before]:
                    grad_h_steps[before].addcmul_(grad_h_steps[t], update_steps[t])
                    grad_h_steps[before].addmm_(hidden_grad[t], w_zrn)
                else:
                    grad_h_steps[before][:shared].addcmul_(grad_h_steps[t][:shared], update_steps[t][:shared])
                    grad_h_steps[before][:shared].addmm_(hidden_grad[t][:shared], w_zrn)

        grad_gates = work[:, [2, 1, 0]].flatten(1)  # r, z, n
        grad_hidden = work[:, [2, 1, 3]].flatten(1)
        grad_w_hh = grad_b_hh = grad_h0 = None
        if ctx.needs_input_grad[1]:
            grad_w_hh = grad_hidden.t() @ previous_h
        if ctx.needs_input_grad[2]:
            grad_b_hh = grad_hidden.sum(0)
        if ctx.needs_input_grad[3]:
            readers = plan.h0_reader_rows
            grad_h0 = take(grad_hidden, readers) @ w_hh
            grad_h0.addcmul_(take(grad_h, readers), take(z, readers))
        return grad_gates, grad_w_hh, grad_b_hh, grad_h0, None, None


def _needs_graph(*tensors) -> bool:
    return torch.is_grad_enabled() and any(tensor is not None and tensor.requires_grad for tensor in tensors)


class VectorizedLSTM(DropInLSTM):
    kernel = staticmethod(lstm_layer_)
    """The forward loop (`lstm_layer_`'s contract); a subclass may run it another way."""

    def run_direction(self, data, batch_sizes, state, layer, direction):
        w_ih, w_hh, b_ih, b_hh = self.direction_weights(layer, direction)
        w_hr = self.projection_weight(layer, direction)
        h0, c0 = state
        # Gate blocks reordered to o, i, f, g (see LSTM_INTERNAL_ORDER); autograd takes
        # the gradients back to torch's order.
        rows = lstm_internal_rows(self.hidden_size, data.device)
        bias = None if b_ih is None else (b_ih + b_hh).index_select(0, rows)
        projected = F.linear(data, w_ih.index_select(0, rows), bias)
        w_hh = w_hh.index_select(0, rows)
        plan = step_plan(batch_sizes, direction == 1, data.device)
        if _needs_graph(projected, w_hh, w_hr, h0, c0):
            output, cells, _ = LSTMBackpropThroughTime.apply(projected, w_hh, w_hr, h0, c0, plan, self.kernel)
        else:
            output, cells = lstm_forward(projected, w_hh, w_hr, h0, c0, plan, self.kernel)
        return output, (take(output, plan.final_rows), take(cells, plan.final_rows))


class VectorizedGRU(DropInGRU):
    kernel = staticmethod(gru_layer_)
    """The forward loop (`gru_layer_`'s contract); a subclass may run it another way."""

    def run_direction(self, data, batch_sizes, h0, layer, direction):
        w_ih, w_hh, b_ih, b_hh = self.direction_weights(layer, direction)
        # b_hh stays in the recurrence: GRU's reset gate multiplies it with h W_hn^T.
        projected = F.linear(data, w_ih, b_ih)
        plan = step_plan(batch_sizes, direction == 1, data.device)
        if _needs_graph(projected, w_hh, b_hh, h0):
            output, _ = GRUBackpropThroughTime.apply(projected, w_hh, b_hh, h0, plan, self.kernel)
        else:
            output, _ = gru_forward(projected, w_hh, b_hh, h0, plan, self.kernel)
        return output, take(output, plan.final_rows)


IMPLEMENTATION = Implementation(
    name="vectorized",
    factory=VectorizedRNN,
    family="RNN", default_examples=BUILTIN_EXAMPLES["RNN"],
    description="input projection hoisted into one GEMM; hand-written backward through time",
)
LSTM = Implementation(
    name="vectorized-lstm",
    factory=VectorizedLSTM,
    family="LSTM", default_examples=BUILTIN_EXAMPLES["LSTM"],
    description="input projection hoisted into one GEMM; hand-written backward through time",
)
GRU = Implementation(
    name="vectorized-gru",
    factory=VectorizedGRU,
    family="GRU", default_examples=BUILTIN_EXAMPLES["GRU"],
    description="input projection hoisted into one GEMM; hand-written backward through time",
)
