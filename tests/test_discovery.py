"""Implementations are found through installed entry points, as outside plugins are.

The fixture distributions in tests/fixtures/ are installed for real (``pip install
--target`` into a temporary directory, giving a real dist-info with entry points) and
``python -m harness list`` runs in a subprocess that sees them on PYTHONPATH. The
`Implementation` record is unit-tested below.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from torch import nn

from harness import Implementation
from harness.registry import ENTRY_POINT_GROUP

FIXTURES = Path(__file__).parent / "fixtures"
# The built-ins are what our own pyproject.toml registers, through the same group as
# any plugin: one entry point per implementation and family.
BUILTINS = sorted(tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["entry-points"][ENTRY_POINT_GROUP])
EXIT_OK, EXIT_USAGE = 0, 2


# -- installing the fixture distributions -------------------------------------------


def pip_install(fixture: str, workspace: Path) -> Path:
    """Install tests/fixtures/<fixture> into its own directory; return that directory.

    The source is copied first because setuptools writes build/ and egg-info into it.
    """
    source, target = workspace / "src" / fixture, workspace / "site" / fixture
    shutil.copytree(FIXTURES / fixture, source)
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, f"pip install of fixture {fixture} failed:\n{completed.stdout}\n{completed.stderr}"
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """Each fixture distribution installed once for this module, in parallel."""
    workspace = tmp_path_factory.mktemp("plugins")
    fixtures = ["good_plugin", "broken_plugins", "duplicate_plugin", "side_effect_plugins"]
    with ThreadPoolExecutor(len(fixtures)) as pool:
        targets = list(pool.map(lambda fixture: pip_install(fixture, workspace), fixtures))
    return dict(zip(fixtures, targets))


@dataclasses.dataclass(frozen=True)
class ListResult:
    returncode: int
    stdout: str
    stderr: str

    def rows(self) -> dict[str, list[str]]:
        """The table's rows by implementation name: [family, origin, limits, covering
        set, description] (without the empty cells at the end of a broken plugin's)."""
        lines = self.stdout.strip().splitlines()
        rows = {}
        for line in lines[1:]:
            name, *cells = re.split(r"\s{2,}", line.strip(), maxsplit=5)
            rows[name] = cells
        return rows


def harness_in_parallel(scenarios: dict[str, tuple[list[str], list[Path], dict[str, str]]]) -> dict[str, ListResult]:
    """Run ``python -m harness ARGUMENTS`` once per scenario, with that scenario's plugin
    directories on PYTHONPATH and its environment variables; the runs overlap because
    each spends seconds importing torch."""
    processes = {}
    for scenario, (arguments, site_dirs, variables) in scenarios.items():
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, site_dirs)), **variables}
        processes[scenario] = subprocess.Popen(
            [sys.executable, "-m", "harness", *arguments],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
        )
    results = {}
    for scenario, process in processes.items():
        stdout, stderr = process.communicate(timeout=240)
        results[scenario] = ListResult(process.returncode, stdout, stderr)
    return results


IMPORT_TIMEOUT = "3"  # seconds; fixture-sleeps-on-import sleeps for 60


def marks(folder: Path) -> list[str]:
    """The plugins whose import-time code ran, from their marker files."""
    return sorted(path.name.removesuffix(".imported") for path in folder.glob("*.imported"))


@pytest.fixture(scope="module")
def listings(installed, tmp_path_factory) -> dict[str, ListResult]:
    # The good plugin is listed beside the broken ones, one of them an import that
    # sleeps: one run shows both that it is found and that the others do not hide it.
    # The other commands run at the same time, with the same plugins installed.
    everything = [installed["good_plugin"], installed["broken_plugins"], installed["side_effect_plugins"]]
    folders = {name: tmp_path_factory.mktemp(f"marks-{name}") for name in ("list", "fuzz", "bench")}

    def variables(name):
        return {"RNN_HARNESS_FIXTURE_MARKS": str(folders[name]), "RNN_HARNESS_IMPORT_TIMEOUT": IMPORT_TIMEOUT, "OMP_NUM_THREADS": "1"}

    results = harness_in_parallel({
        "good and broken plugins": (["list"], everything, variables("list")),
        "two plugins with one name": (["list"], [installed["good_plugin"], installed["duplicate_plugin"]], {}),
        "fuzz --impl": (["fuzz", "--impl", "fixture-good", "--max-examples", "2", "--seed", "0", "--repro-dir", str(folders["fuzz"])], everything, variables("fuzz")),
        "bench --impl": (["bench", "--impl", "fixture-good", "--shape", "2,1,2,2", "--mode", "forward", "--rounds", "1", "--min-run-time", "0.01", "--matmul-size", "32"], everything, variables("bench")),
    })
    results["marks"] = {name: marks(folder) for name, folder in folders.items()}
    return results


