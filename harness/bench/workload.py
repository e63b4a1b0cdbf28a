"""What a benchmark runs: one implementation, one shape, forward or forward+backward.

Shared by ``python -m harness bench``, the asv suites and the pytest-benchmark
suite, so all three time the same thing: the module built from torch's
constructor keywords, the weights of torch's module of the implementation's family
(nn.RNN, nn.LSTM, nn.GRU, or a cell; seeded) loaded into it, float32 input of the
shape, and the call under test warmed up before any timing. A cell is timed as a
cell is used: a loop over the sequence's steps from a zero state
(`CellOverSequence`), torch's cell in the same loop.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn

from harness.families import FAMILIES, family as family_record
from harness.implementation import Implementation, Unavailable

MODES = ("forward", "backward")
"""``forward`` runs under no_grad; ``backward`` is forward then backward of a sum
(of the output and every final state: h_n, and c_n for LSTM), with the parameters
requiring grad and the input not (the usual training step)."""

LAYER_FAMILIES = tuple(name for name, record in FAMILIES.items() if not record.cell)
"""The layer families (not the cells): what ``python -m harness bench`` compares."""


def builtin_name(base: str, family: str) -> str:
    """A built-in's entry-point name in a family: ``torch`` for RNN, ``torch-lstm`` for LSTM."""
    return base if family == "RNN" else f"{base}-{family.lower()}"


MODE_TITLES = {"forward": "forward", "backward": "forward+backward"}


class UnsupportedCase(NotImplementedError):
    """The implementation declares this case out of scope or cannot be built here.

    A NotImplementedError so that asv records a skip for it."""


@dataclasses.dataclass(frozen=True, order=True)
class Shape:
    steps: int  # L
    batch: int  # N
    input_size: int  # I
    hidden_size: int  # H
    num_layers: int = 1
    bidirectional: bool = False

    @property
    def label(self) -> str:
        text = f"L{self.steps} N{self.batch} I{self.input_size} H{self.hidden_size}"
        if self.num_layers != 1:
            text += f" layers{self.num_layers}"
        if self.bidirectional:
            text += " bidir"
        return text

    def constructor(self) -> dict:
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
        }

    def flops(self, mode: str, gates: int = 1) -> float:
        """Multiply-add FLOPs of the matrix products (elementwise work is not counted).

        Forward: per layer and direction, 2·L·N·G·(I_layer·H + H·H), with G gate
        blocks (RNN 1, GRU 3, LSTM 4). Backward adds the weight gradients (the same
        again), the gradient through h_{t-1} (2·L·N·G·H·H) and the gradient of each
        layer's input except the first, which needs none.
        """
        directions = 2 if self.bidirectional else 1
        rows = self.steps * self.batch
        total = 0.0
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.hidden_size * directions
            forward = 2.0 * rows * (layer_input * self.hidden_size + self.hidden_size**2)
            total += directions * forward
            if mode == "backward":
                input_gradient = 0.0 if layer == 0 else 2.0 * rows * layer_input * self.hidden_size
                total += directions * (forward + 2.0 * rows * self.hidden_size**2 + input_gradient)
        return gates * total


def family_constructor(shape: Shape, family: str) -> dict:
    """torch's constructor keywords of the family for the shape.

    A cell takes only the widths: it is one layer in one direction, so a shape with
    more layers or both directions is an `UnsupportedCase` for it.
    """
    if not family_record(family).cell:
        return shape.constructor()
    if shape.num_layers != 1 or shape.bidirectional:
        raise UnsupportedCase(f"{family} is one layer in one direction; {shape.label} is not")
    return {"input_size": shape.input_size, "hidden_size": shape.hidden_size}


class CellOverSequence(nn.Module):
    """A cell run over the steps of an ``(L, N, I)`` input from a zero state, returning
    what a layer returns: every step's h stacked ``(L, N, H)``, and the final state
    (h, or (h, c) for LSTMCell). The loop is the caller's, as with any cell, so torch's
    cell and the candidate pay the same Python per step."""

    def __init__(self, cell: nn.Module, hidden_size: int, cell_state: bool) -> None:
        super().__init__()
        self.cell = cell
        self.hidden_size = hidden_size
        self.cell_state = cell_state

    def forward(self, input: Tensor):
        h = input.new_zeros(input.shape[1], self.hidden_size)
        state = (h, torch.zeros_like(h)) if self.cell_state else h
        outputs = []
        for step in input.unbind(0):
            state = self.cell(step, state)
            outputs.append(state[0] if self.cell_state else state)
        return torch.stack(outputs), state


def over_sequence(module: nn.Module, shape: Shape, family: str) -> nn.Module:
    """The module itself for a layer family; a cell inside `CellOverSequence`."""
    record = family_record(family)
    if not record.cell:
        return module
    return CellOverSequence(module, shape.hidden_size, record.cell_state)


def reference_module(shape: Shape, family: str = "RNN", dtype: torch.dtype = torch.float64) -> nn.Module:
    """torch's module of the family for the shape, with torch's own initialisation
    (the cell itself for a cell family, not yet looped over the sequence)."""
    return family_record(family).module_class(**family_constructor(shape, family), dtype=dtype)


