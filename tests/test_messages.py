"""What the harness tells a plugin author is true and survives its own failures.

Relative error appears only where it means something; a finding is never lost to an
error while explaining it or writing its repro; every input layout and every kind of
finding goes through the repro writer, and the scripts it writes run.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from harness import KnownFailure, report
from harness.campaign import ImplementationResult, fuzz_implementation
from harness.cases import Case
from harness.dimensions import defects_for
from harness.oracle import Discrepancy, check
from harness.repro import write_repro
from impls.loop import LoopRNN
from support import implementation


class OffByAThousandth(LoopRNN):
    """Adds 1e-3 to every output value."""

    def activation(self, pre_activation):
        return super().activation(pre_activation) + 1e-3


def value_message(case: Case) -> str:
    from harness import Implementation

    with pytest.raises(Discrepancy) as found:
        check(Implementation(name="off", factory=OffByAThousandth), case)
    assert found.value.kind == "value", found.value.summary
    return found.value.summary.splitlines()[0]


def test_relative_error_is_shown_only_where_the_reference_is_not_zero():
    at_zero = value_message(Case(hidden_size=2, weight_gain=0.0, input_scale=0.0, backward=False))
    assert "reference 0," in at_zero and "relative" not in at_zero, at_zero
    elsewhere = value_message(Case(hidden_size=2, backward=False))
    assert "(relative " in elsewhere, elsewhere


# -- the repro writer: every input layout x every finding kind -------------------------

LAYOUT_CASES = {
    "batched": Case(input_size=2, hidden_size=3, seq_len=3, batch=2, h0_given=True),
    "batch_first": Case(input_size=2, hidden_size=3, seq_len=3, batch=2, batch_first=True, bidirectional=True),
    "unbatched": Case(input_size=2, hidden_size=3, seq_len=3, layout="unbatched", num_layers=2, noncontiguous="strided"),
    "packed_sorted": Case(input_size=2, hidden_size=3, seq_len=3, batch=2, layout="packed_sorted", lengths=(3, 2), h0_given=True),
    "packed_unsorted": Case(input_size=2, hidden_size=3, seq_len=3, batch=3, layout="packed_unsorted", lengths=(1, 3, 2), noncontiguous="offset", dtype="float64"),
}
FINDINGS = {
    # kind: (subject, evidence)
    "value": ("output", {"index": [0, 0, 0, 0], "bound": 1e-6}),
    "value h_n": ("h_n", {"index": [0, 0, 0, 0], "bound": 1e-6}),
    "gradient": ("weight_hh_l0", {"index": [0, 0], "bound": 1e-6}),
    "gradient missing": ("input", {}),
    "shape": ("h_n", {}),
    "dtype": ("output", {}),
    "type": ("return value", {}),
    "packed_metadata": ("output.batch_sizes", {}),
    "exception": ("forward", {"traceback": "..."}),
    "exception_type": ("forward", {"expected": "RuntimeError", "got": None}),
    "contract": ("state_dict", {}),
    "mutation": ("input", {}),
    "aliasing": ("output and h_n", {}),
    "crash": ("process", {}),
    "timeout": ("forward", {"limit": 0.3, "full_timeout": False}),
    "second call": ("output", {"index": [0, 0, 0, 0], "bound": 1e-6, "second_call": True}),
}


def repro_cases():
    for (layout, case), (finding, (subject, evidence)) in itertools.product(LAYOUT_CASES.items(), FINDINGS.items()):
        if finding == "second call":
            case = Case(**{**case.__dict__, "second_call": "optimizer_step"})
        yield f"{layout}-{finding}", case, Discrepancy(finding.split()[0], subject, f"{finding} differs", evidence)
    for layout, case in LAYOUT_CASES.items():
        for defect in defects_for(case):
            yield f"{layout}-{defect}", Case(**{**case.__dict__, "defect": defect}), Discrepancy("exception_type", "forward", "raises another type", {"expected": "RuntimeError"})


class BreaksOnPackedDtypeMismatch(LoopRNN):
    """Returns normally on a packed input whose dtype differs from the weights' (torch raises)."""

    def forward(self, input, hx=None):
        if isinstance(input, torch.nn.utils.rnn.PackedSequence) and input.data.dtype != self.weight_ih_l0.dtype:
            return super().forward(torch.nn.utils.rnn.PackedSequence(input.data.to(self.weight_ih_l0.dtype), *input[1:]), hx)
        return super().forward(input, hx)


