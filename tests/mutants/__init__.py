"""The mutation catalogue: re-implementations of torch.nn.RNN, LSTM, GRU and the
cells, each with one mistake people really make, and correct variants that differ
from torch in rounding only.

The fuzzer is trustworthy if it flags every entry of `MUTANTS` and passes every
entry of `CORRECT_VARIANTS` (``tests/test_mutation_catalogue.py`` checks both;
``tools/mutation_stats.py`` measures how fast). Each class's docstring says what the
mistake is, how someone comes to make it, and which inputs expose it. The classes
are top-level in importable modules so a fuzzer's repro script can import them.
"""

from __future__ import annotations

from harness import Implementation
from . import autograd, correct, directions, hidden_state, layers, memory, numerics, weights
from .family_catalogue import FAMILY_CORRECT_VARIANTS, FAMILY_MUTANTS


def _entry(name: str, factory: type) -> Implementation:
    summary = " ".join(factory.__doc__.split("\n\n")[0].split())
    return Implementation(name=name, factory=factory, family="RNN", description=summary)


MUTANTS: list[Implementation] = [
    # weights and biases
    _entry("mutant-untransposed-w-ih", weights.UntransposedInputWeight),
    _entry("mutant-untransposed-w-hh", weights.UntransposedHiddenWeight),
    _entry("mutant-b-hh-dropped", weights.HiddenBiasDropped),
    _entry("mutant-b-hh-twice", weights.HiddenBiasAddedTwice),
    _entry("mutant-reverse-uses-forward-weights", weights.ReverseDirectionUsesForwardWeights),
    _entry("mutant-layer0-w-hh-everywhere", weights.FirstLayerHiddenWeightEverywhere),
    # h_0 and h_n
    _entry("mutant-h-n-batch-first", hidden_state.FinalStateBatchFirst),
    _entry("mutant-h-n-direction-major", hidden_state.FinalStateDirectionMajor),
    _entry("mutant-h0-ignored", hidden_state.InitialStateIgnored),
    _entry("mutant-h0-not-sorted", hidden_state.InitialStateNotSorted),
    _entry("mutant-h-n-not-unsorted", hidden_state.FinalStateNotUnsorted),
    _entry("mutant-unbatched-h-n-3d", hidden_state.UnbatchedFinalStateKeepsBatch),
    # directions and padding
    _entry("mutant-reverse-outputs-in-visit-order", directions.ReverseOutputsInVisitOrder),
    _entry("mutant-directions-joined-reverse-first", directions.DirectionsJoinedReverseFirst),
    _entry("mutant-packed-h-n-after-padding", directions.FinalStateAfterPadding),
    _entry("mutant-packed-reverse-starts-on-padding", directions.ReverseStartsOnPadding),
    # stacking layers and dropout
    _entry("mutant-every-layer-reads-input", layers.EveryLayerReadsInput),
    _entry("mutant-outputs-alias-state-buffer", layers.StepOutputsAliasOneBuffer),
    _entry("mutant-dropout-in-eval-mode", layers.DropoutInEvalMode),
    _entry("mutant-dropout-after-last-layer", layers.DropoutAfterLastLayer),
    # nonlinearity and dtypes
    _entry("mutant-relu-ignored", numerics.NonlinearityIgnored),
    _entry("mutant-float32-inside", numerics.Float32Inside),
    _entry("mutant-half-returns-float32", numerics.HalfPrecisionUpcastKept),
    # small but real numerical defects (where the error model's line lies: docs/error-model.md)
    _entry("mutant-tanh-off-100-ulps", numerics.TanhOff100Ulps),
    _entry("mutant-bias-off-1e-4", numerics.SmallBiasDropped),
    # gradients
    _entry("mutant-state-detached-between-steps", autograd.StateDetachedBetweenSteps),
    _entry("mutant-h-n-detached", autograd.FinalStateDetached),
    # memory: aliasing, no_grad fast paths, caches, strides
    _entry("mutant-h0-overwritten-under-no-grad", memory.InitialStateOverwritten),
    _entry("mutant-no-grad-packed-drops-rows", memory.NoGradPathDropsFinishedRows),
    _entry("mutant-fast-path-when-input-needs-no-grad", memory.FastPathWhenInputNeedsNoGrad),
    _entry("mutant-stale-transpose-cache", memory.StaleTransposeCache),
    _entry("mutant-batch-first-view-not-transpose", memory.BatchFirstViewNotTranspose),
    _entry("mutant-assumes-contiguous-input", memory.AssumesContiguousInput),
    # LSTM, GRU and the cells (family_catalogue.py)
    *FAMILY_MUTANTS,
]

CORRECT_VARIANTS: list[Implementation] = [
    _entry("correct-float64-inside", correct.Float64Inside),
    _entry("correct-einsum-other-order", correct.EinsumOtherOrder),
    _entry("correct-hoisted-pretransposed", correct.HoistedPretransposed),
    # arithmetic that is not torch's (issue 12; docs/error-model.md shows their margins)
    _entry("correct-approximate-activations", correct.ApproximateActivations),
    _entry("correct-blocked-fused-gemm", correct.BlockedFusedGemm),
    _entry("correct-float32-accumulated-half", correct.Float32AccumulatedHalf),
    # onnxruntime's RNN operator: its sums and its tanh, 2 sigmoid(2x) - 1 (issue 21)
    _entry("correct-onnx-rnn-operator-arithmetic", correct.OnnxRnnOperatorArithmetic),
    *FAMILY_CORRECT_VARIANTS,
]
