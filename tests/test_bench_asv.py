"""harness.bench.asv: the asv suites a plugin makes with one call, found as asv finds them.

The suites are built here on shapes small enough for CI; tests/test_plugin_template.py
runs the template's suites under ``asv run`` itself.
"""

from __future__ import annotations

import math
import sys
import textwrap

import pytest
import torch

from harness.bench import asv
from harness.bench.workload import Shape

SMALL = Shape(6, 2, 3, 5)
TWO_LAYERS = Shape(4, 2, 3, 5, num_layers=2)
FAMILY_OF = {"loop": "RNN", "vectorized-lstm": "LSTM", "loop-grucell": "GRUCell"}
TORCH_OF = {"loop": "torch", "vectorized-lstm": "torch-lstm", "loop-grucell": "torch-grucell"}


@pytest.fixture(scope="module")
def made():
    return asv.suites(*FAMILY_OF, shapes=[SMALL, TWO_LAYERS])


def test_each_implementation_gets_a_forward_and_a_backward_suite_named_for_asv(made):
    assert list(made) == [
        "LoopForward", "LoopBackward", "VectorizedLstmForward", "VectorizedLstmBackward", "LoopGrucellForward", "LoopGrucellBackward",
    ]
    for name, suite in made.items():
        # asv names a benchmark by the class's __name__ and, to run it, looks that name up in the module.
        assert suite.__name__ == suite.__qualname__ == name
        assert issubclass(suite, asv.ForwardSuite if name.endswith("Forward") else asv.BackwardSuite)
    assert made["LoopForward"].params == (["loop", "torch"], [SMALL.label, TWO_LAYERS.label], [1])
    assert made["LoopForward"].param_names == ["implementation", "shape", "threads"]
    assert {method for method in dir(made["LoopBackward"]) if method.startswith(("time_", "peakmem_", "track_"))} == {
        "time_forward_backward", "peakmem_forward_backward", "track_worst_error"}


def test_the_default_shapes_are_the_latency_and_compute_bound_cases():
    from harness.bench import COMPUTE_BOUND, LATENCY_BOUND

    suite = asv.suites("my-rnn")["MyRnnForward"]
    assert list(suite.shapes.values()) == [LATENCY_BOUND, COMPUTE_BOUND]
    assert suite.params[1] == ["latency L50 N1 I32 H32", "compute L100 N32 I256 H256"]


@pytest.mark.parametrize("implementation", list(FAMILY_OF))
@pytest.mark.parametrize("mode", ["Forward", "Backward"])
def test_setup_builds_the_implementation_and_torchs_module_of_its_family(made, implementation, mode):
    suite = made[asv.class_name(implementation) + mode]
    before = torch.get_num_threads()
    for name, expected in ((implementation, implementation), ("torch", TORCH_OF[implementation])):
        benchmark = suite()
        benchmark.setup(name, SMALL.label, 1)
        try:
            assert torch.get_num_threads() == 1
            assert benchmark.workload.implementation == expected
            for method in dir(benchmark):
                if method.startswith(("time_", "peakmem_")):
                    getattr(benchmark, method)(name, SMALL.label, 1)
            error = benchmark.track_worst_error(name, SMALL.label, 1)
            assert math.isfinite(error) and error < 1e-4, f"{expected} {mode}: worst error {error}"
        finally:
            benchmark.teardown(name, SMALL.label, 1)
        assert torch.get_num_threads() == before


def test_torch_against_itself_has_a_small_finite_worst_error():
    suite = asv.suites("torch-lstm", shapes=[SMALL])["TorchLstmBackward"]
    benchmark = suite()
    error = benchmark.track_worst_error("torch", SMALL.label, 1)
    assert 0 < error < 1e-5, "float32 against float64: rounding, and nothing more"


def test_setup_skips_an_implementation_that_is_not_installed_and_its_torch_row():
    suite = asv.suites("no-such-implementation", shapes=[SMALL])["NoSuchImplementationForward"]
    before = torch.get_num_threads()
    with pytest.raises(NotImplementedError, match="'no-such-implementation' is not installed"):
        suite().setup("no-such-implementation", SMALL.label, 1)
    with pytest.raises(NotImplementedError, match="torch's module of its family is unknown"):
        suite().setup("torch", SMALL.label, 1)
    assert torch.get_num_threads() == before, "setup restores the threads when it fails: asv runs no teardown then"


def test_a_cell_skips_a_shape_with_two_layers(made):
    with pytest.raises(NotImplementedError, match="one layer in one direction"):
        made["LoopGrucellForward"]().setup("loop-grucell", TWO_LAYERS.label, 1)


def test_suites_refuses_what_it_cannot_name():
    assert asv.class_name("my-rnn") == "MyRnn" and asv.class_name("fast.rnn_v2") == "FastRnnV2" and asv.class_name("2x") == "Impl2x"
    with pytest.raises(ValueError, match="would both be asv suite MyRnnForward"):
        asv.suites("my-rnn", "my_rnn")
    with pytest.raises(ValueError, match="not an implementation to compare with torch"):
        asv.suites("torch")
    with pytest.raises(ValueError, match="at least one implementation"):
        asv.suites()
    with pytest.raises(TypeError, match="Shape"):
        asv.suites("my-rnn", shapes=[(50, 1, 32, 32)])


def test_asv_discovers_and_finds_the_suites_by_name(tmp_path, monkeypatch):
    """What ``asv run`` does in the benchmark environment, with asv_runner's own functions."""
    discovery = pytest.importorskip("asv_runner.discovery")
    package = "plugin_benchmarks_for_asv_test"
    root = tmp_path / package
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "benchmarks.py").write_text(textwrap.dedent("""
        from harness.bench.asv import suites
        from harness.bench.workload import Shape

        globals().update(suites("loop", "loop-grucell", shapes=[Shape(6, 2, 3, 5)]))
    """))
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    try:
        found = {benchmark.name: benchmark for benchmark in discovery.disc_benchmarks(str(root))}
        assert set(found) == {
            f"benchmarks.{suite}{mode}.{method}"
            for suite in ("Loop", "LoopGrucell")
            for mode, methods in (("Forward", ("time_forward", "peakmem_forward")), ("Backward", ("time_forward_backward", "peakmem_forward_backward")))
            for method in (*methods, "track_worst_error")
        }
        track = found["benchmarks.LoopGrucellForward.track_worst_error"]
        assert track.params == [["'loop-grucell'", "'torch'"], [f"'{SMALL.label}'"], ["1"]]
        assert track.unit == "max abs error vs float64"
        # Running one benchmark, asv imports the module and looks the class up by name.
        by_name = discovery.get_benchmark_from_name(str(root), "benchmarks.LoopGrucellForward.track_worst_error-1")
        assert by_name.name == track.name and by_name._current_params == ("torch", SMALL.label, 1)
    finally:
        for module in [name for name in sys.modules if name.split(".")[0] == package]:
            del sys.modules[module]
