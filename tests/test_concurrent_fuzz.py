"""`fuzz` runs several implementations at once, and each one's budget is its own.

`python -m harness fuzz` fuzzes everything registered; with 40-odd built-ins it runs
them side by side (`--jobs`, by default one per CPU), each campaign in its own
worker with one thread, and a slow implementation declares a smaller budget
(`default_examples`), which the report and `list` show. What runs at once must
report exactly what one at a time would: the same verdicts, in the order asked,
and Ctrl-C still writes the report of what finished.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness import Implementation, Unavailable, cli, protocol, worker_process
from harness.campaign import PROFILES
from harness.local_run import default_jobs
from harness.isolation import Worker
from harness.registry import FoundPlugin, LoadedPlugin, Registry
from harness.tolerance import DEFAULT_MODEL
from mutants import MUTANTS
from support import implementation


def harness(*args, cwd):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def registered(monkeypatch, *records: Implementation) -> None:
    plugins = {
        record.name: LoadedPlugin(FoundPlugin(record.name, "tests", "0", "tests", entry_point=None), record)
        for record in records
    }
    monkeypatch.setattr(cli, "discover", lambda *names, **options: Registry(plugins, []))


# -- budgets -----------------------------------------------------------------------------


def test_default_examples_caps_the_small_profiles_and_scales_the_long_one():
    record = dataclasses.replace(implementation("loop"), name="budgeted", default_examples=30)
    assert record.example_budget(PROFILES["ci"][0]) == 30, "40 asked, at most 30"
    assert record.example_budget(PROFILES["quick"][0]) == 30
    assert record.example_budget(PROFILES["default"][0]) == 30
    assert record.example_budget(PROFILES["long"][0]) == 500, "the long profile is 5000/300 times the default one"
    assert record.example_budget(10) == 10, "a smaller request is never raised"
    unbudgeted = dataclasses.replace(record, default_examples=None)
    assert [unbudgeted.example_budget(count) for count, _ in PROFILES.values()] == [count for count, _ in PROFILES.values()]


def test_a_budget_of_one_still_grows_in_the_long_profile():
    record = dataclasses.replace(implementation("loop"), name="compiles", default_examples=1)
    assert record.example_budget(PROFILES["default"][0]) == 1
    assert record.example_budget(PROFILES["long"][0]) == 17, "ceil(5000 / 300)"


def test_every_builtin_states_its_budget_in_list():
    listed = harness("list", cwd=".")
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines()[1:] if "built-in" in line]
    assert rows and all("default_examples=" in row for row in rows), "\n".join(row for row in rows if "default_examples=" not in row)


# -- several at once -----------------------------------------------------------------------


def test_jobs_defaults_to_the_cpus_available():
    assert default_jobs() == len(os.sched_getaffinity(0))


def test_concurrent_run_reports_every_verdict_in_the_order_asked(tmp_path, monkeypatch, capsys):
    mutant = next(m for m in MUTANTS if m.name == "mutant-b-hh-twice")
    registered(monkeypatch, implementation("loop"), mutant, implementation("torch-rnncell"))
    report = tmp_path / "report.json"
    code = cli.main([
        "fuzz", "--jobs", "2", "--max-examples", "12", "--seed", "5", "--report", str(report),
        "--repro-dir", str(tmp_path / "repros"), "--database", str(tmp_path / "db"),
    ])
    assert code == cli.EXIT_DISCREPANCY, "the mutant's finding decides the exit code, whichever campaign ends first"
    captured = capsys.readouterr()
    assert "2 implementations at a time" in captured.err
    entries = json.loads(report.read_text())["implementations"]
    assert list(entries) == ["loop", mutant.name, "torch-rnncell"], "the report keeps the order asked"
    assert entries["loop"]["verdict"] == "pass" and entries["loop"]["examples"] == 12
    assert entries["torch-rnncell"]["verdict"] == "pass" and entries["torch-rnncell"]["examples"] == 12
    assert entries[mutant.name]["verdict"] == "fail"
    assert (tmp_path / "repros" / f"repro_{mutant.name}.py").exists()
    table = captured.out.splitlines()
    assert [line.split()[0] for line in table[2:5]] == ["loop", mutant.name, "torch-rnncell"], captured.out


def test_concurrent_and_one_at_a_time_find_the_same(tmp_path, monkeypatch):
    mutant = next(m for m in MUTANTS if m.name == "mutant-h-n-direction-major")
    registered(monkeypatch, mutant, implementation("loop"))
    verdicts = {}
    for jobs in ("1", "2"):
        report = tmp_path / f"report-{jobs}.json"
        cli.main([
            "fuzz", "--jobs", jobs, "--max-examples", "60", "--seed", "11", "--report", str(report),
            "--repro-dir", str(tmp_path / f"repros-{jobs}"), "--database", str(tmp_path / f"db-{jobs}"),
        ])
        entries = json.loads(report.read_text())["implementations"]
        verdicts[jobs] = {name: (entry["verdict"], entry["examples_to_failure"], entry["failure"] and entry["failure"]["case"]) for name, entry in entries.items()}
    assert verdicts["1"] == verdicts["2"], "the same seed finds the same first failure and the same minimal case"


def test_slow_paths_run_one_after_another_while_the_quick_ones_fill_the_other_lanes(monkeypatch):
    # Compiled and exported paths pay a one-time setup (Inductor's, the exporter's)
    # per process: two side by side cost both at once on a small machine. One lane
    # takes them in the order asked; the others take the quick ones from the far end.
    import argparse
    import threading

    from harness.local_run import Runs
    from harness.campaign_result import ImplementationResult

    slow = [dataclasses.replace(implementation("loop"), name=f"slow-{index}", example_timeout=60.0) for index in range(2)]
    quick = [dataclasses.replace(implementation("loop"), name=f"quick-{index}") for index in range(6)]
    registry = Registry({record.name: LoadedPlugin(FoundPlugin(record.name, "tests", "0", "tests", entry_point=None), record) for record in slow + quick}, [])
    runs = Runs(argparse.Namespace(max_examples=1, profile="default"), registry, seed=0, location=None, devices=["cpu"])
    lock = threading.Lock()
    running: set[str] = set()
    started: dict[str, list[str]] = {}
    overlaps: list[tuple[str, str]] = []

    def fake_stage(name, progress):
        with lock:
            overlaps.extend((name, other) for other in running if other.startswith("slow") and name.startswith("slow"))
            running.add(name)
            started.setdefault(threading.current_thread().name, []).append(name)
        time.sleep(0.3 if name.startswith("slow") else 0.15)
        with lock:
            running.discard(name)
        runs.results[name] = ImplementationResult.passed(name, 0, "default", examples=1)

    monkeypatch.setattr(runs, "covering", fake_stage)
    monkeypatch.setattr(runs, "_before_random", lambda order, jobs: [])  # the lanes of the covering pass are the ones watched
    names = [record.name for record in quick[:3] + slow + quick[3:]]
    results = runs.campaigns(names, jobs=2)
    assert [result.name for result in results] == names, "reported in the order asked"
    assert not overlaps, "two slow paths ran side by side"
    assert started["rnn-harness-fuzz-0"][:2] == ["slow-0", "slow-1"], "one lane takes the slow paths first, in the order asked"
    assert started["rnn-harness-fuzz-1"][:2] == ["quick-5", "quick-4"], "the other lane starts from the far end"


@pytest.mark.parametrize(("arguments", "message"), [
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--jobs", "2", "--no-isolation"], "--jobs above 1 needs the worker processes"),
])
def test_impossible_jobs_are_usage_errors(arguments, message, capsys):
    assert cli.main(["fuzz", "--impl", "loop", "--max-examples", "1", *arguments]) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_ctrl_c_while_several_run_reports_each_as_interrupted(tmp_path):
    report = tmp_path / "report.json"
    asked = ["loop", "linear", "torch"]
    process = subprocess.Popen(
        [
            sys.executable, "-m", "harness", "fuzz", *(f"--impl={name}" for name in asked),
            "--jobs", "2", "--max-examples", "100000", "--report", str(report), "--database", str(tmp_path / "db"),
        ],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As from a terminal: a test session started in the background (nohup ... &)
        # ignores SIGINT, its children inherit that, and Python then never raises
        # KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # Interrupt once two campaigns have shown progress (a line every 5 s off a terminal).
    deadline = time.time() + 120
    progressing: set[str] = set()
    seen = []
    while len(progressing) < 2 and time.time() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        match = re.match(r"  ([\w-]+): \d+/", line)
        if match:
            progressing.add(match.group(1))
    assert len(progressing) == 2, f"two campaigns should be running at once, saw {progressing}"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == cli.EXIT_OK, out + err
    assert "interrupted: stopping the running examples" in err
    entries = json.loads(report.read_text())["implementations"]
    started = {name for name in asked if f"fuzzing {name} (covering stage)" in "".join(seen) + err}
    assert progressing <= started
    assert list(entries) == [name for name in asked if name in started], "one that never started is not reported, as one at a time"
    for entry in entries.values():
        assert entry["verdict"] == "skipped" and entry["reason"].startswith("interrupted by the user after"), entry
        assert entry["family"] == "RNN", "a stopped campaign still says what it was fuzzing"
        assert entry["examples"] >= 1
        coverage = entry["coverage"]
        assert coverage is not None and 0 < coverage["pairs_covered"] <= coverage["pairs_feasible"], "what it covered by then"
        assert sum(coverage["dimensions"]["layout"].values()) >= 1


# -- what the workers do on their own ------------------------------------------------------


def tf32_flags(**kwargs):
    """A factory that reports the worker's TF32 settings through `Unavailable`."""
    raise Unavailable(f"tf32 matmul={torch.backends.cuda.matmul.allow_tf32} cudnn={torch.backends.cudnn.allow_tf32}")


