"""`torch-decomp`: torch's module with its recurrent kernel swapped for torch's own
Python decomposition (``torch._decomp``, what AOTAutograd, Inductor and export lower
``aten.rnn_tanh`` and friends to).

Everything else in torch's ``forward`` (validation, unbatched and PackedSequence
handling, ``h_0`` sorting) runs unchanged: a `torch.overrides.TorchFunctionMode`
catches the one call into the fused kernel (``_VF.rnn_tanh(...)``) and runs the
decomposition registered for that exact overload instead. The decomposition is
looked up in ``torch._decomp.decomposition_table`` at call time, so what runs is
what torch's compilers would use.

Family-generic: `decomposed_factory(module_class)` makes the drop-in for any torch
recurrent module whose forward calls one of `RECURRENT_KERNELS`: nn.RNN
(``aten.rnn_tanh`` / ``rnn_relu``), nn.LSTM (``aten.lstm``, projections included)
and nn.GRU (``aten.gru``), each with its ``.input`` and ``.data`` (PackedSequence)
overload.

The cells have no variant here on purpose. nn.RNNCell, nn.LSTMCell and nn.GRUCell
call ``_VF.rnn_tanh_cell`` / ``rnn_relu_cell`` / ``lstm_cell`` / ``gru_cell``, which
are CompositeImplicitAutograd operators written in C++ (ATen's RNN.cpp): they
decompose into linear, sigmoid and tanh below the dispatcher, and
``torch._decomp.decomposition_table`` has no entry for any of them (checked by
tests/test_execution_paths.py). A "decomposed cell" would be eager torch again;
the cells' lowered path is checked by `compiled` and `exported`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from harness import Implementation, KnownFailure
from impls import machine

aten = torch.ops.aten

RECURRENT_KERNELS = {"rnn_tanh": aten.rnn_tanh, "rnn_relu": aten.rnn_relu, "lstm": aten.lstm, "gru": aten.gru}
"""``_VF`` function name -> the aten packet whose ``.input`` / ``.data`` overloads it calls."""


def kernel_overload(name: str, args: tuple) -> torch._ops.OpOverload:
    """The overload a ``_VF`` call binds to: ``.data`` (PackedSequence: the second
    argument is the int64 ``batch_sizes``) or ``.input`` (a padded tensor)."""
    packed = isinstance(args[1], Tensor) and not args[1].is_floating_point() and args[1].dim() == 1
    return getattr(RECURRENT_KERNELS[name], "data" if packed else "input")


def _fused_kernel_names() -> dict:
    """The ``_VF`` functions torch's modules call (``torch._VF.rnn_tanh`` is
    ``torch._C._VariableFunctions.rnn_tanh``), mapped to their names."""
    return {getattr(torch._C._VariableFunctions, name): name for name in RECURRENT_KERNELS}


def decomposition(overload: torch._ops.OpOverload):
    from torch._decomp import decomposition_table

    try:
        return decomposition_table[overload]
    except KeyError:
        raise NotImplementedError(f"torch._decomp has no decomposition for {overload}") from None


class RecurrentKernelsDecomposed(TorchFunctionMode):
    """Runs every recurrent kernel call made inside it through torch's decomposition."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _fused_kernel_names().get(func)
        if name is not None:
            return decomposition(kernel_overload(name, args))(*args, **kwargs)
        return func(*args, **kwargs)


class DecomposedForward:
    """Mixin over a torch recurrent module: its forward, with the kernel decomposed."""

    def forward(self, input, hx=None):
        with RecurrentKernelsDecomposed():
            return super().forward(input, hx)


def decomposed_factory(module_class: type[nn.Module]) -> type[nn.Module]:
    """A drop-in subclass of ``module_class`` (nn.RNN, nn.LSTM, nn.GRU) that runs
    torch's Python decomposition of its kernel. Assign it to a module-level name of
    the same ``__name__`` so workers and repro scripts can import it."""
    return type(f"Decomposed{module_class.__name__}", (DecomposedForward, module_class), {"__module__": __name__})


DecomposedRNN = decomposed_factory(nn.RNN)
DecomposedLSTM = decomposed_factory(nn.LSTM)
DecomposedGRU = decomposed_factory(nn.GRU)

INTER_LAYER_DROPOUT_IGNORED = KnownFailure(
    when=lambda case: case.training and case.dropout > 0 and case.num_layers > 1,
    reason=(
        "torch._decomp.decompositions._rnn_helper never applies dropout between layers: "
        "it sets `dropout = dropout if (train and num_layers < i - 1) else 0.0`, which is "
        "0 for every layer i (docs/found-bugs.md)"
    ),
)

EMPTY_SEQUENCE_ERROR_TYPE = KnownFailure(
    when=lambda case: case.defect == "empty_sequence",
    reason=(
        "torch._decomp.decompositions.one_layer_rnn (one_layer_lstm for LSTM) does not check for an "
        "empty sequence: torch.cat of no steps raises ValueError where aten.rnn_tanh, aten.lstm and "
        "aten.gru raise RuntimeError (docs/found-bugs.md)"
    ),
)


