"""`native`: one fused C++ loop per layer and direction, forward and backward through time.

The drop-in shells (harness/dropin/) do every layout, layer stacking and dropout;
this module supplies `run_direction`, which splits the work where it is cheapest:

- C++ (impls/csrc/native_rnn.cpp), forward: W_ih and W_hh packed once per call,
  then per step one register-tiled product, bias + x_t W_ih^T + h_{t-1} W_hh^T
  (for fewer rows than a register block, the input projection for the whole
  sequence first), and in one pass over the step's gate rows the nonlinearities
  and the state update (LSTM's W_hr product after it). Backward through time: per
  step the gate derivatives and the product carrying them to h_{t-1}. Nothing is
  recorded by autograd inside the loop.
- Python (torch), after the backward loop: the gradients of the input, W_ih, W_hh,
  the biases and W_hr, each one matrix product or sum over all steps.

The C++ is built on first use with `torch.utils.cpp_extension` (seconds: it includes
no torch header) into a cache directory keyed by its source, its flags, torch's
version and the CPU's instruction set, then loaded with ctypes in every later
process. The instruction set is torch's own choice for this CPU
(``torch.backends.cpu.get_cpu_capability()``: AVX512, AVX2, or the baseline), never
``-march=native``, so a cache shared between machines never hands one a build it
cannot run. Without a C++ compiler or ninja the implementations are `Unavailable`.

float32 and float64 (float16/bfloat16 are declared unsupported); CPU only; LSTM
with and without projections. Double backward raises.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from harness import Implementation, Unavailable
from harness.dropin import DirectionWeights, DropInGRU, DropInLSTM, DropInRNN
from harness.families import parameter_names
from impls import BUILTIN_EXAMPLES

SOURCE = Path(__file__).with_name("csrc") / "native_rnn.cpp"

ISA_FLAGS = {
    # torch's CPU capability -> the compiler flags of the same instruction set. A
    # capability not listed (DEFAULT, or another architecture's) builds for the
    # compiler's baseline of this architecture.
    "AVX512": ("-mavx2", "-mfma", "-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mprefer-vector-width=512"),
    "AVX2": ("-mavx2", "-mfma"),
}
BASE_FLAGS = ("-O3", "-fno-math-errno", "-fno-trapping-math", "-fvisibility=hidden")

DTYPE_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


def instruction_set() -> str:
    """The instruction set the build targets: torch's own choice for this CPU."""
    capability = torch.backends.cpu.get_cpu_capability()
    return capability if capability in ISA_FLAGS else "DEFAULT"


def build_flags() -> list[str]:
    return [*BASE_FLAGS, *ISA_FLAGS.get(instruction_set(), ())]


def extension_name() -> str:
    """Unique per source text, flags and torch version: a change anywhere is a new build."""
    key = hashlib.sha256()
    key.update(SOURCE.read_bytes())
    key.update(" ".join(build_flags()).encode())
    key.update(torch.__version__.encode())
    return f"rnn_harness_native_{instruction_set().lower()}_{key.hexdigest()[:16]}"


