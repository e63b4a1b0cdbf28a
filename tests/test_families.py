"""The whole recurrent family, as data: torch's six modules described by one record
each, and an engine that reads them instead of assuming nn.RNN.

What a plugin author relies on: the records agree with torch's own modules (keys,
shapes, gate stacking, proj_size), a family name is torch's class name or a clear
error, a plugin that returns another family's structure gets a `type` finding with a
minimal case, invalid input that merely *broadcasts* is held to torch's exception,
and a family finding comes with a repro script that reproduces it.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest
import torch
from torch import nn

import families_faulty
from harness import Implementation, oracle
from harness.campaign import fuzz_implementation
from harness.cases import Case, materialize
from harness.dimensions import defects_for
from harness.families import FAMILIES, FAMILY_NAMES, family

LAYER_CONFIGS = [
    {"input_size": 3, "hidden_size": 5},
    {"input_size": 3, "hidden_size": 5, "num_layers": 2, "bidirectional": True},
    {"input_size": 5, "hidden_size": 5, "num_layers": 3, "bias": False},
]


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_family_records_match_torch_parameter_names_shapes_and_order(name):
    record = FAMILIES[name]
    configs = [{"input_size": 3, "hidden_size": 5}, {"input_size": 4, "hidden_size": 2, "bias": False}] if record.cell else LAYER_CONFIGS
    if record.projections:
        configs = configs + [{**config, "proj_size": 2} for config in configs]
    for config in configs:
        torch_module = record.module_class(**config)
        expected = [(key, tuple(value.shape)) for key, value in torch_module.state_dict().items()]
        assert list(record.parameter_shapes(config).items()) == expected, f"{name}({config})"


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_family_keywords_are_torch_constructor_keywords_in_torchs_order(name):
    record = FAMILIES[name]
    parameters = inspect.signature(record.module_class.__init__).parameters
    if any(p.kind is p.VAR_POSITIONAL for p in parameters.values()):
        # nn.RNN, nn.LSTM and nn.GRU take *args; their docstring states the signature
        header = re.search(r"__init__\((.*?)\)", record.module_class.__doc__).group(1)
        torch_keywords = [part.split("=")[0].strip() for part in header.split(",")]
    else:
        torch_keywords = list(parameters)
    torch_keywords = [k for k in torch_keywords if k not in ("self", "device", "dtype")]
    assert [k for k in torch_keywords if k in record.keywords] == list(record.keywords), (record.keywords, torch_keywords)
    assert set(record.keywords) == set(torch_keywords), (record.keywords, torch_keywords)
    assert record.module_class.__name__ == name


def test_a_family_is_named_by_torchs_class_name_or_rejected_with_the_known_names():
    for name in FAMILY_NAMES:
        assert Implementation(name="x", factory=nn.Identity, family=name).family_record is FAMILIES[name]
    with pytest.raises(ValueError) as error:
        Implementation(name="x", factory=nn.Identity, family="Lstm")
    for name in FAMILY_NAMES:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="LSTMCell"):
        family("lstm_cell")


def test_a_cell_case_is_one_step_of_one_layer():
    Case(family="GRUCell", layout="unbatched")
    for wrong in ({"seq_len": 2}, {"num_layers": 2}, {"bidirectional": True}, {"layout": "packed_sorted"}):
        with pytest.raises(ValueError, match="one step"):
            Case(family="LSTMCell", **wrong)
    with pytest.raises(ValueError, match="LSTM only"):
        Case(family="GRU", proj_size=1, hidden_size=3)


def test_materialized_states_and_cotangents_have_each_familys_shapes():
    lstm = Case(family="LSTM", input_size=2, hidden_size=4, proj_size=3, num_layers=2, bidirectional=True, seq_len=5, batch=3, h0_given=True)
    tensors = materialize(lstm)
    assert [tuple(s.shape) for s in tensors.initial_states] == [(4, 3, 3), (4, 3, 4)]
    assert {k: tuple(v.shape) for k, v in tensors.cotangents.items()} == {"output": (5, 3, 6), "h_n": (4, 3, 3), "c_n": (4, 3, 4)}
    x, hx = tensors.module_input(lstm, torch.float32, "cpu")
    output, (h_n, c_n) = nn.LSTM(**lstm.constructor())(x, hx)
    assert (tuple(output.shape), tuple(h_n.shape), tuple(c_n.shape)) == ((5, 3, 6), (4, 3, 3), (4, 3, 4))
    cell = Case(family="LSTMCell", input_size=2, hidden_size=4, batch=3, h0_given=True, layout="unbatched")
    x, (h, c) = materialize(cell).module_input(cell, torch.float32, "cpu")
    assert (tuple(x.shape), tuple(h.shape), tuple(c.shape)) == ((2,), (4,), (4,))


@pytest.mark.parametrize(
    "plugin, subject, words",
    [
        (families_faulty.LSTM_RETURNS_RNN_TUPLE, "h_n", "(h_n, c_n)"),
        (families_faulty.CELL_RETURNS_LAYER_TUPLE, "return value", "a Tensor h'"),
    ],
    ids=["lstm-returns-rnn-tuple", "cell-returns-layer-tuple"],
)
def test_another_familys_structure_is_a_type_finding_with_a_minimal_case(plugin, subject, words, tmp_path):
    result = fuzz_implementation(plugin, profile="ci", seed=0, repro_dir=tmp_path)
    assert result.verdict == "fail", (result.verdict, result.reason)
    assert (result.failure.kind, result.failure.subject) == ("type", subject), result.failure.summary
    assert words in result.failure.summary
    case = result.failure.case
    assert (case.input_size, case.hidden_size, case.batch) == (1, 1, 1), case.describe()


def test_a_state_that_would_broadcast_is_held_to_torchs_exception():
    case = Case(family="GRU", input_size=2, hidden_size=3, batch=4, seq_len=2, defect="h0_one_row")
    assert "h0_one_row" in defects_for(dataclasses_replace(case, defect=None))
    with pytest.raises(oracle.Discrepancy) as found:
        oracle.check(families_faulty.GRU_BROADCASTS_ONE_ROW_STATE, case)
    assert found.value.kind == "exception_type"
    assert "RuntimeError" in found.value.summary and "returned normally" in found.value.summary
    # a correct GRU raises what torch raises
    from impls.loop import GRU

    oracle.check(GRU, case)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_every_family_draws_its_broadcasting_defects(name):
    record = FAMILIES[name]
    layers = {} if record.cell else {"num_layers": 2}
    case = Case(family=name, input_size=3, hidden_size=4, batch=5, **layers)
    defects = defects_for(case)
    expected = {"input_one_feature", "h0_one_row", "h0_one_feature"} | (set() if record.cell else {"h0_one_layer"})
    if record.cell_state:
        expected |= {"c0_one_row", "c0_one_feature", "c0_missing", "state_not_tuple"} | (set() if record.cell else {"c0_one_layer"})
    assert expected <= set(defects), sorted(expected - set(defects))
    for defect in defects:  # torch itself raises on each, so the oracle has an exception to demand
        invalid = dataclasses_replace(case, defect=defect)
        x, hx = oracle.defective_input(invalid, torch.float32)
        with pytest.raises(Exception):
            record.module_class(**invalid.constructor())(x, hx)


@pytest.mark.parametrize(
    "plugin",
    [families_faulty.LSTM_IGNORES_C0, families_faulty.LSTMCELL_IGNORES_C0],
    ids=["lstm-ignores-c0", "lstmcell-ignores-c0"],
)
def test_a_family_finding_comes_with_a_repro_that_reproduces_it(plugin, tmp_path):
    result = fuzz_implementation(plugin, profile="default", seed=0, repro_dir=tmp_path)
    assert result.verdict == "fail", (result.verdict, result.reason)
    assert result.failure.case.h0_given
    script = result.failure.repro_path
    assert script is not None and script.exists()
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=_env_with_tests())
    assert run.returncode == 1, run.stdout + run.stderr
    assert "REPRODUCED" in run.stdout


def dataclasses_replace(case: Case, **changes) -> Case:
    import dataclasses

    return dataclasses.replace(case, **changes)


def _env_with_tests():
    import os
    from pathlib import Path

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("name", ["loop-lstm", "torch-grucell"])
def test_the_fuzzer_draws_a_backward_to_the_parameters_only(name):
    # A model's first layer in training: grad mode on, an input that needs no gradient,
    # backward to the parameters. Kernels choose other paths then (torch._decomp sends
    # an LSTM layer to oneDNN), and a fast path keyed on input.requires_grad hides here.
    from hypothesis import HealthCheck, find, settings

    from harness import strategies
    from support import implementation

    case = find(
        strategies.cases(implementation(name), devices=["cpu"]),
        lambda case: case.backward and not case.input_grad and case.defect is None,
        settings=settings(max_examples=1000, database=None, suppress_health_check=list(HealthCheck)),
    )
    assert "parameters' gradients only" in case.describe()
    oracle.check(implementation(name), case)
