"""Campaigns on a real Dask cluster, and a shared example database.

For this module a real ``dask scheduler`` and two ``dask worker`` processes run on
127.0.0.1 (the second advertises a GPU resource, as a GPU box would), and a real
``redis-server`` when the binary is installed (``.ci/run`` installs it). A wrong
implementation from the mutation catalogue is registered for the workers by a
hand-made ``.dist-info`` on their PYTHONPATH, as an installed plugin would be; the
client finds it the same way. Nothing of Dask or Redis is mocked: workers are killed
with SIGKILL, Ctrl-C is a real SIGINT to a real ``python -m harness fuzz``.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from harness import cli
from harness.campaign import ImplementationResult, fuzz_implementation
from harness.cluster import Outcome, Unit, automatic_shards, merge, shard_seed, split
from harness.database import Location, parse, storage_name
from mutants import MUTANTS
from support.services import dask_cluster, free_port, redis_binary, redis_server
from support.timing import machine_now

pytest_plugins = ["pytester"]

MUTANT = "mutant-h-n-batch-first"  # found after a few examples, but not by the first one
FINDING_SEED = 1  # any seed finds it: the first shard's covering cases hold batch_first with several layers
OTHER_SEED = 99  # its first example passes: only the database can make it fail at #1
TESTS = Path(__file__).resolve().parent
RUN_LIMIT = 240  # seconds any one campaign here may take before the test calls it hung

PLUGIN = {
    "rnn_harness_cluster_mutant-0.0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: rnn-harness-cluster-mutant\nVersion: 0.0.1\n",
    "rnn_harness_cluster_mutant-0.0.1.dist-info/entry_points.txt": textwrap.dedent(f"""\
        [rnn_harness.impls]
        {MUTANT} = cluster_mutant:IMPLEMENTATION
        faulty-aborts = cluster_mutant:ABORTS
        """),
    "cluster_mutant.py": textwrap.dedent(f'''\
        """{MUTANT} from the mutation catalogue, and a plugin that calls abort(),
        registered like installed plugins."""
        from faulty import FAULTY
        from mutants import MUTANTS

        IMPLEMENTATION = next(mutant for mutant in MUTANTS if mutant.name == "{MUTANT}")
        ABORTS = next(faulty for faulty in FAULTY if faulty.name == "faulty-aborts")
        '''),
}


def write_files(directory: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_text(text)
    return directory


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    return write_files(tmp_path_factory.mktemp("cluster-plugin"), PLUGIN)


def service_environment(plugin_dir: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment.pop("HYPOTHESIS_PROFILE", None)
    environment["PYTHONPATH"] = os.pathsep.join([str(plugin_dir), str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])])
    # Workers started the default way: under a nanny, so each is a daemon process
    # (test_workers_are_daemons_as_dask_starts_them), which multiprocessing forbids to have children.
    environment.pop("DASK_DISTRIBUTED__WORKER__DAEMON", None)
    environment.update(OMP_NUM_THREADS="1", RNN_HARNESS_WORKER_THREADS="1")
    return environment


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, plugin_dir):
    directory = tmp_path_factory.mktemp("dask")
    with dask_cluster(directory, [[], ["--resources", "GPU=1"]], service_environment(plugin_dir)) as running:
        yield running


@pytest.fixture
def registered(monkeypatch, plugin_dir):
    """The client (this process) sees the mutant's .dist-info as the workers do."""
    monkeypatch.syspath_prepend(str(plugin_dir))


def fuzz(*arguments: str) -> int:
    """``python -m harness fuzz ARGUMENTS`` in this process, bounded in time."""
    outcome: dict = {}

    def target():
        try:
            outcome["code"] = cli.main(["fuzz", *arguments])
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = error

    runner = threading.Thread(target=target, daemon=True)
    runner.start()
    runner.join(RUN_LIMIT)
    assert not runner.is_alive(), f"python -m harness fuzz {' '.join(arguments)} still runs after {RUN_LIMIT}s: a hung run"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["code"]


