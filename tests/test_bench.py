"""`python -m harness bench` and the asv suites' setup, on grids small enough for CI."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness import bench, discover
from harness.bench.workload import Shape, UnsupportedCase, build_workload, worst_error

TINY = ["--shape", "4,2,3,5", "--shape", "8,2,3,5", "--shape", "4,2,6,6"]
FAST = ["--rounds", "1", "--min-run-time", "0.001", "--matmul-size", "64"]


def run_bench(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(argv)
    registry = discover()
    return bench.run_command(args, registry, args.impl or registry.names)


def test_bench_prints_the_table_and_writes_json_and_plot(tmp_path, capsys):
    json_path, plot_path = tmp_path / "bench.json", tmp_path / "bench.png"
    code = run_bench([*TINY, *FAST, "--impl", "vectorized", "--impl", "loop", "--json", str(json_path), "--plot", str(plot_path)])
    assert code == 0
    captured = capsys.readouterr()
    assert "[1/6] RNN L4 N2 I3 H5 forward" in captured.err, "progress goes to stderr"
    table = captured.out
    for text in ("vs torch", "GFLOP/s", "of matmul", "L8 N2 I3 H5", "forward+backward", "vectorized", "loop"):
        assert text in table, f"{text!r} missing from the table:\n{table}"

    document = json.loads(json_path.read_text())
    assert document["machine"]["threads"] == 1
    rows = document["results"]
    assert {row["implementation"] for row in rows} == {"torch", "vectorized", "loop"}, "torch is always the baseline"
    assert {row["family"] for row in rows} == {"RNN"}
    assert len(rows) == 3 * 3 * 2
    for row in rows:
        assert row["median_seconds"] > 0 and row["gflops"] > 0 and row["roofline_gflops"] > 0
        if row["implementation"] == "torch":
            assert row["ratio_to_torch"] == 1.0
    assert plot_path.read_bytes().startswith(b"\x89PNG"), "the plot is a PNG file"


def test_bench_times_each_family_against_its_own_torch_module(tmp_path, capsys):
    json_path = tmp_path / "bench.json"
    code = run_bench([*TINY[:2], *FAST, "--family", "LSTM", "--family", "GRU", "--impl", "vectorized-lstm", "--impl", "loop-gru", "--json", str(json_path)])
    assert code == 0
    rows = json.loads(json_path.read_text())["results"]
    by_family = {family: {row["implementation"] for row in rows if row["family"] == family} for family in ("LSTM", "GRU")}
    assert by_family == {"LSTM": {"torch-lstm", "vectorized-lstm"}, "GRU": {"torch-gru", "loop-gru"}}
    for row in rows:
        if row["implementation"].startswith("torch"):
            assert row["ratio_to_torch"] == 1.0
    lstm, gru = (next(r for r in rows if r["implementation"] == name and r["mode"] == "forward" and r["shape"]["steps"] == 4)
                 for name in ("torch-lstm", "torch-gru"))
    # The FLOP count scales with the gate blocks (LSTM 4, GRU 3) of the same shape.
    assert lstm["gflops"] * lstm["median_seconds"] / (gru["gflops"] * gru["median_seconds"]) == pytest.approx(4 / 3)
    assert "torch-lstm" in capsys.readouterr().out


def test_an_implementation_that_raises_is_reported_and_the_others_are_timed():
    """A path that cannot run a shape (compiled-lstm's first call raises TypeError with
    grad mode on, docs/found-bugs.md) is named with its error; the bench goes on."""

    class Raises(torch.nn.RNN):
        def forward(self, input, hx=None):
            raise TypeError("expected Tensor() for op")

    installed = discover()
    broken = dataclasses.replace(installed.implementation("loop"), name="raises", factory=Raises)

    class WithBroken:
        def implementation(self, name):
            return broken if name == "raises" else installed.implementation(name)

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(FAST)
    results, skipped = bench.measure(WithBroken(), ["torch", "raises"], [Shape(4, 2, 3, 5)], ["forward"], args)
    assert [row.implementation for row in results] == ["torch"]
    assert [(name, reason) for name, _, _, reason in skipped] == [("raises", "failed: its first call raised TypeError: expected Tensor() for op")]


def test_bench_family_defaults_to_the_families_of_the_named_implementations(capsys):
    assert run_bench([*TINY[:2], *FAST, "--mode", "forward", "--impl", "vectorized-gru"]) == 0
    table = capsys.readouterr().out
    assert "torch-gru" in table and "torch-lstm" not in table and "\nRNN " not in table


def test_bench_times_a_cell_looped_over_the_steps_against_torchs_cell(tmp_path):
    json_path = tmp_path / "bench.json"
    code = run_bench([*TINY[:4], "--shape", "4,2,3,5,layers=2", *FAST, "--impl", "loop-grucell", "--json", str(json_path)])
    assert code == 0
    document = json.loads(json_path.read_text())
    rows = document["results"]
    assert {(row["family"], row["implementation"]) for row in rows} == {("GRUCell", "torch-grucell"), ("GRUCell", "loop-grucell")}
    assert len(rows) == 2 * 2 * 2, "two implementations x the two one-layer shapes x two modes"
    for row in rows:
        assert row["median_seconds"] > 0 and row["gflops"] > 0
    skipped = document["skipped"]
    assert {(row["implementation"], row["shape"], row["mode"]) for row in skipped} == {
        (name, "L4 N2 I3 H5 layers2", mode) for name in ("torch-grucell", "loop-grucell") for mode in ("forward", "backward")}
    assert all("one layer in one direction" in row["reason"] for row in skipped)


def test_the_bench_command_takes_a_cell_and_a_cell_family():
    from harness import cli

    assert cli.main(["bench", "--impl", "loop-grucell", "--mode", "forward", *TINY[:2], *FAST]) == cli.EXIT_OK
    assert cli.main(["bench", "--family", "LSTMCell", "--impl", "linear-lstmcell", "--mode", "forward", *TINY[:2], *FAST]) == cli.EXIT_OK
    assert set(bench.BENCH_FAMILIES) == {"RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"}


def test_bench_rejects_an_implementation_outside_the_named_family():
    from harness.cli import UsageError

    with pytest.raises(UsageError, match="not in --family LSTM"):
        run_bench([*TINY[:2], *FAST, "--family", "LSTM", "--impl", "vectorized-gru"])


def test_bench_can_time_with_the_process_cpu_clock(tmp_path, capsys):
    json_path = tmp_path / "bench.json"
    assert run_bench([*TINY[:2], *FAST, "--mode", "forward", "--impl", "vectorized", "--clock", "cpu", "--json", str(json_path)]) == 0
    assert "CPU time" in capsys.readouterr().out
    document = json.loads(json_path.read_text())
    assert document["machine"]["clock"] == "cpu"
    assert all(row["median_seconds"] > 0 for row in document["results"])


def test_bench_cpu_clock_needs_one_thread():
    from harness.cli import UsageError

    with pytest.raises(UsageError, match="--threads 1"):
        run_bench([*TINY[:2], *FAST, "--clock", "cpu", "--threads", "2"])


def test_bench_rejects_a_plot_path_that_is_not_png(tmp_path):
    from harness.cli import UsageError

    with pytest.raises(UsageError, match="ending in .png"):
        run_bench([*TINY, *FAST, "--plot", str(tmp_path / "plot.jpg")])


@pytest.mark.parametrize("text", ["50,1,32", "50,1,32,0", "a,b,c,d", "50,1,32,32,sideways"])
def test_malformed_shapes_are_usage_errors(text):
    with pytest.raises(argparse.ArgumentTypeError, match="L,N,I,H"):
        bench.parse_shape(text)


def test_shape_options_parse():
    assert bench.parse_shape("50,1,32,32,layers=2,bidir") == Shape(50, 1, 32, 32, num_layers=2, bidirectional=True)


def test_flop_count_of_one_layer():
    shape = Shape(steps=10, batch=2, input_size=3, hidden_size=4)
    forward = 2 * 10 * 2 * (3 * 4 + 4 * 4)
    assert shape.flops("forward") == forward
    # weight gradients (= forward) + gradient through h (2·L·N·H·H); no input gradient
    assert shape.flops("backward") == forward + forward + 2 * 10 * 2 * 4 * 4
    # LSTM: four gate blocks, every product four times as wide
    assert shape.flops("backward", gates=4) == 4 * shape.flops("backward")


@pytest.mark.skipif(importlib.util.find_spec("harness.campaign") is None, reason="harness.campaign (the fuzz command) is not in this checkout yet")
def test_the_command_line_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "harness", "bench", "--impl", "vectorized", "--mode", "forward", *TINY[:2], *FAST],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "vectorized" in result.stdout


def test_workload_skips_unsupported_cases():
    limited = dataclasses.replace(discover().implementation("vectorized"), bidirectional=False)
    with pytest.raises(UnsupportedCase, match="bidirectional not supported"):
        build_workload(limited, Shape(3, 1, 2, 2, bidirectional=True), "forward")


def test_worst_error_is_small_for_a_correct_implementation_and_large_for_a_wrong_one():
    shape = Shape(6, 2, 3, 5)
    for name in ("vectorized", "linear", "vectorized-lstm", "vectorized-gru"):  # linear keeps its parameters under other attribute names
        assert worst_error(discover().implementation(name), shape, "backward") < 1e-5
    wrong = dataclasses.replace(discover().implementation("torch"), factory=lambda **kw: torch.nn.RNN(**kw, nonlinearity="relu"))
    assert worst_error(wrong, shape, "forward") > 1e-3


def test_worst_error_of_an_lstm_sees_c_n():
    class ForgetsCell(torch.nn.LSTM):
        def forward(self, input, hx=None):
            output, (h_n, c_n) = super().forward(input, hx)
            return output, (h_n, torch.zeros_like(c_n))

    wrong = dataclasses.replace(discover().implementation("torch-lstm"), factory=ForgetsCell)
    assert worst_error(wrong, Shape(6, 2, 3, 5), "forward") > 1e-3


# -- the asv suites -------------------------------------------------------------------

asv_common = pytest.importorskip("benchmarks.common")
full_common = pytest.importorskip("benchmarks_full.common")
ROOT = Path(__file__).parents[1]


@pytest.fixture
def discovered(monkeypatch):
    """The benchmarks asv finds in a benchmark directory, by name, with asv_runner's
    own discovery, and, as in asv's environment, nothing else of the checkout
    importable: only the directory's own package, through asv's importer."""
    discovery = pytest.importorskip("asv_runner.discovery")
    from asv_runner._aux import update_sys_path

    import harness.bench.asv  # noqa: F401 - installed in asv's environment; imported before the checkout leaves sys.path

    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", ".") and Path(entry).resolve() != ROOT])
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    for name in [name for name in sys.modules if name.split(".")[0] in ("benchmarks", "benchmarks_full")]:
        monkeypatch.delitem(sys.modules, name)

    def discover(benchmark_dir: str) -> dict:
        update_sys_path(str(ROOT / benchmark_dir))  # what asv's runner does before it discovers or runs
        return {benchmark.name: benchmark for benchmark in discovery.disc_benchmarks(str(ROOT / benchmark_dir))}

    return discover


def combinations(benchmarks: dict) -> int:
    return sum(math.prod(len(values) for values in benchmark.params) if benchmark.params else 1 for benchmark in benchmarks.values())


def asv_config(path: str) -> dict:
    """An asv.conf.json as asv reads it: JSON with // comments."""
    return json.loads(re.sub(r"^\s*//.*$", "", (ROOT / path).read_text(), flags=re.MULTILINE))