def cache_directory() -> Path:
    """Where the build lives: under ``TORCH_EXTENSIONS_DIR`` if set, else under the
    user's cache directory, next to torch's own JIT extensions."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root is None:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch_extensions")
    return Path(root) / extension_name()


def build_problem() -> str | None:
    """Why the extension cannot be built here, or None."""
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"the native built-ins are compiled on first use and need a C++ compiler ({compiler!r} is not on PATH; set CXX)"
    try:
        from torch.utils.cpp_extension import verify_ninja_availability

        verify_ninja_availability()
    except RuntimeError:
        return "the native built-ins are compiled on first use with torch.utils.cpp_extension, which needs ninja (pip install ninja)"
    return None


def build(verbose: bool = False) -> tuple[Path, float]:
    """Build the extension if it is not cached; return the library's path and the
    seconds spent building (0 when it came from the cache)."""
    directory = cache_directory()
    library = directory / f"{directory.name}.so"
    # A build in progress (here or in another process) holds the lock file; then
    # cpp_extension waits for it instead of loading a half-written library.
    if library.exists() and not (directory / "lock").exists():
        return library, 0.0
    problem = build_problem()
    if problem is not None:
        raise Unavailable(problem)
    from torch.utils import cpp_extension

    directory.mkdir(parents=True, exist_ok=True)
    print(f"rnn-harness: building the native kernels once ({instruction_set()}), cached in {directory}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    path = cpp_extension.load(
        name=directory.name,
        sources=[str(SOURCE)],
        extra_cflags=build_flags(),
        build_directory=str(directory),
        is_python_module=False,
        verbose=verbose,
    )
    return Path(path or library), time.perf_counter() - started


_I64, _INT, _PTR = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
SIGNATURES = {
    "rnn_forward": (_I64, _PTR, _INT, _INT, _I64, _I64, *(_PTR,) * 9),
    "rnn_backward": (_I64, _PTR, _INT, _INT, _I64, _PTR, _PTR, _PTR, _PTR, _PTR),
    "lstm_forward": (_I64, _PTR, _INT, _I64, _I64, _I64, *(_PTR,) * 15),
    "lstm_backward": (_I64, _PTR, _INT, _I64, _I64, *(_PTR,) * 10),
    "gru_forward": (_I64, _PTR, _INT, _I64, _I64, *(_PTR,) * 11),
    "gru_backward": (_I64, _PTR, _INT, _I64, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR),
}


@functools.cache
def kernels() -> ctypes.CDLL:
    """The loaded extension, built first if need be."""
    path, _ = build()
    library = ctypes.CDLL(str(path))
    for base, argtypes in SIGNATURES.items():
        for suffix in DTYPE_SUFFIX.values():
            function = getattr(library, f"{base}_{suffix}")
            function.argtypes = argtypes
            function.restype = None
    return library


_KERNELS: dict = {}


def kernel(base: str, dtype: torch.dtype):
    """The entry point of one family and pass for one dtype."""
    try:
        return _KERNELS[base, dtype]
    except KeyError:
        suffix = DTYPE_SUFFIX.get(dtype)
        if suffix is None:
            raise TypeError(f"native: {dtype} is not supported; the native kernels run float32 and float64") from None
        return _KERNELS.setdefault((base, dtype), getattr(kernels(), f"{base}_{suffix}"))


@functools.lru_cache(maxsize=256)
def _batch_sizes_array(batch_sizes: tuple[int, ...]):
    return (ctypes.c_int64 * len(batch_sizes))(*batch_sizes)


def _ptr(tensor: Tensor | None) -> int | None:
    """The address of a tensor's data. The caller keeps the tensor referenced until the
    kernel returns: a temporary made inside the call's argument list is freed first."""
    return None if tensor is None else tensor.data_ptr()


def _contiguous(tensor: Tensor | None) -> Tensor | None:
    return None if tensor is None else tensor.contiguous()


def _state(initial: Tensor) -> Tensor:
    """A private, contiguous copy of an initial state: the loop overwrites it with the final one."""
    return initial.clone(memory_format=torch.contiguous_format)


def _operands(x: Tensor, *tensors: Tensor | None) -> tuple[Tensor | None, ...]:
    """The kernel's inputs, contiguous, after checking they are on the CPU."""
    if not x.is_cpu:
        raise RuntimeError(f"native runs on the CPU only, got a tensor on {x.device}")
    return (x.contiguous(), *[None if tensor is None else tensor.contiguous() for tensor in tensors])


def refuse_double_backward() -> None:
    # Grad mode is on inside a backward only under create_graph=True.
    if torch.is_grad_enabled():
        raise RuntimeError(
            "native's backward through time is differentiable once only, so create_graph=True "
            "(double backward) is not supported; use the 'loop' implementation or torch.nn's module"
        )


