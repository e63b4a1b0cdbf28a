"""Declarations written on one CPU hold on others: what depends on the machine, run
again under the settings that make this CPU look like an older one.

``ATEN_CPU_CAPABILITY=avx2`` and ``=default`` make ATen (and Inductor) take the code
paths of a CPU without AVX-512, and of one without any vector unit it uses;
``ONEDNN_MAX_CPU_ISA=AVX2`` makes oneDNN behave as on an AVX2 CPU, without bfloat16
(finding 12 in docs/found-bugs.md). Each is read once per process, so every check
runs in a fresh one: that the setting took effect, the tests that pin the
machine-dependent declarations, and a short campaign over the built-ins whose
kernels or declarations it changes. About three minutes in all on 2 cores.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from support import builtin_names, registry

ROOT = Path(__file__).resolve().parents[1]
EMULATIONS = {
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "onednn-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
}
SEED = 20261205
ONEDNN_USERS = ["torch-lstm", "torch-aten-lstm", "torch-decomp-lstm"]
"""The built-ins whose path runs oneDNN: nn.LSTM's own dispatch, and torch._decomp's."""
ATEN_EXAMPLES, ONEDNN_EXAMPLES = 6, 30

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"),
    reason="the settings emulate older x86-64 CPUs (AVX2, no vector ISA); elsewhere they mean nothing",
)


def run(arguments: list[str], emulation: str, timeout: float = 600) -> subprocess.CompletedProcess:
    environment = {**os.environ, **EMULATIONS[emulation], "OMP_NUM_THREADS": "1"}
    environment.pop("HYPOTHESIS_PROFILE", None)  # the commands below say what they run
    return subprocess.run(
        [sys.executable, *arguments], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout,
    )


def aten_built_ins() -> list[str]:
    """Every eager built-in: each runs ATen's kernels (or torch's own decomposition of
    them). Not the paths that compile or export per shape (minutes per example, and a
    fresh Inductor cache per setting), nor ONNX Runtime (its own kernels)."""
    return [
        name for name in builtin_names(None, execution_paths=True)
        if registry().implementation(name).example_timeout is None and not name.startswith("onnxruntime")
    ]


@pytest.mark.parametrize("emulation", EMULATIONS)
def test_the_setting_takes_effect(emulation):
    """Otherwise the checks below would run this CPU's paths again and prove nothing."""
    child = run(["-c", "import json; from impls import machine; print(json.dumps(machine.summary()))"], emulation)
    assert child.returncode == 0, child.stderr[-3000:]
    seen = json.loads(child.stdout.strip().splitlines()[-1])
    if emulation == "onednn-avx2":
        assert not seen["onednn_bfloat16"] and not seen["onednn_float16"], f"under ONEDNN_MAX_CPU_ISA=AVX2 oneDNN still reports half precision: {seen}"
    else:
        expected = {"aten-avx2": {"AVX2", "DEFAULT"}, "aten-default": {"DEFAULT"}}[emulation]
        assert seen["aten_cpu_capability"] in expected, f"{EMULATIONS[emulation]}: ATen reports {seen}"
        assert "avx512" not in str(seen["inductor_vector_isa"]), f"{EMULATIONS[emulation]}: Inductor still generates AVX-512 code: {seen}"


@pytest.mark.parametrize("emulation", EMULATIONS)
def test_the_machine_dependent_declarations_hold(emulation):
    """The tests that pin the declarations decided from the machine (oneDNN's packed
    path, the bfloat16 decomposition, the cells' half-precision backward), run where
    the setting changes what they decide."""
    child = run(
        ["-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "tests/test_found_in_torch.py", "tests/test_execution_paths.py",
         "-k", "not compiled and (found_in_torch or decomp or half_cell_backward_declaration)"],
        emulation,
    )
    assert child.returncode == 0, f"under {EMULATIONS[emulation]}:\n{child.stdout[-6000:]}\n{child.stderr[-2000:]}"
    if emulation == "onednn-avx2":
        # The finding's own test must have run, not skipped: its condition holds here.
        assert "PASSED tests/test_execution_paths.py::test_decomp_lstm_bfloat16_without_onednn_bfloat16_known_failure_still_reproduces" in child.stdout, child.stdout[-4000:]


@pytest.mark.parametrize("emulation", EMULATIONS)
def test_the_built_ins_pass_a_short_campaign(emulation, tmp_path):
    """The bare command's campaigns, shortened: what a user runs first on such a CPU."""
    if emulation == "onednn-avx2":
        names, examples = ONEDNN_USERS, ONEDNN_EXAMPLES
    else:
        names, examples = aten_built_ins(), ATEN_EXAMPLES
    report = tmp_path / "report.json"
    command = [
        "-m", "harness", "fuzz", *(f"--impl={name}" for name in names), "--max-examples", str(examples), "--seed", str(SEED),
        "--database", str(tmp_path / "database"), "--repro-dir", str(tmp_path / "repros"), "--report", str(report),
    ]
    child = run(command, emulation, timeout=900)
    replay = " ".join(f"{key}={value}" for key, value in EMULATIONS[emulation].items()) + " python " + " ".join(command[:-6])
    assert child.returncode == 0, f"exit {child.returncode}; reproduce with: {replay}\n{child.stdout[-8000:]}\n{child.stderr[-2000:]}"
    verdicts = {name: entry["verdict"] for name, entry in json.loads(report.read_text())["implementations"].items()}
    assert set(verdicts) == set(names) and set(verdicts.values()) <= {"pass", "skipped"}, verdicts
