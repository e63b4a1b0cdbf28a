"""Measure how accurate real libraries' tanh and sigmoid are, in ulps, in float32 and half precision.

The error model grants activation functions a declared accuracy
(`ErrorModel.activation_ulps`, docs/error-model.md); this script is the evidence for
the number. Each library evaluates the function on the same float32 points (evenly
spaced in [-10, 10], 2M by default; a half-precision library on those points rounded
to its dtype); the truth is the float64 function of the same input, and the error is
|library - truth| in units of the output dtype's spacing at the truth. Half precision
is measured both as torch computes it (in float32, rounded once) and as libraries
that evaluate the formula in the half type itself do (onnx's reference evaluator:
``1 / (1 + exp(-x))`` in float16, three roundings). Libraries that are not installed
are listed as such, not skipped silently.
With ``--small`` the points are instead logarithmically spaced magnitudes from 1e-8 to
10, both signs: where a tanh computed as 2 sigmoid(2x) - 1 (onnxruntime's RNN
operator) is accurate in absolute terms only.

    python tools/activation_accuracy.py                 # torch, numpy, scipy, onnxruntime, onnx
    python tools/activation_accuracy.py --compile       # also torch.compile (inductor, ~1 min)
    python tools/activation_accuracy.py --points 200000
    python tools/activation_accuracy.py --small         # magnitudes 1e-8 .. 10

onnxruntime and onnx are not dependencies of rnn-harness: ``pip install onnxruntime onnx`` first.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import numpy as np
import torch

from harness.tolerance import ACTIVATION_ROUNDING_FLOOR, ACTIVATION_ULP_FLOOR, UNIT_ROUNDOFF

Measured = Callable[[np.ndarray], np.ndarray]


def truth(function: str, x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    if function == "tanh":
        return np.tanh(x64)
    return 1.0 / (1.0 + np.exp(-x64))


def spacing(values: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """The distance to the next larger ``dtype`` number at |values| (one ulp there)."""
    magnitude = torch.from_numpy(np.abs(values)).to(dtype)
    return (torch.nextafter(magnitude, torch.tensor(np.inf, dtype=dtype)) - magnitude).double().numpy()


def ulp_errors(got: np.ndarray, exact: np.ndarray, dtype: torch.dtype = torch.float32) -> np.ndarray:
    """|got - exact| in ulps of ``dtype`` at the exact value (its spacing there)."""
    return np.abs(got.astype(np.float64) - exact) / spacing(exact, dtype)


def budget_units(got: np.ndarray, exact: np.ndarray, dtype: torch.dtype, floor: float) -> np.ndarray:
    """|got - exact| / (u * max(|exact|, floor)), u the unit roundoff of ``dtype``:
    the measure `ErrorModel.activation_ulps` is stated in (one spacing-ulp is 1 to 2 of these)."""
    scale = UNIT_ROUNDOFF[dtype] * np.maximum(np.abs(exact), floor)
    error = np.abs(got.astype(np.float64) - exact)
    with np.errstate(divide="ignore"):  # an exact result of 0 with an error: infinitely many units
        return np.divide(error, scale, out=np.zeros_like(error), where=error > 0)


def torch_contiguous(function: str) -> Measured:
    op = torch.tanh if function == "tanh" else torch.sigmoid
    return lambda x: op(torch.from_numpy(x)).numpy()


def torch_strided(function: str) -> Measured:
    # A non-contiguous view takes ATen's scalar loop instead of the SIMD one.
    op = torch.tanh if function == "tanh" else torch.sigmoid

    def run(x: np.ndarray) -> np.ndarray:
        wide = torch.zeros(2 * len(x), dtype=torch.float32)
        wide[::2] = torch.from_numpy(x)
        return op(wide[::2]).numpy()

    return run


def torch_half(dtype: torch.dtype) -> Callable[[str], Measured]:
    # torch evaluates half-precision elementwise functions in float32 and rounds once.
    def make(function: str) -> Measured:
        op = torch.tanh if function == "tanh" else torch.sigmoid
        return lambda x: op(torch.from_numpy(x).to(dtype)).float().numpy()

    return make


def half_formulas(dtype: torch.dtype) -> Callable[[str], Measured]:
    # Formulas evaluated op by op in the half type, each op rounded to it: sigmoid as
    # 1 / (1 + exp(-x)), tanh as 2 sigmoid(2x) - 1 (onnxruntime's RNN operator's
    # identity, here in the half type).
    def sigmoid(t: torch.Tensor) -> torch.Tensor:
        return 1 / (1 + torch.exp(-t))

    def make(function: str) -> Measured:
        formula = (lambda t: 2 * sigmoid(2 * t) - 1) if function == "tanh" else sigmoid
        return lambda x: formula(torch.from_numpy(x).to(dtype)).float().numpy()

    return make


def onnx_reference_recurrent(function: str) -> Measured | str:
    """The activations of onnx's reference evaluator's LSTM operator (its GRU's are the
    same code), on float16 numpy arrays: sigmoid ``1 / (1 + np.exp(-x))``, tanh ``np.tanh``."""
    try:
        from onnx.reference.ops.op_lstm import CommonLSTM
    except ImportError:
        return "onnx is not installed (pip install onnx)"
    # f and g use nothing of the operator instance.
    formula = CommonLSTM.g if function == "tanh" else CommonLSTM.f

    def run(x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # exp(-x) is inf below x = -11.1; 1 / inf is 0, as the operator gives
            return formula(None, x.astype(np.float16)).astype(np.float32)

    return run


def _activation_graph(function: str, element_type: int):
    """An ONNX graph of one ``Tanh`` or ``Sigmoid`` node from x to y, of ``element_type``."""
    from onnx import helper

    node = helper.make_node("Tanh" if function == "tanh" else "Sigmoid", ["x"], ["y"])
    return helper.make_graph(
        [node], function,
        [helper.make_tensor_value_info("x", element_type, [None])],
        [helper.make_tensor_value_info("y", element_type, [None])],
    )


def onnx_reference_operator(function: str) -> Measured | str:
    """onnx's reference evaluator running one float16 ``Tanh`` or ``Sigmoid`` node."""
    try:
        from onnx import TensorProto, helper
        from onnx.reference import ReferenceEvaluator
    except ImportError:
        return "onnx is not installed (pip install onnx)"
    graph = _activation_graph(function, TensorProto.FLOAT16)
    evaluator = ReferenceEvaluator(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    return lambda x: evaluator.run(None, {"x": x.astype(np.float16)})[0].astype(np.float32)


def torch_compiled(function: str) -> Measured:
    op = torch.tanh if function == "tanh" else torch.sigmoid
    compiled = torch.compile(lambda t: op(t), dynamic=False)
    return lambda x: compiled(torch.from_numpy(x)).numpy()


def numpy_float32(function: str) -> Measured:
    if function == "tanh":
        return np.tanh
    # numpy has no sigmoid; this is how people write it
    return lambda x: np.float32(1) / (np.float32(1) + np.exp(-x))


def scipy_float32(function: str) -> Measured | str:
    try:
        from scipy import special
    except ImportError:
        return "scipy is not installed"
    if function == "tanh":
        return "scipy has no tanh of its own"
    return special.expit


def onnxruntime_cpu(function: str) -> Measured | str:
    try:
        import onnx
        import onnxruntime
        from onnx import TensorProto, helper
    except ImportError:
        return "onnxruntime/onnx are not installed (pip install onnxruntime onnx)"
    graph = _activation_graph(function, TensorProto.FLOAT)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 10)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(["y"], {"x": x})[0]


