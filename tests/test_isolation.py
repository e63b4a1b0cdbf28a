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
from support.timing import machine_now


def example_timeout() -> float:
    """A per-example timeout no passing case comes near on this machine now (at least 2 s):
    the hang is the only case that reaches it."""
    return max(2.0, 3 * machine_now().cold_check)

EXPECTED_KIND = {
    "faulty-aborts": "crash",
    "faulty-hangs": "timeout",
    "faulty-raises": "exception",
    "faulty-returns-list": "type",
    "faulty-not-a-module": "contract",
}


@pytest.mark.parametrize("faulty", FAULTY, ids=[f.name for f in FAULTY])
def test_faulty_plugin_is_reported_with_a_minimal_case(faulty, tmp_path):
    result = fuzz_implementation(faulty, profile="ci", seed=0, timeout=example_timeout(), repro_dir=tmp_path, database_dir=None)
    assert result.verdict == "fail", result.reason
    assert result.failure.kind == EXPECTED_KIND[faulty.name], result.failure.summary
    assert "nn.RNN(" in result.failure.summary, "the minimal case is shown"


def test_campaign_goes_on_after_faulty_plugins_and_exits_1(tmp_path, monkeypatch, capsys):
    plugins = {f.name: LoadedPlugin(FoundPlugin(f.name, "faulty", "0", "faulty", entry_point=None), f) for f in FAULTY}
    loop = implementation("loop")
    plugins["loop"] = LoadedPlugin(FoundPlugin("loop", "rnn-harness", "0", "impls.loop:IMPLEMENTATION", entry_point=None), loop)
    monkeypatch.setattr(cli, "discover", lambda *names, **options: Registry(plugins, []))
    report = tmp_path / "report.json"
    timeout = example_timeout()
    started = time.perf_counter()
    code = cli.main(["fuzz", "--profile", "quick", "--max-examples", "25", "--seed", "1", "--timeout", f"{timeout:.3g}", "--report", str(report), "--repro-dir", str(tmp_path)])
    spent = time.perf_counter() - started
    assert code == 1
    # Six campaigns of 25 examples (and their covering sets): bounded by a multiple of
    # the per-example timeout, however long the hanging plugin would spin.
    assert spent < 120 * timeout, f"{spent:.0f}s: a hang held the campaign past {120 * timeout:.0f}s"
    verdicts = {name: entry["verdict"] for name, entry in json.loads(report.read_text())["implementations"].items()}
    assert verdicts.pop("loop") == "pass"
    assert set(verdicts.values()) == {"fail"}, verdicts


def test_ctrl_c_writes_the_report_so_far(tmp_path):
    report = tmp_path / "report.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "fuzz", "--impl", "torch", "--impl", "loop", "--jobs", "1", "--profile", "long", "--max-examples", "40", "--report", str(report)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a terminal, even under nohup
    )
    # The first implementation finishes quickly; interrupt once the second has started
    # its last stage (every covering stage runs before any random one).
    deadline = time.time() + 120
    seen = ""
    while "fuzzing loop (random stage)" not in seen and time.time() < deadline:
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


# -- isolation by name ----------------------------------------------------------------

from harness import locate  # noqa: E402
from support import factory_kinds  # noqa: E402


@pytest.mark.parametrize("kind", factory_kinds.ALL, ids=[kind.name for kind in factory_kinds.ALL])
def test_any_factory_that_works_in_process_works_isolated(kind):
    address = locate.address_of(kind)
    assert address.how == "module" and address.name == "support.factory_kinds", f"{kind.name}: reached by {address.describe()}"
    result = fuzz_implementation(kind, profile="ci", max_examples=3, seed=0, repro_dir=None, database_dir=None)
    assert (result.verdict, result.isolated, result.examples) == ("pass", True, 3), f"{kind.name}: {result.verdict}\n{result.reason}"


SCRIPT = '''\
from harness import Implementation
from harness.campaign import fuzz_implementation
from impls.loop import LoopRNN

Built = type("Built", (LoopRNN,), {{}})
IMPLEMENTATION = Implementation(name="from-a-script", factory=lambda **constructor: Built(**constructor))


def main():
    result = fuzz_implementation(IMPLEMENTATION, profile="ci", max_examples=2, seed=0, repro_dir=None, database_dir=None)
    print("VERDICT", result.verdict)
    print(result.reason)


{call}
'''


def test_a_script_defines_its_implementation_at_module_level_with_and_without_the_main_guard(tmp_path):
    scripts = {
        "guarded": SCRIPT.format(call='if __name__ == "__main__":\n    main()'),
        "unguarded": SCRIPT.format(call="main()"),
    }
    processes = {}
    for label, text in scripts.items():
        (tmp_path / f"{label}.py").write_text(text)
        processes[label] = subprocess.Popen([sys.executable, f"{label}.py"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = {label: process.communicate(timeout=180)[0] for label, process in processes.items()}
    assert "VERDICT pass" in outputs["guarded"], outputs["guarded"]
    # Without the guard the worker, running the script again to find the implementation,
    # would start a second campaign: that is the one unreachable case, an error saying what to do.
    unguarded = outputs["unguarded"]
    assert "VERDICT error" in unguarded and 'if __name__ == "__main__":' in unguarded, unguarded
