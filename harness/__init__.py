"""rnn-harness: differential fuzzing and benchmarks for re-implementations of torch's recurrent modules."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Public name -> the module that defines it. The names are imported on first use:
# pytest loads `harness.pytest_plugin` in every session wherever rnn-harness is
# installed, and importing this package must not import torch for that.
_PUBLIC = {
    "Case": "harness.cases",
    "DirectionWeights": "harness.dropin",
    "DropInGRU": "harness.dropin",
    "DropInGRUCell": "harness.dropin",
    "DropInLSTM": "harness.dropin",
    "DropInLSTMCell": "harness.dropin",
    "DropInRNN": "harness.dropin",
    "DropInRNNCell": "harness.dropin",
    "Family": "harness.families",
    "Implementation": "harness.implementation",
    "KnownFailure": "harness.implementation",
    "Unavailable": "harness.implementation",
    "discover": "harness.registry",
    "packed_from_padded": "harness.packing",
    "padded_from_packed": "harness.packing",
    "reverse_padded": "harness.packing",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from harness.cases import Case
    from harness.dropin import DirectionWeights, DropInGRU, DropInGRUCell, DropInLSTM, DropInLSTMCell, DropInRNN, DropInRNNCell
    from harness.families import Family
    from harness.implementation import Implementation, KnownFailure, Unavailable
    from harness.packing import packed_from_padded, padded_from_packed, reverse_padded
    from harness.registry import discover


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
