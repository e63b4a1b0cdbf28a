"""Implementations that misbehave the way broken plugins do in the wild: they kill
the process, hang, raise, or return the wrong things. The campaign must survive each
one and still judge the others (see tests/test_isolation.py)."""

import os
import tempfile
import time
from pathlib import Path

from torch import nn

from harness import Implementation
from impls.loop import LoopRNN


class AbortsInNativeCode(LoopRNN):
    """Like an extension with a bad bounds check: abort() once hidden_size > 3."""

    def run_direction(self, data, batch_sizes, h0, layer, direction):
        if self.hidden_size > 3:
            os.abort()
        return super().run_direction(data, batch_sizes, h0, layer, direction)


class HangsOnReverse(LoopRNN):
    """A reverse pass whose loop never terminates."""

    def run_direction(self, data, batch_sizes, h0, layer, direction):
        while direction == 1:
            time.sleep(0.05)
        return super().run_direction(data, batch_sizes, h0, layer, direction)


class HangsWhenWide(LoopRNN):
    """A kernel that spins forever once hidden_size > 3: the hang a plugin author hits."""

    def run_direction(self, data, batch_sizes, h0, layer, direction):
        while self.hidden_size > 3:
            time.sleep(0.05)
        return super().run_direction(data, batch_sizes, h0, layer, direction)


class SlowWhenWide(LoopRNN):
    """Correct, but half a second slower on every case with hidden_size > 3: slow, not hung."""

    def forward(self, input, hx=None):
        if self.hidden_size > 3:
            time.sleep(0.5)
        return super().forward(input, hx)


class SlowOnce(LoopRNN):
    """Correct, but its first call on this machine takes SLOW_ONCE_SECONDS longer (a
    cold cache, a loaded machine); every later call, in any process, is quick. The
    marker file is how later worker processes know (tests remove it first)."""

    def forward(self, input, hx=None):
        if not SLOW_ONCE_MARKER.exists():
            SLOW_ONCE_MARKER.touch()
            time.sleep(SLOW_ONCE_SECONDS)
        return super().forward(input, hx)


class RaisesOnPacked(LoopRNN):
    def forward(self, input, hx=None):
        if not hasattr(input, "dim"):
            raise NotImplementedError("PackedSequence is not supported yet")
        return super().forward(input, hx)


class ReturnsAList(LoopRNN):
    def forward(self, input, hx=None):
        return list(super().forward(input, hx))


class NotAModule:
    """A factory that returns something that is not an nn.Module at all."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs


FAULTY = [
    Implementation(name="faulty-aborts", factory=AbortsInNativeCode),
    Implementation(name="faulty-hangs", factory=HangsOnReverse),
    Implementation(name="faulty-raises", factory=RaisesOnPacked),
    Implementation(name="faulty-returns-list", factory=ReturnsAList),
    Implementation(name="faulty-not-a-module", factory=NotAModule),
]

# Not in FAULTY: tests/test_hangs.py times these on their own.
HANGS_WHEN_WIDE = Implementation(name="faulty-hangs-when-wide", factory=HangsWhenWide)
SLOW_WHEN_WIDE = Implementation(name="slow-when-wide", factory=SlowWhenWide)
SLOW_ONCE = Implementation(name="slow-once", factory=SlowOnce)
SLOW_ONCE_MARKER = Path(tempfile.gettempdir()) / "rnn-harness-test-slow-once"
SLOW_ONCE_SECONDS = 6.0
