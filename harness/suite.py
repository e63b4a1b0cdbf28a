"""The differential suite, shipped so plugin authors run it in their own repository:

    python -m pytest --pyargs harness.suite --rnn-impl NAME [--rnn-impl OTHER ...]

One test per ``--rnn-impl`` name (the test id is the name), or per installed
implementation of the ``--rnn-family`` named, each fuzzing that implementation
against torch.nn.RNN with the session's ``--rnn-*`` settings; add
``-n auto`` (pytest-xdist) to fuzz several at once and ``--rnn-report PATH`` for one
JSON report of them all.
"""

import pytest

NO_IMPLEMENTATION = "no implementation to fuzz: pass --rnn-impl NAME or --rnn-family FAMILY (python -m harness list shows them)"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "implementation_name" not in metafunc.fixturenames:
        return
    names = list(dict.fromkeys(metafunc.config.getoption("rnn_impl")))
    family = metafunc.config.getoption("rnn_family")
    if family is not None and not names:
        from harness.pytest_plugin import implementations_of_family

        names = implementations_of_family(family)
    if names:
        metafunc.parametrize("implementation_name", names, ids=names)
    else:
        metafunc.parametrize("implementation_name", [pytest.param(None, marks=pytest.mark.skip(reason=NO_IMPLEMENTATION))], ids=["no-impl"])


def test_matches_torch_nn_rnn(implementation_name, rnn_harness_fuzz):
    rnn_harness_fuzz(implementation_name)
