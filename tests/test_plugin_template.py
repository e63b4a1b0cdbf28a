"""examples/plugin-template works as its README says, installed for real.

The template is copied and ``pip install --target``-ed into a temporary directory
(a real dist-info with its entry point), then three commands run at once with that
directory on PYTHONPATH, from a directory that does not hold the template's source:
``python -m harness list``, the template's own pytest suite (its fuzzing test goes
through our pytest plugin) and ``python -m harness fuzz`` of its three implementations
(nn.RNN, nn.LSTM and nn.GRUCell: one per kind of drop-in shell).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).parents[1] / "examples" / "plugin-template"
NAME, DISTRIBUTION = "my-rnn", "my-rnn 0.1.0"
FAMILIES = {"my-rnn": "RNN", "my-lstm": "LSTM", "my-grucell": "GRUCell"}
EXIT_OK = 0


def pip_install(source: Path, target: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, f"pip install of the template failed:\n{completed.stdout}\n{completed.stderr}"


@pytest.fixture(scope="module")
def commands(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    workspace = tmp_path_factory.mktemp("template")
    # A copy, because setuptools writes build/ and egg-info beside the source; leave
    # out whatever running the template in place may have left there.
    source = workspace / "my-rnn"
    shutil.copytree(TEMPLATE, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".hypothesis", ".pytest_cache", ".benchmarks", "rnn-harness-repros", "*.json"))
    site = workspace / "site"
    pip_install(source, site)
    run_directory = workspace / "run"
    run_directory.mkdir()
    environment = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1", "RNN_HARNESS_WORKER_THREADS": "1"}
    environment.pop("HYPOTHESIS_PROFILE", None)
    command_lines = {
        "list": [sys.executable, "-m", "harness", "list"],
        "pytest": [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(source / "tests"),
                   "--rnn-max-examples", "5", "--rnn-seed", "0", "--rnn-report", "pytest-report.json"],
        "fuzz": [
            sys.executable, "-m", "harness", "fuzz", *(f"--impl={name}" for name in FAMILIES),
            "--max-examples", "20", "--seed", "0", "--report", "fuzz-report.json",
        ],
    }
    processes = {
        name: subprocess.Popen(line, cwd=run_directory, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, line in command_lines.items()
    }
    completed = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        completed[name] = subprocess.CompletedProcess(command_lines[name], process.returncode, stdout, stderr)
    completed["run directory"] = run_directory
    return completed


def test_the_template_lists_its_implementations_with_their_families_and_distribution(commands):
    listing = commands["list"]
    assert listing.returncode == EXIT_OK, f"exit {listing.returncode}:\n{listing.stderr}"
    rows = {re.split(r"\s{2,}", line.strip())[0]: re.split(r"\s{2,}", line.strip())[1:] for line in listing.stdout.splitlines()[1:]}
    for name, family in FAMILIES.items():
        assert rows.get(name, [])[:2] == [family, DISTRIBUTION], f"row for {name}: {rows.get(name)}; expected family {family}, origin {DISTRIBUTION}:\n{listing.stdout}"


def test_the_templates_own_test_suite_passes_through_the_pytest_plugin(commands):
    run = commands["pytest"]
    assert run.returncode == EXIT_OK, f"the template's tests: exit {run.returncode}\n{run.stdout}{run.stderr}"
    assert re.search(r"\b5 passed\b", run.stdout), f"all five template tests should pass:\n{run.stdout}"
    report = json.loads((commands["run directory"] / "pytest-report.json").read_text())
    for name in FAMILIES:
        entry = report["implementations"].get(name)
        assert entry is not None and entry["verdict"] == "pass" and entry["examples"] == 5, (
            f"the plugin's report should hold {name} passing 5 examples: {report['implementations']}"
        )


def test_the_template_survives_the_fuzz_command(commands):
    run = commands["fuzz"]
    assert run.returncode == EXIT_OK, f"python -m harness fuzz --impl {NAME}: exit {run.returncode}\n{run.stdout}{run.stderr}"
    report = json.loads((commands["run directory"] / "fuzz-report.json").read_text())
    for name, family in FAMILIES.items():
        entry = report["implementations"][name]
        assert (entry["verdict"], entry["examples"], entry["family"]) == ("pass", 20, family), f"fuzz report for {name}: {entry}"
