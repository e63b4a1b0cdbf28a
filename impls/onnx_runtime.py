"""`onnxruntime`: torch's module exported with ``torch.onnx.export`` and run by
ONNX Runtime's CPU execution provider.

The exporter used is torch's TorchScript-based one (``dynamo=False``): it maps
nn.RNN, nn.LSTM and nn.GRU to ONNX's ``RNN``, ``LSTM`` and ``GRU`` operators, with
dynamic sequence length and batch, so what is checked is the exporter's
translation and ONNX Runtime's own recurrent kernels, implementations independent
of torch. The cells have no ONNX operator: the exporter writes their formula as
``Gemm``, ``Sigmoid``, ``Tanh`` (``Relu``) nodes, run by ONNX Runtime's kernels.
Graph inputs are ``input``, ``h0`` (and ``c0``); outputs ``output``, ``h_n`` (and
``c_n``) for the layers, ``h1`` (and ``c1``) for the cells. (The default exporter since
torch 2.9, ``dynamo=True``, has no translation for ``aten.rnn_tanh``: it lowers
torch's Python decomposition, the time loop unrolled for one sequence length, which
`exported` already checks.)

The module owns torch's parameters (it *is* the torch class, with another
forward). The exporter folds the weights into the ONNX graph (re-laid out for ONNX's
gate order), so a weight change is a re-export: each call compares the parameters'
version counters with those the session was built from. Sessions are also keyed by
the call's structure (training, input rank, ``h_0`` given, feature widths).

Declared out of scope: PackedSequence (the exporter takes tensors), gradients
(an inference session returns arrays), the dtypes ONNX Runtime's CPU RNN kernel
does not implement, and LSTM projections (the exporter refuses them).
"""

from __future__ import annotations

import functools
import io
import warnings

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from harness import Implementation, KnownFailure, Unavailable

INSTALL = 'pip install "rnn-harness[onnx]"  (onnx, onnxruntime, onnxscript)'


@functools.cache
def onnxruntime_problem() -> str | None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as error:
        return f"ONNX Runtime is not installed ({error}); install it with: {INSTALL}"
    return None


def _states(hx) -> tuple:
    """The initial state as a tuple: ``()``, ``(h_0,)`` or LSTM's ``(h_0, c_0)``."""
    if hx is None:
        return ()
    return tuple(hx) if isinstance(hx, tuple) else (hx,)


def _is_cell(module: nn.Module) -> bool:
    return isinstance(module, nn.RNNCellBase)


def _has_cell_state(module: nn.Module) -> bool:
    return isinstance(module, (nn.LSTM, nn.LSTMCell))


def _result_names(module: nn.Module) -> list[str]:
    if _is_cell(module):
        return ["h1", "c1"] if _has_cell_state(module) else ["h1"]
    return ["output", "h_n", "c_n"] if _has_cell_state(module) else ["output", "h_n"]


def _state_input_names(module: nn.Module) -> list[str]:
    return ["h0", "c0"] if _has_cell_state(module) else ["h0"]


def _dynamic_axes(module: nn.Module, input, state_names: list[str]) -> dict:
    """Sequence length and batch are dynamic in the ONNX graph; one session serves them all."""
    output_names = _result_names(module)
    if _is_cell(module):
        if input.dim() != 2:
            return {}  # unbatched: nothing varies but the values
        return {name: {0: "batch"} for name in ["input"] + state_names + output_names}
    if input.dim() != 3:
        return {"input": {0: "steps"}, "output": {0: "steps"}}
    sequence_axes = {0: "batch", 1: "steps"} if getattr(module, "batch_first", False) else {0: "steps", 1: "batch"}
    axes = {"input": sequence_axes, "output": dict(sequence_axes)}
    for name in output_names[1:] + state_names:
        axes[name] = {1: "batch"}
    return axes


def export_session(module: nn.Module, module_class: type, input, hx):
    """An onnxruntime.InferenceSession for torch's forward of ``module`` on inputs like these."""
    import onnxruntime

    state_names = [] if hx is None else _state_input_names(module)
    names = ["input"] + state_names
    output_names = _result_names(module)
    dynamic_axes = _dynamic_axes(module, input, state_names)
    buffer = io.BytesIO()
    wrapper = _TorchForward(module, module_class)
    args = (input,) if hx is None else (input, hx)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated and says so, and warns about
        # variable-length RNN export and tracing; all expected here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, args, buffer, dynamo=False, input_names=names, output_names=output_names,
            dynamic_axes=dynamic_axes,
            training=torch.onnx.TrainingMode.TRAINING if module.training else torch.onnx.TrainingMode.EVAL,
            do_constant_folding=not module.training,
        )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: not the "initializer in graph inputs" notices
    return onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])