def test_fixture_install_is_a_real_distribution_with_an_entry_point(installed):
    dist_info = installed["good_plugin"] / "rnn_harness_fixture_good-1.2.3.dist-info"
    entry_points = (dist_info / "entry_points.txt").read_text()
    assert f"[{ENTRY_POINT_GROUP}]" in entry_points and "fixture-good" in entry_points, (
        f"{dist_info}/entry_points.txt does not register fixture-good in {ENTRY_POINT_GROUP}:\n{entry_points}"
    )


def test_outside_plugin_is_listed_with_its_distribution_and_version(listings):
    result = listings["good and broken plugins"]
    assert result.returncode == EXIT_OK, f"exit {result.returncode}; stderr:\n{result.stderr}"
    rows = result.rows()
    row = rows.get("fixture-good") or []
    assert row[:3] + row[4:] == ["RNN", "rnn-harness-fixture-good 1.2.3", "dtypes=float32, max_layers=2", "test fixture"], (
        f"row for fixture-good is {row}, but should name its distribution, version, limits and description:\n{result.stdout}"
    )
    # Its covering set, over the space its declarations leave open (one dtype, at most two layers).
    assert re.fullmatch(r"\d+ pairs in \d+ cases \+ \d+ invalid", row[3]), row


def test_builtins_are_listed_beside_it_as_built_in(listings):
    result = listings["good and broken plugins"]
    rows = result.rows()
    assert all(name in rows for name in BUILTINS), f"the built-ins {BUILTINS} should be listed:\n{result.stdout}"
    families = {"lstm": "LSTM", "gru": "GRU", "rnncell": "RNNCell", "lstmcell": "LSTMCell", "grucell": "GRUCell"}
    for name in BUILTINS:
        # one entry point per family: NAME for nn.RNN, NAME-lstm, NAME-gru, NAME-rnncell, ...
        family = families.get(name.rsplit("-", 1)[-1], "RNN")
        assert rows[name][:2] == [family, "built-in"], f"{name}: row {rows[name]}, but should be family {family}, origin built-in"


BROKEN_PLUGINS = {
    # entry point name: what its error must say
    "fixture-import-error": r"importing rnn_harness_fixture_broken\.import_error:IMPLEMENTATION failed: ModuleNotFoundError: .*rnn_harness_fixture_missing_dependency",
    "fixture-not-an-implementation": r"is a type, not a harness\.Implementation",
    "fixture-misnamed": r"named 'fixture-misnamed' but its Implementation is named 'fixture-renamed'",
}


def test_broken_plugins_do_not_stop_the_listing(listings):
    result = listings["good and broken plugins"]
    assert result.returncode == EXIT_OK, f"exit {result.returncode}; stderr:\n{result.stderr}"
    working = [name for name, cells in result.rows().items() if not cells[2].startswith("BROKEN")]
    assert working == sorted(BUILTINS + ["fixture-good", "fixture-marks-import"]), (
        f"working implementations listed: {working}; expected the built-ins, fixture-good and fixture-marks-import:\n{result.stdout}"
    )


@pytest.mark.parametrize("name", list(BROKEN_PLUGINS))
def test_broken_plugin_is_reported_by_name_with_its_error(listings, name):
    result = listings["good and broken plugins"]
    rows = result.rows()
    assert name in rows, f"{name} is missing from the listing:\n{result.stdout}"
    family, origin, status = rows[name][:3]
    assert origin == "rnn-harness-fixture-broken 0.0.1", f"{name}: origin {origin!r}, but should name its distribution"
    assert status.startswith("BROKEN: "), f"{name}: status {status!r}, but should start with 'BROKEN: '"
    assert re.search(BROKEN_PLUGINS[name], status), f"{name}: error {status!r} does not say {BROKEN_PLUGINS[name]!r}"


def test_a_plugin_whose_import_sleeps_is_broken_and_hides_nothing(listings):
    result = listings["good and broken plugins"]
    family, origin, status = result.rows()["fixture-sleeps-on-import"][:3]
    assert status == f"BROKEN: importing rnn_harness_fixture_side_effects.sleeps:IMPLEMENTATION failed: TimeoutError: the import did not finish within {IMPORT_TIMEOUT}s (set $RNN_HARNESS_IMPORT_TIMEOUT to wait longer)", status
    assert listings["marks"]["list"] == ["fixture-marks-import", "fixture-sleeps-on-import"], "list imports every plugin"


@pytest.mark.parametrize("command", ["fuzz --impl", "bench --impl"])
def test_a_named_implementation_is_the_only_plugin_imported(listings, command):
    result = listings[command]
    assert result.returncode == EXIT_OK, f"{command} fixture-good: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    folder = command.split()[0]
    assert listings["marks"][folder] == [], f"{command} fixture-good imported other plugins: {listings['marks'][folder]}"


