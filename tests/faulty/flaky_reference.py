"""torch disagreeing with itself, on purpose: the way torch behaves on an input where it
reads out of bounds (docs/found-bugs.md), made reproducible for tests/test_verdicts.py.

`FlakyReference` stands in for the reference in worker processes that import this
module while ``RNN_HARNESS_TEST_REFERENCE_RUNS`` names a directory: on an input of the
wrong width it raises RuntimeError the first time it sees that input, and crashes the
process (SIGSEGV) every time after, in any process. `AcceptsWrongWidth` is the candidate:
it reads only the first ``input_size`` features, so it returns where torch raises.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from harness import Implementation, locate
from impls.loop import LoopRNN

RUNS_DIRECTORY = "RNN_HARNESS_TEST_REFERENCE_RUNS"


class FlakyReference(nn.RNN):
    def forward(self, input, hx=None):
        data = input.data if isinstance(input, PackedSequence) else input
        if data.shape[-1] != self.input_size:
            seen = Path(os.environ[RUNS_DIRECTORY]) / hashlib.sha256(data.detach().double().cpu().numpy().tobytes()).hexdigest()
            if seen.exists():
                os.kill(os.getpid(), signal.SIGSEGV)
            seen.touch()
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {data.shape[-1]}")
        with torch.backends.mkldnn.flags(enabled=False):
            return super().forward(input, hx)


class AcceptsWrongWidth(LoopRNN):
    def forward(self, input, hx=None):
        if isinstance(input, torch.Tensor) and input.dim() >= 1 and input.shape[-1] > self.input_size:
            input = input[..., : self.input_size]
        return super().forward(input, hx)


def _install() -> None:
    from harness.references import aten

    aten.ATEN_MODULES["RNN"] = FlakyReference


# Only in a worker process (this process's oracle stays torch's), and only when a test asks.
if locate._IN_WORKER and os.environ.get(RUNS_DIRECTORY):
    _install()

ACCEPTS_WRONG_WIDTH = Implementation(name="accepts-wrong-width", factory=AcceptsWrongWidth, family="RNN")