def test_asv_parameters_are_a_fixed_list_of_builtin_names():
    assert asv_common.IMPLEMENTATIONS[0] == full_common.IMPLEMENTATIONS[0] == "torch"
    assert set(asv_common.IMPLEMENTATIONS) == {"torch", "native", "vectorized", "torchscript"}
    assert set(asv_common.IMPLEMENTATIONS) < set(full_common.IMPLEMENTATIONS)
    assert list(asv_common.SHAPES.values()) == [bench.LATENCY_BOUND, bench.COMPUTE_BOUND]
    assert asv_common.SHAPES.items() < full_common.SHAPES.items(), "the default suite's labels are the full suite's"


def test_the_default_suite_times_each_layer_family_at_the_two_target_shapes(discovered):
    found = discovered("benchmarks")
    assert set(found) == {
        f"{module}.{family}{mode}.{method}_{call}"
        for family in ("RNN", "LSTM", "GRU")
        for module, mode, call in (("bench_forward", "Forward", "forward"), ("bench_backward", "Backward", "forward_backward"))
        for method in ("time", "peakmem")
    }
    for benchmark in found.values():
        assert benchmark.params == [
            [repr(name) for name in asv_common.IMPLEMENTATIONS], [repr(label) for label in asv_common.SHAPES], ["1"]]
        if benchmark.name.split(".")[-1].startswith("time_"):
            assert benchmark.timer is time.process_time, "one thread's CPU time: steady on a shared machine"
            assert benchmark.rounds == 4, "four processes each, so one process's state does not decide a comparison"
    assert combinations(found) == 96