def entries(report: Path) -> dict[str, dict]:
    return json.loads(report.read_text())["implementations"]


# -- one cluster run, read by the tests below ---------------------------------------------------


@pytest.fixture(scope="module")
def cluster_run(cluster, plugin_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("cluster-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(plugin_dir))
        code = fuzz(
            "--scheduler", cluster.address, "--impl", "loop", "--impl", MUTANT, "--impl", "faulty-aborts", "--device", "cpu",
            "--max-examples", "80", "--shards", "2", "--seed", str(FINDING_SEED),
            "--report", str(directory / "report.json"), "--repro-dir", str(directory / "repros"),
            "--database", str(directory / "database"),
        )
    return code, directory


def _is_daemon() -> bool:
    import multiprocessing

    return multiprocessing.current_process().daemon


def test_workers_are_daemons_as_dask_starts_them(cluster_run, cluster):
    """The campaign above ran, isolated, on workers that multiprocessing would not let
    start a child: the isolating processes come from a subprocess server instead."""
    daemons = cluster.client.run(_is_daemon)
    assert daemons and all(daemons.values()), f"expected every dask worker under its nanny to be a daemon process: {daemons}"


def test_a_cluster_run_exits_as_a_local_run_does(cluster_run, cluster):
    code, _ = cluster_run
    assert code == cli.EXIT_DISCREPANCY, f"one implementation is wrong, so exit 1; got {code}\n{cluster.logs()}"


def test_shards_are_merged_into_one_report_entry_that_names_the_workers(cluster_run, cluster):
    _, directory = cluster_run
    loop = entries(directory / "report.json")["loop"]
    local_keys = set(ImplementationResult.passed("x", 0, "default").to_json())
    assert local_keys <= set(loop), f"a cluster entry has every key of a local one; missing {local_keys - set(loop)}"
    # 80 examples, and the covering phase's invalid inputs on top, in the first shard only.
    assert (loop["verdict"], loop["examples"], loop["family"]) == ("pass", 80 + loop["coverage"]["invalid_input_cases"], "RNN"), f"loop: {loop}"
    assert loop["coverage"]["pairs_covered"] == loop["coverage"]["pairs_feasible"], loop["coverage"]
    shards = loop["shards"]
    assert [(s["shard"], s["seed"], s["max_examples"], s["verdict"]) for s in shards] == [
        (0, FINDING_SEED, 40, "pass"), (1, shard_seed(FINDING_SEED, 1), 40, "pass")
    ], f"two seed shards of 40 examples, the first on the campaign's seed: {shards}"
    assert sum(s["examples"] for s in shards) == loop["examples"]
    live = set(cluster.workers())
    assert {s["worker"] for s in shards} <= live and set(loop["workers"]) == {s["worker"] for s in shards}, (
        f"each shard names the worker that ran it ({[s['worker'] for s in shards]}); workers: {live}"
    )
    assert loop["worker"] in loop["workers"]


def test_a_failure_found_on_the_cluster_comes_back_with_its_repro(cluster_run):
    _, directory = cluster_run
    entry = entries(directory / "report.json")[MUTANT]
    assert entry["verdict"] == "fail" and entry["failure"]["kind"] in ("shape", "value"), entry
    repro = directory / "repros" / f"repro_{MUTANT}.py"
    assert repro.is_file(), "the worker's repro script is written here, where the run was started"
    assert entry["failure"]["repro"] == str(repro) and f"repro: python {repro}" in entry["failure"]["summary"]
    failing = [s for s in entry["shards"] if s["verdict"] == "fail"]
    assert entry["replay"] in [s["replay"] for s in failing], "the replay command reruns the failing shard alone"
    assert f"--seed {failing[0]['seed']} --max-examples 40" in entry["replay"], entry["replay"]
    script = repro.read_text()
    assert "from mutants.hidden_state import FinalStateBatchFirst as candidate_factory" in script or (
        "['mutant-h-n-batch-first'].load().factory" in script  # reached by its entry point, as the worker did
    ), (
        "the script is the worker's, for the mutant"
    )


def test_a_failure_found_on_the_cluster_is_replayed_first_by_a_local_run_with_another_seed(cluster_run, tmp_path):
    _, directory = cluster_run
    mutant = next(m for m in MUTANTS if m.name == MUTANT)
    replayed = fuzz_implementation(mutant, max_examples=1, seed=OTHER_SEED, repro_dir=None, database=directory / "database")
    assert (replayed.verdict, replayed.examples_to_failure) == ("fail", 1), (
        f"the cluster's failure should be the first example of any later run: {replayed.verdict}, {replayed.examples_to_failure}"
    )
    cold = fuzz_implementation(mutant, max_examples=1, seed=OTHER_SEED, repro_dir=None, database=tmp_path / "empty")
    assert cold.verdict == "pass", "without the database the same seed's one example passes: the replay came from it"


def test_a_candidate_that_aborts_is_a_finding_and_the_dask_worker_survives(cluster_run, cluster):
    _, directory = cluster_run
    entry = entries(directory / "report.json")["faulty-aborts"]
    assert (entry["verdict"], entry["failure"]["kind"]) == ("fail", "crash"), f"isolation works inside a dask worker: {entry}"
    assert entry["worker_deaths"] == [] and set(entry["workers"]) <= set(cluster.workers()), (
        f"abort() killed the isolation process, not the dask worker: {entry['worker_deaths']}"
    )


# -- where units run ----------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a GPU worker without CUDA")
def test_a_cuda_unit_asks_for_a_gpu_worker(cluster, tmp_path):
    report = tmp_path / "report.json"
    code = fuzz("--scheduler", cluster.address, "--impl", "loop", "--device", "cuda", "--max-examples", "5", "--report", str(report))
    gpu_workers = [address for address, state in cluster.workers().items() if state["resources"].get("GPU")]
    entry = entries(report)["loop"]
    assert code == cli.EXIT_DISCREPANCY and entry["verdict"] == "error", entry
    assert entry["worker"] in gpu_workers, f"the cuda unit ran on {entry['worker']}, not on the GPU worker {gpu_workers}"
    assert "offers a GPU resource, but torch.cuda.is_available() is False there" in entry["reason"], entry["reason"]


# -- bad input: exit 2 before any work ----------------------------------------------------------


def closed_port_address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    "arguments, message",
    [
        (lambda cluster: ["--scheduler", closed_port_address()], "cannot reach the dask scheduler at tcp://127.0.0.1:"),
        (lambda cluster: ["--scheduler", cluster.address, "--database", "s3://bucket/examples"],
         "database URL scheme 's3://' is not supported; expected a directory path, or redis://HOST:PORT/DB"),
        (lambda cluster: ["--database", f"redis://127.0.0.1:{free_port()}/0"], "cannot reach the example database at redis://127.0.0.1:"),
        (lambda cluster: ["--database", "redis://127.0.0.1/0"], "is incomplete; expected redis://HOST:PORT/DB"),
        (lambda cluster: ["--shards", "2"], "--shards splits campaigns over a cluster's workers; give --scheduler"),
        (lambda cluster: ["--scheduler", cluster.address, "--shards", "0"], "--shards must be between 1 and the campaign's 3 examples"),
    ],
    ids=["unreachable scheduler", "unknown database scheme", "unreachable redis", "redis URL without port", "shards without scheduler", "zero shards"],
)
def test_bad_input_is_one_line_and_exit_2(arguments, message, cluster, capsys, tmp_path):
    # No campaign runs: 30 s at most on a quiet machine (4.6 s measured at load 10), a
    # hundred fresh workers' first calls on a slower one.
    limit = max(30.0, 100 * machine_now().cold_check)
    started = time.monotonic()
    code = fuzz("--impl", "loop", "--max-examples", "3", "--report", str(tmp_path / "report.json"), *arguments(cluster))
    error = capsys.readouterr().err
    assert code == cli.EXIT_USAGE, f"exit {code}, expected 2:\n{error}"
    assert message in error, f"expected {message!r} in:\n{error}"
    assert len(error.strip().splitlines()) == 1, f"one line, not:\n{error}"
    assert not (tmp_path / "report.json").exists(), "no work, no report"
    assert time.monotonic() - started < limit


def test_an_implementation_missing_on_a_worker_is_a_usage_error(cluster, monkeypatch, tmp_path, capsys):
    only_here = write_files(tmp_path / "only-here", {
        "only_here-0.0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: only-here\nVersion: 0.0.1\n",
        "only_here-0.0.1.dist-info/entry_points.txt": "[rnn_harness.impls]\nonly-here = only_here:IMPLEMENTATION\n",
        "only_here.py": "from harness import Implementation\nfrom impls.loop import LoopRNN\n\nIMPLEMENTATION = Implementation(name='only-here', factory=LoopRNN)\n",
    })
    monkeypatch.syspath_prepend(str(only_here))
    code = fuzz("--scheduler", cluster.address, "--impl", "only-here", "--max-examples", "3")
    error = capsys.readouterr().err
    assert code == cli.EXIT_USAGE, error
    assert "implementation 'only-here' is not installed here" in error and "worker tcp://127.0.0.1:" in error, error


def test_without_scheduler_neither_dask_nor_redis_is_imported(tmp_path):
    probe = textwrap.dedent("""\
        import sys
        from harness import cli
        code = cli.main(["fuzz", "--impl", "loop", "--max-examples", "1", "--no-isolation", "--repro-dir", "repros"])
        heavy = sorted(name for name in ("dask", "distributed", "redis") if name in sys.modules)
        print("exit", code, "imported", heavy)
        """)
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=RUN_LIMIT, cwd=tmp_path)
    assert "exit 0 imported []" in completed.stdout, completed.stdout + completed.stderr


