"""`python -m harness`: exit codes, the JSON report, and usage errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from harness import cli
from harness.registry import LoadedPlugin, FoundPlugin, Registry
from mutants import MUTANTS


def harness(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_list_shows_the_six_builtins():
    result = harness("list")
    assert result.returncode == 0, result.stderr
    for name in ("torch", "torch-aten", "loop", "linear", "vectorized", "torchscript"):
        assert any(line.split()[:1] == [name] and "built-in" in line for line in result.stdout.splitlines()), result.stdout


def test_list_says_what_each_covering_set_holds_and_which_budget_defers_it():
    lines = {line.split()[0]: line for line in harness("list").stdout.splitlines()[1:] if line.strip()}
    assert "1315 pairs in 26 cases + 66 invalid" in lines["loop"] and "long profile only" not in lines["loop"]
    # One compile per shape: a default campaign of one example runs no covering case.
    assert "long profile only (default budget 1: pairs left uncovered)" in lines["compiled"]


def test_fuzz_reports_its_coverage_in_one_line_per_implementation_and_a_table_on_request(tmp_path):
    report = tmp_path / "report.json"
    result = harness("fuzz", "--impl", "torch-rnncell", "--seed", "5", "--coverage", "--report", str(report), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    coverage = json.loads(report.read_text())["implementations"]["torch-rnncell"]["coverage"]
    assert coverage["pairs_covered"] == coverage["pairs_feasible"] and coverage["uncovered"] == []
    line = f"torch-rnncell: covered {coverage['pairs_covered']}/{coverage['pairs_feasible']} feasible value pairs; 24 covering cases, "
    assert line in result.stdout, result.stdout
    assert "  nonlinearity   tanh " in result.stdout and "  batch " in result.stdout, result.stdout


def test_fuzz_passing_implementation_exits_0_and_writes_the_report(tmp_path):
    report = tmp_path / "report.json"
    result = harness("fuzz", "--impl", "loop", "--max-examples", "8", "--seed", "3", "--report", str(report), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(report.read_text())
    entry = document["implementations"]["loop"]
    assert entry["verdict"] == "pass"
    assert entry["examples"] == 8
    assert entry["seconds"] > 0
    assert entry["examples_per_second"] == pytest.approx(entry["examples"] / entry["seconds"], rel=0.01)
    assert document["seed"] == 3


def test_unknown_implementation_is_a_usage_error():
    result = harness("fuzz", "--impl", "no-such-rnn")
    assert result.returncode == 2
    assert "unknown implementation 'no-such-rnn'" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_a_usage_error():
    result = harness("fuzz", "--impl", "loop", "--device", "cuda")
    assert result.returncode == 2
    assert "cuda" in result.stderr


def test_discrepancy_exits_1_with_minimal_case_and_repro(tmp_path, monkeypatch, capsys):
    mutant = next(m for m in MUTANTS if m.name == "mutant-h-n-batch-first")
    found = FoundPlugin(mutant.name, "test-mutants", "0", "mutants", entry_point=None)
    monkeypatch.setattr(cli, "discover", lambda *names, **options: Registry({mutant.name: LoadedPlugin(found, mutant)}, []))
    report = tmp_path / "report.json"
    code = cli.main(["fuzz", "--impl", mutant.name, "--seed", "0", "--report", str(report), "--repro-dir", str(tmp_path / "repros")])
    assert code == 1
    printed = capsys.readouterr().out
    assert "FAIL" in printed and "h_n" in printed and "repro:" in printed
    entry = json.loads(report.read_text())["implementations"][mutant.name]
    assert entry["verdict"] == "fail"
    assert entry["failure"]["kind"] in ("shape", "value")
    assert (tmp_path / "repros" / f"repro_{mutant.name}.py").exists()


# -- selecting implementations by family ------------------------------------------------


@pytest.fixture
def two_families(monkeypatch):
    """An RNN and a GRU implementation registered."""
    from harness import Implementation

    records = [Implementation(name="an-rnn", factory=torch.nn.RNN), Implementation(name="a-gru", factory=torch.nn.GRU, family="GRU")]
    plugins = {record.name: LoadedPlugin(FoundPlugin(record.name, "families", "0", "families", entry_point=None), record) for record in records}
    monkeypatch.setattr(cli, "discover", lambda *names, **options: Registry(plugins, []))


@pytest.mark.parametrize("command", ["fuzz"])  # bench: its own repeatable --family (tests/test_bench.py)
def test_family_selects_the_implementations_of_that_family(two_families, command):
    registry, names = cli.select(cli.build_parser().parse_args([command, "--family", "GRU"]))
    assert names == ["a-gru"]


@pytest.mark.parametrize("command", ["fuzz"])  # bench: its own repeatable --family (tests/test_bench.py)
def test_unknown_family_is_a_usage_error_listing_the_known_ones(two_families, command, capsys):
    assert cli.main([command, "--family", "Transformer"]) == cli.EXIT_USAGE
    assert "unknown family 'Transformer'; known families: RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["fuzz"])  # bench: its own repeatable --family (tests/test_bench.py)
def test_impl_of_another_family_is_a_usage_error(two_families, command, capsys):
    assert cli.main([command, "--impl", "an-rnn", "--family", "GRU"]) == cli.EXIT_USAGE
    assert "--impl an-rnn is of family RNN, not GRU" in capsys.readouterr().err