def _input_gradients(ctx, grad_gates: Tensor, x: Tensor, w_ih: Tensor) -> tuple[Tensor | None, Tensor | None]:
    grad_x = grad_gates @ w_ih if ctx.needs_input_grad[0] else None
    grad_w_ih = grad_gates.t() @ x if ctx.needs_input_grad[1] else None
    return grad_x, grad_w_ih


def _bias_gradients(ctx, grad_gates: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """b_ih and b_hh enter the gates as one sum: each gets the column sums, as its own
    tensor (one shared tensor would become both parameters' .grad, aliased)."""
    if not ctx.has_bias:
        return None, None
    total = grad_gates.sum(0)
    grad_b_ih = total if ctx.needs_input_grad[3] else None
    grad_b_hh = (total.clone() if grad_b_ih is not None else total) if ctx.needs_input_grad[4] else None
    return grad_b_ih, grad_b_hh


# -- RNN ---------------------------------------------------------------------------


def rnn_direction(x, w_ih, w_hh, b_ih, b_hh, h0, batch_sizes, reverse, relu, save):
    """Output, h_n, and h_{t-1} per row if ``save``."""
    x, w_ih, w_hh, b_ih, b_hh, h0 = _operands(x, w_ih, w_hh, b_ih, b_hh, h0)
    output = x.new_empty(x.shape[0], w_hh.shape[0])
    h_state = torch.empty_like(h0)
    h_prev = torch.empty_like(output) if save else None
    kernel("rnn_forward", x.dtype)(
        len(batch_sizes), _batch_sizes_array(batch_sizes), int(reverse), int(relu), x.shape[1], w_hh.shape[0],
        x.data_ptr(), w_ih.data_ptr(), _ptr(b_ih), _ptr(b_hh), w_hh.data_ptr(), output.data_ptr(), h0.data_ptr(),
        h_state.data_ptr(), _ptr(h_prev),
    )
    return output, h_state, h_prev


class RNNThroughTime(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, h0, batch_sizes, reverse, relu):
        output, h_n, h_prev = rnn_direction(x, w_ih, w_hh, b_ih, b_hh, h0, batch_sizes, reverse, relu, save=True)
        ctx.save_for_backward(x, w_ih, w_hh, output, h_prev)
        ctx.batch_sizes, ctx.reverse, ctx.relu = batch_sizes, reverse, relu
        ctx.has_bias = b_ih is not None
        ctx.set_materialize_grads(False)
        return output, h_n

    @staticmethod
    def backward(ctx, grad_output, grad_h_n):
        refuse_double_backward()
        return RNNThroughTime.backward_through_time(ctx, grad_output, grad_h_n)

    @staticmethod
    @once_differentiable
    def backward_through_time(ctx, grad_output, grad_h_n):
        x, w_ih, w_hh, output, h_prev = ctx.saved_tensors
        batch_sizes = ctx.batch_sizes
        dh_state = torch.zeros_like(output[: batch_sizes[0]]) if grad_h_n is None else _state(grad_h_n)
        grad_gates = torch.empty_like(output)
        w_hh, grad_output = w_hh.contiguous(), _contiguous(grad_output)
        kernel("rnn_backward", output.dtype)(
            len(batch_sizes), _batch_sizes_array(batch_sizes), int(ctx.reverse), int(ctx.relu), w_hh.shape[0],
            _ptr(output), _ptr(w_hh), _ptr(grad_output), _ptr(dh_state), _ptr(grad_gates),
        )
        grad_x, grad_w_ih = _input_gradients(ctx, grad_gates, x, w_ih)
        grad_w_hh = grad_gates.t() @ h_prev if ctx.needs_input_grad[2] else None
        grad_b_ih, grad_b_hh = _bias_gradients(ctx, grad_gates)
        grad_h0 = dh_state if ctx.needs_input_grad[5] else None
        return grad_x, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, grad_h0, None, None, None


# -- LSTM --------------------------------------------------------------------------


def lstm_direction(x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, batch_sizes, reverse, save):
    """Output, h_n, c_n, and (if ``save``) what the backward reads: the activated gates,
    tanh(c_t), c_{t-1} and h_{t-1} per row. ``w_hr`` (proj_size x hidden) or None."""
    x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0 = _operands(x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0)
    hidden, out_width = w_hh.shape[0] // 4, w_hh.shape[1]
    rows = x.shape[0]
    # Without a backward the gates are scratch, kept inside the kernel.
    gates = x.new_empty(rows, 4 * hidden) if save else None
    h_state, c_state = torch.empty_like(h0), torch.empty_like(c0)
    output = x.new_empty(rows, out_width)
    saved = (x.new_empty(rows, hidden), x.new_empty(rows, hidden), x.new_empty(rows, out_width)) if save else (None, None, None)
    tanh_cells, c_prev, h_prev = saved
    kernel("lstm_forward", x.dtype)(
        len(batch_sizes), _batch_sizes_array(batch_sizes), int(reverse), x.shape[1], hidden, out_width,
        x.data_ptr(), w_ih.data_ptr(), _ptr(b_ih), _ptr(b_hh), w_hh.data_ptr(), _ptr(w_hr), _ptr(gates),
        h0.data_ptr(), c0.data_ptr(), h_state.data_ptr(), c_state.data_ptr(), output.data_ptr(),
        _ptr(tanh_cells), _ptr(c_prev), _ptr(h_prev),
    )
    return output, h_state, c_state, (gates, *saved)


class LSTMThroughTime(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, batch_sizes, reverse):
        output, h_n, c_n, saved = lstm_direction(x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, batch_sizes, reverse, save=True)
        ctx.save_for_backward(x, w_ih, w_hh, w_hr, *saved)
        ctx.batch_sizes, ctx.reverse = batch_sizes, reverse
        ctx.has_bias = b_ih is not None
        ctx.set_materialize_grads(False)
        return output, h_n, c_n

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, grad_c_n):
        refuse_double_backward()
        return LSTMThroughTime.backward_through_time(ctx, grad_output, grad_h_n, grad_c_n)

    @staticmethod
    @once_differentiable
    def backward_through_time(ctx, grad_output, grad_h_n, grad_c_n):
        x, w_ih, w_hh, w_hr, gates, tanh_cells, c_prev, h_prev = ctx.saved_tensors
        batch_sizes = ctx.batch_sizes
        hidden, out_width = tanh_cells.shape[1], h_prev.shape[1]
        dh_state = h_prev.new_zeros(batch_sizes[0], out_width) if grad_h_n is None else _state(grad_h_n)
        dc_state = tanh_cells.new_zeros(batch_sizes[0], hidden) if grad_c_n is None else _state(grad_c_n)
        grad_gates = torch.empty_like(gates)
        grad_h = torch.empty_like(h_prev) if w_hr is not None else None  # every row's whole dL/dh_t
        w_hh, w_hr, grad_output = w_hh.contiguous(), _contiguous(w_hr), _contiguous(grad_output)
        kernel("lstm_backward", x.dtype)(
            len(batch_sizes), _batch_sizes_array(batch_sizes), int(ctx.reverse), hidden, out_width,
            gates.data_ptr(), tanh_cells.data_ptr(), c_prev.data_ptr(), w_hh.data_ptr(), _ptr(w_hr), _ptr(grad_output),
            dh_state.data_ptr(), dc_state.data_ptr(), grad_gates.data_ptr(), _ptr(grad_h),
        )
        grad_x, grad_w_ih = _input_gradients(ctx, grad_gates, x, w_ih)
        grad_w_hh = grad_gates.t() @ h_prev if ctx.needs_input_grad[2] else None
        grad_b_ih, grad_b_hh = _bias_gradients(ctx, grad_gates)
        grad_w_hr = None
        if w_hr is not None and ctx.needs_input_grad[5]:
            grad_w_hr = grad_h.t() @ (gates[:, 3 * hidden :] * tanh_cells)  # dL/dh_t times o tanh(c_t)
        grad_h0 = dh_state if ctx.needs_input_grad[6] else None
        grad_c0 = dc_state if ctx.needs_input_grad[7] else None
        return grad_x, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, grad_w_hr, grad_h0, grad_c0, None, None


