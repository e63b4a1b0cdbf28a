"""What torch's own side did on one case, as a short text two runs can be compared by:
the exception type raised on an invalid input (or that it returned), or a fingerprint of
the reference's and the probe's results and gradients on a valid one. A failure is
reported only once two fresh worker processes agree on it (`harness.findings`)."""

from __future__ import annotations

import hashlib

import torch

from harness.cases import Case, materialize
from harness.oracle.invalid import reference_outcome
from harness.oracle.running import run_module
from harness.oracle.session import construct, load_weights, reference_factory


def reference_digest(case: Case) -> str:
    """torch's outcome on ``case``: ``raises T`` / ``returns normally`` for an invalid
    input; for a valid one, per dtype the reference runs in (float64, and the case's own
    dtype for the probe), a hash of every result and gradient, or the exception raised."""
    if case.defect is not None:
        outcome = reference_outcome(case)
        return "returns normally" if outcome is None else f"raises {outcome}"
    materialized = materialize(case)
    runs = {(torch.float64, "cpu"): None, (case.torch_dtype, case.device): None}
    parts = []
    for dtype, device in runs:
        module = construct(reference_factory(case.family), case, dtype, device)
        load_weights(module, materialized.weights, "reference")
        torch.manual_seed(case.seed)  # training-mode dropout draws from torch's generator
        try:
            result = run_module(module, case, materialized, dtype, device, "reference")
        except Exception as error:  # noqa: BLE001 - what torch did is the answer
            parts.append(f"{str(dtype).removeprefix('torch.')} raises {type(error).__name__}")
            continue
        digest = hashlib.sha256()
        for kind, tensors in (("value", result.values), ("gradient", result.gradients)):
            for name in sorted(tensors):
                digest.update(f"{kind}:{name}:{tuple(tensors[name].shape)}".encode())
                digest.update(tensors[name].contiguous().numpy().tobytes())
        parts.append(f"{str(dtype).removeprefix('torch.')} results {digest.hexdigest()[:16]}")
    return "; ".join(parts)
