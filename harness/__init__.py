"""rnn-harness: differential fuzzing and benchmarks for re-implementations of torch's recurrent modules.

The modules, in the order a case goes through them (tests/test_structure.py holds
each stage to importing only itself and the stages before it):

- What is under test: `families` (torch's six classes), `implementation` (the plugin
  record), `registry` (entry-point discovery), `dropin/` (drop-in shells), `step_formulas`
  (one step of each family, written once), `references/` (what the engine runs beside a candidate:
  torch's layers on ATen, the loop recurrence), `packing`, `usage` (exit codes,
  `UsageError`).
- What is drawn: `cases` (`Case` and its tensors), `dimensions` (the discrete
  dimensions, one record each, and the invalid-input rules), `pairwise` (IPOG),
  `case_space` (an implementation's case space and the cases covering its pairs),
  `strategies` (Hypothesis), `routing` (covering cases routed around the ones a
  declaration sets aside), `covering_stage` (the covering rows a campaign runs
  first), `coverage_report` (what ran: the report's ``coverage``).
- How it is judged: `torch_undefined` (the invalid inputs on which torch itself is
  undefined), `declarations` (what sets a whole case aside), `tolerance` (the
  error model), `probes` (activation probes and adjoint), `oracle/` (run torch and
  the candidate, compare, explain).
- How campaigns run, and what users see: `campaign` (one implementation, in two
  stages: covering, then random), `profiles` (profiles, defaults, the replay
  options), `findings` (a failure confirmed from scratch before it is reported),
  `protocol` (the requests a runner carries out), `isolation` and `worker_process`
  (the worker process) with `forkserver` and `locate`, `database` (the example
  database), `repro`, `campaign_result` (a campaign's verdict, counts and failure),
  `local_run` (this machine) and `cluster/` (Dask), `report`,
  `fuzz_command` and `cli` (``python -m harness``), `pytest_plugin` and `suite`
  (pytest), `bench/` (timing against torch).
"""

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