def onnxruntime_rnn_operator(function: str) -> Measured | str:
    try:
        from impls.onnx_runtime import onnxruntime_problem, rnn_operator_activation
    except ImportError as error:
        return f"impls.onnx_runtime cannot be imported ({error})"
    if onnxruntime_problem():
        return "onnxruntime/onnx are not installed (pip install onnxruntime onnx)"
    return lambda x: rnn_operator_activation(x, "Tanh" if function == "tanh" else "Sigmoid")


def library_versions() -> str:
    parts = [f"torch {torch.__version__}", f"numpy {np.__version__}"]
    for name in ("scipy", "onnxruntime"):
        try:
            parts.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            pass
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2_000_000, help="float32 points in [-10, 10] (default: %(default)s)")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (inductor's CPU code)")
    parser.add_argument("--small", action="store_true", help="logarithmically spaced magnitudes from 1e-8 to 10, both signs")
    arguments = parser.parse_args(argv)
    torch.set_num_threads(1)
    if arguments.small:
        magnitudes = np.logspace(-8, 1, arguments.points // 2)
        x = np.concatenate([-magnitudes[::-1], magnitudes]).astype(np.float32)
    else:
        x = np.linspace(-10, 10, arguments.points, dtype=np.float32)
    libraries: dict[str, tuple[Callable[[str], Measured | str], torch.dtype]] = {
        "torch (contiguous, SIMD)": (torch_contiguous, torch.float32),
        "torch (strided, scalar loop)": (torch_strided, torch.float32),
        "numpy float32": (numpy_float32, torch.float32),
        "scipy.special.expit float32": (scipy_float32, torch.float32),
        "onnxruntime CPU (MLAS)": (onnxruntime_cpu, torch.float32),
        "onnxruntime RNN operator": (onnxruntime_rnn_operator, torch.float32),
        "torch float16": (torch_half(torch.float16), torch.float16),
        "torch bfloat16": (torch_half(torch.bfloat16), torch.bfloat16),
        "onnx reference evaluator LSTM/GRU operators, float16": (onnx_reference_recurrent, torch.float16),
        "onnx reference evaluator Sigmoid/Tanh operators, float16": (onnx_reference_operator, torch.float16),
        "1/(1+exp(-x)), 2 sigmoid(2x) - 1 in float16": (half_formulas(torch.float16), torch.float16),
        "1/(1+exp(-x)), 2 sigmoid(2x) - 1 in bfloat16": (half_formulas(torch.bfloat16), torch.bfloat16),
    }
    if arguments.compile:
        libraries["torch.compile (inductor CPU)"] = (torch_compiled, torch.float32)
    spread = "magnitudes logarithmically spaced in [1e-8, 10], both signs" if arguments.small else "evenly spaced in [-10, 10]"
    print(f"{len(x)} float32 points {spread}; {library_versions()}")
    print("ulp: the output dtype's spacing at the exact value. budget units: |error| / (u * max(|y|, floor)),")
    print(f"u the dtype's unit roundoff; floor of an error of one sign {ACTIVATION_ULP_FLOOR}, of rounding noise")
    print(f"{ACTIVATION_ROUNDING_FLOOR} (ErrorModel.activation_ulps is stated in these).")
    print("\n| library | function | max ulp | 99.9th pct ulp | mean ulp | worst x | max budget units (one sign) | max budget units (rounding) |")
    print("|---|---|---|---|---|---|---|---|")
    for function in ("tanh", "sigmoid"):
        for label, (make, dtype) in libraries.items():
            measured = make(function)
            if isinstance(measured, str):
                print(f"| {label} | {function} | - | - | - | {measured} | - | - |")
                continue
            inputs = x if dtype == torch.float32 else torch.from_numpy(x).to(dtype).float().numpy()
            exact = truth(function, inputs)
            got = np.asarray(measured(inputs), dtype=np.float32)
            errors = ulp_errors(got, exact, dtype)
            systematic = budget_units(got, exact, dtype, ACTIVATION_ULP_FLOOR[function])
            rounding = budget_units(got, exact, dtype, ACTIVATION_ROUNDING_FLOOR[function])
            worst = int(errors.argmax())
            print(
                f"| {label} | {function} | {errors.max():.2f} | {np.quantile(errors, 0.999):.2f} "
                f"| {errors.mean():.3f} | {float(inputs[worst]):.6g} | {systematic.max():.2f} | {rounding.max():.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