# -- GRU ---------------------------------------------------------------------------


def gru_direction(x, w_ih, w_hh, b_ih, b_hh, h0, batch_sizes, reverse, save):
    """Output, h_n, and (if ``save``) the activated gates (r, z, n), h W_hn^T + b_hn and
    h_{t-1} per row."""
    x, w_ih, w_hh, b_ih, b_hh, h0 = _operands(x, w_ih, w_hh, b_ih, b_hh, h0)
    hidden = w_hh.shape[1]
    gates = x.new_empty(x.shape[0], 3 * hidden) if save else None
    h_state = torch.empty_like(h0)
    output = x.new_empty(x.shape[0], hidden)
    hidden_n = x.new_empty(x.shape[0], hidden) if save else None
    h_prev = x.new_empty(x.shape[0], hidden) if save else None
    kernel("gru_forward", x.dtype)(
        len(batch_sizes), _batch_sizes_array(batch_sizes), int(reverse), x.shape[1], hidden,
        x.data_ptr(), w_ih.data_ptr(), _ptr(b_ih), _ptr(b_hh), w_hh.data_ptr(), _ptr(gates), h0.data_ptr(),
        h_state.data_ptr(), output.data_ptr(), _ptr(hidden_n), _ptr(h_prev),
    )
    return output, h_state, (gates, hidden_n, h_prev)


