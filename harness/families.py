"""torch's recurrent modules as data: one `Family` record per class.

Everything in the harness that differs between nn.RNN, nn.LSTM, nn.GRU and the three
cells reads it from here: constructor keywords, the recurrent state (``h`` or
``(h, c)``) and its widths, parameter names and shapes with the gates stacked as
torch stacks them, and what each module returns. The cell formulas themselves live
in `harness.step_formulas`. Adding a family is one record here plus its formula there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from torch import nn


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    """torch's class name, which is also the family's name in `Implementation`."""
    module_class: type[nn.Module]
    gates: tuple[str, ...]
    """Gate blocks stacked in W_ih/W_hh/b_*, top to bottom, as torch stacks them."""
    cell: bool
    """A single step (RNNCell, ...) rather than a layer over a sequence."""
    cell_state: bool
    """The state is ``(h, c)`` (LSTM) rather than ``h``."""
    nonlinearity: bool
    """Takes ``nonlinearity='tanh' | 'relu'`` (RNN, RNNCell)."""
    projections: bool
    """Takes ``proj_size`` (LSTM)."""

    @property
    def gate_count(self) -> int:
        return len(self.gates)

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("h", "c") if self.cell_state else ("h",)

    @property
    def keywords(self) -> tuple[str, ...]:
        """torch's constructor keywords, in torch's order (device and dtype aside)."""
        if self.cell:
            return ("input_size", "hidden_size", "bias") + (("nonlinearity",) if self.nonlinearity else ())
        names = ["input_size", "hidden_size", "num_layers"]
        if self.nonlinearity:
            names.append("nonlinearity")
        names += ["bias", "batch_first", "dropout", "bidirectional"]
        if self.projections:
            names.append("proj_size")
        return tuple(names)

    def defaults(self) -> dict[str, Any]:
        every = {"num_layers": 1, "nonlinearity": "tanh", "bias": True, "batch_first": False, "dropout": 0.0, "bidirectional": False, "proj_size": 0}
        return {k: v for k, v in every.items() if k in self.keywords}

    # -- returned tensors, by the names messages use ----------------------------------

    @property
    def result_names(self) -> tuple[str, ...]:
        """What forward returns, flattened: ``output, h_n[, c_n]`` or ``h'[, c']``."""
        if self.cell:
            return ("h'", "c'") if self.cell_state else ("h'",)
        return ("output", "h_n", "c_n") if self.cell_state else ("output", "h_n")

    @property
    def initial_state_names(self) -> tuple[str, ...]:
        """The caller's initial state, by torch's documented names."""
        if self.cell:
            return ("h_0", "c_0") if self.cell_state else ("h_0",)
        return ("h_0", "c_0") if self.cell_state else ("h_0",)

    def elementwise_functions(self, nonlinearity: str = "tanh") -> tuple[str, ...]:
        """The elementwise functions the cell formula applies (the error model grants
        each an accuracy budget): RNN's one nonlinearity, or the gates' sigmoid and tanh."""
        return (nonlinearity,) if self.nonlinearity else ("sigmoid", "tanh")

    def return_signature(self) -> str:
        if self.cell:
            return "a tuple (h', c')" if self.cell_state else "a Tensor h'"
        return "a tuple (output, (h_n, c_n))" if self.cell_state else "a tuple (output, h_n)"

    # -- parameters ---------------------------------------------------------------------

    def parameter_shapes(self, constructor: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        """torch's state_dict keys and shapes, in torch's registration order."""
        config = {**self.defaults(), **constructor}
        G, H, I = self.gate_count, config["hidden_size"], config["input_size"]
        if self.cell:
            shapes = {"weight_ih": (G * H, I), "weight_hh": (G * H, H)}
            if config["bias"]:
                shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
            return shapes
        P = config.get("proj_size", 0)
        R = P or H  # the width of h
        D = 2 if config["bidirectional"] else 1
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(config["num_layers"]):
            width = I if layer == 0 else D * R
            for direction in range(D):
                names = parameter_names(layer, direction)
                shapes[names.w_ih] = (G * H, width)
                shapes[names.w_hh] = (G * H, R)
                if config["bias"]:
                    shapes[names.b_ih] = (G * H,)
                    shapes[names.b_hh] = (G * H,)
                if P:
                    shapes[names.w_hr] = (P, H)
        return shapes


class ParameterNames(tuple):
    """torch's keys for one layer and direction: w_ih, w_hh, b_ih, b_hh, w_hr.

    Unpacks as the first four (what an nn.RNN plugin expects); ``.w_hr`` is LSTM's
    projection, registered only with ``proj_size > 0``.
    """

    def __new__(cls, suffix: str):
        instance = super().__new__(cls, (f"weight_ih_{suffix}", f"weight_hh_{suffix}", f"bias_ih_{suffix}", f"bias_hh_{suffix}"))
        instance.w_hr = f"weight_hr_{suffix}"
        return instance

    w_ih = property(lambda self: self[0])
    w_hh = property(lambda self: self[1])
    b_ih = property(lambda self: self[2])
    b_hh = property(lambda self: self[3])


def parameter_names(layer: int, direction: int) -> ParameterNames:
    """torch's state_dict keys of one layer and direction (1 = reverse)."""
    return ParameterNames(f"l{layer}" + ("_reverse" if direction == 1 else ""))


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("RNN", nn.RNN, ("h",), cell=False, cell_state=False, nonlinearity=True, projections=False),
        Family("LSTM", nn.LSTM, ("i", "f", "g", "o"), cell=False, cell_state=True, nonlinearity=False, projections=True),
        Family("GRU", nn.GRU, ("r", "z", "n"), cell=False, cell_state=False, nonlinearity=False, projections=False),
        Family("RNNCell", nn.RNNCell, ("h",), cell=True, cell_state=False, nonlinearity=True, projections=False),
        Family("LSTMCell", nn.LSTMCell, ("i", "f", "g", "o"), cell=True, cell_state=True, nonlinearity=False, projections=False),
        Family("GRUCell", nn.GRUCell, ("r", "z", "n"), cell=True, cell_state=False, nonlinearity=False, projections=False),
    )
}
FAMILY_NAMES = tuple(FAMILIES)


def family(name: str) -> Family:
    """The record for a family name, or a ValueError that lists the known names."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown family {name!r}; expected one of {', '.join(FAMILY_NAMES)} (torch's class names)") from None
