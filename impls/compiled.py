"""`compiled`: torch's module run through ``torch.compile`` (Inductor) with dynamic shapes.

What a user gets from ``torch.compile(rnn, dynamic=True)``, with two settings made
on purpose and only around our own call:

- ``allow_rnn=True``. By default Dynamo refuses to trace nn.RNN/LSTM/GRU and falls
  back to eager *silently* (a graph break): "compiled" would be eager torch again.
- ``fail_on_recompile_limit_hit=True`` with a higher ``recompile_limit``. Dynamo's
  default, after 8 recompilations of one code object, is to run eager from then on,
  again silently; every new module and every new sequence length recompiles here.

What is dynamic: the batch (one graph serves every batch size of at least 2). What
is not: the sequence length. torch's decomposition of ``aten.rnn_tanh`` (the code
Inductor compiles, see `impls.torch_decomp`) unrolls the time loop in Python, so
each new length specializes and compiles again (tens of seconds each on this
machine; see docs/benchmarks.md). That is why this implementation has a small
default budget and a long per-example timeout.

Family-generic: `compiled_factory(module_class)` for any torch recurrent module,
layers and cells (a cell's forward has no time loop: one graph serves every batch).
What torch.compile gets wrong per family is declared below and written up in
docs/found-bugs.md: h_n aliasing output (RNN, GRU, LSTM), LSTM's lowering to oneDNN
with grad mode on, and in bfloat16 where oneDNN has none, LSTM's unchecked
equal-length packed input, and the cells' half-precision backward in AVX-512 code.
"""

from __future__ import annotations

import functools
import shutil

import torch
from torch import nn

from harness import Implementation, KnownFailure, Unavailable
from impls import machine
from impls.torch_decomp import INTER_LAYER_DROPOUT_IGNORED, ONEDNN_BFLOAT16_UNSUPPORTED, decomposition_takes_onednn
from impls.torch_native import ONEDNN_PACKED_UNCHECKED

COMPILER_MODULES = ("torch._dynamo", "torch._inductor.compile_fx")
"""Seconds to import in each worker (3.5 s here); its forkserver imports them once."""

RECOMPILE_LIMIT = 1_000_000
"""Every fuzzing example builds a new module, and every sequence length is a new graph."""


@functools.cache
def compiler_problem() -> str | None:
    """Why Inductor cannot compile CPU code here, or None."""
    try:
        from torch._inductor import cpp_builder

        compiler = cpp_builder.get_cpp_compiler()
    except Exception as error:  # noqa: BLE001 - any failure here means "cannot compile"
        return f"torch.compile's Inductor backend found no usable C++ compiler ({type(error).__name__}: {error})"
    if shutil.which(compiler) is None:
        return f"torch.compile's Inductor backend needs the C++ compiler {compiler!r}, which is not on PATH"
    return None


def dynamo_settings():
    return torch._dynamo.config.patch(
        allow_rnn=True,
        recompile_limit=RECOMPILE_LIMIT,
        accumulated_recompile_limit=RECOMPILE_LIMIT,
        fail_on_recompile_limit_hit=True,
    )


class CompiledForward:
    """Mixin over a torch recurrent module: its own forward, compiled once per module."""

    def __init__(self, *args, **kwargs):
        problem = compiler_problem()
        if problem is not None:
            raise Unavailable(problem)
        super().__init__(*args, **kwargs)
        # The torch class's forward bound to this module: Dynamo traces torch's code
        # with this module's parameters as graph inputs, so weight changes (in place
        # or by load_state_dict) reach the compiled graph without recompiling.
        self._compiled_forward = torch.compile(super().forward, dynamic=True)

    def forward(self, input, hx=None):
        with dynamo_settings():
            return self._compiled_forward(input, hx)


def compiled_factory(module_class: type[nn.Module]) -> type[nn.Module]:
    """A drop-in subclass of ``module_class`` whose forward is torch.compile'd.
    Assign it to a module-level name equal to its ``__name__`` (workers and repro
    scripts import it by name)."""
    return type(f"Compiled{module_class.__name__}", (CompiledForward, module_class), {"__module__": __name__})


H_N_ALIASES_OUTPUT = KnownFailure(
    when=lambda case: case.num_layers == 1 and not case.bidirectional and not case.packed and case.proj_size == 0,
    reason=(
        "torch.compile (AOTAutograd + Inductor, torch._inductor.compile_fx) returns h_n as a view "
        "into output's storage for one unidirectional layer; eager torch, and torch._decomp's "
        "decomposition run eagerly, return separate tensors (docs/found-bugs.md)"
    ),
    kinds={"aliasing"},
)
"""nn.RNN, nn.GRU and nn.LSTM without projections alike: the decomposition's last step
is both the last row of ``output`` and ``h_n``, and Inductor stores it once. Only the
aliasing check is set aside: values, gradients and exceptions are still compared on
these cases (the simplest case among them, a slow path's first example)."""

