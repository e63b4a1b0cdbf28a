"""The fuzzer earns trust by catching real mistakes.

Every mutant in the catalogue (``tests/mutants``: a re-implementation of nn.RNN,
LSTM, GRU or a cell with one mistake people really make) must be flagged within the default profile, with a
summary that names what differs and, for a sample, a repro script that really
reproduces it. Correct variants, which differ from torch only in rounding, must
pass the same budget. ``tools/mutation_stats.py`` measures the same runs for the tables in
docs/mutation-catalogue.md.

Select one mutant with ``pytest -k <part of its name>``. The whole file takes about
two minutes on a shared two-core machine, with or without ``-n 2``; most of a
mutant's time is Hypothesis shrinking the failure, not finding it.

The LSTM, GRU and cell entries cost about ten times more per example (a Python loop
over gates, probes for every returned tensor), so under the test suite's ``ci``
profile every one of them has its exposure checked, but only `FAMILY_CI_SAMPLE`
is fuzzed; ``pytest tests/test_mutation_catalogue.py --rnn-profile default`` fuzzes
the whole catalogue (about ten more minutes), as tools/mutation_stats.py does.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from harness.campaign import PROFILES, fuzz_implementation
from harness.cases import Case
from harness.oracle import Discrepancy, check
from mutants import CORRECT_VARIANTS, MUTANTS
from mutants.family_catalogue import FAMILY_CORRECT_VARIANTS, FAMILY_MUTANTS

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
SEED = 0
DEFAULT_EXAMPLES = PROFILES["default"][0]

REPRO_CHECKED = {
    # one mutant per kind of finding; running every repro would cost ~2 s each
    "mutant-untransposed-w-hh",  # values of the output
    "mutant-h-n-batch-first",  # shape of h_n
    "mutant-b-hh-dropped",  # a parameter missing from the graph, or its values
    "mutant-h0-overwritten-under-no-grad",  # the caller's h_0 modified in place
    "mutant-no-grad-packed-drops-rows",  # an exception or shape on the no-grad path
    "mutant-lstm-h-c-swapped",  # an LSTM's (h_n, c_n)
    "mutant-fast-path-when-input-needs-no-grad",  # parameters' gradients with an input that needs none
}

PLAIN = Case(input_size=3, hidden_size=4, seq_len=5, batch=3, h0_given=True, backward=True)
PACKED_EQUAL = {"layout": "packed_sorted", "lengths": (5, 5, 5)}
PACKED_UNEQUAL = {"layout": "packed_sorted", "lengths": (5, 3, 2)}
NO_GRAD = {"no_grad": True, "backward": False}
EXPOSURES = {
    # mutant: (a case where it agrees with torch, the one change that exposes it)
    "mutant-untransposed-w-ih": ({"input_size": 1, "hidden_size": 1}, {"input_size": 4, "hidden_size": 4}),
    "mutant-untransposed-w-hh": ({"hidden_size": 1}, {"hidden_size": 4}),
    "mutant-b-hh-dropped": ({"bias": False}, {"bias": True}),
    "mutant-b-hh-twice": ({"bias": False}, {"bias": True}),
    "mutant-reverse-uses-forward-weights": ({}, {"bidirectional": True}),
    "mutant-layer0-w-hh-everywhere": ({}, {"num_layers": 2}),
    "mutant-h-n-batch-first": ({}, {"batch_first": True}),
    "mutant-h-n-direction-major": ({"num_layers": 2}, {"bidirectional": True}),
    "mutant-h0-ignored": ({"h0_given": False}, {"h0_given": True}),
    "mutant-h0-not-sorted": ({"layout": "packed_sorted", "lengths": (5, 3, 2)}, {"layout": "packed_unsorted", "lengths": (2, 5, 3)}),
    "mutant-h-n-not-unsorted": ({"layout": "packed_sorted", "lengths": (5, 3, 2)}, {"layout": "packed_unsorted", "lengths": (2, 5, 3)}),
    "mutant-unbatched-h-n-3d": ({}, {"layout": "unbatched", "batch": 1}),
    "mutant-reverse-outputs-in-visit-order": ({}, {"bidirectional": True}),
    "mutant-directions-joined-reverse-first": ({}, {"bidirectional": True}),
    "mutant-packed-h-n-after-padding": (PACKED_EQUAL, PACKED_UNEQUAL),
    "mutant-packed-reverse-starts-on-padding": ({"bidirectional": True, **PACKED_EQUAL}, PACKED_UNEQUAL),
    "mutant-every-layer-reads-input": ({}, {"num_layers": 2}),
    "mutant-outputs-alias-state-buffer": ({"seq_len": 1, "backward": False}, {"seq_len": 5}),
    "mutant-dropout-in-eval-mode": ({"num_layers": 2}, {"dropout": 0.5}),
    "mutant-dropout-after-last-layer": ({"training": True}, {"dropout": 1.0}),
    "mutant-relu-ignored": ({}, {"nonlinearity": "relu"}),
    "mutant-float32-inside": ({}, {"dtype": "float64"}),
    "mutant-half-returns-float32": ({}, {"dtype": "float16"}),
    "mutant-tanh-off-100-ulps": ({"nonlinearity": "relu"}, {"nonlinearity": "tanh"}),
    "mutant-bias-off-1e-4": ({"bias": False}, {"bias": True}),
    "mutant-state-detached-between-steps": ({"backward": False}, {"backward": True}),
    "mutant-h-n-detached": ({"backward": False}, {"backward": True}),
    "mutant-h0-overwritten-under-no-grad": ({"backward": False}, NO_GRAD),
    "mutant-no-grad-packed-drops-rows": ({**NO_GRAD, **PACKED_EQUAL}, PACKED_UNEQUAL),
    "mutant-fast-path-when-input-needs-no-grad": ({}, {"input_grad": False}),
    "mutant-stale-transpose-cache": (NO_GRAD, {"second_call": "load_state_dict"}),
    "mutant-batch-first-view-not-transpose": ({"batch_first": True, "batch": 1}, {"batch": 3}),
    "mutant-assumes-contiguous-input": ({}, {"noncontiguous": "transposed"}),
}

LSTM_PLAIN = dataclasses.replace(PLAIN, family="LSTM")
GRU_PLAIN = dataclasses.replace(PLAIN, family="GRU")
CELL_PLAIN = {family: Case(family=family, input_size=3, hidden_size=4, batch=3, h0_given=True, backward=True) for family in ("RNNCell", "LSTMCell", "GRUCell")}
# All weights zero: every gate block computes the same thing, so a mistake in which
# block is which (or in how the two halves of a symmetric formula are used) cannot
# show in the values, only in the gradients.
EQUAL_GATES = {"weight_gain": 0.0, "backward": False}
FAMILY_EXPOSURES = {
    # mutant: (the case it starts from, a case where it agrees with torch or None when
    # no valid input does, the one change that exposes it)
    "mutant-lstm-gate-order-onnx": (LSTM_PLAIN, EQUAL_GATES, {"weight_gain": 1.0}),
    "mutant-lstm-gate-order-tensorflow": (LSTM_PLAIN, EQUAL_GATES, {"weight_gain": 1.0}),
    "mutant-lstm-forget-bias-plus-one": (LSTM_PLAIN, {"h0_given": False, "seq_len": 1}, {"h0_given": True}),
    "mutant-lstm-single-bias": (LSTM_PLAIN, {"bias": False}, {"bias": True}),
    "mutant-lstm-sigmoid-cell-gate": (LSTM_PLAIN, None, {}),  # sigmoid(g) > 0 where tanh(g) = 0
    "mutant-lstm-no-tanh-on-c": (LSTM_PLAIN, {"weight_gain": 0.0, "h0_given": False}, {"weight_gain": 1.0}),
    "mutant-lstm-c0-ignored": (LSTM_PLAIN, {"h0_given": False}, {"h0_given": True}),
    "mutant-lstm-c-runs-over-padding": (LSTM_PLAIN, PACKED_EQUAL, PACKED_UNEQUAL),
    "mutant-lstm-h-c-swapped": (LSTM_PLAIN, {**EQUAL_GATES, "h0_given": False}, {"weight_gain": 1.0}),
    "mutant-lstm-h-n-unprojected": (LSTM_PLAIN, {}, {"proj_size": 2}),
    "mutant-lstm-reverse-uses-forward-projection": (LSTM_PLAIN, {"proj_size": 2}, {"bidirectional": True}),
    "mutant-lstm-c-n-not-unsorted": (LSTM_PLAIN, {"layout": "packed_sorted", "lengths": (5, 3, 2)}, {"layout": "packed_unsorted", "lengths": (2, 5, 3)}),
    "mutant-lstm-unbatched-c-n-3d": (LSTM_PLAIN, {}, {"layout": "unbatched", "batch": 1}),
    "mutant-gru-biases-folded": (GRU_PLAIN, {"bias": False}, {"bias": True}),
    "mutant-gru-reset-before-hidden-product": (GRU_PLAIN, {"bias": False, "h0_given": False, "seq_len": 1}, {"seq_len": 5}),
    "mutant-gru-update-gate-inverted": (GRU_PLAIN, EQUAL_GATES, {"weight_gain": 1.0}),
    "mutant-gru-gate-order-keras": (GRU_PLAIN, EQUAL_GATES, {"weight_gain": 1.0}),
    "mutant-gru-reset-gate-missing": (GRU_PLAIN, {"bias": False, "h0_given": False, "seq_len": 1}, {"seq_len": 5}),
    "mutant-gru-h-n-from-last-output": (GRU_PLAIN, {}, {"bidirectional": True}),
    "mutant-gru-h-n-after-padding": (GRU_PLAIN, PACKED_EQUAL, PACKED_UNEQUAL),
    "mutant-gru-h0-updated-in-place": (GRU_PLAIN, {"backward": False}, NO_GRAD),
    "mutant-rnncell-unbatched-returns-batch": (CELL_PLAIN["RNNCell"], {}, {"layout": "unbatched", "batch": 1}),
    "mutant-rnncell-hx-updated-in-place": (CELL_PLAIN["RNNCell"], {"h0_given": False, "backward": False}, {"h0_given": True}),
    "mutant-lstmcell-h-c-swapped": (CELL_PLAIN["LSTMCell"], {**EQUAL_GATES, "h0_given": False}, {"weight_gain": 1.0}),
    "mutant-lstmcell-c-ignored": (CELL_PLAIN["LSTMCell"], {"h0_given": False}, {"h0_given": True}),
    "mutant-lstmcell-unbatched-c-keeps-batch": (CELL_PLAIN["LSTMCell"], {}, {"layout": "unbatched", "batch": 1}),
    "mutant-grucell-batch-0-stack": (CELL_PLAIN["GRUCell"], {}, {"batch": 0}),
    "mutant-grucell-default-hx-input-wide": (CELL_PLAIN["GRUCell"], {"h0_given": False, "input_size": 4}, {"input_size": 3}),
}
EXPOSURES.update({name: (benign, exposing) for name, (_, benign, exposing) in FAMILY_EXPOSURES.items()})
"""Pinned by hand, independent of what Hypothesis happens to draw: each mistake is
real, and it is the documented one, not an accident elsewhere in the mutant."""


FAMILY_CI_SAMPLE = {
    # one per kind of finding and per family, each found and shrunk in a few seconds
    "mutant-lstm-h-c-swapped",  # values of h_n
    "mutant-lstm-single-bias",  # a parameter's gradient
    "mutant-gru-update-gate-inverted",  # values of the output
    "mutant-rnncell-unbatched-returns-batch",  # shape of h'
    "mutant-lstmcell-c-ignored",  # gradient of c_0
    "mutant-grucell-batch-0-stack",  # an exception where torch returns
    "correct-lstmcell-fused-gate-gemm",  # a correct variant, 300 examples in ~20 s
}
FAMILY_NAMES = {entry.name for entry in FAMILY_MUTANTS + FAMILY_CORRECT_VARIANTS}


def skip_outside_ci_sample(implementation, fuzz_profile: str) -> None:
    if fuzz_profile == "ci" and implementation.name in FAMILY_NAMES and implementation.name not in FAMILY_CI_SAMPLE:
        pytest.skip("family catalogue entry outside the CI sample; --rnn-profile default fuzzes them all")


def fuzz(implementation, tmp_path: Path, **overrides):
    # No example database: a failure replayed from an earlier run would make any
    # mutant look easy to find.
    return fuzz_implementation(
        implementation, profile="default", seed=SEED, repro_dir=tmp_path, database_dir=None, **overrides
    )


def test_catalogue_is_large_and_named():
    assert len(MUTANTS) >= 20
    names = [m.name for m in MUTANTS + CORRECT_VARIANTS]
    assert len(set(names)) == len(names), "mutant names must be unique (they are pytest ids)"
    assert all(m.name.startswith("mutant-") for m in MUTANTS)
    for implementation in MUTANTS + CORRECT_VARIANTS:
        assert implementation.description, f"{implementation.name}: the class needs a docstring"
    families = [m.family for m in FAMILY_MUTANTS]
    assert families.count("LSTM") >= 10 and families.count("GRU") >= 8, families
    assert sum(family.endswith("Cell") for family in families) >= 6, families
    assert FAMILY_CI_SAMPLE <= FAMILY_NAMES, FAMILY_CI_SAMPLE - FAMILY_NAMES
    for mutant in MUTANTS:
        assert "Exposed by:" in " ".join(mutant.factory.__doc__.split()), f"{mutant.name}: the docstring should say which inputs expose the mistake"


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_is_wrong_exactly_where_documented(mutant):
    assert mutant.name in EXPOSURES, f"{mutant.name}: add its benign case and exposing change to EXPOSURES"
    benign_overrides, exposing_change = EXPOSURES[mutant.name]
    start = FAMILY_EXPOSURES[mutant.name][0] if mutant.name in FAMILY_EXPOSURES else PLAIN
    benign = dataclasses.replace(start, **(benign_overrides or {}))
    exposing = dataclasses.replace(benign, **exposing_change)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constructor warnings (dropout with one layer) are expected
        if benign_overrides is not None:
            check(mutant, benign)
        with pytest.raises(Discrepancy):
            check(mutant, exposing)


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_fuzzer_flags_mutant(mutant, tmp_path, fuzz_profile):
    skip_outside_ci_sample(mutant, fuzz_profile)
    result = fuzz(mutant, tmp_path)
    assert result.verdict == "fail", (
        f"the fuzzer did not flag {mutant.name} (verdict {result.verdict!r} after {result.examples} examples, "
        f"seed {SEED}). The mistake: {mutant.description}\n{mutant.factory.__doc__}\n{result.reason}"
    )
    failure = result.failure
    assert failure is not None, f"{mutant.name}: a failing verdict must come with a failure to show"
    assert f"nn.{mutant.family}(" in failure.summary, f"the summary should show the failing case:\n{failure.summary}"
    assert failure.subject and failure.subject in failure.summary, (
        f"the summary should name what differs ({failure.subject!r}):\n{failure.summary}"
    )
    assert failure.repro_path is not None and failure.repro_path.exists(), f"no repro script for {mutant.name}"
    if mutant.name in REPRO_CHECKED:
        assert_repro_reproduces(failure)


def assert_repro_reproduces(failure) -> None:
    """The script must exit non-zero *because* the finding reproduces, and say what it is."""
    # The repro imports the mutant as the test did (`mutants.<module>`), from tests/.
    path_entries = [str(TESTS_DIR)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    completed = subprocess.run(
        [sys.executable, str(failure.repro_path)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path_entries)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    shown = f"exit code {completed.returncode}\n--- stdout\n{completed.stdout}\n--- stderr\n{completed.stderr}"
    assert completed.returncode != 0, f"{failure.repro_path.name} did not reproduce the failure:\n{shown}"
    assert "REPRODUCED" in completed.stdout, f"{failure.repro_path.name} failed for another reason:\n{shown}"
    assert failure.subject in completed.stdout + completed.stderr, (
        f"{failure.repro_path.name} should name {failure.subject!r}:\n{shown}"
    )


@pytest.mark.parametrize("variant", CORRECT_VARIANTS, ids=lambda v: v.name)
def test_fuzzer_passes_correct_variant(variant, tmp_path, fuzz_profile):
    skip_outside_ci_sample(variant, fuzz_profile)
    # The same budget the mutants are caught within: a fuzzer that needs fewer
    # examples to stay quiet than to catch bugs has not shown it can tell them apart.
    result = fuzz(variant, tmp_path)
    summary = result.failure.summary if result.failure else result.reason
    assert result.verdict == "pass", f"false alarm on a correct variant ({variant.description}):\n{summary}"
    assert result.examples >= DEFAULT_EXAMPLES // 2, f"only {result.examples} examples ran"
