"""One fuzzing example as plain data, and the tensors it stands for.

A `Case` is everything needed to rebuild an example exactly: the family, constructor
keywords, layout, shapes, value regime, mode and a seed for the values. A cell case is
a one-step case (``seq_len`` 1, one layer, one direction) whose layout is ``batched``
``(N, I)`` or ``unbatched`` ``(I,)``. Hypothesis draws and
shrinks Cases (harness/strategies.py); `materialize` turns one into tensors,
deterministically, so a failure can be replayed and written out as a repro.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from harness.families import FAMILIES, Family

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}
DTYPE_ORDER = tuple(DTYPES)
"""float32 first: strategies shrink towards it and tables list the dtypes in this order."""


def available_devices() -> list[str]:
    """The devices a campaign fuzzes on unless told otherwise: the CPU, and CUDA where torch has it."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


class DtypeName(str):
    """A dtype's name, ``"float32"``, that also equals the torch.dtype itself, so a
    `KnownFailure` predicate may write ``case.dtype == torch.float64`` or
    ``case.dtype == "float64"``. Still a str: JSON, repr and hashing are the name's."""

    __slots__ = ()

    def __eq__(self, other):
        if isinstance(other, torch.dtype):
            return DTYPES.get(str(self)) == other
        return str.__eq__(self, other)

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = str.__hash__


LAYOUTS = ("batched", "unbatched", "packed_sorted", "packed_unsorted")
NONCONTIGUOUS = ("none", "transposed", "strided", "offset")
SECOND_CALLS = ("none", "optimizer_step", "load_state_dict")
DEFECTS = (
    # each fails loudly in any implementation
    "wrong_width",
    "h0_wrong_batch",
    "h0_wrong_hidden",
    "h0_wrong_rank",
    "input_1d",
    "input_4d",
    "empty_sequence",
    "dtype_mismatch",
    # a size-1 dimension where torch wants the full size: these broadcast silently in
    # an implementation that does not check, and torch raises
    "input_one_feature",
    "h0_one_layer",
    "h0_one_row",
    "h0_one_feature",
    # (h_0, c_0) families only
    "c0_wrong_hidden",
    "c0_one_layer",
    "c0_one_row",
    "c0_one_feature",
    "c0_missing",
    "state_not_tuple",
    # cells: ranks a cell refuses
    "input_0d",
    "input_3d",
)