class GRUThroughTime(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, h0, batch_sizes, reverse):
        output, h_n, saved = gru_direction(x, w_ih, w_hh, b_ih, b_hh, h0, batch_sizes, reverse, save=True)
        ctx.save_for_backward(x, w_ih, w_hh, *saved)
        ctx.batch_sizes, ctx.reverse = batch_sizes, reverse
        ctx.has_bias = b_ih is not None
        ctx.set_materialize_grads(False)
        return output, h_n

    @staticmethod
    def backward(ctx, grad_output, grad_h_n):
        refuse_double_backward()
        return GRUThroughTime.backward_through_time(ctx, grad_output, grad_h_n)

    @staticmethod
    @once_differentiable
    def backward_through_time(ctx, grad_output, grad_h_n):
        x, w_ih, w_hh, gates, hidden_n, h_prev = ctx.saved_tensors
        batch_sizes = ctx.batch_sizes
        dh_state = torch.zeros_like(h_prev[: batch_sizes[0]]) if grad_h_n is None else _state(grad_h_n)
        grad_gates = torch.empty_like(gates)
        grad_hidden = torch.empty_like(gates)
        w_hh, grad_output = w_hh.contiguous(), _contiguous(grad_output)
        kernel("gru_backward", x.dtype)(
            len(batch_sizes), _batch_sizes_array(batch_sizes), int(ctx.reverse), w_hh.shape[1],
            _ptr(gates), _ptr(hidden_n), _ptr(h_prev), _ptr(w_hh), _ptr(grad_output),
            _ptr(dh_state), _ptr(grad_gates), _ptr(grad_hidden),
        )
        grad_x, grad_w_ih = _input_gradients(ctx, grad_gates, x, w_ih)
        grad_w_hh = grad_hidden.t() @ h_prev if ctx.needs_input_grad[2] else None
        grad_b_ih = grad_gates.sum(0) if ctx.has_bias and ctx.needs_input_grad[3] else None
        grad_b_hh = grad_hidden.sum(0) if ctx.has_bias and ctx.needs_input_grad[4] else None
        grad_h0 = dh_state if ctx.needs_input_grad[5] else None
        return grad_x, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, grad_h0, None, None


# -- the drop-in modules -----------------------------------------------------------