def reference_weights(shape: Shape, seed: int, family: str = "RNN") -> dict[str, Tensor]:
    """torch's own initialisation of the family's module, seeded, as a float64 state_dict."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return reference_module(shape, family).state_dict()


def make_input(shape: Shape, seed: int, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Tensor:
    generator = torch.Generator().manual_seed(seed + 1)
    return torch.randn(shape.steps, shape.batch, shape.input_size, generator=generator, dtype=torch.float64).to(dtype).to(device)


def build_module(
    implementation: Implementation, shape: Shape, *, dtype=torch.float32, seed: int = 0, mode: str = "forward", device: str = "cpu"
) -> nn.Module:
    """The implementation's module for the shape with the seeded reference weights
    (a cell looped over the sequence, `CellOverSequence`).

    Raises `UnsupportedCase` where the implementation declares the case out of scope,
    its factory raises `Unavailable`, or the shape has no meaning for a cell.
    """
    constructor = family_constructor(shape, implementation.family)
    reason = implementation.unsupported_reason({**constructor, "dtype": dtype}, device=device, backward=mode == "backward")
    if reason is not None:
        raise UnsupportedCase(f"{implementation.name} does not support {shape.label} {mode}: {reason}")
    try:
        module = implementation.factory(**constructor, dtype=dtype, device=device)
    except Unavailable as error:
        raise UnsupportedCase(f"{implementation.name} is unavailable here: {error}") from error
    weights = reference_weights(shape, seed, implementation.family)
    module.load_state_dict({key: value.to(dtype).to(device) for key, value in weights.items()})
    return over_sequence(module, shape, implementation.family)


@dataclasses.dataclass
class Workload:
    """A ready-to-time call: ``workload()`` runs it once."""

    implementation: str
    shape: Shape
    mode: str
    module: nn.Module
    input: Tensor
    first_call_seconds: float  # the first call alone: includes any compilation
    call: Callable[[], None] = dataclasses.field(repr=False, default=None)

    def __call__(self) -> None:
        self.call()


def build_workload(
    implementation: Implementation,
    shape: Shape,
    mode: str,
    *,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    warmup_calls: int = 3,
    device: str = "cpu",
) -> Workload:
    """Build the module and input, make the call, and warm it up (compiling, if the
    implementation compiles) so that timing starts from the steady state."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    module = build_module(implementation, shape, dtype=dtype, seed=seed, mode=mode, device=device)
    x = make_input(shape, seed, dtype, device)
    if mode == "forward":

        def call() -> None:
            with torch.no_grad():
                module(x)

    else:

        def call() -> None:
            output, final = module(x)
            # The final states too, so an implementation cannot skip the work behind them.
            loss = output.sum()
            for state in final if isinstance(final, tuple) else (final,):
                loss = loss + state.sum()
            loss.backward()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a compiler's first-call chatter is not a result
        # A plain clock, not torch.utils.benchmark: Timer.timeit(1) makes two
        # warm-up calls first, so the compilation would land there, untimed.
        started = time.perf_counter()
        call()
        if device == "cuda":
            torch.cuda.synchronize()
        first_call_seconds = time.perf_counter() - started
        for _ in range(warmup_calls):
            call()
    return Workload(implementation.name, shape, mode, module, x, first_call_seconds, call)


def worst_error(implementation: Implementation, shape: Shape, mode: str, *, seed: int = 0) -> float:
    """Largest absolute difference from torch's module of its family in float64, in float32.

    Forward: over the output (for a cell, every step's h) and the final state(s). Backward: also over every
    parameter's gradient (of the same loss as the timed call). One number, so an
    accuracy regression shows in asv's history next to the timings.
    """
    reference = reference_module(shape, implementation.family)
    reference.load_state_dict(reference_weights(shape, seed, implementation.family))
    reference = over_sequence(reference, shape, implementation.family)
    candidate_module = build_module(implementation, shape, seed=seed, mode=mode)
    x = make_input(shape, seed, torch.float64)
    expected = _observables(reference, x, mode)
    actual = _observables(candidate_module, x.float(), mode)
    return max(float((actual[key].double() - value).abs().max()) for key, value in expected.items())


def _observables(module: nn.Module, x: Tensor, mode: str) -> dict[str, Tensor]:
    with torch.set_grad_enabled(mode == "backward"):
        output, final = module(x)
    finals = final if isinstance(final, tuple) else (final,)
    found = {"output": output.detach(), **{name: state.detach() for name, state in zip(("h_n", "c_n"), finals)}}
    if mode == "backward":
        sum([output.sum(), *(state.sum() for state in finals)]).backward()
        # By state_dict key, not attribute path: an implementation may keep its
        # parameters elsewhere (linear's submodules) under torch's names.
        parameters = module.state_dict(keep_vars=True)
        found.update({f"grad {key}": parameter.grad for key, parameter in parameters.items()})
    return found
