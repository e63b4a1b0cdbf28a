"""`linear`: every layer, direction and cell is a set of real nn.Linear modules.

The input projection (``ih``), the hidden projection (``hh``) and, for an LSTM with
``proj_size``, the output projection (``hr``, without bias) are ``nn.Linear``
submodules, as in the Linear-based notebook: ``ih`` and ``hh`` hold all the gate
blocks stacked as torch stacks them (LSTM i,f,g,o; GRU r,z,n). Yet each module is
state_dict-compatible with torch: hooks translate between the submodules' keys
(``cells.0.ih.weight``) and torch's (``weight_ih_l0``), a load reports missing and
unexpected keys in torch's names, and torch's attribute names resolve to the
Linear's parameters.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from harness import Implementation
from harness.step_formulas import family_step
from harness.dropin import (
    DirectionWeights,
    DropInGRU,
    DropInGRUCell,
    DropInLSTM,
    DropInLSTMCell,
    DropInRNN,
    DropInRNNCell,
    step_offsets,
)
from harness.families import parameter_names
from impls import BUILTIN_EXAMPLES


class _Linears(nn.Module):
    """One layer and direction (or one cell): ``ih``, ``hh`` and optionally ``hr``."""

    def __init__(self, input_size, hidden_size, gate_count, bias, proj_size, factory_kwargs):
        super().__init__()
        width = proj_size or hidden_size  # the width of h
        self.ih = nn.Linear(input_size, gate_count * hidden_size, bias=bias, **factory_kwargs)
        self.hh = nn.Linear(width, gate_count * hidden_size, bias=bias, **factory_kwargs)
        if proj_size:
            self.hr = nn.Linear(hidden_size, proj_size, bias=False, **factory_kwargs)

    def weights(self) -> DirectionWeights:
        return DirectionWeights(self.ih.weight, self.hh.weight, self.ih.bias, self.hh.bias)


def _internal_keys(torch_names, prefix: str, bias: bool, projection: bool) -> dict[str, str]:
    """torch's key -> the submodule key, for one `_Linears` under ``prefix``."""
    keys = {torch_names.w_ih: f"{prefix}ih.weight", torch_names.w_hh: f"{prefix}hh.weight"}
    if bias:
        keys[torch_names.b_ih] = f"{prefix}ih.bias"
        keys[torch_names.b_hh] = f"{prefix}hh.bias"
    if projection:
        keys[torch_names.w_hr] = f"{prefix}hr.weight"
    return keys


_CELL_NAMES = SimpleNamespace(w_ih="weight_ih", w_hh="weight_hh", b_ih="bias_ih", b_hh="bias_hh")
"""torch's keys of a cell (no layer suffix), with `ParameterNames`' attributes."""


class TorchKeys:
    """Mixin: state_dict keys, load errors and attribute names as torch's module has them.

    The subclass fills ``self._torch_to_internal`` (torch's key -> submodule key) in
    `_create_parameters` and calls `_register_torch_keys`.
    """

    def _register_torch_keys(self, torch_to_internal: dict[str, str]) -> None:
        self._torch_to_internal = torch_to_internal
        self.register_state_dict_post_hook(_export_torch_keys)
        self.register_load_state_dict_pre_hook(_import_torch_keys)
        self.register_load_state_dict_post_hook(_report_torch_keys)

    def __getattr__(self, name):
        # torch's attribute names (lstm.weight_ih_l0) resolve to the Linear's parameter.
        translation = self.__dict__.get("_torch_to_internal", {}).get(name)
        if translation is not None:
            module = self
            for part in translation.split("."):
                module = getattr(module, part)
            return module
        return super().__getattr__(name)


class LinearLayer(TorchKeys):
    """`run_direction` over nn.Linear projections, for any layer family (a mixin)."""

    def _create_parameters(self, factory_kwargs):
        self.cells = nn.ModuleList(
            _Linears(self.layer_input_size(layer), self.hidden_size, self.family.gate_count, self.bias, self.proj_size, factory_kwargs)
            for layer in range(self.num_layers)
            for _direction in range(self.num_directions)
        )
        torch_to_internal = {}
        # Layer-major, direction-minor, as torch registers them (and as `cells` is laid out).
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                names = parameter_names(layer, direction)
                torch_to_internal.update(_internal_keys(names, f"cells.{index}.", self.bias, bool(self.proj_size)))
        self._register_torch_keys(torch_to_internal)

    def _cell(self, layer, direction) -> _Linears:
        return self.cells[layer * self.num_directions + direction]

    def direction_weights(self, layer, direction):
        return self._cell(layer, direction).weights()

    def projection_weight(self, layer, direction):
        return self._cell(layer, direction).hr.weight if self.proj_size else None

    def run_direction(self, data, batch_sizes, state, layer, direction):
        cell = self._cell(layer, direction)
        states = list(state) if self.family.cell_state else [state]
        offsets = step_offsets(batch_sizes)
        steps = range(len(batch_sizes))
        outputs = [None] * len(batch_sizes)
        for t in reversed(steps) if direction == 1 else steps:
            rows = batch_sizes[t]
            new = self._step(cell, data[offsets[t] : offsets[t] + rows], [s[:rows] for s in states])
            outputs[t] = new[0]
            # Rows past `rows` have finished (forward) or not started (reverse).
            states = [torch.cat([n, s[rows:]]) for n, s in zip(new, states)]
        return torch.cat(outputs), (tuple(states) if self.family.cell_state else states[0])

    def _step(self, cell: _Linears, x, states) -> tuple:
        new = family_step(self.family.name, cell.ih(x), cell.hh(states[0]), tuple(states), self.nonlinearity, None, self.elementwise)
        if self.proj_size:
            new = (cell.hr(new[0]), *new[1:])
        return new


