"""The oracle: run torch's reference and a candidate on one case, compare, and explain
any difference.

The reference is torch's own ATen kernel in float64 on the CPU. Next to it runs a
*probe* (torch in the candidate's dtype and device; for float64, a slightly perturbed
float64 reference and a float32 run scaled down) whose distance from the reference
measures how much this case amplifies rounding; harness/tolerance.py turns that into
the bound. Everything a drop-in must match is checked: exceptions, return types,
shapes, dtypes, devices, PackedSequence metadata, values, NaN/Inf, gradients of a
random linear functional with respect to the input, h_0 and every parameter (by
state_dict key), inputs left unmutated, no new aliasing, and weight changes between
calls taking effect.

One job per module, in the order a case goes through them:

- `session`: the modules of one case (reference, probes, candidate), loaded and
  changed together;
- `running`: one module run on the case, its results in one canonical layout;
- `structure`: the contract before values (types, shapes, dtypes, devices, packed
  metadata, aliasing, mutation);
- `widening`: the probes' runs made into the one probe the bounds are taken from;
- `comparison`: values and gradients against the bounds, and the failure explained;
- `margins`: how close a case that held came to its bounds (`Margins`, which `check` returns);
- `invalid`: defective inputs, and the exception type torch raises on them;
- `digest`: what torch's own side did on a case, short enough to compare two runs by;
- `verdict`: `check`, which puts the above together for one case;
- `localize`: the first layer of a stack whose output differs;
- `results`: what they share (`RunResult`, `Discrepancy`).

The names below are the oracle's public surface; everything else is reached through
its module.
"""

from harness.oracle.comparison import compare_gradients, compare_values, divmod_index
from harness.oracle.digest import reference_digest
from harness.oracle.invalid import check_invalid, defective_input, reference_outcome
from harness.oracle.localize import localize_layer
from harness.oracle.margins import Margin, Margins
from harness.oracle.results import Discrepancy, RunResult
from harness.oracle.running import canonical_results, run_module
from harness.oracle.session import reference_factory
from harness.oracle.structure import check_structure, expected_shapes, returned_tensors
from harness.oracle.verdict import check

__all__ = [
    "Discrepancy", "Margin", "Margins", "RunResult", "canonical_results", "check", "check_invalid",
    "check_structure", "compare_gradients", "compare_values", "defective_input", "divmod_index", "expected_shapes",
    "localize_layer", "reference_digest", "reference_factory", "reference_outcome", "returned_tensors", "run_module",
]