def test_two_distributions_with_one_name_is_a_usage_error_naming_both(listings):
    result = listings["two plugins with one name"]
    assert result.returncode == EXIT_USAGE, f"exit {result.returncode}, but should be {EXIT_USAGE}:\n{result.stdout}{result.stderr}"
    for expected in ("'fixture-good'", "rnn-harness-fixture-good 1.2.3", "rnn-harness-fixture-duplicate 9.9.0"):
        assert expected in result.stderr, f"the error should mention {expected}; stderr:\n{result.stderr}"


# -- the Implementation record ------------------------------------------------------


def test_implementation_is_frozen():
    record = Implementation(name="x", factory=nn.RNN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.name = "y"  # type: ignore[misc]


def test_declared_collections_compare_and_hash_by_value():
    first = Implementation(name="x", factory=nn.RNN, dtypes=[torch.float32, torch.float64], nonlinearities=("tanh",))
    second = Implementation(name="x", factory=nn.RNN, dtypes={torch.float64, torch.float32}, nonlinearities=["tanh"])
    assert first == second and hash(first) == hash(second), f"{first} and {second} should be equal records"
    assert first.dtypes == frozenset({torch.float32, torch.float64})


INVALID_RECORDS = {
    "empty name": ({"name": ""}, TypeError, r"name must be a non-empty string"),
    "name not a string": ({"name": 3}, TypeError, r"name must be a non-empty string"),
    "factory not callable": ({"factory": "nn.RNN"}, TypeError, r"factory must be callable"),
    "family not spelt as torch's class": ({"family": "Lstm"}, ValueError, r"family 'Lstm' is not one of torch's recurrent modules; expected one of RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell"),
    "integer dtype": ({"dtypes": [torch.int32]}, ValueError, r"torch\.int32.*not floating types"),
    "unknown nonlinearity": ({"nonlinearities": ["sigmoid"]}, ValueError, r"unknown nonlinearities \['sigmoid'\]"),
    "max_layers 0": ({"max_layers": 0}, ValueError, r"max_layers must be at least 1, got 0"),
}


@pytest.mark.parametrize("case", list(INVALID_RECORDS))
def test_invalid_record_is_rejected_with_a_sentence(case):
    overrides, error_type, message = INVALID_RECORDS[case]
    with pytest.raises(error_type, match=message):
        Implementation(**{"name": "x", "factory": nn.RNN, **overrides})


NARROW = Implementation(
    name="narrow",
    factory=nn.RNN,
    dtypes={torch.float32},
    devices={"cpu"},
    nonlinearities={"tanh"},
    max_layers=2,
    bidirectional=False,
    packed=False,
    unbatched=False,
    backward=False,
)

UNSUPPORTED_REASONS = [
    # (case, constructor, keyword arguments, reason or None)
    ("float32 tanh 2 layers on cpu", {"num_layers": 2}, {}, None),
    ("float64", {"dtype": torch.float64}, {}, "dtype torch.float64 not in declared dtypes"),
    ("cuda", {}, {"device": "cuda:0"}, "device cuda not in declared devices"),
    ("relu", {"nonlinearity": "relu"}, {}, "nonlinearity relu not declared"),
    ("3 layers", {"num_layers": 3}, {}, "num_layers=3 exceeds max_layers=2"),
    ("bidirectional", {"bidirectional": True}, {}, "bidirectional not supported"),
    ("packed", {}, {"packed": True}, "PackedSequence input not supported"),
    ("unbatched", {}, {"unbatched": True}, "unbatched (2-D) input not supported"),
    ("backward", {}, {"backward": True}, "backward not supported"),
]


@pytest.mark.parametrize("case, constructor, keywords, reason", UNSUPPORTED_REASONS, ids=[row[0] for row in UNSUPPORTED_REASONS])
def test_unsupported_reason_names_the_declared_limit(case, constructor, keywords, reason):
    assert NARROW.unsupported_reason(constructor, **keywords) == reason, f"[{case}] reason for {constructor} {keywords}"


def test_a_record_with_no_limits_claims_every_case():
    everything = Implementation(name="all", factory=nn.RNN)
    constructor = {"dtype": torch.bfloat16, "nonlinearity": "relu", "num_layers": 7, "bidirectional": True}
    reason = everything.unsupported_reason(constructor, device="cuda", packed=True, unbatched=True, backward=True)
    assert reason is None, f"an undeclared record should claim everything, but says {reason!r}"
    assert everything.limits() == {}, f"an undeclared record should show no limits, got {everything.limits()}"


def test_limits_show_every_declared_narrowing():
    assert NARROW.limits() == {
        "dtypes": "float32",
        "devices": "cpu",
        "nonlinearities": "tanh",
        "max_layers": "2",
        "bidirectional": "no",
        "packed": "no",
        "unbatched": "no",
        "backward": "no",
    }


def test_limits_list_several_dtypes_sorted():
    record = Implementation(name="halves", factory=nn.RNN, dtypes={torch.float16, torch.bfloat16})
    assert record.limits() == {"dtypes": "bfloat16,float16"}