class LinearCell(TorchKeys):
    """`step` over nn.Linear projections, for any cell family (a mixin)."""

    def _create_parameters(self, factory_kwargs):
        self.linears = _Linears(self.input_size, self.hidden_size, self.family.gate_count, self.bias, 0, factory_kwargs)
        self._register_torch_keys(_internal_keys(_CELL_NAMES, "linears.", self.bias, False))

    def cell_weights(self):
        return self.linears.weights()

    def step(self, input, state):
        states = tuple(state) if self.family.cell_state else (state,)
        new = family_step(
            self.family.name, self.linears.ih(input), self.linears.hh(states[0]), states, self.nonlinearity, None, self.elementwise
        )
        return new if self.family.cell_state else new[0]


def _export_torch_keys(module, state_dict, prefix, local_metadata):
    for torch_key, internal_key in module._torch_to_internal.items():
        state_dict[prefix + torch_key] = state_dict.pop(prefix + internal_key)


def _import_torch_keys(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
    for torch_key, internal_key in module._torch_to_internal.items():
        if prefix + torch_key in state_dict:
            state_dict[prefix + internal_key] = state_dict.pop(prefix + torch_key)


def _report_torch_keys(module, incompatible_keys):
    # Missing/unexpected keys are reported in torch's names, as torch's module would.
    internal_to_torch = {internal: torch_key for torch_key, internal in module._torch_to_internal.items()}
    incompatible_keys.unexpected_keys[:] = [_translate(key, internal_to_torch) for key in incompatible_keys.unexpected_keys]
    # Missing keys also come in torch's registration order (w_ih, w_hh, b_ih, b_hh,
    # w_hr), not the submodules'; keys of other modules keep their places.
    missing = incompatible_keys.missing_keys
    ours = [index for index, key in enumerate(missing) if _translate(key, internal_to_torch) != key]
    torch_order = {torch_key: position for position, torch_key in enumerate(module._torch_to_internal)}
    module_order: dict[str, int] = {}
    translated = []
    for index in ours:
        prefix, _, torch_key = _translate(missing[index], internal_to_torch).rpartition(".")
        translated.append((module_order.setdefault(prefix, len(module_order)), torch_order[torch_key], prefix, torch_key))
    for index, (_, _, prefix, torch_key) in zip(ours, sorted(translated)):
        missing[index] = f"{prefix}.{torch_key}" if prefix else torch_key


def _translate(key, internal_to_torch):
    for internal, torch_key in internal_to_torch.items():
        if key == internal or key.endswith("." + internal):
            return key[: len(key) - len(internal)] + torch_key
    return key


class LinearRNN(LinearLayer, DropInRNN):
    pass


class LinearLSTM(LinearLayer, DropInLSTM):
    pass


class LinearGRU(LinearLayer, DropInGRU):
    pass


class LinearRNNCell(LinearCell, DropInRNNCell):
    pass


class LinearLSTMCell(LinearCell, DropInLSTMCell):
    pass


class LinearGRUCell(LinearCell, DropInGRUCell):
    pass


_DESCRIPTION = "nn.Linear {} per {}, state_dict-compatible with torch"
IMPLEMENTATION = Implementation(name="linear", factory=LinearRNN, family="RNN", default_examples=BUILTIN_EXAMPLES["RNN"], description=_DESCRIPTION.format("input and hidden projections", "layer and direction"))
LSTM = Implementation(name="linear-lstm", factory=LinearLSTM, family="LSTM", default_examples=BUILTIN_EXAMPLES["LSTM"], description=_DESCRIPTION.format("gate projections (and W_hr)", "layer and direction"))
GRU = Implementation(name="linear-gru", factory=LinearGRU, family="GRU", default_examples=BUILTIN_EXAMPLES["GRU"], description=_DESCRIPTION.format("gate projections", "layer and direction"))
RNN_CELL = Implementation(name="linear-rnncell", factory=LinearRNNCell, family="RNNCell", default_examples=BUILTIN_EXAMPLES["RNNCell"], description=_DESCRIPTION.format("input and hidden projections", "cell"))
LSTM_CELL = Implementation(name="linear-lstmcell", factory=LinearLSTMCell, family="LSTMCell", default_examples=BUILTIN_EXAMPLES["LSTMCell"], description=_DESCRIPTION.format("gate projections", "cell"))
GRU_CELL = Implementation(name="linear-grucell", factory=LinearGRUCell, family="GRUCell", default_examples=BUILTIN_EXAMPLES["GRUCell"], description=_DESCRIPTION.format("gate projections", "cell"))