def test_every_layout_and_finding_kind_gets_a_repro_script_that_runs(tmp_path):
    from harness import Implementation

    scripts = []
    for label, case, finding in repro_cases():
        path = write_repro(tmp_path / f"repro_{label}.py", "torch-itself", torch.nn.RNN, case, finding)
        compile(path.read_text(), str(path), "exec")
        scripts.append(str(path))
    # A real finding on a packed input of the wrong dtype (writing its script used to
    # raise AttributeError on PackedSequence.dtype): its script must reproduce it.
    case = Case(input_size=2, hidden_size=3, seq_len=2, batch=2, layout="packed_unsorted", lengths=(1, 2), defect="dtype_mismatch")
    lenient = Implementation(name="lenient", factory=BreaksOnPackedDtypeMismatch)
    with pytest.raises(Discrepancy) as found:
        check(lenient, case)
    reproducing = str(write_repro(tmp_path / "repro_lenient.py", lenient.name, lenient.factory, case, found.value))
    # Every script run against torch.nn.RNN itself: nothing raises, nothing reproduces.
    runner = textwrap.dedent("""\
        import json, runpy, sys, contextlib, io
        outcomes = {}
        for path in json.loads(sys.argv[1]):
            namespace = runpy.run_path(path, run_name="repro")
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    outcomes[path] = namespace["main"]()
                except Exception as error:
                    outcomes[path] = f"{type(error).__name__}: {error}"
        print(json.dumps(outcomes))
        """)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run([sys.executable, "-c", runner, json.dumps(scripts + [reproducing])], capture_output=True, text=True, timeout=300, env=environment)
    assert completed.returncode == 0, completed.stderr
    outcomes = json.loads(completed.stdout.splitlines()[-1])
    assert outcomes.pop(reproducing) == 1, "the packed dtype-mismatch finding should reproduce"
    wrong = {path: outcome for path, outcome in outcomes.items() if outcome != 0}
    assert not wrong, f"{len(wrong)} of {len(outcomes)} repro scripts raised or reproduced against torch itself: {wrong}"


def test_a_failing_repro_writer_never_loses_the_finding(tmp_path, monkeypatch):
    from harness import Implementation, findings

    def broken_writer(*arguments, **keywords):
        raise RuntimeError("the repro writer itself is broken")

    monkeypatch.setattr(findings, "write_repro", broken_writer)
    candidate = Implementation(name="off-by-a-thousandth", factory=OffByAThousandth)
    result = fuzz_implementation(candidate, profile="ci", max_examples=5, seed=0, repro_dir=tmp_path, database_dir=None, isolate=False)
    assert result.verdict == "fail" and result.failure.kind == "value", result.reason
    assert result.failure.explainer_errors == ["writing the repro script failed: RuntimeError: the repro writer itself is broken"]
    assert "the finding above stands" in result.failure.summary
    assert result.to_json()["failure"]["explainer_errors"] == result.failure.explainer_errors


# -- the contract as authors write it ------------------------------------------------------


def test_case_dtype_compares_with_torch_dtypes_in_a_known_failure():
    reason = "float64 not tuned yet"
    declared = implementation("torch").__class__(
        name="torch-float64-aside", factory=torch.nn.RNN, known_failures=(KnownFailure(when=lambda case: case.dtype == torch.float64, reason=reason),),
    )
    result = fuzz_implementation(declared, profile="ci", max_examples=60, seed=0, repro_dir=None, database_dir=None, isolate=False)
    assert result.verdict == "pass" and result.known_failure_cases.get(reason, 0) > 0, result.known_failure_cases
    assert Case(dtype="bfloat16").dtype in (torch.float16, torch.bfloat16) and json.loads(Case(dtype="float64").to_json())["dtype"] == "float64"


def test_a_known_failure_predicate_that_raises_is_the_plugins_error():
    from harness import Implementation

    typo = Implementation(name="typo", factory=torch.nn.RNN, known_failures=(KnownFailure(when=lambda case: case.train, reason="train mode differs"),))
    result = fuzz_implementation(typo, profile="ci", seed=0, repro_dir=None, database_dir=None, isolate=False)
    assert result.verdict == "error", result.verdict
    assert result.reason.startswith("typo: known_failures[0] (reason 'train mode differs'): its `when` predicate raised"), result.reason
    assert "AttributeError: 'Case' object has no attribute 'train'" in result.reason and "Hypothesis" not in result.reason, result.reason
    assert result.examples == 0, "the campaign stops at the first case: the mistake is in the declaration"


# -- the console ------------------------------------------------------------------------------


def test_the_summary_shows_cases_set_aside_and_approximate_bounds():
    result = ImplementationResult.passed("approx", 0, "ci", examples=40, seconds=2.0, error_budget=4.0, known_failure_cases={"bfloat16 accumulates in float32": 7})
    text = report.summary_table([result])
    assert "approx: approximate (error_budget=4): compared under 4x the error model's bound" in text, text
    assert "approx: 7 cases set aside as a known failure: bfloat16 accumulates in float32" in text, text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_rate_and_eta_on_a_terminal_and_periodic_lines_elsewhere():
    log = io.StringIO()
    progress = report.Progress(log, interval=0.0)
    progress.start("loop", total=300)
    for count in range(1, 4):
        progress.example(count)
    lines = [line for line in log.getvalue().splitlines() if "examples" in line]
    assert len(lines) == 3 and "3/300 examples [" in lines[-1] and "ex/s]" in lines[-1], log.getvalue()
    terminal = Terminal()
    live = report.Progress(terminal)
    live.start("loop", total=300)
    live.example(150)
    meter = str(live.bar)  # what the bar shows now (it redraws at most 5 times a second)
    live.done(ImplementationResult.passed("loop", 0, "ci", examples=150, seconds=1.0))
    assert "150/300" in meter and "ex/s" in meter and "<" in meter, meter
    assert terminal.getvalue().endswith("loop: pass after 150 examples in 1.0s\n"), terminal.getvalue()