def rnn_operator_activation(values, activation: str = "Tanh"):
    """What onnxruntime's CPU kernel for ONNX's ``RNN`` operator computes for
    ``activation`` at each float32 value of the 1-D numpy array ``values``: one unit,
    W = 1, R = 0 and no bias, so each step's result is the activation of that step's
    input. The kernel does not use the Tanh operator's MLAS routine: its activations
    are scalar functions of its own (rnn_activation_functors.h; tanh is
    2 Sigmoid(2x) - 1). tools/activation_accuracy.py and tests/test_onnx_rnn_operator.py
    measure it."""
    import numpy as np
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    weights = [
        numpy_helper.from_array(np.ones((1, 1, 1), np.float32), "W"),
        numpy_helper.from_array(np.zeros((1, 1, 1), np.float32), "R"),
    ]
    node = helper.make_node("RNN", ["x", "W", "R"], ["y"], hidden_size=1, activations=[activation])
    graph = helper.make_graph(
        [node], "rnn_activation", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = min(model.ir_version, 10)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": np.asarray(values, dtype=np.float32).reshape(-1, 1, 1)})[0].reshape(-1)


class _TorchForward(nn.Module):
    def __init__(self, module: nn.Module, module_class: type[nn.Module]):
        super().__init__()
        self.module = module
        self.module_class = module_class
        # The exporter switches the wrapper's mode for the export and back after it,
        # recursively: the wrapper must be in the module's mode, or the module's own
        # mode is changed behind the caller's back.
        self.train(module.training)

    def forward(self, input, hx=None):
        return self.module_class.forward(self.module, input, hx)


class OnnxRuntimeForward:
    """Mixin over a torch recurrent module: forward through ONNX Runtime."""

    _torch_class: type[nn.Module]

    def __init__(self, *args, **kwargs):
        problem = onnxruntime_problem()
        if problem is not None:
            raise Unavailable(problem)
        super().__init__(*args, **kwargs)
        self._sessions: dict = {}

    def _weights_version(self) -> tuple:
        return tuple((id(p), p.data_ptr(), p._version) for p in self.parameters())

    def forward(self, input, hx=None):
        if isinstance(input, PackedSequence):
            raise TypeError(f"{type(self).__name__} cannot take a PackedSequence: torch.onnx.export takes tensors. Pad the batch instead.")
        structure = _structure(self, input, hx)
        weights = self._weights_version()
        cached = self._sessions.get(structure)
        if cached is None or cached[0] != weights:
            detached = None if hx is None else (tuple(t.detach() for t in hx) if isinstance(hx, tuple) else hx.detach())
            with torch.no_grad():
                session = export_session(self, self._torch_class, input.detach(), detached)
            self._sessions[structure] = cached = (weights, session)
        session = cached[1]
        feeds = {"input": input.detach().cpu().contiguous().numpy()}
        for name, state in zip(_state_input_names(self), _states(hx)):
            feeds[name] = state.detach().cpu().contiguous().numpy()
        device = next(self.parameters()).device
        results = [torch.from_numpy(array).to(device) for array in session.run(None, feeds)]
        if _is_cell(self):
            return tuple(results) if len(results) > 1 else results[0]
        output, *final = results
        return output, (tuple(final) if len(final) > 1 else final[0])


def _structure(module: nn.Module, input, hx) -> tuple:
    """What a session is specialized on. Sizes that are dynamic in the ONNX graph
    (steps, batch) are left out, except whether they are empty and whether h_0's
    batch agrees with the input's: on such invalid input a fresh export lets torch's
    forward raise its own error, rather than ONNX Runtime raise another."""
    if _is_cell(module):
        batched = input.dim() == 2
        batch_dim, state_batch_dim, steps = 0, 0, None
    else:
        batched = input.dim() == 3
        batch_dim = 0 if getattr(module, "batch_first", False) else 1
        state_batch_dim = 1
        steps = input.shape[1 - batch_dim if batched else 0] if input.dim() >= 2 else None
    batch = input.shape[batch_dim] if batched else None
    return (
        module.training, input.dtype, input.dim(), tuple(input.shape[input.dim() - 1:]),
        steps == 0, batch == 0,
        None if hx is None else tuple(
            (
                t.dtype, t.dim(), None if _is_cell(module) else t.shape[0], t.shape[-1],
                t.dim() == input.dim() and t.dim() > state_batch_dim and t.shape[state_batch_dim] == batch,
            )
            for t in _states(hx)
        ),
    )


def onnxruntime_factory(module_class: type[nn.Module]) -> type[nn.Module]:
    """A drop-in subclass of ``module_class`` run by ONNX Runtime. Assign it to a
    module-level name equal to its ``__name__``."""
    return type(
        f"OnnxRuntime{module_class.__name__}", (OnnxRuntimeForward, module_class),
        {"__module__": __name__, "_torch_class": module_class},
    )


OnnxRuntimeRNN = onnxruntime_factory(nn.RNN)

TRAINING_DROPOUT_REFUSED = KnownFailure(
    when=lambda case: case.training and case.dropout > 0,
    reason=(
        "torch.onnx's TorchScript exporter (symbolic_opset9._generic_rnn) refuses RNN dropout in "
        "training mode with SymbolicValueError, even where torch applies none (one layer)"
    ),
)

EMPTY_BIDIRECTIONAL_BATCH = KnownFailure(
    when=lambda case: case.bidirectional and case.batch == 0 and case.layout != "unbatched",
    reason=(
        "torch.onnx's TorchScript exporter (symbolic_opset9._generic_rnn) joins the two directions "
        "with Reshape(Y, [0, 0, -1]); on an empty batch the -1 cannot be inferred and "
        "onnxruntime's Reshape fails"
    ),
)

EMPTY_BATCH_ABORTS = KnownFailure(
    when=lambda case: case.batch == 0 and case.layout != "unbatched",
    reason=(
        "onnxruntime's CPU LSTM and GRU kernels (DeepCpuLstmOp, DeepCpuGruOp in "
        "onnxruntime/core/providers/cpu/rnn) abort the process (std::terminate: 'terminate called "
        "without an active exception') on a batch of 0, where torch returns empty tensors; its RNN "
        "kernel returns them (docs/found-bugs.md)"
    ),
)

IMPLEMENTATION = Implementation(
    name="onnxruntime",
    factory=OnnxRuntimeRNN,
    family="RNN",
    packed=False,
    backward=False,
    # ONNX Runtime's CPU RNN kernel: float and float16; no double, and ONNX's RNN takes no bfloat16.
    dtypes={torch.float32, torch.float16},
    devices={"cpu"},
    default_examples=40,  # every case exports a model and opens a session
    known_failures=(
        TRAINING_DROPOUT_REFUSED,
        EMPTY_BIDIRECTIONAL_BATCH,
    ),
    description="torch.onnx.export(torch.nn.RNN) (TorchScript exporter, ONNX RNN op) run by onnxruntime's CPU session",
)

OnnxRuntimeLSTM = onnxruntime_factory(nn.LSTM)
OnnxRuntimeGRU = onnxruntime_factory(nn.GRU)

LSTM = Implementation(
    name="onnxruntime-lstm",
    factory=OnnxRuntimeLSTM,
    family="LSTM",
    packed=False,
    # torch.onnx's TorchScript exporter (torch.onnx._internal.torchscript_exporter.
    # symbolic_opset9._generic_rnn) raises SymbolicValueError "Unsupported: ONNX export of
    # operator LSTM, LSTMs with projections": ONNX's LSTM operator has no projection.
    projections=False,
    backward=False,
    dtypes={torch.float32, torch.float16},
    devices={"cpu"},
    default_examples=30,  # an export and a session per case: 0.2-0.4 s
    known_failures=(TRAINING_DROPOUT_REFUSED, EMPTY_BIDIRECTIONAL_BATCH, EMPTY_BATCH_ABORTS),
    description="torch.onnx.export(torch.nn.LSTM) (TorchScript exporter, ONNX LSTM op) run by onnxruntime's CPU session",
)
GRU = Implementation(
    name="onnxruntime-gru",
    factory=OnnxRuntimeGRU,
    family="GRU",
    packed=False,
    backward=False,
    dtypes={torch.float32, torch.float16},
    devices={"cpu"},
    default_examples=25,  # 0.4 s an example
    known_failures=(TRAINING_DROPOUT_REFUSED, EMPTY_BIDIRECTIONAL_BATCH, EMPTY_BATCH_ABORTS),
    description="torch.onnx.export(torch.nn.GRU) (TorchScript exporter, ONNX GRU op) run by onnxruntime's CPU session",
)

OnnxRuntimeRNNCell = onnxruntime_factory(nn.RNNCell)
OnnxRuntimeLSTMCell = onnxruntime_factory(nn.LSTMCell)
OnnxRuntimeGRUCell = onnxruntime_factory(nn.GRUCell)

_CELL_LIMITS = {"backward": False, "dtypes": {torch.float32, torch.float16}, "devices": {"cpu"}}
RNN_CELL = Implementation(
    name="onnxruntime-rnncell", factory=OnnxRuntimeRNNCell, family="RNNCell", **_CELL_LIMITS,
    default_examples=60,  # 0.01-0.08 s an example
    description="torch.onnx.export(torch.nn.RNNCell) (TorchScript exporter: Gemm, Tanh/Relu) run by onnxruntime's CPU session",
)
LSTM_CELL = Implementation(
    name="onnxruntime-lstmcell", factory=OnnxRuntimeLSTMCell, family="LSTMCell", **_CELL_LIMITS,
    default_examples=50,  # about 0.12 s an example
    description="torch.onnx.export(torch.nn.LSTMCell) (TorchScript exporter: Gemm, Sigmoid, Tanh) run by onnxruntime's CPU session",
)
GRU_CELL = Implementation(
    name="onnxruntime-grucell", factory=OnnxRuntimeGRUCell, family="GRUCell", **_CELL_LIMITS,
    default_examples=40,  # 0.1-0.25 s an example
    description="torch.onnx.export(torch.nn.GRUCell) (TorchScript exporter: Gemm, Sigmoid, Tanh) run by onnxruntime's CPU session",
)