def test_the_full_suite_keeps_every_builtin_shape_and_the_worst_error_opt_in(discovered):
    default = discovered("benchmarks")
    found = discovered("benchmarks_full")
    assert combinations(found) == 1021, "six family suites x three methods x 55 parameters, and the fuzzer's 31 (its 15 implementations x isolation, and the README command)"
    assert found["bench_forward.GRUForward.track_worst_error"].params[:2] == [
        [repr(name) for name in full_common.IMPLEMENTATIONS], [repr(label) for label in full_common.SHAPES]]
    assert {"bench_fuzzer.FuzzerThroughput.track_examples_per_second", "bench_fuzz_command.FuzzEverythingRegistered.time_python_m_harness_fuzz"} <= set(found)
    for name, benchmark in default.items():
        assert found[name].code == benchmark.code, f"{name} is the same benchmark in both suites, so their results compare"
        if name.split(".")[-1].startswith("time_"):
            assert (found[name].timer, found[name].rounds) == (benchmark.timer, benchmark.rounds)


def test_the_asv_configurations_launch_by_forkserver_and_keep_the_suites_apart():
    default, full = asv_config("asv.conf.json"), asv_config("asv.full.conf.json")
    assert default["launch_method"] == "forkserver"
    assert (default["benchmark_dir"], full["benchmark_dir"]) == ("benchmarks", "benchmarks_full")
    assert full["results_dir"] != default["results_dir"] and full["html_dir"] != default["html_dir"]
    assert all(path.startswith(".asv/") for config in (default, full) for path in (config["env_dir"], config["results_dir"], config["html_dir"]))
    different = {key for key in default.keys() | full.keys() if default.get(key) != full.get(key)}
    assert different == {"benchmark_dir", "results_dir", "html_dir"}


