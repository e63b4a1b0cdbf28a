"""The LSTM, GRU and cell entries of the mutation catalogue (see ``__init__``)."""

from __future__ import annotations

import torch

from harness import Implementation
from . import cells, correct_families, gru, lstm

HALF_PRECISION = frozenset({torch.float16, torch.bfloat16})


def _entry(name: str, factory: type, dtypes=None) -> Implementation:
    summary = " ".join(factory.__doc__.split("\n\n")[0].split())
    return Implementation(name=name, factory=factory, family=factory.family.name, description=summary, dtypes=dtypes)


FAMILY_MUTANTS: list[Implementation] = [
    # LSTM: gate layouts, the forget gate, c, the projection, the (h_n, c_n) tuple
    _entry("mutant-lstm-gate-order-onnx", lstm.GateOrderOnnx),
    _entry("mutant-lstm-gate-order-tensorflow", lstm.GateOrderTensorflow),
    _entry("mutant-lstm-forget-bias-plus-one", lstm.ForgetBiasPlusOne),
    _entry("mutant-lstm-single-bias", lstm.SingleBias),
    _entry("mutant-lstm-sigmoid-cell-gate", lstm.SigmoidCellGate),
    _entry("mutant-lstm-no-tanh-on-c", lstm.NoTanhOnCellState),
    _entry("mutant-lstm-c0-ignored", lstm.InitialCellStateIgnored),
    _entry("mutant-lstm-c-runs-over-padding", lstm.CellStateRunsOverPadding),
    _entry("mutant-lstm-h-c-swapped", lstm.StateTupleSwapped),
    _entry("mutant-lstm-h-n-unprojected", lstm.FinalStateUnprojected),
    _entry("mutant-lstm-reverse-uses-forward-projection", lstm.ReverseUsesForwardProjection),
    _entry("mutant-lstm-c-n-not-unsorted", lstm.FinalCellStateNotUnsorted),
    _entry("mutant-lstm-unbatched-c-n-3d", lstm.UnbatchedFinalCellStateKeepsBatch),
    # GRU: the reset gate and b_hn, the update gate, gate layout, h_n
    _entry("mutant-gru-biases-folded", gru.BiasesFolded),
    _entry("mutant-gru-reset-before-hidden-product", gru.ResetBeforeHiddenProduct),
    _entry("mutant-gru-update-gate-inverted", gru.UpdateGateInverted),
    _entry("mutant-gru-gate-order-keras", gru.GateOrderKeras),
    _entry("mutant-gru-reset-gate-missing", gru.ResetGateMissing),
    _entry("mutant-gru-h-n-from-last-output", gru.FinalStateFromLastOutput),
    _entry("mutant-gru-h-n-after-padding", gru.FinalStateAfterPadding),
    _entry("mutant-gru-h0-updated-in-place", gru.InitialStateUpdatedInPlace),
    # cells
    _entry("mutant-rnncell-unbatched-returns-batch", cells.UnbatchedReturnsBatch),
    _entry("mutant-rnncell-hx-updated-in-place", cells.StateUpdatedInPlace),
    _entry("mutant-lstmcell-h-c-swapped", cells.LSTMCellStateSwapped),
    _entry("mutant-lstmcell-c-ignored", cells.LSTMCellIgnoresC),
    _entry("mutant-lstmcell-unbatched-c-keeps-batch", cells.LSTMCellUnbatchedKeepsBatchInC),
    _entry("mutant-grucell-batch-0-stack", cells.GRUCellStacksRows),
    _entry("mutant-grucell-default-hx-input-wide", cells.GRUCellDefaultStateInputWide),
]

FAMILY_CORRECT_VARIANTS: list[Implementation] = [
    _entry("correct-lstm-fused-gate-gemm", correct_families.FusedGateGemmLSTM),
    _entry("correct-lstm-float64-inside", correct_families.Float64InsideLSTM),
    _entry("correct-gru-fused-gate-gemm", correct_families.FusedGateGemmGRU),
    _entry("correct-gru-float64-inside", correct_families.Float64InsideGRU),
    _entry("correct-lstmcell-fused-gate-gemm", correct_families.FusedGateGemmLSTMCell),
    _entry("correct-lstm-half-sigmoid-by-formula", correct_families.HalfSigmoidByFormulaLSTM, HALF_PRECISION),
    _entry("correct-gru-half-activations-by-formula", correct_families.HalfActivationsByFormulaGRU, HALF_PRECISION),
]
