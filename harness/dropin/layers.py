"""The layer shells: `DropInRNN`, `DropInLSTM` and `DropInGRU` around a subclass's
single-direction recurrence (`DropInRecurrent.run_direction`)."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from harness.step_formulas import torch_elementwise
from harness.dropin.shared import DirectionWeights, State, check_constructor_arguments, torch_parameters, uniform_init
from harness.families import FAMILIES, Family, parameter_names

class _PreparedInput(NamedTuple):
    data: Tensor  # (sum(batch_sizes), input_size), time step after time step
    batch_sizes: tuple[int, ...]
    states: tuple[Tensor, ...]  # h (and c), each (num_layers * num_directions, batch, width), in data's row order
    packed: PackedSequence | None
    unbatched: bool

    @property
    def hx(self) -> Tensor:
        """The initial h of every layer and direction (kept for nn.RNN-era subclasses)."""
        return self.states[0]


class DropInRecurrent(nn.Module):
    """Base of the layer shells; use `DropInRNN`, `DropInLSTM` or `DropInGRU`.

    Subclasses implement `run_direction`. Those that keep their parameters somewhere
    other than torch-named attributes also override `_create_parameters`,
    `direction_weights` and (LSTM with projections) `projection_weight`
    (see ``impls/linear.py``).
    """

    family: ClassVar[Family]

    def _setup(self, input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout, bidirectional, proj_size, device, dtype) -> None:
        check_constructor_arguments(input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout, proj_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.nonlinearity = nonlinearity
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self._create_parameters({"device": device, "dtype": dtype})
        self.reset_parameters()

    # -- parameters ---------------------------------------------------------------

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """The width of h (and of each direction's output): proj_size when set."""
        return self.proj_size or self.hidden_size

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.output_size * self.num_directions

    def constructor_keywords(self) -> dict:
        every = {
            "input_size": self.input_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
            "nonlinearity": self.nonlinearity, "bias": self.bias, "batch_first": self.batch_first,
            "dropout": self.dropout, "bidirectional": self.bidirectional, "proj_size": self.proj_size,
        }
        return {k: v for k, v in every.items() if k in self.family.keywords}

    def _create_parameters(self, factory_kwargs: dict) -> None:
        """Register torch-named parameters, in torch's order (so state_dicts line up)."""
        torch_parameters(self, self.family.parameter_shapes(self.constructor_keywords()), factory_kwargs)

    def reset_parameters(self) -> None:
        uniform_init(self, self.hidden_size)

    def direction_weights(self, layer: int, direction: int) -> DirectionWeights:
        names = parameter_names(layer, direction)
        if self.bias:
            return DirectionWeights(getattr(self, names.w_ih), getattr(self, names.w_hh), getattr(self, names.b_ih), getattr(self, names.b_hh))
        return DirectionWeights(getattr(self, names.w_ih), getattr(self, names.w_hh), None, None)

    def projection_weight(self, layer: int, direction: int) -> Tensor | None:
        """LSTM's W_hr ``(proj_size, hidden_size)``, None without projections."""
        return getattr(self, parameter_names(layer, direction).w_hr) if self.proj_size else None

    def elementwise(self, name: str, x: Tensor) -> Tensor:
        """tanh, sigmoid or relu. Every cell formula in harness.step_formulas goes through this
        hook, so a subclass can swap the activation functions' arithmetic."""
        return torch_elementwise(name, x)

    def activation(self, pre_activation: Tensor) -> Tensor:
        """nn.RNN's nonlinearity."""
        return self.elementwise(self.nonlinearity, pre_activation)

    def flatten_parameters(self) -> None:
        """torch's modules compact their weights for cuDNN here; a drop-in has nothing to do."""

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            text += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.family.nonlinearity and self.nonlinearity != "tanh":
            text += f", nonlinearity={self.nonlinearity!r}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text

    # -- the one thing a subclass must provide ---------------------------------------

    def run_direction(
        self,
        data: Tensor,
        batch_sizes: tuple[int, ...],
        state: State,
        layer: int,
        direction: int,
    ) -> tuple[Tensor, State]:
        """Run one layer in one direction (1 = reverse) over packed-form ``data``.

        ``data`` is ``(sum(batch_sizes), layer_input_size)``; ``state`` is the initial
        state, ``h0`` of shape ``(batch_sizes[0], output_size)``, or for LSTM a tuple
        ``(h0, c0)`` with ``c0`` of shape ``(batch_sizes[0], hidden_size)``. Return the
        packed-form output ``(sum(batch_sizes), output_size)`` and the final state in
        the same structure: for the forward direction each row's state after its own
        last step, for the reverse direction after step 0.
        """
        raise NotImplementedError

    # -- forward ------------------------------------------------------------------

    def forward(self, input, hx: State | None = None):
        prepared = self._prepare(input, hx)
        layer_input = prepared.data
        final_states: list[tuple[Tensor, ...]] = []
        for layer in range(self.num_layers):
            direction_outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                initial = tuple(state[index] for state in prepared.states)
                output, final = self.run_direction(layer_input, prepared.batch_sizes, initial if self.family.cell_state else initial[0], layer, direction)
                direction_outputs.append(output)
                final_states.append(tuple(final) if self.family.cell_state else (final,))
            layer_input = torch.cat(direction_outputs, dim=1) if self.bidirectional else direction_outputs[0]
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        stacked = tuple(torch.stack(component) for component in zip(*final_states))
        return self._restore(prepared, layer_input, stacked)

    def _expected_state_sizes(self, batch: int) -> tuple[tuple[int, int, int], ...]:
        layers_directions = self.num_layers * self.num_directions
        sizes = ((layers_directions, batch, self.output_size),)
        if self.family.cell_state:
            sizes += ((layers_directions, batch, self.hidden_size),)
        return sizes

    def _split_state(self, hx) -> list[Tensor]:
        # Indexed the way torch indexes it, so a malformed hx fails as it does in torch.
        return [hx[0], hx[1]] if self.family.cell_state else [hx]

    def _packed_states(self, hx, sorted_indices) -> list[Tensor]:
        """The state for a PackedSequence, handled as torch handles it: put in the
        packed batch's row order, then handed to the kernel, which wants exactly one
        Tensor (RNN, GRU) or a tuple of two (LSTM)."""
        if self.family.cell_state:
            if sorted_indices is not None:
                hx = (hx[0].index_select(1, sorted_indices), hx[1].index_select(1, sorted_indices))
            if isinstance(hx, Tensor):
                raise TypeError(f"{self.family.name.lower()}(): argument 'hx' must be a tuple of Tensors, not Tensor")
            if len(hx) != 2:
                raise RuntimeError(f"{self.family.name.lower()} expects two hidden states, got {len(hx)}")
            if any(state.dim() < 3 for state in hx):
                # ATen's packed kernel indexes the layer dimension first
                raise IndexError(f"Dimension out of range: a packed {self.family.name}'s states must be 3-D, got {[s.dim() for s in hx]}-D")
            return [hx[0], hx[1]]
        return [hx.index_select(1, sorted_indices) if sorted_indices is not None else hx]

    def _prepare(self, input, hx: State | None) -> _PreparedInput:
        """Bring any accepted layout to packed form, checking it the way torch does."""
        weight_dtype = self.direction_weights(0, 0).w_ih.dtype
        if isinstance(input, PackedSequence):
            data, batch_sizes_tensor, sorted_indices, _ = input
            batch_sizes = tuple(int(b) for b in batch_sizes_tensor.tolist())
            batch = batch_sizes[0]
            states = None if hx is None else self._packed_states(hx, sorted_indices)
            if self.family.cell_state:
                # nn.LSTM does not run its Python checks on a PackedSequence: ATen's
                # kernel meets a wrong dtype or width first, with a RuntimeError.
                if data.dtype != weight_dtype or data.dim() != 2 or data.size(-1) != self.input_size:
                    raise RuntimeError(f"packed LSTM input must be ({self.input_size}-wide, {weight_dtype}), got {tuple(data.shape)} {data.dtype}")
            else:
                self._check_input(data, weight_dtype, expected_dim=2)
            packed, unbatched = input, False
        else:
            if not isinstance(input, Tensor):
                raise TypeError(f"input must be a Tensor or a PackedSequence, got {type(input).__name__}")
            states = None if hx is None else self._split_state(hx)
            if input.dim() not in (2, 3):
                raise ValueError(f"{self.family.name}: Expected input to be 2D or 3D, got {input.dim()}D tensor instead")
            unbatched = input.dim() == 2
            rank = 2 if unbatched else 3
            if states is not None and any(state.dim() != rank for state in states):
                ranks = ", ".join(f"{state.dim()}-D" for state in states)
                layout = "unbatched 2-D" if unbatched else "batched 3-D"
                raise RuntimeError(f"For {layout} input, hx{' and cx' if self.family.cell_state else ''} should also be {rank}-D but got ({ranks}) tensors")
            if unbatched:
                input = input.unsqueeze(0 if self.batch_first else 1)
                if states is not None:
                    states = [state.unsqueeze(1) for state in states]
            self._check_input(input, weight_dtype, expected_dim=3)
            time_major = input.transpose(0, 1) if self.batch_first else input
            steps, batch = time_major.shape[0], time_major.shape[1]
            if steps == 0:
                raise RuntimeError(f"Expected sequence length to be larger than 0 in {self.family.name} (got an input with 0 time steps)")
            data = time_major.reshape(steps * batch, self.input_size)
            batch_sizes = (batch,) * steps
            packed = None
        expected = self._expected_state_sizes(batch)
        if states is None:
            states = [torch.zeros(size, dtype=data.dtype, device=data.device) for size in expected]
        for index, (state, size) in enumerate(zip(states, expected)):
            label = f"hidden[{index}]" if self.family.cell_state else "hidden"
            if tuple(state.shape) != size:
                raise RuntimeError(f"Expected {label} size {size}, got {list(state.shape)}")
            if state.dtype != data.dtype:
                raise RuntimeError(f"{label} dtype ({state.dtype}) does not match input dtype ({data.dtype})")
            if state.device != data.device:
                raise RuntimeError(f"{label} is on {state.device} but input is on {data.device}; move both to one device")
        return _PreparedInput(data, batch_sizes, tuple(states), packed, unbatched)

    def _check_input(self, input: Tensor, weight_dtype: torch.dtype, expected_dim: int) -> None:
        if input.dtype != weight_dtype and not torch.is_autocast_enabled():
            raise ValueError(
                f"RNN input dtype ({input.dtype}) does not match weight dtype ({weight_dtype}). "
                f"Convert input: input.to({weight_dtype}), or convert model: model.to({input.dtype})"
            )
        if input.dim() != expected_dim:
            raise RuntimeError(f"input must have {expected_dim} dimensions, got {input.dim()}")
        if input.size(-1) != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {input.size(-1)}"
            )

    def _restore(self, prepared: _PreparedInput, output: Tensor, finals: tuple[Tensor, ...]):
        """Put packed-form results back into the layout the caller gave."""
        if isinstance(finals, Tensor):
            finals = (finals,)
        if prepared.packed is not None:
            packed = prepared.packed
            if packed.unsorted_indices is not None:
                finals = tuple(state.index_select(1, packed.unsorted_indices) for state in finals)
            result = PackedSequence(output, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        else:
            steps = len(prepared.batch_sizes)
            result = output.view(steps, prepared.states[0].shape[1], output.shape[-1])
            if self.batch_first:
                result = result.transpose(0, 1)
            if prepared.unbatched:
                result = result.squeeze(0 if self.batch_first else 1)
                finals = tuple(state.squeeze(1) for state in finals)
        return result, (finals if self.family.cell_state else finals[0])


class DropInRNN(DropInRecurrent):
    """Drop-in for ``torch.nn.RNN``: a subclass implements `run_direction`."""

    family = FAMILIES["RNN"]

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh", bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        self._setup(input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout, bidirectional, 0, device, dtype)


class DropInLSTM(DropInRecurrent):
    """Drop-in for ``torch.nn.LSTM`` (with ``proj_size``): a subclass implements `run_direction`."""

    family = FAMILIES["LSTM"]

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None) -> None:
        super().__init__()
        self._setup(input_size, hidden_size, num_layers, "tanh", bias, batch_first, dropout, bidirectional, proj_size, device, dtype)


class DropInGRU(DropInRecurrent):
    """Drop-in for ``torch.nn.GRU``: a subclass implements `run_direction`."""

    family = FAMILIES["GRU"]

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        self._setup(input_size, hidden_size, num_layers, "tanh", bias, batch_first, dropout, bidirectional, 0, device, dtype)