@pytest.mark.parametrize("suite", [
    f"{package}.{module}.{family}{mode}"
    for package in ("benchmarks", "benchmarks_full")
    for module, mode in (("bench_forward", "Forward"), ("bench_backward", "Backward"))
    for family in ("RNN", "LSTM", "GRU")
])
def test_asv_setup_builds_and_teardown_restores_threads(suite):
    module_name, class_name = suite.rsplit(".", 1)
    suite_class = getattr(importlib.import_module(module_name), class_name)
    shape = next(key for key, value in asv_common.SHAPES.items() if value == bench.LATENCY_BOUND)
    before = torch.get_num_threads()
    benchmark = suite_class()
    benchmark.setup("vectorized", shape, 1)
    assert torch.get_num_threads() == 1
    for name in dir(benchmark):
        if name.startswith(("time_", "peakmem_")):
            getattr(benchmark, name)("vectorized", shape, 1)
    if module_name.startswith("benchmarks_full"):
        assert benchmark.track_worst_error("vectorized", shape, 1) < 1e-4
    else:
        assert not hasattr(benchmark, "track_worst_error"), "the default suite times; the full one also tracks the error"
    benchmark.teardown("vectorized", shape, 1)
    assert torch.get_num_threads() == before


def test_asv_family_suites_share_the_parameters_and_time_their_family():
    from benchmarks.bench_backward import GRUBackward, LSTMBackward, RNNBackward

    assert LSTMBackward.params == GRUBackward.params == RNNBackward.params
    shape = next(key for key, value in asv_common.SHAPES.items() if value == bench.LATENCY_BOUND)
    benchmark = LSTMBackward()
    benchmark.setup("torch", shape, 1)
    try:
        assert isinstance(benchmark.workload.module, torch.nn.LSTM)
        assert benchmark.workload.implementation == "torch-lstm"
    finally:
        benchmark.teardown("torch", shape, 1)


