"""One step of each of torch's recurrent families, written once (the module shells
that run these steps over a sequence are in `harness.dropin`).

Each takes the two gate pre-activation blocks a step computes, ``gi = x W_ih^T + b_ih``
and ``gh = h W_hh^T + b_hh`` (gates stacked as torch stacks them), and the previous
state, and returns the next state. Every elementwise nonlinearity goes through
``elementwise(name, x)`` with name ``tanh``, ``sigmoid`` or ``relu``, so a probe can
run the same formula with a less accurate activation (harness/probes.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Elementwise = Callable[[str, Tensor], Tensor]


ELEMENTWISE = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}
"""torch's own elementwise functions, by the names the formulas use."""


def torch_elementwise(name: str, x: Tensor) -> Tensor:
    """torch's own tanh, sigmoid or relu."""
    try:
        function = ELEMENTWISE[name]
    except KeyError:
        raise ValueError(f"unknown elementwise function {name!r}") from None
    return function(x)


def rnn_step(gi: Tensor, gh: Tensor, h: Tensor, nonlinearity: str, f: Elementwise = torch_elementwise) -> Tensor:
    """h' = f(x W_ih^T + b_ih + h W_hh^T + b_hh)."""
    return f(nonlinearity, gi + gh)


def lstm_step(
    gi: Tensor, gh: Tensor, h: Tensor, c: Tensor, w_hr: Tensor | None = None, f: Elementwise = torch_elementwise
) -> tuple[Tensor, Tensor]:
    """Gates i, f, g, o; c' = f*c + i*g; h' = o*tanh(c'), projected by W_hr when given."""
    i, forget, g, o = (gi + gh).chunk(4, dim=-1)
    c_next = f("sigmoid", forget) * c + f("sigmoid", i) * f("tanh", g)
    h_next = f("sigmoid", o) * f("tanh", c_next)
    if w_hr is not None:
        h_next = h_next @ w_hr.T
    return h_next, c_next


def gru_step(gi: Tensor, gh: Tensor, h: Tensor, f: Elementwise = torch_elementwise) -> Tensor:
    """Gates r, z, n; n = tanh(gi_n + r * (h W_hn^T + b_hn)); h' = (1 - z) n + z h.

    The reset gate multiplies the hidden product *with* its bias, as torch does.
    """
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = f("sigmoid", i_r + h_r)
    z = f("sigmoid", i_z + h_z)
    n = f("tanh", i_n + r * h_n)
    return n + z * (h - n)


def family_step(
    family_name: str,
    gi: Tensor,
    gh: Tensor,
    state: tuple[Tensor, ...],
    nonlinearity: str = "tanh",
    w_hr: Tensor | None = None,
    f: Elementwise = torch_elementwise,
) -> tuple[Tensor, ...]:
    """One step of any family: ``state`` is ``(h,)`` or ``(h, c)``, and so is the result."""
    base = family_name.removesuffix("Cell")
    if base == "RNN":
        return (rnn_step(gi, gh, state[0], nonlinearity, f),)
    if base == "LSTM":
        return lstm_step(gi, gh, state[0], state[1], w_hr, f)
    if base == "GRU":
        return (gru_step(gi, gh, state[0], f),)
    raise ValueError(f"no cell formula for family {family_name!r}")