# -- a shared Redis database ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    if redis_binary() is None:
        pytest.skip("redis-server is not installed (Debian/Ubuntu: apt-get install redis-server; .ci/run installs it)")
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


REPLAYING_TEST = textwrap.dedent(f'''\
    from mutants import MUTANTS


    def test_replays_the_stored_failure_first(rnn_harness_fuzz):
        rnn_harness_fuzz(next(m for m in MUTANTS if m.name == "{MUTANT}"))
    ''')


def test_a_failure_in_redis_is_replayed_first_by_cluster_and_pytest_runs_with_another_seed(redis_url, cluster, registered, tmp_path, pytester):
    mutant = next(m for m in MUTANTS if m.name == MUTANT)
    found = fuzz_implementation(mutant, max_examples=200, seed=FINDING_SEED, repro_dir=None, database=f"{redis_url}/0")
    assert found.verdict == "fail", "a local run finds the mutant and stores the failure in Redis"

    cold, warm = tmp_path / "cold.json", tmp_path / "warm.json"
    common = ["--scheduler", cluster.address, "--impl", MUTANT, "--device", "cpu", "--max-examples", "1", "--seed", str(OTHER_SEED)]
    assert fuzz(*common, "--database", f"{redis_url}/1", "--report", str(cold)) == cli.EXIT_OK, "an empty Redis database: the seed's one example passes"
    assert fuzz(*common, "--database", f"{redis_url}/0", "--report", str(warm)) == cli.EXIT_DISCREPANCY
    entry = entries(warm)[MUTANT]
    assert (entry["verdict"], entry["examples_to_failure"]) == ("fail", 1), f"the cluster replays the stored failure first: {entry}"

    pytester.makepyfile(test_replay=REPLAYING_TEST)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--rnn-database", f"{redis_url}/0", "--rnn-seed", str(OTHER_SEED), "--rnn-max-examples", "1",
        "--rnn-repro-dir", str(tmp_path / "repros"),
    )
    result.assert_outcomes(failed=1)
    assert f"=== {MUTANT}: FAIL (first failing example: #1" in result.stdout.str(), result.stdout.str()


