"""What a cluster run is cut into: units (one implementation's seed shard on one
device, one Dask task each), and what comes back for one (`Outcome`)."""

from __future__ import annotations

import dataclasses
import math
import random
import uuid

from harness.database import Location, slug
from harness.campaign_result import ImplementationResult

MIN_SHARD_EXAMPLES = 250
"""Automatic sharding never makes a shard smaller than this: below it, starting a
shard (loading the implementation, a fresh isolation worker, Hypothesis' first
simple examples) is no longer small next to its examples."""
GPU = "GPU"
"""The Dask worker resource a CUDA unit asks for (``dask worker --resources GPU=1``)."""


@dataclasses.dataclass(frozen=True)
class Unit:
    """One Dask task: a seed shard of one implementation's campaign on one device.
    Plain data, so it pickles by value; the worker finds the implementation by name."""

    name: str
    device: str
    shard: int  # 0-based
    shards: int
    seed: int
    max_examples: int
    profile: str
    timeout: float
    isolate: bool
    database: Location | None
    run_id: str

    @property
    def label(self) -> str:
        return f"{self.name} [{self.device}, shard {self.shard + 1}/{self.shards}]"

    def key(self, attempt: int) -> str:
        return f"rnn-harness-{self.run_id}-{slug(self.name)}-{self.device}-{self.shard}-{attempt}"

    def replay_command(self) -> str:
        """The local command that runs exactly this unit again."""
        return (
            f"python -m harness fuzz --impl {self.name} --device {self.device} --seed {self.seed} "
            f"--max-examples {self.max_examples} --profile {self.profile}"
        )


def shard_seed(seed: int, shard: int) -> int:
    """Shard 0 uses the campaign's seed, so an unsharded cluster run is the local run."""
    return seed if shard == 0 else random.Random(f"rnn-harness shard {seed} {shard}").randrange(2**31)


def split(total: int, shards: int) -> list[int]:
    return [total // shards + (1 if index < total % shards else 0) for index in range(shards)]


def automatic_shards(total: int, threads: int, units: int) -> int:
    """Enough shards per implementation and device to give every thread a unit, but
    none smaller than `MIN_SHARD_EXAMPLES`."""
    wanted = math.ceil(threads / max(units, 1))
    return max(1, min(wanted, total // MIN_SHARD_EXAMPLES))


def plan(names, devices, *, total, shards, seed, profile, timeout, isolate, database) -> list[Unit]:
    run_id = uuid.uuid4().hex[:8]
    units = []
    for name in names:
        for device in devices:
            for shard, examples in enumerate(split(total, shards)):
                units.append(Unit(name, device, shard, shards, shard_seed(seed, shard), examples, profile, timeout, isolate, database, run_id))
    return units


@dataclasses.dataclass
class Outcome:
    """What came back for one unit: the worker's `ImplementationResult` for it."""

    unit: Unit
    result: object  # outcome.ImplementationResult
    worker: str = ""
    started: float | None = None  # time.time() on the worker
    finished: float | None = None
    repro_text: str | None = None
    attempts: int = 1
    worker_deaths: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "device": self.unit.device,
            "shard": self.unit.shard,
            "shards": self.unit.shards,
            "seed": self.unit.seed,
            "max_examples": self.unit.max_examples,
            "verdict": self.result.verdict,
            "examples": self.result.examples,
            "seconds": round(self.result.seconds, 3),
            "worker": self.worker,
            "attempts": self.attempts,
            "worker_deaths": self.worker_deaths,
            "reason": self.result.reason,
            "replay": self.unit.replay_command(),
        }


def unit_error(unit: Unit, reason: str, **fields) -> Outcome:
    return Outcome(unit, ImplementationResult.error(unit.name, unit.seed, unit.profile, reason, isolated=unit.isolate), **fields)
