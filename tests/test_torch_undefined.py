"""Where torch's own behaviour on an invalid input is undefined, nothing is asked of a candidate.

On the classes declared in harness/torch_undefined.py torch's reference reads past a
tensor: it crashes, raises or returns, by accident of the process. A campaign sets a
case of such a class aside before torch runs, and says which declaration did. The
declarations are exactly as wide as what torch does (tools/torch_undefined_sweep.py
measures it), and each is dropped once torch stops misbehaving there.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import strategies as st

from harness import strategies, torch_undefined
from harness.campaign import fuzz_implementation
from harness.cases import Case
from harness.isolation import Worker
from harness.oracle import reference_outcome
from harness.tolerance import DEFAULT_MODEL
from support import registry
from support.torch_crashes import crashes_in_some_try

ROOT = Path(__file__).resolve().parents[1]

# The case a new user's `python -m harness fuzz` failed loop-lstmcell on (issue 24,
# seed 667216501): nn.LSTMCell(10, 1), an unbatched input (10,), h_0 (1, 1), c_0 (1,).
# In that worker torch raised RuntimeError; elsewhere it dies with SIGSEGV.
SEED_CASE = Case(family="LSTMCell", input_size=10, hidden_size=1, layout="unbatched", h0_given=True, defect="h0_wrong_rank")

# One case of each declared class; each dies in torch (tools/torch_undefined_sweep.py:
# in every run of every case of the class).
WITNESSES = {
    "cell-unbatched-one-row-state": [
        SEED_CASE,
        dataclasses.replace(SEED_CASE, family="GRUCell", input_size=1, dtype="float64"),
    ],
    "lstm-packed-short-c0": [
        Case(family="LSTM", input_size=3, hidden_size=4, num_layers=2, layout="packed_sorted", seq_len=3, batch=2, lengths=(3, 2), h0_given=True, defect="c0_one_layer"),
        Case(family="LSTM", bidirectional=True, layout="packed_unsorted", seq_len=2, batch=2, lengths=(1, 2), h0_given=True, defect="c0_one_layer", dtype="bfloat16"),
    ],
    "lstm-packed-4d-h0": [
        Case(family="LSTM", layout="packed_sorted", lengths=(1,), h0_given=True, defect="h0_wrong_rank"),
        Case(family="LSTM", input_size=2, hidden_size=3, layout="packed_sorted", seq_len=5, batch=3, lengths=(5, 4, 3), h0_given=True, defect="h0_wrong_rank"),
        Case(family="LSTM", input_size=2, hidden_size=3, proj_size=1, layout="packed_unsorted", seq_len=3, batch=1, lengths=(3,), h0_given=True, defect="h0_wrong_rank"),
    ],
}
FOUR_D_H0 = WITNESSES["lstm-packed-4d-h0"][1]

# Next to each class, inputs on which torch is consistent: no declaration covers
# them, and torch's outcome there is what the oracle holds a candidate to.
CONSISTENT_NEIGHBOURS = [
    (dataclasses.replace(SEED_CASE, hidden_size=2), "RuntimeError"),  # the checks see the wrong width
    (dataclasses.replace(SEED_CASE, family="RNNCell"), None),  # RNNCell broadcasts and returns
    (dataclasses.replace(SEED_CASE, layout="batched", batch=2), "ValueError"),  # a 3-D state for a batched cell
    (dataclasses.replace(SEED_CASE, defect="c0_wrong_hidden"), "RuntimeError"),
    (dataclasses.replace(WITNESSES["lstm-packed-short-c0"][0], layout="batched", lengths=None), "RuntimeError"),  # a Tensor is checked
    (dataclasses.replace(WITNESSES["lstm-packed-short-c0"][0], family="GRU", defect="h0_one_layer"), "RuntimeError"),  # nn.GRU checks packed input
    (dataclasses.replace(WITNESSES["lstm-packed-short-c0"][0], defect="h0_one_layer"), "RuntimeError"),  # h_0's layers are checked
    (dataclasses.replace(FOUR_D_H0, hidden_size=2), "RuntimeError"),  # batch 3, width 2: the count of states is wrong
    (dataclasses.replace(FOUR_D_H0, num_layers=2), "RuntimeError"),  # two layers: the same
    (dataclasses.replace(FOUR_D_H0, layout="packed_unsorted", lengths=(3, 4, 5)), "RuntimeError"),  # the permutation fails first
]


def test_the_seed_case_is_covered_by_the_cell_declaration():
    declaration = torch_undefined.covering(SEED_CASE)
    assert declaration is not None and declaration.name == "cell-unbatched-one-row-state"
    assert "docs/found-bugs.md" in declaration.reason
    assert declaration.label().startswith("torch's undefined behaviour (cell-unbatched-one-row-state): ")


@pytest.mark.parametrize("name", sorted(WITNESSES))
def test_every_declaration_has_witnesses_it_covers(name):
    assert {declaration.name for declaration in torch_undefined.DECLARATIONS} == set(WITNESSES)
    for case in WITNESSES[name]:
        covering = torch_undefined.covering(case)
        assert covering is not None and covering.name == name, case.describe()


@pytest.mark.parametrize("case,outcome", CONSISTENT_NEIGHBOURS, ids=[f"{c.family}-{c.layout}-{c.defect}-h{c.hidden_size}" for c, _ in CONSISTENT_NEIGHBOURS])
def test_no_declaration_covers_a_neighbour_on_which_torch_is_consistent(case, outcome):
    assert torch_undefined.covering(case) is None, case.describe()
    assert reference_outcome(case) == outcome


def test_no_declaration_covers_a_valid_case():
    for case in [case for cases in WITNESSES.values() for case in cases]:
        assert torch_undefined.covering(dataclasses.replace(case, defect=None)) is None


@pytest.mark.parametrize("case", [cases[0] for cases in WITNESSES.values()], ids=list(WITNESSES))
def test_each_declared_class_still_crashes_torch(case):
    """The bug is there if torch's reference dies in one of five fresh processes (the
    sweep saw every run die; a worker once saw a RuntimeError instead, which is why
    one run proves nothing). When this fails, torch has fixed it: drop the declaration
    and its entry in docs/found-bugs.md."""
    with Worker(registry().implementation("loop-lstmcell"), DEFAULT_MODEL, timeout=120) as worker:
        crashed, outcomes = crashes_in_some_try(worker, case)
    assert crashed, f"torch gave {outcomes} five times on {case.describe()}: no longer undefined, drop its declaration"


def test_a_campaign_sets_a_declared_case_aside_by_name_before_torch_runs(monkeypatch):
    """Whatever torch would do on it in this process, the case is set aside under its
    declaration's label, covers nothing, and no request about it reaches the worker."""
    valid = dataclasses.replace(SEED_CASE, defect=None)
    monkeypatch.setattr(strategies, "cases", lambda implementation, devices=None, avoid=(): st.sampled_from([SEED_CASE, valid]))
    asked: list[Case] = []
    request = Worker.request

    def recording(self, sent, **options):
        asked.append(sent.case)
        return request(self, sent, **options)

    monkeypatch.setattr(Worker, "request", recording)
    result = fuzz_implementation(
        registry().implementation("loop-lstmcell"), max_examples=10, seed=0, repro_dir=None, database=None, covering_phase=False,
    )
    assert result.verdict == "pass", result.failure.summary if result.failure else result.reason
    label = torch_undefined.covering(SEED_CASE).label()
    assert result.known_failure_cases.get(label, 0) >= 1, result.known_failure_cases
    assert SEED_CASE not in asked
    assert valid in asked
    assert result.coverage["set_aside_cases"] >= 1


def _sweep(*arguments: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "tools" / "torch_undefined_sweep.py"), *arguments], capture_output=True, text=True, env=environment, cwd=ROOT)


def test_the_sweep_of_the_cells_agrees_with_the_declarations():
    """Every cell input torch crashes or varies on is declared, and nothing else is."""
    swept = _sweep("--family", "GRUCell", "--family", "LSTMCell", "--family", "RNNCell", "--runs", "2")
    assert swept.returncode == 0, swept.stdout[-4000:] + swept.stderr[-2000:]
    assert "| LSTMCell | h0_wrong_rank | unbatched | hidden 1 | crashes" in swept.stdout


@pytest.mark.skipif(not os.environ.get("RNN_HARNESS_SLOW_TESTS"), reason="runs about 30,000 invalid inputs 4 times (minutes); set RNN_HARNESS_SLOW_TESTS=1 to run it")
def test_the_whole_sweep_agrees_with_the_declarations():
    swept = _sweep()
    assert swept.returncode == 0, swept.stdout[-4000:] + swept.stderr[-2000:]