@dataclasses.dataclass(frozen=True)
class Case:
    """One example. Field order is the order a human reads a bug report in."""

    family: str = "RNN"  # torch's class name: RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell
    # constructor (only the family's own keywords reach the module)
    input_size: int = 1
    hidden_size: int = 1
    num_layers: int = 1
    nonlinearity: str = "tanh"
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    proj_size: int = 0  # LSTM only
    dtype: str = "float32"
    device: str = "cpu"
    # input
    layout: str = "batched"
    seq_len: int = 1
    batch: int = 1
    lengths: tuple[int, ...] | None = None  # per sequence, packed layouts only
    h0_given: bool = False
    noncontiguous: str = "none"
    # values
    input_scale: float = 1.0
    h0_scale: float = 1.0
    weight_gain: float = 1.0  # multiplies torch's default init range
    exact_zeros: bool = False
    seed: int = 0
    # mode
    training: bool = False
    backward: bool = True  # also compare gradients
    input_grad: bool = True  # with backward: False = the input and given states do not require grad (a model's first layer in training)
    no_grad: bool = False  # run the forward under torch.no_grad()
    second_call: str = "none"  # change the weights, call again, compare again
    # invalid on purpose: the candidate must raise what torch raises (which defects
    # apply to which case: harness.dimensions.defects_for)
    defect: str | None = None

    def __post_init__(self) -> None:
        dtype = str(self.dtype).removeprefix("torch.") if isinstance(self.dtype, torch.dtype) else self.dtype
        object.__setattr__(self, "dtype", DtypeName(dtype))
        if self.family not in FAMILIES:
            raise ValueError(f"Case.family {self.family!r} is not one of {', '.join(FAMILIES)}")
        if self.family_record.cell and (self.seq_len != 1 or self.num_layers != 1 or self.bidirectional or self.layout not in ("batched", "unbatched")):
            raise ValueError(f"a {self.family} case is one step of one layer and direction, batched or unbatched; got {self}")
        if self.proj_size and not self.family_record.projections:
            raise ValueError(f"proj_size is for LSTM only, not {self.family}")

    @property
    def family_record(self) -> Family:
        return FAMILIES[self.family]

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_width(self) -> int:
        """The width of h: proj_size when set, else hidden_size."""
        return self.proj_size or self.hidden_size

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def packed(self) -> bool:
        return self.layout.startswith("packed")

    def constructor(self) -> dict[str, Any]:
        """The family's torch constructor keywords for this case (device and dtype excluded)."""
        return {name: getattr(self, name) for name in self.family_record.keywords}

    def describe(self) -> str:
        """The case as a reader wants it: the constructor call and the input."""
        keywords = ", ".join(f"{k}={v!r}" for k, v in self.constructor().items())
        text = f"nn.{self.family}({keywords}, dtype=torch.{self.dtype}, device={self.device!r})\n"
        text += f"  mode: {'train' if self.training else 'eval'}, "
        if self.no_grad:
            text += "forward under no_grad"
        elif self.backward:
            text += "forward+backward" if self.input_grad else "forward+backward, input and states without grad (parameters' gradients only)"
        else:
            text += "forward only"
        if self.second_call != "none":
            text += f", then {self.second_call.replace('_', ' ')} and a second call"
        text += "\n"
        text += f"  input: {self.layout}, {self.input_shape_text()}"
        if self.lengths is not None:
            text += f", lengths={list(self.lengths)}"
        if self.noncontiguous != "none":
            text += f", non-contiguous ({self.noncontiguous})"
        state = "(h_0, c_0)" if self.family_record.cell_state else "h_0"
        text += f", {state} {'given' if self.h0_given else 'None'}\n"
        text += (
            f"  values: input x{self.input_scale}, h_0 x{self.h0_scale}, weights x{self.weight_gain} "
            f"of default init{', with exact zeros' if self.exact_zeros else ''}, seed {self.seed}"
        )
        if self.defect:
            text += f"\n  invalid on purpose: {self.defect.replace('_', ' ')}"
        return text

    def input_shape_text(self) -> str:
        if self.family_record.cell:
            return f"shape ({self.input_size},)" if self.layout == "unbatched" else f"shape ({self.batch}, {self.input_size})"
        if self.packed:
            return f"PackedSequence of {self.batch} sequences x {self.input_size} features"
        if self.layout == "unbatched":
            return f"shape ({self.seq_len}, {self.input_size})"
        if self.batch_first:
            return f"shape ({self.batch}, {self.seq_len}, {self.input_size}) batch_first"
        return f"shape ({self.seq_len}, {self.batch}, {self.input_size})"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Case":
        fields = json.loads(text)
        if fields.get("lengths") is not None:
            fields["lengths"] = tuple(fields["lengths"])
        return cls(**fields)


@dataclasses.dataclass
class Materialized:
    """The tensors of one case. Weights are already rounded to the case's dtype, so
    the float64 reference and the candidate hold identical values.

    Shapes are canonical, whatever the family and layout: the input is time-major
    ``(T, B, I)`` (a cell case is one step, T = 1), every initial state is
    ``(L*D, B, width)`` (L*D = 1 for a cell), and the cotangents are keyed by the
    family's result names (``output``, ``h_n``, ``c_n`` or ``h'``, ``c'``).
    """

    weights: dict[str, Tensor]  # torch's keys, float64 on CPU
    second_weights: dict[str, Tensor] | None  # for second_call, same form
    padded_input: Tensor  # float64 CPU, time-major (T, B, I), zero past each length
    initial_states: tuple[Tensor, ...] | None  # float64 CPU: h_0 (L*D, B, R) [, c_0 (L*D, B, H)]
    cotangents: dict[str, Tensor]  # float64 CPU: coefficients of the random functional

    @property
    def h0(self) -> Tensor | None:
        return None if self.initial_states is None else self.initial_states[0]

    def module_input(self, case: Case, dtype: torch.dtype, device: str | torch.device):
        """The input and the initial state (None, a Tensor, or (h_0, c_0)) in the
        case's layout, dtype and device."""
        x = self.padded_input.to(dtype).to(device)
        states = None if self.initial_states is None else [s.to(dtype).to(device) for s in self.initial_states]
        family = case.family_record
        if family.cell:
            x = x[0, 0] if case.layout == "unbatched" else x[0]
            if states is not None:
                states = [s[0, 0] if case.layout == "unbatched" else s[0] for s in states]
        elif case.layout == "unbatched":
            x = x[:, 0]
            states = None if states is None else [s[:, 0] for s in states]
        elif case.batch_first and not case.packed:
            x = x.transpose(0, 1)
        if case.packed:
            lengths = torch.tensor(case.lengths, dtype=torch.int64)
            packed = pack_padded_sequence(x, lengths, enforce_sorted=case.layout == "packed_sorted")
            data = _noncontiguous(packed.data, case.noncontiguous)
            x = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        else:
            x = _noncontiguous(x, case.noncontiguous)
        if states is None:
            return x, None
        states = [_noncontiguous(s, case.noncontiguous) for s in states]
        return x, (tuple(states) if family.cell_state else states[0])


