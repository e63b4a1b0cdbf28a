"""A campaign survives implementations that crash, hang, raise or return nonsense.

Each faulty plugin gets verdict fail (or error) with a minimal case; a correct
built-in run beside them still passes; the exit code is 1; and Ctrl-C writes the
report of what finished.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from faulty import FAULTY
from harness import cli
from harness.campaign import fuzz_implementation
from harness.registry import FoundPlugin, LoadedPlugin, Registry
from support import implementation

EXPECTED_KIND = {
    "faulty-aborts": "crash",
    "faulty-hangs": "timeout",
    "faulty-raises": "exception",
    "faulty-returns-list": "type",
    "faulty-not-a-module": "contract",
}


@pytest.mark.parametrize("faulty", FAULTY, ids=[f.name for f in FAULTY])
def test_faulty_plugin_is_reported_with_a_minimal_case(faulty, tmp_path):
    result = fuzz_implementation(faulty, profile="ci", seed=0, timeout=2.0, repro_dir=tmp_path, database_dir=None)
    assert result.verdict == "fail", result.reason
    assert result.failure.kind == EXPECTED_KIND[faulty.name], result.failure.summary
    assert "nn.RNN(" in result.failure.summary, "the minimal case is shown"


def test_campaign_goes_on_after_faulty_plugins_and_exits_1(tmp_path, monkeypatch, capsys):
    plugins = {f.name: LoadedPlugin(FoundPlugin(f.name, "faulty", "0", "faulty", entry_point=None), f) for f in FAULTY}
    loop = implementation("loop")
    plugins["loop"] = LoadedPlugin(FoundPlugin("loop", "rnn-harness", "0", "impls.loop:IMPLEMENTATION", entry_point=None), loop)
    monkeypatch.setattr(cli, "discover", lambda: Registry(plugins, []))
    report = tmp_path / "report.json"
    started = time.perf_counter()
    code = cli.main(["fuzz", "--profile", "quick", "--max-examples", "25", "--seed", "1", "--timeout", "2", "--report", str(report), "--repro-dir", str(tmp_path)])
    assert code == 1
    assert time.perf_counter() - started < 240, "bounded time despite a hang"
    verdicts = {name: entry["verdict"] for name, entry in json.loads(report.read_text())["implementations"].items()}
    assert verdicts.pop("loop") == "pass"
    assert set(verdicts.values()) == {"fail"}, verdicts


def test_ctrl_c_writes_the_report_so_far(tmp_path):
    report = tmp_path / "report.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "fuzz", "--impl", "torch", "--impl", "loop", "--profile", "long", "--max-examples", "4", "--report", str(report)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # The first implementation finishes quickly; interrupt once the second has started.
    deadline = time.time() + 120
    seen = ""
    while "fuzzing loop" not in seen and time.time() < deadline:
        seen += process.stderr.readline()
    os.kill(process.pid, signal.SIGINT)
    process.communicate(timeout=60)
    document = json.loads(report.read_text())
    assert document["implementations"]["torch"]["verdict"] == "pass"
    assert "loop" in document["implementations"]


def test_factory_the_worker_cannot_import_is_an_error_not_a_crash():
    from harness import Implementation
    from impls.loop import LoopRNN

    class DefinedInAFunction(LoopRNN):  # not importable by name in a worker
        pass

    result = fuzz_implementation(Implementation(name="local", factory=DefinedInAFunction), profile="ci", seed=0, repro_dir=None, database_dir=None)
    assert result.verdict == "error"
    assert "importable by name" in result.reason
