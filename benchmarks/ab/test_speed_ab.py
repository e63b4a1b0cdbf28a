"""Quick A/B timing while developing: pytest-benchmark, one benchmark per implementation.

Grouped by shape and mode, so each group's table compares the implementations
directly. Not part of the normal test run (testpaths is tests/); run it with

    python -m pytest benchmarks/ --benchmark-only
    python -m pytest benchmarks/ --benchmark-only --benchmark-autosave
    python -m pytest benchmarks/ --benchmark-only --benchmark-compare

This directory has no __init__.py on purpose: asv imports every module of the
benchmarks package, and pytest is not installed in asv's environments.
"""

import pytest
import torch

from harness.bench import COMPUTE_BOUND, LATENCY_BOUND
from harness.registry import discover
from harness.bench.workload import MODE_TITLES, MODES, UnsupportedCase, build_workload

SHAPES = {"latency": LATENCY_BOUND, "compute": COMPUTE_BOUND}
THREADS = 1


def pytest_generate_tests(metafunc):
    # Installed implementations, found when the tests are collected rather than
    # when this module is imported.
    if "implementation_name" in metafunc.fixturenames:
        metafunc.parametrize("implementation_name", discover().names)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape_key", SHAPES)
def test_speed(benchmark, implementation_name, shape_key, mode):
    shape = SHAPES[shape_key]
    benchmark.group = f"{shape_key} {shape.label} {MODE_TITLES[mode]}, {THREADS} thread"
    benchmark.extra_info["threads"] = THREADS
    try:
        workload = build_workload(discover().implementation(implementation_name), shape, mode)
    except UnsupportedCase as reason:
        pytest.skip(str(reason))
    benchmark(workload)