def test_asv_setup_skips_what_is_not_installed():
    from benchmarks.bench_forward import RNNForward

    before = torch.get_num_threads()
    shape = next(iter(asv_common.SHAPES))
    with pytest.raises(NotImplementedError, match="not installed"):
        RNNForward().setup("no-such-implementation", shape, 1)
    assert torch.get_num_threads() == before



@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_bench_on_cuda_without_cuda_is_a_usage_error():
    from harness import cli

    assert cli.main(["bench", "--device", "cuda", "--impl", "loop", "--shape", "2,1,2,2"]) == cli.EXIT_USAGE


def test_a_cell_is_timed_as_a_loop_over_the_sequence_like_torchs_cell():
    shape = Shape(6, 2, 3, 5)
    workload = build_workload(discover().implementation("loop-lstmcell"), shape, "backward")
    workload()
    output, (h, c) = workload.module(workload.input)
    assert (output.shape, h.shape, c.shape) == ((6, 2, 5), (2, 5), (2, 5)), "every step's h, then the final (h, c)"
    for name in ("torch-rnncell", "loop-lstmcell", "linear-grucell"):
        assert worst_error(discover().implementation(name), shape, "backward") < 1e-5


def test_worst_error_of_a_cell_sees_every_step():
    class HalvesTheState(torch.nn.GRUCell):
        def forward(self, input, hx=None):
            return super().forward(input, None if hx is None else hx * 0.5)

    wrong = dataclasses.replace(discover().implementation("torch-grucell"), factory=HalvesTheState)
    assert worst_error(wrong, Shape(6, 2, 3, 5), "forward") > 1e-3


def test_a_cell_skips_shapes_with_layers_or_directions():
    with pytest.raises(UnsupportedCase, match="one layer in one direction"):
        build_workload(discover().implementation("torch-lstmcell"), Shape(3, 1, 2, 2, num_layers=2), "forward")


class _SlowFirstCall(torch.nn.RNN):
    """Stands in for a compiling implementation: the first forward takes 0.3 s more."""

    compiled = False

    def forward(self, input, hx=None):
        if not self.compiled:
            time.sleep(0.3)
            self.compiled = True
        return super().forward(input, hx)


def test_first_call_time_includes_what_the_first_call_compiles():
    """Pinned: it was timed with Timer.timeit(1), whose two warm-up calls hid the compile."""
    from harness import Implementation

    slow = Implementation(name="slow-first-call", factory=_SlowFirstCall)
    workload = build_workload(slow, Shape(4, 2, 3, 5), "forward", warmup_calls=0)
    assert workload.first_call_seconds >= 0.3, f"first call timed as {workload.first_call_seconds:.3f}s"