def decomposition_takes_onednn(case) -> bool:
    """torch._decomp's ``select_one_layer_lstm_function`` sends an LSTM layer to
    oneDNN (``aten.mkldnn_rnn_layer``) when oneDNN is on, everything is on the CPU in
    float32 or bfloat16, there are no projections, and the input does not require
    grad (the harness makes the input a leaf when it checks gradients, unless the case
    asks for the parameters' gradients only)."""
    return (
        case.family == "LSTM"
        and not case.packed  # aten.lstm.data's decomposition never uses oneDNN
        and case.device == "cpu"
        and case.dtype in ("float32", "bfloat16")
        and case.proj_size == 0
        and (case.no_grad or not case.backward or not case.input_grad)
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
    )


ONEDNN_EMPTY_BATCH = KnownFailure(
    when=lambda case: decomposition_takes_onednn(case) and case.batch == 0 and case.layout != "unbatched",
    reason=(
        "torch._decomp.decompositions.select_one_layer_lstm_function picks oneDNN (mkldnn_one_layer_lstm, "
        "aten.mkldnn_rnn_layer) without eager torch's `input.numel() != 0` condition (use_mkldnn in "
        "aten/src/ATen/native/RNN.cpp): on an empty batch oneDNN raises RuntimeError 'could not "
        "execute a primitive' where nn.LSTM returns empty tensors (docs/found-bugs.md)"
    ),
)

ONEDNN_BFLOAT16_UNSUPPORTED = KnownFailure(
    when=lambda case: decomposition_takes_onednn(case) and case.dtype == "bfloat16" and not machine.onednn_bfloat16(),
    reason=(
        "on a CPU where oneDNN has no bfloat16 (torch.ops.mkldnn._is_mkldnn_bf16_supported() False: AVX2 without "
        "AVX-512, or ONEDNN_MAX_CPU_ISA=AVX2), torch._decomp.decompositions.select_one_layer_lstm_function still "
        "picks oneDNN (aten.mkldnn_rnn_layer) for a bfloat16 LSTM whose input needs no grad, and oneDNN raises "
        "RuntimeError 'could not create a primitive descriptor for the LSTM forward propagation primitive'; eager "
        "nn.LSTM checks the CPU first (mkldnn_bf16_device_check in use_mkldnn, aten/src/ATen/native/RNN.cpp) and "
        "runs ATen's kernel (docs/found-bugs.md)"
    ),
)
"""Decided here, at run time: on a CPU with bfloat16 in oneDNN both paths take oneDNN and agree."""

PACKED_LSTM_STATE_UNCHECKED_DEFECTS = (
    "h0_wrong_batch", "h0_wrong_hidden", "h0_wrong_rank", "h0_one_layer", "h0_one_feature",
    "c0_wrong_hidden", "c0_one_layer", "c0_one_feature", "c0_missing",
)
"""The wrong (h_0, c_0) that reach aten.lstm.data unchecked and that its decomposition
does not refuse as torch does (tests/test_execution_paths.py checks each)."""

PACKED_LSTM_STATE_UNCHECKED = KnownFailure(
    when=lambda case: case.family == "LSTM" and case.packed and case.defect in PACKED_LSTM_STATE_UNCHECKED_DEFECTS,
    reason=(
        "nn.LSTM.forward does not call check_forward_args for a PackedSequence (docs/found-bugs.md), "
        "leaving the state checks to aten.lstm.data's C++ kernel; its decomposition "
        "(torch._decomp.decompositions.lstm_data_impl) checks nothing: a wrong h_0/c_0 shape returns "
        "normally (h_0 of the wrong batch, sorted input) or raises AssertionError/IndexError where "
        "torch raises RuntimeError (a 4-D h_0: 'len(params)=4 is not divisible by group_size=5')"
    ),
)

IMPLEMENTATION = Implementation(
    name="torch-decomp",
    factory=DecomposedRNN,
    family="RNN",
    known_failures=(INTER_LAYER_DROPOUT_IGNORED, EMPTY_SEQUENCE_ERROR_TYPE),
    # Python loops per step: several times slower per example than the built-ins;
    # keeps `python -m harness fuzz` (everything registered) within two minutes.
    default_examples=60,
    description="torch.nn.RNN with aten.rnn_tanh/rnn_relu run by torch._decomp's Python decomposition",
)

LSTM = Implementation(
    name="torch-decomp-lstm",
    factory=DecomposedLSTM,
    family="LSTM",
    known_failures=(
        INTER_LAYER_DROPOUT_IGNORED, EMPTY_SEQUENCE_ERROR_TYPE, ONEDNN_EMPTY_BATCH, PACKED_LSTM_STATE_UNCHECKED, ONEDNN_BFLOAT16_UNSUPPORTED,
    ),
    default_examples=50,  # about 0.13 s an example here (docs/found-bugs.md, Part 2)
    description="torch.nn.LSTM with aten.lstm run by torch._decomp's Python decomposition",
)

GRU = Implementation(
    name="torch-decomp-gru",
    factory=DecomposedGRU,
    family="GRU",
    known_failures=(INTER_LAYER_DROPOUT_IGNORED, EMPTY_SEQUENCE_ERROR_TYPE),
    default_examples=50,  # about 0.12 s an example here
    description="torch.nn.GRU with aten.gru run by torch._decomp's Python decomposition",
)