ONEDNN_INFERENCE_CRASH = KnownFailure(
    when=lambda case: decomposition_takes_onednn(case) and not case.no_grad,
    reason=(
        "torch.compile of nn.LSTM called with grad mode on but an input that does not require grad "
        "(float32/bfloat16, no projections, CPU: the usual first layer of a model being trained) raises "
        "TypeError 'expected Tensor() for op: torch.ops.aten.mkldnn_rnn_layer.default': "
        "torch._decomp's select_one_layer_lstm_function lowers the layer to aten.mkldnn_rnn_layer "
        "(train=False), and the code torch._inductor generates for that fallback kernel checks "
        "(assert_size_stride) its workspace output, which the kernel does not return as a tensor "
        "there. Under torch.no_grad() it runs (docs/found-bugs.md)"
    ),
)

PACKED_LSTM_UNCHECKED_DEFECTS = ONEDNN_PACKED_UNCHECKED + ("h0_wrong_rank", "c0_one_layer")
"""Seen to pass unchecked (or raise IndexError) in compiled-lstm; a wrong hidden width
or a missing c_0 is refused with torch's RuntimeError (Dynamo's TorchRuntimeError)."""

PACKED_LSTM_UNCHECKED = KnownFailure(
    when=lambda case: case.family == "LSTM" and case.packed and case.defect in PACKED_LSTM_UNCHECKED_DEFECTS,
    reason=(
        "torch.compile of nn.LSTM on a PackedSequence: nn.LSTM.forward checks nothing for packed input "
        "(docs/found-bugs.md, Part 1), and neither does what the compiled graph runs: aten.lstm.data's CPU "
        "kernel, which sends equal-length batches to oneDNN unchecked, or torch._decomp's lstm_data_impl. "
        "A wrong input width or h_0/c_0 shape returns normally or raises IndexError where torch's ATen "
        "kernel raises RuntimeError"
    ),
)

HALF_CELL_BACKWARD_CPP_ERROR = KnownFailure(
    when=lambda case: (
        case.dtype in ("float16", "bfloat16") and case.device == "cpu" and case.backward and not case.no_grad
        and machine.inductor_avx512()
    ),
    reason=(
        "torch.compile of nn.RNNCell and nn.LSTMCell in float16 or bfloat16 on the CPU, where Inductor generates "
        "AVX-512 code: the C++ code torch._inductor generates for the backward does not compile (CppCompileError: "
        "conflicting declaration 'auto at_Half_tmp_acc0_vec', at_BFloat16_tmp_acc0_vec), so forward+backward raises "
        "InductorError (docs/found-bugs.md). Its AVX2 and scalar code compile and agree with torch"
    ),
)

CompiledRNN = compiled_factory(nn.RNN)
CompiledLSTM = compiled_factory(nn.LSTM)
CompiledGRU = compiled_factory(nn.GRU)
CompiledRNNCell = compiled_factory(nn.RNNCell)
CompiledLSTMCell = compiled_factory(nn.LSTMCell)
CompiledGRUCell = compiled_factory(nn.GRUCell)


def _compiled(family: str, factory: type[nn.Module], known_failures: tuple[KnownFailure, ...] = ()) -> Implementation:
    """One family's record: one example by default (its first graph costs tens of
    seconds; campaigns give more with --max-examples, docs/found-bugs.md)."""
    layer = not family.endswith("Cell")
    return Implementation(
        name="compiled" if family == "RNN" else f"compiled-{family.lower()}",
        factory=factory,
        family=family,
        # The GPU only where Inductor can compile for it (Triton installed): decided on the machine that loads this.
        devices=None if machine.inductor_targets_cuda() else ("cpu",),
        known_failures=known_failures,
        default_examples=1,
        example_timeout=900.0,
        preload=COMPILER_MODULES,
        description=f"torch.compile(torch.nn.{family}, dynamic=True), Inductor" + ("; each new sequence length compiles" if layer else ""),
    )


# Inductor lowers the layers' kernels with torch._decomp's decomposition, bug included.
IMPLEMENTATION = _compiled("RNN", CompiledRNN, (INTER_LAYER_DROPOUT_IGNORED, H_N_ALIASES_OUTPUT))
LSTM = _compiled(
    "LSTM", CompiledLSTM,
    (INTER_LAYER_DROPOUT_IGNORED, H_N_ALIASES_OUTPUT, ONEDNN_INFERENCE_CRASH, PACKED_LSTM_UNCHECKED, ONEDNN_BFLOAT16_UNSUPPORTED),
)
GRU = _compiled("GRU", CompiledGRU, (INTER_LAYER_DROPOUT_IGNORED, H_N_ALIASES_OUTPUT))
RNN_CELL = _compiled("RNNCell", CompiledRNNCell, (HALF_CELL_BACKWARD_CPP_ERROR,))
LSTM_CELL = _compiled("LSTMCell", CompiledLSTMCell, (HALF_CELL_BACKWARD_CPP_ERROR,))
GRU_CELL = _compiled("GRUCell", CompiledGRUCell)