def _noncontiguous(tensor: Tensor, kind: str) -> Tensor:
    """The same values as `tensor`, laid out in memory as `kind` says."""
    if kind == "none" or tensor.dim() == 0:
        return tensor
    if kind == "transposed":
        # stored with the first two dims swapped, viewed back: same shape, swapped strides
        if tensor.dim() < 2:
            return tensor
        return tensor.transpose(0, 1).contiguous().transpose(0, 1)
    if kind == "strided":
        # every other element of a buffer twice as wide in the last dim
        wide = torch.full((*tensor.shape[:-1], tensor.shape[-1] * 2), float("nan"), dtype=tensor.dtype, device=tensor.device)
        wide[..., ::2] = tensor
        return wide[..., ::2]
    if kind == "offset":
        # a view that starts 3 elements into a larger, NaN-filled storage
        storage = torch.full((tensor.numel() + 6,), float("nan"), dtype=tensor.dtype, device=tensor.device)
        view = storage[3 : 3 + tensor.numel()].view(tensor.shape)
        view.copy_(tensor)
        return view
    raise ValueError(f"unknown non-contiguous layout {kind!r}")


def _rounded(tensor: Tensor, dtype: torch.dtype) -> Tensor:
    return tensor.to(dtype).to(torch.float64)


def _weights(case: Case, generator: torch.Generator) -> dict[str, Tensor]:
    bound = case.weight_gain / math.sqrt(case.hidden_size)
    weights: dict[str, Tensor] = {}
    for name, shape in case.family_record.parameter_shapes(case.constructor()).items():
        values = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        if case.exact_zeros:
            values = values * (torch.rand(shape, generator=generator, dtype=torch.float64) > 0.3)
        weights[name] = _rounded(values, case.torch_dtype)
    return weights


def result_shapes(case: Case) -> dict[str, tuple[int, ...]]:
    """The family's results in canonical form: time-major padded output ``(T, B, D*R)``
    and states ``(L*D, B, width)``; a cell's ``h'`` (and ``c'``) as a one-step output
    ``(1, B, H)``."""
    batch = 1 if case.layout == "unbatched" else case.batch
    family = case.family_record
    if family.cell:
        return {name: (1, batch, case.hidden_size) for name in family.result_names}
    layers_directions = case.num_layers * case.num_directions
    shapes = {
        "output": (case.seq_len, batch, case.num_directions * case.state_width),
        "h_n": (layers_directions, batch, case.state_width),
    }
    if family.cell_state:
        shapes["c_n"] = (layers_directions, batch, case.hidden_size)
    return shapes


def materialize(case: Case) -> Materialized:
    """Build the case's tensors from its seed; the same case always gives the same tensors."""
    # One generator per kind of tensor, so a case cut to fewer layers (see
    # oracle.localize_layer) keeps the same input and the same first layers.
    def generator_for(offset: int) -> torch.Generator:
        return torch.Generator().manual_seed(case.seed * 8 + offset)

    generator = generator_for(0)
    weights = _weights(case, generator)
    second = None
    if case.second_call != "none":
        second = {name: _rounded(w + 0.5 * (torch.rand(w.shape, generator=generator, dtype=torch.float64) - 0.5) / math.sqrt(case.hidden_size), case.torch_dtype) for name, w in weights.items()}
    batch = 1 if case.layout == "unbatched" else case.batch
    generator = generator_for(1)
    x = torch.randn(case.seq_len, batch, case.input_size, generator=generator, dtype=torch.float64) * case.input_scale
    if case.exact_zeros:
        x = x * (torch.rand(x.shape, generator=generator, dtype=torch.float64) > 0.5)
    if case.lengths is not None:
        for row, length in enumerate(case.lengths):
            x[length:, row] = 0
    x = _rounded(x, case.torch_dtype)
    layers_directions = case.num_layers * case.num_directions
    states = None
    if case.h0_given:
        generator = generator_for(2)
        widths = (case.state_width, case.hidden_size) if case.family_record.cell_state else (case.state_width,)
        states = tuple(
            _rounded(torch.randn(layers_directions, batch, width, generator=generator, dtype=torch.float64).tanh() * case.h0_scale, case.torch_dtype)
            for width in widths
        )
    generator = generator_for(3)
    cotangents = {name: torch.randn(shape, generator=generator, dtype=torch.float64) for name, shape in result_shapes(case).items()}
    return Materialized(weights, second, x, states, cotangents)