def _needs_graph(*tensors) -> bool:
    return torch.is_grad_enabled() and any(tensor is not None and tensor.requires_grad for tensor in tensors)


@functools.lru_cache(maxsize=None)
def _weight_names(layer: int, direction: int, bias: bool) -> tuple[str | None, ...]:
    names = parameter_names(layer, direction)
    return (names.w_ih, names.w_hh, names.b_ih, names.b_hh) if bias else (names.w_ih, names.w_hh, None, None)


class NativeModule:
    """Builds (or loads from the cache) the extension when constructed, so that a
    missing compiler shows as `Unavailable` before any input is run."""

    def __init__(self, *args, **kwargs):
        kernels()
        super().__init__(*args, **kwargs)

    def direction_weights(self, layer: int, direction: int) -> DirectionWeights:
        # The shell's lookup, by names made once: at the latency-bound shape the
        # attribute lookups alone were a tenth of a forward call. The parameters
        # themselves are read on every call (in-place updates must show).
        parameters = self._parameters
        return DirectionWeights(*(
            None if name is None else parameters[name] if name in parameters else getattr(self, name)
            for name in _weight_names(layer, direction, self.bias)
        ))


class NativeRNN(NativeModule, DropInRNN):
    def run_direction(self, data, batch_sizes, h0, layer, direction):
        w_ih, w_hh, b_ih, b_hh = self.direction_weights(layer, direction)
        arguments = (data, w_ih, w_hh, b_ih, b_hh, h0, tuple(batch_sizes), direction == 1, self.nonlinearity == "relu")
        if _needs_graph(data, w_ih, w_hh, b_ih, b_hh, h0):
            return RNNThroughTime.apply(*arguments)
        output, h_n, _ = rnn_direction(*arguments, save=False)
        return output, h_n


class NativeLSTM(NativeModule, DropInLSTM):
    def run_direction(self, data, batch_sizes, state, layer, direction):
        w_ih, w_hh, b_ih, b_hh = self.direction_weights(layer, direction)
        w_hr = self.projection_weight(layer, direction)
        h0, c0 = state
        arguments = (data, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, tuple(batch_sizes), direction == 1)
        if _needs_graph(data, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0):
            output, h_n, c_n = LSTMThroughTime.apply(*arguments)
        else:
            output, h_n, c_n, _ = lstm_direction(*arguments, save=False)
        return output, (h_n, c_n)


class NativeGRU(NativeModule, DropInGRU):
    def run_direction(self, data, batch_sizes, h0, layer, direction):
        w_ih, w_hh, b_ih, b_hh = self.direction_weights(layer, direction)
        arguments = (data, w_ih, w_hh, b_ih, b_hh, h0, tuple(batch_sizes), direction == 1)
        if _needs_graph(data, w_ih, w_hh, b_ih, b_hh, h0):
            return GRUThroughTime.apply(*arguments)
        output, h_n, _ = gru_direction(*arguments, save=False)
        return output, h_n


NATIVE_DTYPES = (torch.float32, torch.float64)
DESCRIPTION = "C++ extension: one fused loop per layer and direction, forward and backward through time"


def _native(family: str, factory) -> Implementation:
    return Implementation(
        name="native" if family == "RNN" else f"native-{family.lower()}",
        factory=factory,
        family=family,
        dtypes=NATIVE_DTYPES,
        devices=("cpu",),
        default_examples=BUILTIN_EXAMPLES[family],
        description=DESCRIPTION,
    )


IMPLEMENTATION = _native("RNN", NativeRNN)
LSTM = _native("LSTM", NativeLSTM)
GRU = _native("GRU", NativeGRU)


def main() -> int:
    """``python -m impls.native``: build the extension now (CI does, before its tests)."""
    try:
        path, seconds = build(verbose="--verbose" in sys.argv)
    except Unavailable as error:
        print(f"native kernels unavailable: {error}", file=sys.stderr)
        return 1
    print(f"{path} ({'built in %.1f s' % seconds if seconds else 'cached'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