def test_workers_compute_float32_without_tf32():
    # cuDNN allows TF32 by default; what the parent process sets does not reach a
    # worker forked from the forkserver, so the worker must switch it off itself.
    record = Implementation(name="tf32-flags", factory=tf32_flags)
    with Worker(record, DEFAULT_MODEL, timeout=60) as worker:
        assert worker.request(protocol.Available()) == "tf32 matmul=False cudnn=False"


PRELOADED = """
import sys
from harness import Implementation, Unavailable

def imported_before_the_worker_ran(**kwargs):
    raise Unavailable("imported" if "xml.dom.minidom" in sys.modules else "not imported")

RECORD = Implementation(name="preloading", factory=imported_before_the_worker_ran, preload=("xml.dom.minidom",))
"""

ASK_A_WORKER = """
import sys
sys.path.insert(0, sys.argv[1])
from preloading import RECORD
from harness import protocol
from harness.isolation import Worker
from harness.tolerance import DEFAULT_MODEL
with Worker(RECORD, DEFAULT_MODEL, timeout=60) as worker:
    print(worker.request(protocol.Available()))
"""


def test_what_an_implementation_preloads_its_workers_find_imported(tmp_path):
    # torch.compile's and torch.export's modules take seconds to import; a worker
    # forked from a forkserver that imported them once starts without that cost.
    (tmp_path / "preloading.py").write_text(PRELOADED)
    answer = subprocess.run([sys.executable, "-c", ASK_A_WORKER, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert answer.stdout.strip() == "imported", answer.stdout + answer.stderr


ASK_A_WORKER_OF_AN_EARLY_SERVER = """
import sys
sys.path.insert(0, sys.argv[1])
from harness import forkserver
forkserver.start_early("harness.worker_process:serve", ("torch",))  # as python -m harness fuzz does
early = forkserver._early
from preloading import RECORD
from harness import protocol, worker_process
from harness.isolation import Worker
from harness.tolerance import DEFAULT_MODEL
with Worker(RECORD, DEFAULT_MODEL, timeout=60) as worker:
    print(worker.request(protocol.Available()), worker_process._server is early)
"""


def test_a_worker_server_started_before_torch_is_imported_serves_the_workers_with_their_preloads(tmp_path):
    # `python -m harness fuzz` starts the server first, so that it imports torch while
    # the command does; what the implementations preload is told to it afterwards.
    (tmp_path / "preloading.py").write_text(PRELOADED)
    answer = subprocess.run([sys.executable, "-c", ASK_A_WORKER_OF_AN_EARLY_SERVER, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert answer.stdout.strip() == "imported True", answer.stdout + answer.stderr


def test_python_m_harness_fuzz_starts_the_server_its_workers_fork_from():
    main = (Path(worker_process.__file__).parent / "__main__.py").read_text()
    assert f'forkserver.start_early("{worker_process.SERVE}"' in main


@pytest.mark.parametrize("preload", [("",), (3,)])
def test_preload_holds_module_names(preload):
    with pytest.raises(TypeError, match="preload must hold module names"):
        Implementation(name="x", factory=lambda **kwargs: None, preload=preload)


def test_a_cancelled_campaign_stops_in_the_middle_of_a_long_example(monkeypatch):
    # Ctrl-C reaches only the main thread; the campaigns running beside it are told
    # through an event, and must not wait for a slow example (or a hang's 4x retry).
    import threading

    from faulty import HANGS_WHEN_WIDE
    from harness import isolation
    from harness.campaign import fuzz_implementation

    timeout = 60.0
    # Every hang waits out the full timeout: stopping sooner than that is the event's doing.
    monkeypatch.setattr(isolation, "FIRST_LIMIT_FLOOR", timeout)
    cancel, cancelled = threading.Event(), []
    threading.Timer(3.0, lambda: (cancelled.append(time.perf_counter()), cancel.set())).start()
    with pytest.raises(KeyboardInterrupt):
        fuzz_implementation(HANGS_WHEN_WIDE, profile="default", seed=0, timeout=timeout, repro_dir=None, database_dir=None, cancel=cancel)
    stopped = time.perf_counter() - cancelled[0]
    assert stopped < timeout / 4, f"stopped {stopped:.1f}s after the event: by the event, not by the {timeout:g} s limit of the example running"


# -- the bare command's time budget ------------------------------------------------------------


def test_the_time_budget_stops_each_campaign_before_its_next_example_and_says_so(tmp_path, monkeypatch, capsys):
    """The bare command stays within its two minutes on a slow or loaded machine: past
    the budget, each campaign stops before its next example (never while a failure is
    shrunk), passes on what ran, and the report says what was cut and how to run the
    rest. The long profile's budgets (834 and 1,334 examples) take far longer than 5 s."""
    from faulty import FAULTY

    failing = next(f for f in FAULTY if f.name == "faulty-returns-list")  # fails on every case, the first included
    registered(monkeypatch, implementation("loop"), failing, implementation("torch-rnncell"))
    report = tmp_path / "report.json"
    code = cli.main([
        "fuzz", "--jobs", "3", "--profile", "long", "--time-budget", "5", "--seed", "5", "--report", str(report),
        "--repro-dir", str(tmp_path / "repros"), "--database", str(tmp_path / "db"),
    ])
    assert code == cli.EXIT_DISCREPANCY, "a failure found before the budget ran out is still shrunk and reported"
    entries = json.loads(report.read_text())["implementations"]
    assert entries[failing.name]["verdict"] == "fail" and not entries[failing.name]["cut"], entries[failing.name]
    for name in ("loop", "torch-rnncell"):
        entry = entries[name]
        assert entry["verdict"] == "pass" and 1 <= entry["examples"] < entry["example_budget"], entry
        stopped = (f"after {entry['examples']} of {entry['example_budget']} examples", f"after its covering stage ({entry['examples']} examples")
        assert any(text in entry["cut"] for text in stopped) and "--time-budget 0" in entry["cut"], entry["cut"]
        assert f"fuzz --impl {name} --seed 5 --profile long" in entry["cut"], "the replay command runs the same cases first"
    assert "stopped by the command's time budget (5s, shared among the campaigns)" in capsys.readouterr().out


def test_under_the_time_budget_a_campaign_goes_past_its_share_while_the_rest_can_still_run(tmp_path, monkeypatch):
    """The fair share (the budget over the campaigns not started) is a floor, not a
    cap: the first campaign goes on past it while what is left still holds the
    campaigns after it at their expected pace (`PRIOR_PACE`, then the finished ones'
    mean), and stops when it does not, so the last one still runs. (Cut at its share,
    the head of the bare command's quick lane lost most of its covering set on a quiet
    machine, in a command that ended 40 s inside its budget.)"""
    registered(monkeypatch, implementation("loop"), implementation("torch-rnncell"))
    report = tmp_path / "report.json"
    code = cli.main([
        "fuzz", "--jobs", "1", "--profile", "long", "--time-budget", "20", "--seed", "5", "--report", str(report),
        "--database", str(tmp_path / "db"),
    ])
    assert code == cli.EXIT_OK
    entries = json.loads(report.read_text())["implementations"]
    head, tail = entries["loop"], entries["torch-rnncell"]
    assert head["cut"] and head["seconds"] > 20 * 0.7, f"stopped at {head['seconds']} s: its share was 10 s"
    assert tail["verdict"] == "pass" and tail["examples"] >= 1 and tail["cut"], tail


def test_the_time_budget_applies_to_the_bare_command_only():
    from harness.local_run import TIME_BUDGETS, time_budget

    bare = cli.build_parser().parse_args(["fuzz"])
    assert time_budget(bare) == TIME_BUDGETS["default"]
    for arguments in (["--impl", "loop"], ["--family", "LSTM"], ["--max-examples", "10"], ["--profile", "long"], ["--time-budget", "0"]):
        assert time_budget(cli.build_parser().parse_args(["fuzz", *arguments])) is None, arguments
    assert time_budget(cli.build_parser().parse_args(["fuzz", "--impl", "loop", "--time-budget", "5"])) == 5


def test_a_budget_too_small_for_the_covering_sets_cuts_them_says_so_last_and_exits_3(tmp_path, monkeypatch, capsys):
    """Coverage is the last thing a time budget cuts: the covering stages run past the
    budget up to COVERING_CAP times it. A budget spent before any campaign starts cuts
    each covering set after its first example: each says so, the summary's last line
    names them, and the command exits EXIT_INCOMPLETE, not 0."""
    registered(monkeypatch, implementation("loop"), implementation("torch-rnncell"))
    report = tmp_path / "report.json"
    code = cli.main(["fuzz", "--jobs", "1", "--time-budget", "0.000001", "--seed", "5", "--report", str(report), "--database", str(tmp_path / "db")])
    assert code == cli.EXIT_INCOMPLETE
    entries = json.loads(report.read_text())["implementations"]
    assert list(entries) == ["loop", "torch-rnncell"]
    for name, entry in entries.items():
        assert (entry["verdict"], entry["covering_stage"]) == ("pass", "incomplete"), entry
        assert 1 <= entry["examples"] < entry["coverage"]["covering_cases"] + 100, entry
        assert "(in its covering stage)" in entry["cut"] and f"fuzz --impl {name} --seed 5 --profile default" in entry["cut"], entry["cut"]
        assert "--time-budget 0" in entry["cut"]
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("coverage incomplete: the covering set of loop, torch-rnncell did not finish"), last
