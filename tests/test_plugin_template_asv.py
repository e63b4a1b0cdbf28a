"""examples/plugin-template's asv setup works from a fresh clone, as its README says.

The template is copied into a new git repository and committed; then, with its own
asv.conf.json, ``asv machine --yes`` and ``asv run --quick HEAD^!``: asv makes a
virtualenv (torch 2.13.0 from the local wheel, as in the matrix), builds and
installs the template's wheel, and runs its benchmarks. rnn-harness is not on the
package index, so, as the README tells a plugin author, a wheel of it is built from
this checkout and pip finds it through PIP_FIND_LINKS. Only the latency-bound shape
runs (``--bench latency``): the compute-bound one adds setups of a second or more
each, and this is a check that the suites run and record, not a measurement.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("asv", reason="asv is in the dev extras")
pytest.importorskip("virtualenv", reason="asv makes its environments with virtualenv")

ROOT = Path(__file__).parents[1]
TEMPLATE = ROOT / "examples" / "plugin-template"
IMPLEMENTATIONS = {"my-rnn": "MyRnn", "my-lstm": "MyLstm", "my-grucell": "MyGrucell"}
METHODS = {"Forward": ("time_forward", "peakmem_forward", "track_worst_error"),
           "Backward": ("time_forward_backward", "peakmem_forward_backward", "track_worst_error")}
LATENCY_SHAPE = "latency L50 N1 I32 H32"
GENERATED = (".asv", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", ".pytest_cache", "rnn-harness-repros", "*report*.json")


def run(command: list[str], cwd: Path, environment: dict, timeout: float) -> subprocess.CompletedProcess:
    completed = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, f"{' '.join(command)}: exit {completed.returncode}\n{completed.stdout[-6000:]}\n{completed.stderr[-6000:]}"
    return completed


def rnn_harness_wheel(workspace: Path) -> Path:
    """A wheel of this checkout, built from a copy (setuptools writes build/ beside the source)."""
    source = workspace / "rnn-harness"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in ("harness", "impls"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns(*GENERATED))
    wheels = workspace / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
         "--disable-pip-version-check", "-w", str(wheels), str(source)], workspace, dict(os.environ), timeout=120)
    return wheels


@pytest.fixture(scope="module")
def asv_run(tmp_path_factory):
    workspace = tmp_path_factory.mktemp("template-asv")
    wheels = rnn_harness_wheel(workspace)
    clone = workspace / "my-rnn"
    shutil.copytree(TEMPLATE, clone, ignore=shutil.ignore_patterns(*GENERATED))
    home = workspace / "home"  # asv machine writes ~/.asv-machine.json
    home.mkdir()
    environment = {
        **os.environ,
        "HOME": str(home),
        # pip's cache stays where it was, so nothing is fetched again because HOME moved.
        "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "pip")),
        # As the template's README says: the wheel's folder first, then whatever was configured.
        "PIP_FIND_LINKS": " ".join(filter(None, [str(wheels), os.environ.get("PIP_FIND_LINKS")])),
        # asv looks for python3.X on PATH to make the environment: this one.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    git = ["git", "-c", "user.name=template test", "-c", "user.email=template@example.invalid", "-c", "commit.gpgsign=false"]
    run(["git", "init", "--quiet", "--initial-branch=main"], clone, environment, timeout=60)
    run(["git", "add", "--all"], clone, environment, timeout=60)
    run([*git, "commit", "--quiet", "-m", "my-rnn from the template"], clone, environment, timeout=60)
    run([sys.executable, "-m", "asv", "machine", "--yes"], clone, environment, timeout=60)
    completed = run([sys.executable, "-m", "asv", "run", "--quick", "--show-stderr", "--bench", "latency", "HEAD^!"],
                    clone, environment, timeout=900)
    results = [path for path in (clone / ".asv" / "results").glob("*/*.json") if path.name != "machine.json"]
    assert len(results) == 1, f"one results file for one commit in one environment: {results}\n{completed.stdout[-6000:]}"
    yield {"document": json.loads(results[0].read_text()), "output": completed.stdout, "clone": clone}
    # The environment holds a torch install (about a GB); pytest keeps its last temporary directories.
    shutil.rmtree(clone / ".asv" / "env", ignore_errors=True)


def results_by_parameters(document: dict, benchmark: str) -> dict[tuple, float]:
    """{(implementation, shape, threads): value}: asv stores one value per combination of
    the parameters, in the order of their product, with the parameters as repr()s."""
    columns = document["result_columns"]
    row = dict(zip(columns, document["results"][benchmark]))
    combinations = itertools.product(*([ast.literal_eval(value) for value in values] for values in row["params"]))
    return dict(zip(combinations, row["result"]))


def test_the_environment_is_the_matrix_and_everything_asv_wrote_is_ignored_by_git(asv_run):
    document = asv_run["document"]
    assert document["requirements"]["torch"] == "2.13.0"
    assert "rnn-harness" in document["requirements"], "rnn-harness comes from the matrix, through PIP_FIND_LINKS"
    assert document["env_vars"] == {"OMP_NUM_THREADS": "1"}
    clone = asv_run["clone"]
    assert (clone / ".asv" / "env").is_dir() and (clone / ".asv" / "results").is_dir()
    status = subprocess.run(["git", "status", "--porcelain", "--ignored=no"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == "", f"the template's .gitignore should cover what asv and the build left:\n{status.stdout}"


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_every_benchmark_recorded_the_implementation_and_torch(asv_run, implementation):
    document = asv_run["document"]
    for mode, methods in METHODS.items():
        for method in methods:
            benchmark = f"benchmarks.{IMPLEMENTATIONS[implementation]}{mode}.{method}"
            assert benchmark in document["results"], f"{benchmark} did not run:\n{asv_run['output'][-6000:]}"
            values = results_by_parameters(document, benchmark)
            for name in (implementation, "torch"):
                value = values[(name, LATENCY_SHAPE, 1)]
                assert value is not None and math.isfinite(value), f"{benchmark}({name!r}, {LATENCY_SHAPE!r}, 1) recorded {value}"
                if method == "track_worst_error":
                    assert 0 <= value < 1e-4, f"{benchmark}({name!r}): worst error {value} against float64"
                else:
                    assert value > 0, f"{benchmark}({name!r}): {value}"
