"""`exported`: torch's module captured by ``torch.export.export``, lowered with
``ExportedProgram.run_decompositions()`` and run as ``ExportedProgram.module()``.

The module owns torch's parameters (it *is* the torch class, with another
forward). On a call it looks up a program exported for this call's structure
(module configuration, dtype, device, training, input rank, whether ``h_0`` is
given, sequence length) and runs it with ``torch.func.functional_call`` on the
module's *current* parameters, so weight changes (in place or by load_state_dict)
take effect and gradients reach the module's parameters. Programs do not hold
weights that matter, so they are shared between modules of the same structure.

What is dynamic: the batch (one program for every batch of at least 2; batches of
0 and 1 are exported as they are, since export specializes sizes 0 and 1). What is
not: the sequence length. torch's decomposition of the recurrent kernel unrolls the
time loop in Python, and ``torch.export`` refuses a dynamic sequence dimension
("You marked seq as dynamic but your code specialized it to be a constant"), so
each length is exported once. PackedSequence input cannot be exported (its
``batch_sizes`` drive Python control flow): declared out of scope.

Family-generic: `exported_factory(module_class)`, for the layers and the cells. A
cell's batch is its input's dimension 0 (and its state's); unbatched 1-D input is
exported as it is. LSTM's ``(h_0, c_0)`` is one tuple argument, and
``dynamic_shapes`` mirrors it.
"""

from __future__ import annotations

import collections
import threading
import warnings

import torch
from torch import Tensor, nn
from torch.export import Dim
from torch.nn.utils.rnn import PackedSequence

from harness import Implementation
from impls.torch_decomp import INTER_LAYER_DROPOUT_IGNORED

PROGRAM_CACHE_SIZE = 64


class _TorchForward(nn.Module):
    """What is exported: the torch class's own forward on the given module."""

    def __init__(self, module: nn.Module, module_class: type[nn.Module]):
        super().__init__()
        self.module = module
        self.module_class = module_class
        # The exporter switches the wrapper's mode for the export and back after it,
        # recursively: the wrapper must be in the module's mode, or the module's own
        # mode is changed behind the caller's back.
        self.train(module.training)

    def forward(self, input, hx):
        return self.module_class.forward(self.module, input, hx)


class ProgramCache:
    """Exported programs by call structure, least recently used dropped first."""

    def __init__(self, size: int):
        self.size = size
        self.programs: collections.OrderedDict = collections.OrderedDict()
        self.lock = threading.Lock()
        self.exports = 0  # how many times something was exported (tests read it)

    def get(self, key, build):
        with self.lock:
            if key in self.programs:
                self.programs.move_to_end(key)
                return self.programs[key]
        program = build()
        with self.lock:
            self.exports += 1
            self.programs[key] = program
            while len(self.programs) > self.size:
                self.programs.popitem(last=False)
        return program


PROGRAMS = ProgramCache(PROGRAM_CACHE_SIZE)


def structure_key(module: nn.Module, module_class: type, input: Tensor, hx) -> tuple:
    """Everything a program is specialized on. ``extra_repr`` holds every
    constructor setting that differs from the default, for any torch module."""
    parameter = next(module.parameters())
    batch_dim = _batch_dim(module, input)
    state_batch_dim = _state_batch_dim(module)
    states = () if hx is None else (hx if isinstance(hx, tuple) else (hx,))
    shape = list(input.shape)
    if batch_dim is not None and shape[batch_dim] >= 2:
        shape[batch_dim] = "batch"  # dynamic
    hx_shapes = None
    if hx is not None:
        hx_shapes = tuple(
            tuple("batch" if (batch_dim is not None and i == state_batch_dim and s >= 2) else s for i, s in enumerate(t.shape))
            for t in states
        )
    # A cached program's guards would reject an h_0 whose batch differs from the
    # input's with their own error; a fresh export lets torch's forward raise its own.
    batches_agree = None
    if batch_dim is not None and hx is not None:
        batches_agree = all(
            t.dim() == input.dim() and t.shape[state_batch_dim] == input.shape[batch_dim]
            for t in states
        )
    return (
        module_class, module.extra_repr(), parameter.dtype, parameter.device, module.training,
        input.dtype, tuple(shape), hx_shapes, batches_agree,
        None if hx is None else tuple(t.dtype for t in states),
    )


def _is_cell(module: nn.Module) -> bool:
    return isinstance(module, nn.RNNCellBase)


def _batch_dim(module: nn.Module, input: Tensor) -> int | None:
    """The input's batch dimension, None for unbatched input (or invalid: torch's
    forward will say so). Cells take ``(N, I)``; layers ``(L, N, I)`` or ``(N, L, I)``."""
    if _is_cell(module):
        return 0 if input.dim() == 2 else None
    if input.dim() != 3:
        return None
    return 0 if getattr(module, "batch_first", False) else 1