# -- workers that die, and Ctrl-C ---------------------------------------------------------------


def fuzz_while(action, *arguments: str) -> int:
    """Run `fuzz` in this thread and `action` beside it; either failing fails the test."""
    failure: list[BaseException] = []

    def guarded():
        try:
            action()
        except BaseException as error:  # noqa: BLE001
            failure.append(error)

    beside = threading.Thread(target=guarded, daemon=True)
    beside.start()
    code = fuzz(*arguments)
    beside.join(60)
    if failure:
        raise failure[0]
    return code


def test_ctrl_c_cancels_the_units_on_the_cluster_and_reports(cluster, tmp_path):
    report = tmp_path / "report.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "fuzz", "--scheduler", cluster.address, "--impl", "loop", "--device", "cpu",
         "--max-examples", "5000", "--shards", "2", "--report", str(report)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + RUN_LIMIT
        while sum(len(stacks) for stacks in cluster.client.call_stack().values()) < 2:
            assert time.monotonic() < deadline and process.poll() is None, "both shards should start running"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == cli.EXIT_OK, f"exit {process.returncode}: interrupted units are skipped, as locally\n{output}"
    assert "interrupted: reporting what finished" in output and "SKIPPED" in output, output
    assert entries(report)["loop"]["verdict"] == "skipped"
    # Each worker stops its unit before the next example: 20 s at most on a quiet machine,
    # sixty fresh workers' first calls on a slower one.
    deadline = time.monotonic() + max(20.0, 60 * machine_now().cold_check)
    while any(cluster.client.call_stack().values()):
        assert time.monotonic() < deadline, f"the workers still run the cancelled units: {cluster.client.call_stack()}"
        time.sleep(0.2)


