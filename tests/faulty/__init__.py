"""Implementations that misbehave the way broken plugins do in the wild: they kill
the process, hang, raise, or return the wrong things. The campaign must survive each
one and still judge the others (see tests/test_isolation.py)."""

import functools
import os
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
    """Correct, but slower on every case with hidden_size > 3: slow, not hung. It sleeps
    the seconds written in ``seconds_file`` when the call starts (a test writes them once
    it knows the limit they must exceed), or half a second without one."""

    def __init__(self, *args, seconds_file: Path | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.seconds_file = seconds_file

    def forward(self, input, hx=None):
        if self.hidden_size > 3:
            time.sleep(float(self.seconds_file.read_text()) if self.seconds_file is not None else 0.5)
        return super().forward(input, hx)


class SlowOnce(LoopRNN):
    """Correct, but its first call in any process sleeps ``seconds`` (a cold cache, a
    loaded machine); every later call, in any process, is quick. ``marker`` (a path of
    the test's own) is how later worker processes know."""

    def __init__(self, *args, marker: Path, seconds: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.marker, self.seconds = marker, seconds

    def forward(self, input, hx=None):
        if not self.marker.exists():
            self.marker.touch()
            time.sleep(self.seconds)
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


def slow_when_wide(seconds_file: Path, seconds: float) -> Implementation:
    """SlowWhenWide sleeping ``seconds`` on a wide case, until the test writes other
    seconds into ``seconds_file`` (a path of its own). A worker reaches the factory by
    pickling it (harness.locate): it is built here, not at module level."""
    seconds_file.write_text(repr(seconds))
    return Implementation(name="slow-when-wide", factory=functools.partial(SlowWhenWide, seconds_file=seconds_file))


def slow_once(marker: Path, seconds: float) -> Implementation:
    """SlowOnce whose first call sleeps ``seconds``; ``marker`` must not exist yet."""
    return Implementation(name="slow-once", factory=functools.partial(SlowOnce, marker=marker, seconds=seconds))
