"""A verdict means the same on every run: a failure is confirmed before it is reported,
torch disagreeing with itself is never the candidate's fault, and every failure replays
from what the report prints (harness/findings.py, harness/campaign.py)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faulty import FAULTY, HANGS_WHEN_WIDE
from faulty.flaky_reference import ACCEPTS_WRONG_WIDTH, RUNS_DIRECTORY
from harness import Implementation, campaign, cli, findings, worker_process
from harness.cases import available_devices
from harness.registry import FoundPlugin, LoadedPlugin, Registry
from mutants import MUTANTS
from test_declared_limits import AliasesHN

TESTS = Path(__file__).parent


def registered(monkeypatch, *records) -> None:
    plugins = {record.name: LoadedPlugin(FoundPlugin(record.name, "tests", "0", "tests", entry_point=None), record) for record in records}
    monkeypatch.setattr(cli, "discover", lambda *names, **options: Registry(plugins, []))


@pytest.fixture
def own_worker_server(monkeypatch):
    """Workers forked from a server started in this test, with this test's environment."""
    monkeypatch.setattr(worker_process, "_server", None)
    yield
    if worker_process._server is not None:
        worker_process._server.close()


# -- torch disagreeing with itself --------------------------------------------------------


def test_a_reference_that_raises_once_and_crashes_next_is_set_aside_never_failed(tmp_path, monkeypatch, own_worker_server):
    """The candidate returns on inputs of the wrong width; the reference raises
    RuntimeError the first time it sees such an input and crashes every time after.
    Held to the first run alone, the candidate would fail; the minimal case's reference,
    run again in two fresh workers, crashes, so the case is set aside and the campaign
    goes on."""
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv(RUNS_DIRECTORY, str(runs))
    result = campaign.fuzz_implementation(ACCEPTS_WRONG_WIDTH, seed=0, repro_dir=None, database=None)
    assert result.verdict == "pass", result.failure.summary if result.failure else result.reason
    set_aside = [reason for reason in result.known_failure_cases if reason.startswith(findings.TORCH_NOT_DETERMINISTIC)]
    assert set_aside, f"nothing was set aside as torch's nondeterminism: {result.known_failure_cases}"
    assert "raises RuntimeError" in set_aside[0] and "the process crashed" in set_aside[0], set_aside[0]
    assert any(runs.iterdir()), "the flaky reference really ran"


def test_the_same_candidate_against_a_steady_torch_fails_confirmed(tmp_path):
    """Without the flaky reference, torch raises every time and the candidate is wrong."""
    result = campaign.fuzz_implementation(ACCEPTS_WRONG_WIDTH, seed=0, repro_dir=None, database=None)
    assert result.verdict == "fail" and result.failure.kind == "exception_type", result.reason
    assert result.failure.confirmed and "confirmed: the minimal case alone" in result.failure.summary


# -- every failure replays ---------------------------------------------------------------------

ALIASES_H_N = Implementation(name="aliases-h-n", factory=AliasesHN)
by_name = {record.name: record for record in [*MUTANTS, *FAULTY, HANGS_WHEN_WIDE, ACCEPTS_WRONG_WIDTH, ALIASES_H_N]}
KINDS = [
    # (what kind of finding, the implementation that has it, extra fuzz options)
    ("value", "mutant-untransposed-w-hh", []),
    ("gradient", "mutant-state-detached-between-steps", []),
    ("exception_type", "accepts-wrong-width", []),
    ("crash", "faulty-aborts", []),
    ("timeout", "faulty-hangs-when-wide", ["--timeout", "4"]),
    ("aliasing", "aliases-h-n", []),
    ("mutation", "mutant-h0-overwritten-under-no-grad", []),
    ("second call", "mutant-stale-transpose-cache", []),
]


@pytest.mark.parametrize(("kind", "name", "options"), KINDS, ids=[kind for kind, _, _ in KINDS])
def test_a_failure_replays_from_the_command_the_report_prints_and_from_its_repro(kind, name, options, tmp_path, monkeypatch):
    registered(monkeypatch, by_name[name])
    first, again = tmp_path / "first.json", tmp_path / "again.json"
    database = tmp_path / "db"
    code = cli.main(["fuzz", "--impl", name, "--seed", "3", "--max-examples", "80", *options, "--database", str(database),
                     "--repro-dir", str(tmp_path / "repros"), "--report", str(first)])
    entry = json.loads(first.read_text())["implementations"][name]
    assert code == cli.EXIT_DISCREPANCY and entry["verdict"] == "fail", entry["reason"] or entry["failure"]
    failure = entry["failure"]
    if kind == "second call":
        assert "on the second call" in failure["summary"], failure["summary"]
    else:
        assert failure["kind"] == kind, failure["summary"]
    assert failure["confirmed"], failure["summary"]
    replay = shlex.split(entry["replay"])
    assert replay[:4] == ["python", "-m", "harness", "fuzz"]
    for word in ("--max-examples", "80", *options):
        assert word in replay, f"the replay command {entry['replay']!r} leaves out {word!r}, which shaped the campaign"
    # From the seed and the options alone: the stored failure is gone.
    shutil.rmtree(database)
    assert cli.main([*replay[3:], "--report", str(again), "--repro-dir", str(tmp_path / "again")]) == cli.EXIT_DISCREPANCY
    replayed = json.loads(again.read_text())["implementations"][name]["failure"]
    assert (replayed["kind"], replayed["case"]) == (failure["kind"], failure["case"]), "the replay found another minimal case"
    repro = subprocess.run(
        [sys.executable, failure["repro"]], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])},
    )
    assert repro.returncode != 0, f"the repro script did not reproduce the {kind} finding:\n{repro.stdout[-2000:]}{repro.stderr[-2000:]}"
    if kind != "crash":  # a crash ends the script by its signal
        assert repro.returncode == 1 and "REPRODUCED" in repro.stdout, repro.stdout[-2000:] + repro.stderr[-2000:]


def test_the_replay_command_carries_the_options_that_shaped_a_passing_campaign(tmp_path, monkeypatch):
    registered(monkeypatch, by_name["accepts-wrong-width"])
    report = tmp_path / "report.json"
    # A budget too small to reach an invalid input: a pass, whose replay must run the same 3 examples.
    cli.main(["fuzz", "--impl", "accepts-wrong-width", "--seed", "5", "--max-examples", "3", "--timeout", "12",
              "--no-isolation", "--database", str(tmp_path / "db"), "--report", str(report)])
    entry = json.loads(report.read_text())["implementations"]["accepts-wrong-width"]
    assert shlex.split(entry["replay"]) == [
        "python", "-m", "harness", "fuzz", "--impl", "accepts-wrong-width", "--seed", "5", "--profile", "default",
        "--max-examples", "3", "--timeout", "12", "--no-isolation", *[word for device in available_devices() for word in ("--device", device)],
        "--database", str(tmp_path / "db"),
    ]