def _state_batch_dim(module: nn.Module) -> int:
    """h_0's (and c_0's) batch dimension: ``(N, H)`` for cells, ``(layers, N, H)`` for layers."""
    return 0 if _is_cell(module) else 1


def export_program(module: nn.Module, module_class: type, input: Tensor, hx) -> nn.Module:
    batch_dim = _batch_dim(module, input)
    input_dims = None
    # dynamic_shapes mirrors the arguments' structure: LSTM's (h_0, c_0) needs a tuple.
    hx_dims = tuple(None for _ in hx) if isinstance(hx, tuple) else None
    if batch_dim is not None and input.shape[batch_dim] >= 2:
        batch = Dim("batch", min=2)
        input_dims = {batch_dim: batch}
        if hx is not None:
            state_dims = {_state_batch_dim(module): batch}
            hx_dims = tuple(dict(state_dims) for _ in hx) if isinstance(hx, tuple) else state_dims
    wrapper = _TorchForward(module, module_class)
    with warnings.catch_warnings():
        # torch's forward reassigns self._flat_weights while being traced; export
        # warns that such attributes should be buffers. Expected, harmless here.
        warnings.filterwarnings("ignore", message=".*were assigned during export.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        with torch.enable_grad():
            program = torch.export.export(wrapper, (input, hx), dynamic_shapes=(input_dims, hx_dims))
            return program.run_decompositions().module()


class ExportedForward:
    """Mixin over a torch recurrent module: forward through its exported program."""

    _torch_class: type[nn.Module]

    def forward(self, input, hx=None):
        if isinstance(input, PackedSequence):
            raise TypeError(
                f"{type(self).__name__} cannot take a PackedSequence: torch.export cannot capture the "
                "Python control flow its batch_sizes drive. Pad the batch (pad_packed_sequence) instead."
            )
        key = structure_key(self, self._torch_class, input, hx)
        program = PROGRAMS.get(key, lambda: export_program(self, self._torch_class, input, hx))
        # The program's parameters are those of whichever module it was exported from;
        # run it on ours. Names: "module." + torch's key (see _TorchForward).
        parameters = {f"module.{name}": value for name, value in self.named_parameters()}
        return torch.func.functional_call(program, parameters, (input, hx))


def exported_factory(module_class: type[nn.Module]) -> type[nn.Module]:
    """A drop-in subclass of ``module_class`` that runs torch.export'ed programs.
    Assign it to a module-level name equal to its ``__name__``."""
    return type(
        f"Exported{module_class.__name__}", (ExportedForward, module_class),
        {"__module__": __name__, "_torch_class": module_class},
    )


ExportedRNN = exported_factory(nn.RNN)

ExportedLSTM = exported_factory(nn.LSTM)
ExportedGRU = exported_factory(nn.GRU)
ExportedRNNCell = exported_factory(nn.RNNCell)
ExportedLSTMCell = exported_factory(nn.LSTMCell)
ExportedGRUCell = exported_factory(nn.GRUCell)


def _exported(family: str, factory: type[nn.Module], default_examples: int) -> Implementation:
    """One family's record. The layers cannot take a PackedSequence (declared) and
    lower their kernel with torch._decomp's decomposition, bug included."""
    layer = not family.endswith("Cell")
    return Implementation(
        name="exported" if family == "RNN" else f"exported-{family.lower()}",
        factory=factory,
        family=family,
        packed=not layer,
        known_failures=(INTER_LAYER_DROPOUT_IGNORED,) if layer else (),
        default_examples=default_examples,
        example_timeout=600.0,
        preload=("torch._dynamo", "torch.export._trace"),  # 2.3 s per worker otherwise
        description=f"torch.export.export(torch.nn.{family}).run_decompositions().module(); batch dynamic"
        + (", one program per length" if layer else ""),
    )


# Examples by default, from the measured cost of one (docs/benchmarks.md): each new
# sequence length exports a layer again (several seconds, up to a minute for a long
# GRU); a cell has no time loop (0.2-1.4 s).
IMPLEMENTATION = _exported("RNN", ExportedRNN, 2)
LSTM = _exported("LSTM", ExportedLSTM, 1)
GRU = _exported("GRU", ExportedGRU, 1)
RNN_CELL = _exported("RNNCell", ExportedRNNCell, 5)
LSTM_CELL = _exported("LSTMCell", ExportedLSTMCell, 5)
GRU_CELL = _exported("GRUCell", ExportedGRUCell, 5)
