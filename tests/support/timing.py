"""What this machine does now, for the tests that time things.

A loaded machine makes every step slower, so such a test states its limits as
multiples of a reference operation timed in the same test (`machine_now`), or
compares times with each other, never with fixed seconds."""

from __future__ import annotations

import dataclasses
import statistics
import time

from harness import protocol
from harness.cases import Case
from harness.isolation import Worker
from harness.tolerance import DEFAULT_MODEL
from support import implementation


@dataclasses.dataclass(frozen=True)
class MachineNow:
    """Seconds the loop reference took just now to check the smallest case in a worker process."""

    cold_check: float
    """A fresh worker: started, the implementation built, the calibration before the
    first case and that case's check. At least what any fresh worker's first call costs."""
    warm_check: float
    """The same worker once warm: the median of three checks."""


def machine_now() -> MachineNow:
    """Time the reference operation now (under a second on a quiet machine). The worker
    server is started first, once per test process, so it is not part of ``cold_check``."""
    loop = implementation("loop")
    with Worker(loop, DEFAULT_MODEL, timeout=600) as worker:
        worker.request(protocol.Check(Case()))
    started = time.perf_counter()
    with Worker(loop, DEFAULT_MODEL, timeout=600) as worker:
        worker.request(protocol.Check(Case()))
        cold = time.perf_counter() - started
        warm = []
        for _ in range(3):
            started = time.perf_counter()
            worker.request(protocol.Check(Case()))
            warm.append(time.perf_counter() - started)
    return MachineNow(cold_check=cold, warm_check=statistics.median(warm))
