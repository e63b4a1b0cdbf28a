"""The run protocol: what a campaign asks of the process that runs a candidate.

A request is a frozen dataclass of `harness.protocol`, never a string; it crosses the
worker's pipe as it is, its case with it; and a worker process answers it as the
in-process runner does, because both call `protocol.answer`.
"""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from harness import protocol
from harness.cases import Case
from harness.isolation import InProcess, Worker
from harness.oracle import Margins
from harness.tolerance import DEFAULT_MODEL
from support import implementation

PACKED = Case(family="LSTM", input_size=2, hidden_size=3, layout="packed_sorted", seq_len=3, batch=2, lengths=(3, 2), h0_given=True, dtype="float64")
WRONG_WIDTH = Case(input_size=2, hidden_size=2, seq_len=2, batch=2, defect="wrong_width")

EVERY_KIND = [
    protocol.Available(),
    protocol.Check(PACKED),
    protocol.CheckWaiving(PACKED, frozenset({"gradient", "aliasing"})),
    protocol.CheckExpecting(WRONG_WIDTH, "RuntimeError"),
    protocol.CheckExpecting(WRONG_WIDTH, None),
    protocol.Localize(PACKED),
    protocol.ReferenceOutcome(WRONG_WIDTH),
    protocol.ReferenceDigest(PACKED),
]


def test_every_kind_of_request_is_listed_once():
    assert {type(request) for request in EVERY_KIND} == set(protocol.REQUESTS)
    assert set(protocol.CANDIDATE_CHECKS) <= set(protocol.REQUESTS)


@pytest.mark.parametrize("request_", EVERY_KIND, ids=lambda request: type(request).__name__)
def test_a_request_crosses_the_worker_pipe_unchanged(request_):
    # multiprocessing's Connection pickles what it sends; the case goes with the request.
    received = pickle.loads(pickle.dumps(request_))
    assert received == request_ and type(received) is type(request_)
    assert received.case == request_.case


def test_a_request_is_a_value():
    with pytest.raises(dataclasses.FrozenInstanceError):
        protocol.Check(PACKED).case = WRONG_WIDTH
    assert protocol.CheckWaiving(PACKED, frozenset({"gradient"})) == protocol.CheckWaiving(PACKED, frozenset({"gradient"}))


@pytest.mark.parametrize("text", ["check", "check_waiving:gradient", "check_expecting:None", "reference_digest", "available"])
def test_text_is_refused_before_anything_runs(text):
    loop = implementation("loop")
    with pytest.raises(protocol.NotARequest, match="is not a request"):
        protocol.answer(text, loop, DEFAULT_MODEL)
    with pytest.raises(protocol.NotARequest):
        InProcess(loop, DEFAULT_MODEL).request(text)
    with Worker(loop, DEFAULT_MODEL, timeout=60) as worker:
        with pytest.raises(protocol.NotARequest):
            worker.request(text)
        assert worker.process is None, "a worker process was started for a string"


ALIKE = [
    (protocol.Available(), None),
    # An invalid input that raises as torch does compares no tensor.
    (protocol.Check(WRONG_WIDTH), Margins()),
    (protocol.CheckExpecting(WRONG_WIDTH, "RuntimeError"), Margins()),
    (protocol.CheckExpecting(WRONG_WIDTH, None), Margins()),
    (protocol.ReferenceOutcome(WRONG_WIDTH), "RuntimeError"),
    (protocol.Localize(Case(num_layers=2, seq_len=2)), 1),  # no cut stack differs: the last layer
]


def test_a_worker_process_answers_as_this_process_does():
    loop = implementation("loop")
    in_process = InProcess(loop, DEFAULT_MODEL)
    with Worker(loop, DEFAULT_MODEL, timeout=120) as worker:
        for request, expected in ALIKE:
            assert in_process.request(request) == expected, request
            assert worker.request(request) == expected, request
        digest = protocol.ReferenceDigest(PACKED)
        assert isinstance(in_process.request(digest), str) and isinstance(worker.request(digest), str)