def test_a_worker_killed_mid_unit_is_reported_and_the_unit_runs_once_more(cluster, tmp_path):
    cluster.wait_for_workers(2)
    killed = []

    def kill_the_worker_running_it():
        worker = cluster.worker_running("rnn-harness-", timeout=RUN_LIMIT)
        time.sleep(1.0)  # well inside the unit: loop takes longer than this for 60 examples
        cluster.kill_worker(worker)
        killed.append(worker)

    report = tmp_path / "report.json"
    code = fuzz_while(kill_the_worker_running_it, "--scheduler", cluster.address, "--impl", "loop", "--device", "cpu", "--max-examples", "60", "--seed", "3", "--report", str(report))
    entry = entries(report)["loop"]
    # 60 examples, the covering cases among them, and the invalid inputs on top.
    examples = 60 + entry["coverage"]["invalid_input_cases"]
    assert code == cli.EXIT_OK and entry["verdict"] == "pass" and entry["examples"] == examples, f"{code}: {entry}\n{cluster.logs()}"
    (shard,) = entry["shards"]
    assert shard["worker_deaths"] == killed and shard["attempts"] == 2, f"the death is reported for the unit: {shard}"
    assert shard["worker"] != killed[0], "the second attempt ran on another worker"


def test_a_unit_whose_worker_dies_twice_is_an_error_not_a_hang(cluster, tmp_path):
    cluster.wait_for_workers(2)
    killed = []

    def kill_each_worker_that_runs_it():
        for _ in range(2):
            worker = cluster.worker_running("rnn-harness-", timeout=RUN_LIMIT, besides=tuple(killed))
            time.sleep(1.0)
            cluster.kill_worker(worker)
            killed.append(worker)

    report = tmp_path / "report.json"
    code = fuzz_while(kill_each_worker_that_runs_it, "--scheduler", cluster.address, "--impl", "loop", "--device", "cpu", "--max-examples", "60", "--report", str(report))
    entry = entries(report)["loop"]
    assert code == cli.EXIT_DISCREPANCY and entry["verdict"] == "error", f"{code}: {entry}"
    assert f"died 2 times ({', '.join(killed)}); it is not retried again" in entry["reason"], entry["reason"]
    assert entry["shards"][0]["worker_deaths"] == killed


