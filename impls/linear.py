"""`linear`: each layer and direction is a pair of nn.Linear modules.

The input projection and the hidden projection are real ``nn.Linear`` submodules
(as in the Linear-based notebook), yet the module is state_dict-compatible with
torch.nn.RNN: state_dict hooks translate between the submodules' keys
(``cells.0.ih.weight``) and torch's (``weight_ih_l0``).
"""

import torch
from torch import nn

from harness import DropInRNN, Implementation
from harness.dropin import DirectionWeights, parameter_names, step_offsets


class _Cell(nn.Module):
    def __init__(self, input_size, hidden_size, bias, factory_kwargs):
        super().__init__()
        self.ih = nn.Linear(input_size, hidden_size, bias=bias, **factory_kwargs)
        self.hh = nn.Linear(hidden_size, hidden_size, bias=bias, **factory_kwargs)


class LinearRNN(DropInRNN):
    def _create_parameters(self, factory_kwargs):
        self.cells = nn.ModuleList(
            _Cell(self.layer_input_size(layer), self.hidden_size, self.bias, factory_kwargs)
            for layer in range(self.num_layers)
            for _direction in range(self.num_directions)
        )
        self._torch_to_internal = {}
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                w_ih, w_hh, b_ih, b_hh = parameter_names(layer, direction)
                self._torch_to_internal[w_ih] = f"cells.{index}.ih.weight"
                self._torch_to_internal[w_hh] = f"cells.{index}.hh.weight"
                if self.bias:
                    self._torch_to_internal[b_ih] = f"cells.{index}.ih.bias"
                    self._torch_to_internal[b_hh] = f"cells.{index}.hh.bias"
        self.register_state_dict_post_hook(_export_torch_keys)
        self.register_load_state_dict_pre_hook(_import_torch_keys)
        self.register_load_state_dict_post_hook(_report_torch_keys)

    def __getattr__(self, name):
        # torch's attribute names (rnn.weight_ih_l0) resolve to the Linear's parameter.
        translation = self.__dict__.get("_torch_to_internal", {}).get(name)
        if translation is not None:
            module = self
            for part in translation.split("."):
                module = getattr(module, part)
            return module
        return super().__getattr__(name)

    def direction_weights(self, layer, direction):
        cell = self.cells[layer * self.num_directions + direction]
        if self.bias:
            return DirectionWeights(cell.ih.weight, cell.hh.weight, cell.ih.bias, cell.hh.bias)
        return DirectionWeights(cell.ih.weight, cell.hh.weight, None, None)

    def run_direction(self, data, batch_sizes, h0, layer, direction):
        cell = self.cells[layer * self.num_directions + direction]
        offsets = step_offsets(batch_sizes)
        steps = range(len(batch_sizes))
        outputs = [None] * len(batch_sizes)
        h = h0
        for t in reversed(steps) if direction == 1 else steps:
            rows = batch_sizes[t]
            h_t = self.activation(cell.ih(data[offsets[t] : offsets[t] + rows]) + cell.hh(h[:rows]))
            outputs[t] = h_t
            h = torch.cat([h_t, h[rows:]])
        return torch.cat(outputs), h


def _export_torch_keys(module, state_dict, prefix, local_metadata):
    for torch_key, internal_key in module._torch_to_internal.items():
        state_dict[prefix + torch_key] = state_dict.pop(prefix + internal_key)


def _import_torch_keys(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
    for torch_key, internal_key in module._torch_to_internal.items():
        if prefix + torch_key in state_dict:
            state_dict[prefix + internal_key] = state_dict.pop(prefix + torch_key)


def _report_torch_keys(module, incompatible_keys):
    # Missing/unexpected keys are reported in torch's names, as torch.nn.RNN would.
    internal_to_torch = {internal: torch_key for torch_key, internal in module._torch_to_internal.items()}
    for keys in (incompatible_keys.missing_keys, incompatible_keys.unexpected_keys):
        keys[:] = [_translate(key, internal_to_torch) for key in keys]


def _translate(key, internal_to_torch):
    for internal, torch_key in internal_to_torch.items():
        if key.endswith(internal) and (key == internal or key.endswith("." + internal)):
            return key[: len(key) - len(internal)] + torch_key
    return key


IMPLEMENTATION = Implementation(
    name="linear",
    factory=LinearRNN,
    family="RNN",
    description="nn.Linear input and hidden projections per layer and direction",
)
