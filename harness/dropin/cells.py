"""The cell shells: `DropInRNNCell`, `DropInLSTMCell` and `DropInGRUCell` around a
subclass's single step (`DropInCell.step`)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from harness.step_formulas import torch_elementwise
from harness.dropin.shared import DirectionWeights, State, check_constructor_arguments, torch_parameters, uniform_init
from harness.families import FAMILIES, Family

class DropInCell(nn.Module):
    """Base of the cell shells; use `DropInRNNCell`, `DropInLSTMCell` or `DropInGRUCell`.

    Subclasses implement `step` on a batch; the shell handles unbatched 1-D input, a
    missing state, torch's checks and torch's parameter names (weight_ih, weight_hh,
    bias_ih, bias_hh).
    """

    family: ClassVar[Family]

    def _setup(self, input_size, hidden_size, bias, nonlinearity, device, dtype) -> None:
        check_constructor_arguments(input_size, hidden_size, 1, nonlinearity, bias, False, 0.0)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.nonlinearity = nonlinearity
        self._create_parameters({"device": device, "dtype": dtype})
        self.reset_parameters()

    def constructor_keywords(self) -> dict:
        every = {"input_size": self.input_size, "hidden_size": self.hidden_size, "bias": self.bias, "nonlinearity": self.nonlinearity}
        return {k: v for k, v in every.items() if k in self.family.keywords}

    def _create_parameters(self, factory_kwargs: dict) -> None:
        torch_parameters(self, self.family.parameter_shapes(self.constructor_keywords()), factory_kwargs)

    def reset_parameters(self) -> None:
        uniform_init(self, self.hidden_size)

    def cell_weights(self) -> DirectionWeights:
        if self.bias:
            return DirectionWeights(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return DirectionWeights(self.weight_ih, self.weight_hh, None, None)

    def elementwise(self, name: str, x: Tensor) -> Tensor:
        """tanh, sigmoid or relu; see `DropInRecurrent.elementwise`."""
        return torch_elementwise(name, x)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        if self.family.nonlinearity and self.nonlinearity != "tanh":
            text += f", nonlinearity={self.nonlinearity!r}"
        return text

    def step(self, input: Tensor, state: State) -> State:
        """One step on a batch: ``input`` ``(N, input_size)``, ``state`` ``h`` ``(N,
        hidden_size)`` or for LSTMCell ``(h, c)``; return the next state, same structure."""
        raise NotImplementedError

    def forward(self, input: Tensor, hx: State | None = None):
        name = self.family.name
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if hx is not None:
            if self.family.cell_state:
                for index, value in enumerate(hx):
                    if value.dim() not in (1, 2):
                        raise ValueError(f"{name}: Expected hx[{index}] to be 1D or 2D, got {value.dim()}D instead")
            elif hx.dim() not in (1, 2):
                raise ValueError(f"{name}: Expected hidden to be 1D or 2D, got {hx.dim()}D instead")
        batched = input.dim() == 2
        if not batched:
            input = input.unsqueeze(0)
        if hx is None:
            zeros = torch.zeros(input.size(0), self.hidden_size, dtype=input.dtype, device=input.device)
            states = [zeros, zeros] if self.family.cell_state else [zeros]
        elif self.family.cell_state:
            if isinstance(hx, Tensor):
                raise TypeError(f"{name}: hx must be a tuple (h_0, c_0) of Tensors, not a Tensor")
            if batched and len(hx) != 2:
                raise RuntimeError(f"{name} expects two hidden states, got {len(hx)}")
            states = [hx[0], hx[1]] if batched else [hx[0].unsqueeze(0), hx[1].unsqueeze(0)]
        else:
            states = [hx if batched else hx.unsqueeze(0)]
        self._check(input, states)
        result = self.step(input, tuple(states) if self.family.cell_state else states[0])
        if not batched:
            result = tuple(state.squeeze(0) for state in result) if self.family.cell_state else result.squeeze(0)
        return result

    def _check(self, input: Tensor, states: list[Tensor]) -> None:
        # What ATen checks in the cell kernels, with the same exception types.
        weight_dtype = self.cell_weights().w_ih.dtype
        if input.size(1) != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.size(1)} expected {self.input_size}")
        for index, state in enumerate(states):
            # In ATen's order, so a state of the wrong rank fails as in torch (a 1-D
            # state's size(1) is an IndexError there too).
            if state.size(0) != input.size(0):
                raise RuntimeError(f"Input batch size {input.size(0)} doesn't match hidden{index} batch size {state.size(0)}")
            if state.size(1) != self.hidden_size:
                raise RuntimeError(f"hidden{index} has inconsistent hidden_size: got {state.size(1)}, expected {self.hidden_size}")
        for tensor in [input, *states]:
            if tensor.dtype != weight_dtype:
                raise RuntimeError(f"{self.family.name}: input and state dtype must match the weights' ({weight_dtype}), got {tensor.dtype}")


class DropInRNNCell(DropInCell):
    """Drop-in for ``torch.nn.RNNCell``: a subclass implements `step`."""

    family = FAMILIES["RNNCell"]

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", device=None, dtype=None) -> None:
        super().__init__()
        self._setup(input_size, hidden_size, bias, nonlinearity, device, dtype)

    def activation(self, pre_activation: Tensor) -> Tensor:
        return self.elementwise(self.nonlinearity, pre_activation)


class DropInLSTMCell(DropInCell):
    """Drop-in for ``torch.nn.LSTMCell``: a subclass implements `step`."""

    family = FAMILIES["LSTMCell"]

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self._setup(input_size, hidden_size, bias, "tanh", device, dtype)


class DropInGRUCell(DropInCell):
    """Drop-in for ``torch.nn.GRUCell``: a subclass implements `step`."""

    family = FAMILIES["GRUCell"]

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self._setup(input_size, hidden_size, bias, "tanh", device, dtype)