# -- the pieces, without a cluster -----------------------------------------------------------------


def test_examples_split_into_shards_of_nearly_equal_size():
    assert split(5000, 3) == [1667, 1667, 1666] and sum(split(41, 4)) == 41
    assert shard_seed(7, 0) == 7 and len({shard_seed(7, shard) for shard in range(8)}) == 8
    assert shard_seed(7, 3) == shard_seed(7, 3), "shard seeds are a function of the campaign's seed"


@pytest.mark.parametrize(
    "total, threads, units, expected",
    [(5000, 2, 1, 2), (5000, 16, 1, 16), (5000, 64, 1, 20), (300, 2, 1, 1), (5000, 2, 6, 1), (100, 8, 1, 1)],
)
def test_automatic_shards_fill_the_threads_but_stay_large(total, threads, units, expected):
    assert automatic_shards(total, threads, units) == expected


def test_database_locations():
    assert parse(".hypothesis/rnn-harness") == Location("directory", ".hypothesis/rnn-harness")
    assert parse("redis://user:secret@db.example:6380/2") == Location("redis", "redis://user:secret@db.example:6380/2")
    assert Location("directory", "relative").absolute().target == str(Path.cwd() / "relative")
    assert storage_name("my rnn", ["cpu"]) == "my_rnn", "CPU-only campaigns keep the per-implementation name"
    assert storage_name("my rnn", ["cuda", "cpu"]) == "my_rnn@cpu+cuda"


def outcome(unit: Unit, verdict: str, examples: int, *, failure=None, started=0.0, finished=1.0, worker="tcp://w:1") -> Outcome:
    result = ImplementationResult(
        name=unit.name, verdict=verdict, examples=examples, seconds=finished - started, seed=unit.seed, profile=unit.profile,
        failure=failure, known_failure_cases={"r": 1},
    )
    return Outcome(unit, result, worker, started, finished)


def test_merging_units_fail_beats_error_beats_pass_and_the_smallest_failure_is_kept():
    from harness.campaign_result import Failure
    from harness.cases import Case

    units = [Unit("x", "cpu", shard, 3, shard_seed(5, shard), 10, "default", 30.0, True, None, "run") for shard in range(3)]
    big = Failure("value", "output", "big", Case(seq_len=9, batch=4), None)
    small = Failure("value", "output", "small", Case(seq_len=1, batch=1), None)
    merged = merge("x", [
        outcome(units[0], "fail", 4, failure=big, started=10, finished=13),
        outcome(units[1], "error", 2, started=11, finished=12),
        outcome(units[2], "fail", 7, failure=small, started=12, finished=20, worker="tcp://w:2"),
    ], [], seed=5, profile="default", repro_dir=None, replay="")
    assert (merged.verdict, merged.failure.summary, merged.worker) == ("fail", "small", "tcp://w:2")
    assert (merged.examples, merged.seconds, merged.known_failure_cases) == (13, 10, {"r": 3})
    assert merged.replay_command() == units[2].replay_command()
    passed = merge("x", [outcome(units[0], "pass", 3), outcome(units[1], "skipped", 0)], [units[2]], seed=5, profile="default", repro_dir=None, replay="")
    assert passed.verdict == "skipped" and "interrupted by the user: 2 of 3 units finished" in passed.reason


def test_a_unit_pickles_by_value():
    unit = Unit("loop", "cuda", 1, 4, 123, 1250, "long", 30.0, True, Location("redis", "redis://127.0.0.1:6379/0"), "abc")
    assert pickle.loads(pickle.dumps(unit)) == unit
    assert unit.replay_command() == "python -m harness fuzz --impl loop --device cuda --seed 123 --max-examples 1250 --profile long"
