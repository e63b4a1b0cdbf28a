"""Campaigns on a Dask cluster: ``python -m harness fuzz --scheduler tcp://HOST:PORT``.

The campaign is cut into units, one Dask task each: one implementation on one device,
and a long campaign further into seed shards, so that one implementation keeps
several workers busy. A worker loads the implementation by its entry-point name and
runs `campaign.fuzz_implementation` on its unit exactly as a local run would
(isolated, the same per-example timeout, the same example database). The client
merges the units back into one result per implementation, so the console summary and
the ``--report`` JSON are a local run's, each entry also saying which worker ran it.

A worker that dies while running a unit is reported for that unit, and the unit runs
once more elsewhere; a second death makes it an error. Ctrl-C cancels every unit
still on the cluster. Dask is imported here only, and only with ``--scheduler``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from harness import coverage
from harness.outcome import ImplementationResult
from harness.database import Location, slug

CONNECT_TIMEOUT = 10.0
"""Seconds to reach the scheduler before calling it unreachable."""
WORKER_WAIT = 10.0
"""Seconds to wait for a first worker on a scheduler that has none."""
NO_WORKER_GRACE = 60.0
"""Seconds a unit may wait with no worker able to run it before it is reported."""
MIN_SHARD_EXAMPLES = 250
"""Automatic sharding never makes a shard smaller than this: below it, starting a
shard (loading the implementation, a fresh isolation worker, Hypothesis' first
simple examples) is no longer small next to its examples."""
ATTEMPTS = 2
"""A unit runs at most this often: once, and once more after its worker died."""
POLL = 0.25
"""Seconds between looks at the scheduler while units run."""
GPU = "GPU"
"""The Dask worker resource a CUDA unit asks for (``dask worker --resources GPU=1``)."""


def add_arguments(parser) -> None:
    parser.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="run the campaign on a Dask cluster (tcp://HOST:PORT; needs rnn-harness[distributed]); "
        "one task per implementation, device and seed shard",
    )
    parser.add_argument(
        "--shards", metavar="N",
        help="with --scheduler: split each implementation's examples into N seed shards "
        f"(default: auto, enough to fill the cluster's threads, each at least {MIN_SHARD_EXAMPLES} examples)",
    )


# -- units: what a worker is asked to do -------------------------------------------------


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


def _error(unit: Unit, reason: str, **fields) -> Outcome:
    return Outcome(unit, ImplementationResult(unit.name, "error", 0, 0.0, unit.seed, unit.profile, reason=reason, isolated=unit.isolate), **fields)


@dataclasses.dataclass
class ClusterResult(ImplementationResult):
    """An `ImplementationResult` merged from an implementation's units, saying where they ran."""

    worker: str = ""  # the worker whose unit decided the verdict: the failure shown, the error, the first pass
    workers: list[str] = dataclasses.field(default_factory=list)  # every worker that ran one of its units
    worker_deaths: list[str] = dataclasses.field(default_factory=list)
    shards: list[dict] = dataclasses.field(default_factory=list)  # one entry per unit
    replay: str = ""

    def to_json(self) -> dict:
        return {**super().to_json(), "worker": self.worker, "workers": self.workers, "worker_deaths": self.worker_deaths, "shards": self.shards}

    def replay_command(self) -> str:
        return self.replay


# -- on the worker --------------------------------------------------------------------------


class UnitCancelled(KeyboardInterrupt):
    """The client cancelled the unit (Ctrl-C, or it went away): stop like Ctrl-C does."""


@functools.cache
def _installed(name: str):
    """The implementation registered as `name` on this machine, or why there is none."""
    from harness import registry

    try:
        found = {plugin.name: plugin for plugin in registry.find_plugins()}
    except registry.DuplicateImplementationError as error:
        return str(error)
    if name not in found:
        return f"implementation {name!r} is not installed here (installed: {', '.join(found) or 'none'})"
    loaded = registry.load_plugin(found[name])
    return loaded.error if isinstance(loaded, registry.BrokenPlugin) else loaded.implementation


def _cancellation_check(key: str):
    """An ``on_example`` callback that stops the campaign once the scheduler no
    longer wants this task: Dask cannot stop a running task, only mark it."""
    from distributed import get_worker

    worker = get_worker()

    def check(count: int) -> None:
        try:
            state = worker.state.tasks[key].state
        except (AttributeError, KeyError):  # another Dask's worker internals: run to the end
            return
        if state in ("cancelled", "released", "forgotten"):
            raise UnitCancelled(key)

    return check


def run_unit(unit: Unit, key: str) -> Outcome:
    """The Dask task: fuzz one unit here and say how it went. Never raises, so that
    what went wrong reaches the report as this unit's error."""
    from distributed import get_worker

    started = time.time()
    address = get_worker().address
    try:
        implementation = _installed(unit.name)
        if isinstance(implementation, str):
            return _error(unit, f"on worker {address}: {implementation}", worker=address, started=started, finished=time.time())
        import torch

        if unit.device == "cuda" and not torch.cuda.is_available():
            reason = f"worker {address} offers a {GPU} resource, but torch.cuda.is_available() is False there"
            return _error(unit, reason, worker=address, started=started, finished=time.time())
        from harness.campaign import fuzz_implementation

        repro_dir = Path(tempfile.mkdtemp(prefix="rnn-harness-repro-"))
        try:
            result = fuzz_implementation(
                implementation, profile=unit.profile, max_examples=unit.max_examples, seed=unit.seed,
                repro_dir=repro_dir, database=unit.database, devices=[unit.device],
                on_example=_cancellation_check(key), isolate=unit.isolate, timeout=unit.timeout,
                covering_phase=unit.shard == 0,  # the covering cases once per implementation and device
            )
            repro = None if result.failure is None else result.failure.repro_path
            repro_text = None if repro is None else Path(repro).read_text()
        finally:
            shutil.rmtree(repro_dir, ignore_errors=True)
        return Outcome(unit, result, address, started, time.time(), repro_text)
    except UnitCancelled:
        cancelled = ImplementationResult(unit.name, "skipped", 0, time.time() - started, unit.seed, unit.profile, reason="cancelled")
        return Outcome(unit, cancelled, address, started, time.time())
    except Exception as error:  # noqa: BLE001 - reported as this unit's error
        detail = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-8:])
        return _error(unit, f"on worker {address}: {detail}", worker=address, started=started, finished=time.time())


def _probe_worker(names: list[str], database: Location | None, isolate: bool) -> dict:
    """Run on every worker before any unit: can this worker run the campaign?"""
    import multiprocessing

    from harness import database as examples_database, forkserver

    problems = []
    if isolate and multiprocessing.current_process().daemon and not forkserver.available():
        # Elsewhere the isolating processes come from a subprocess (harness.forkserver), which a daemon may start.
        problems.append(
            "it runs as a daemon process, and without fork() the process that isolates each candidate is a "
            "multiprocessing child, which a daemon cannot start: start workers with "
            "DASK_DISTRIBUTED__WORKER__DAEMON=False (or `dask worker --no-nanny`), or pass --no-isolation"
        )
    for name in names:
        implementation = _installed(name)
        if isinstance(implementation, str):
            problems.append(implementation)
    if database is not None:
        try:
            examples_database.check_reachable(database)
        except examples_database.DatabaseError as error:
            problems.append(str(error))
    return {"problems": problems}


# -- on the client ---------------------------------------------------------------------------


def _usage_error(message: str):
    from harness.usage import UsageError

    return UsageError(message)


def _probe_address(address: str) -> None:
    """Fail in a moment on a closed port, instead of after Dask's connect retries."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls"):
        return  # another transport: let Dask connect
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise _usage_error(f"--scheduler {address!r} is not an address like tcp://HOST:PORT") from None
    if not host or port is None:
        raise _usage_error(f"--scheduler {address!r} is not an address like tcp://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        raise _usage_error(f"cannot reach the dask scheduler at {address}: {error.strerror or error}") from None


def connect(address: str):
    """A Dask client on `address`, or a usage error saying why there is none."""
    try:
        import distributed
    except ImportError:
        raise _usage_error("--scheduler needs dask.distributed: pip install 'rnn-harness[distributed]'") from None
    _probe_address(address)
    try:
        return distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise _usage_error(f"cannot reach the dask scheduler at {address}: {error}") from None


def _workers_info(client) -> dict[str, dict]:
    """Every worker's state as the scheduler sees it (newer Dask lists five unless asked)."""
    try:
        return client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # a Dask from before n_workers: it lists them all
        return client.scheduler_info()["workers"]


@dataclasses.dataclass
class Cluster:
    address: str
    workers: dict[str, dict]  # address -> resources
    threads: int

    @property
    def gpu_workers(self) -> list[str]:
        return [worker for worker, resources in self.workers.items() if resources.get(GPU, 0) > 0]


def survey(client, address: str, names: list[str], database: Location | None, isolate: bool) -> Cluster:
    """Check, before any work, that the cluster has workers that can run the campaign."""
    workers = _workers_info(client)
    if not workers:
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT)
        except TimeoutError:
            raise _usage_error(
                f"the dask scheduler at {address} has no workers (waited {WORKER_WAIT:g}s); start some with `dask worker {address}`"
            ) from None
        workers = _workers_info(client)
    try:
        probes = client.run(_probe_worker, names, database, isolate, on_error="return")
    except Exception as error:  # noqa: BLE001 - e.g. the scheduler went away
        raise _usage_error(f"cannot ask the workers of {address} whether they can run the campaign: {error}") from None
    problems = []
    for worker, probe in sorted(probes.items()):
        if isinstance(probe, BaseException):
            problems.append(f"worker {worker} cannot run rnn-harness: {type(probe).__name__}: {probe}")
        else:
            problems += [f"worker {worker}: {problem}" for problem in probe["problems"]]
    if problems:
        raise _usage_error(problems[0] + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""))
    threads = sum(state.get("nthreads", 1) for state in workers.values())
    return Cluster(address, {worker: dict(state.get("resources") or {}) for worker, state in workers.items()}, threads)


def _devices(args, cluster: Cluster) -> list[str]:
    devices = args.device or (["cpu", "cuda"] if cluster.gpu_workers else ["cpu"])
    for device in devices:
        if device not in ("cpu", "cuda"):
            raise _usage_error(f"unknown device {device!r}; expected cpu or cuda")
        if device == "cuda" and not cluster.gpu_workers:
            raise _usage_error(
                f"--device cuda was asked for, but no worker of {cluster.address} offers a {GPU} resource; "
                f"start GPU workers with `dask worker {cluster.address} --resources {GPU}=1`"
            )
    return list(dict.fromkeys(devices))


def _shards(args, total: int, cluster: Cluster, base_units: int) -> int:
    if args.shards in (None, "auto"):
        return automatic_shards(total, cluster.threads, base_units)
    try:
        shards = int(args.shards)
    except ValueError:
        raise _usage_error(f"--shards {args.shards!r} is not a number; expected a positive integer or auto") from None
    if not 1 <= shards <= total:
        raise _usage_error(f"--shards must be between 1 and the campaign's {total} examples, got {shards}")
    return shards


@dataclasses.dataclass
class _Running:
    unit: Unit
    future: object
    attempt: int = 1
    last_seen: str | None = None
    deaths: list[str] = dataclasses.field(default_factory=list)
    waiting_since: float | None = None  # no worker could run it since then


class Execution:
    """Submits the units, follows them until each has an `Outcome`, and turns worker
    deaths, Dask errors and Ctrl-C into outcomes instead of hangs."""

    def __init__(self, client, cluster: Cluster, stream):
        self.client = client
        self.cluster = cluster
        self.stream = stream
        self.running: dict[str, _Running] = {}
        self.outcomes: list[Outcome] = []
        self.on_outcome = None

    def _say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def _submit(self, unit: Unit, attempt: int) -> _Running:
        key = unit.key(attempt)
        resources = {GPU: 1} if unit.device == "cuda" else None
        future = self.client.submit(run_unit, unit, key, key=key, resources=resources, pure=False)
        return _Running(unit, future, attempt)

    def _record(self, key: str, outcome: Outcome, *, ran: bool = True) -> None:
        running = self.running.pop(key)
        # Each death made the scheduler (or us, after a KilledWorker) run it again.
        outcome.attempts, outcome.worker_deaths = len(running.deaths) + (1 if ran else 0), list(running.deaths)
        if not outcome.worker and running.last_seen:
            outcome.worker = running.last_seen
        self.outcomes.append(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def _finished(self, key: str) -> None:
        from distributed import KilledWorker

        running = self.running[key]
        future = running.future
        if future.status == "finished":
            self._record(key, future.result())
            return
        if future.status == "cancelled":
            self._record(key, _error(running.unit, "the scheduler cancelled this unit"))
            return
        error = future.exception()
        if isinstance(error, KilledWorker):
            # The scheduler gave up on it after its own retries (distributed.scheduler.allowed-failures).
            dead = getattr(error.last_worker, "address", str(error.last_worker))
            if dead not in running.deaths:
                running.deaths.append(dead)
            if running.attempt < ATTEMPTS and len(running.deaths) < ATTEMPTS:
                self._say(f"  worker {dead} died while running {running.unit.label}; running it once more")
                retry = self._submit(running.unit, running.attempt + 1)
                retry.deaths = running.deaths
                del self.running[key]
                self.running[retry.future.key] = retry
                return
            self._record(key, _error(running.unit, _deaths_reason(running.deaths)), ran=False)
            return
        detail = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-8:])
        self._record(key, _error(running.unit, f"the unit failed on the cluster: {detail}"))

    def _watch_workers(self) -> None:
        processing = self.client.processing()
        live = set(processing)
        if live != set(self.cluster.workers):
            info = _workers_info(self.client)
            self.cluster.workers = {worker: dict(state.get("resources") or {}) for worker, state in info.items()}
            live |= set(info)
        where = {key: worker for worker, keys in processing.items() for key in keys}
        now = time.monotonic()
        for key, running in list(self.running.items()):
            if running.last_seen is not None and running.last_seen not in live and running.last_seen not in running.deaths:
                running.deaths.append(running.last_seen)
                if len(running.deaths) >= ATTEMPTS:
                    running.future.cancel()
                    self._record(key, _error(running.unit, _deaths_reason(running.deaths)), ran=False)
                    continue
                self._say(f"  worker {running.last_seen} died while running {running.unit.label}; it runs once more")
            if key in where:
                running.last_seen = where[key]
            capable = self.cluster.gpu_workers if running.unit.device == "cuda" else list(self.cluster.workers)
            if capable:
                running.waiting_since = None
            elif running.waiting_since is None:
                running.waiting_since = now
            elif now - running.waiting_since > NO_WORKER_GRACE:
                running.future.cancel()
                needed = f"a worker with a {GPU} resource" if running.unit.device == "cuda" else "a worker"
                self._record(key, _error(running.unit, f"no {needed} was left on the cluster for {NO_WORKER_GRACE:g}s"), ran=False)

    def run(self, units: list[Unit], interrupted: threading.Event) -> list[Unit]:
        """Run every unit; once `interrupted` is set (Ctrl-C), cancel what is left on
        the cluster and return those units."""
        if interrupted.is_set():
            return list(units)
        for unit in units:
            running = self._submit(unit, 1)
            self.running[running.future.key] = running
        while self.running and not interrupted.wait(POLL):
            for key in [key for key, running in self.running.items() if running.future.done()]:
                self._finished(key)
            if self.running:
                try:
                    self._watch_workers()
                except (OSError, TimeoutError) as error:  # the scheduler is gone: nothing will finish
                    for key, running in list(self.running.items()):
                        self._record(key, _error(running.unit, f"lost the dask scheduler while this unit ran: {error}"), ran=False)
        left = [running.unit for running in self.running.values()]
        if left:
            self.client.cancel([running.future for running in self.running.values()])
            self.running.clear()
        return left


@contextlib.contextmanager
def ctrl_c_sets(event: threading.Event):
    """Ctrl-C sets `event` instead of raising in the middle of a call to the
    scheduler (which Dask does not survive cleanly); a second Ctrl-C raises."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def first(signum, frame):
        event.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _deaths_reason(deaths: list[str]) -> str:
    return (
        f"the worker running this unit died {len(deaths)} times ({', '.join(deaths)}); it is not retried again. "
        "A worker dies when its machine or process goes away, or, with --no-isolation, when the candidate crashes it"
    )


# -- merging units into one result per implementation ----------------------------------------


def _case_size(outcome: Outcome) -> tuple:
    case = outcome.result.failure.case
    directions = 2 if case.bidirectional else 1
    elements = case.seq_len * case.batch * case.input_size
    weights = case.num_layers * directions * case.hidden_size * (case.input_size + case.hidden_size)
    return (elements + weights, outcome.unit.device, outcome.unit.shard)


def merge(name: str, outcomes: list[Outcome], unfinished: list[Unit], *, seed: int, profile: str, repro_dir: Path | None, replay: str) -> ClusterResult:
    """One implementation's result from its units: fail if any unit failed (with the
    smallest minimal case among them), else error if any broke, else pass if any
    passed, else skipped; examples, known-failure cases and isolation restarts are
    summed, and seconds is the wall time from the first unit's start to the last's end."""
    outcomes = sorted(outcomes, key=lambda o: (o.unit.device, o.unit.shard))
    result = ClusterResult(
        name, "skipped", sum(o.result.examples for o in outcomes), 0.0, seed, profile,
        error_budget=outcomes[0].result.error_budget if outcomes else 1.0,
        family=next((o.result.family for o in outcomes if o.result.family), None),
        isolated=all(o.result.isolated for o in outcomes),
        worker_restarts=sum(o.result.worker_restarts for o in outcomes),
        slow_cases=[seconds for o in outcomes for seconds in getattr(o.result, "slow_cases", ())],
        workers=sorted({o.worker for o in outcomes if o.worker}),
        worker_deaths=[dead for o in outcomes for dead in o.worker_deaths],
        shards=[o.to_json() for o in outcomes] + [_unfinished_json(unit) for unit in unfinished],
        replay=replay,
    )
    for outcome in outcomes:
        for reason, count in outcome.result.known_failure_cases.items():
            result.known_failure_cases[reason] = result.known_failure_cases.get(reason, 0) + count
    result.coverage = coverage.merge([o.result.coverage for o in outcomes if o.result.coverage is not None])
    spans = [(o.started, o.finished) for o in outcomes if o.started is not None and o.finished is not None]
    result.seconds = max(end for _, end in spans) - min(start for start, _ in spans) if spans else 0.0
    by_verdict = {verdict: [o for o in outcomes if o.result.verdict == verdict] for verdict in ("fail", "error", "pass", "skipped")}
    if by_verdict["fail"]:
        with_case = [o for o in by_verdict["fail"] if o.result.failure is not None]
        chosen = min(with_case, key=_case_size) if with_case else by_verdict["fail"][0]
        shown = chosen.result
        result.verdict, result.reason, result.failure = "fail", shown.reason, shown.failure
        result.examples_to_failure, result.seconds_to_failure = shown.examples_to_failure, shown.seconds_to_failure
        if chosen.repro_text is not None and shown.failure is not None and repro_dir is not None:
            result.failure = _local_repro(shown.failure, chosen.repro_text, Path(repro_dir), name)
        result.replay = chosen.unit.replay_command()
    elif by_verdict["error"]:
        chosen = by_verdict["error"][0]
        result.verdict, result.reason, result.failure = "error", f"{chosen.unit.label}: {chosen.result.reason}", chosen.result.failure
        result.replay = chosen.unit.replay_command()
    elif unfinished:
        chosen = None
        result.reason = f"interrupted by the user: {len(outcomes)} of {len(outcomes) + len(unfinished)} units finished"
    elif by_verdict["pass"]:
        chosen = by_verdict["pass"][0]
        result.verdict = "pass"
    else:
        chosen = outcomes[0] if outcomes else None
        result.reason = chosen.result.reason if chosen else ""
    result.worker = "" if chosen is None else chosen.worker
    return result


def _unfinished_json(unit: Unit) -> dict:
    return {
        "device": unit.device, "shard": unit.shard, "shards": unit.shards, "seed": unit.seed,
        "max_examples": unit.max_examples, "verdict": "skipped", "examples": 0, "seconds": 0.0, "worker": "",
        "attempts": 0, "worker_deaths": [], "reason": "interrupted by the user before it finished", "replay": unit.replay_command(),
    }


def _local_repro(failure, text: str, repro_dir: Path, name: str):
    """Write the worker's repro script here and point the failure at it."""
    path = repro_dir / f"repro_{slug(name)}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    summary = failure.summary
    if failure.repro_path is not None:
        summary = summary.replace(str(failure.repro_path), str(path))
    return dataclasses.replace(failure, repro_path=path, summary=summary)


# -- the command ------------------------------------------------------------------------------


def run_command(args, registry, names: list[str]) -> int:
    from harness import report
    from harness.campaign import PROFILES, check_arguments

    if args.scheduler is None:
        raise _usage_error("--shards splits campaigns over a cluster's workers; give --scheduler tcp://HOST:PORT too")
    location = check_arguments(args).absolute()  # workers may not share our working directory
    seed = random.randrange(2**31) if args.seed is None else args.seed
    total = args.max_examples or PROFILES[args.profile][0]
    broken = {plugin.name: plugin for plugin in registry.broken}
    runnable = [name for name in names if name not in broken]
    interrupted = threading.Event()
    client = connect(args.scheduler)
    try:
        with ctrl_c_sets(interrupted):
            cluster = survey(client, args.scheduler, runnable, location, not args.no_isolation)
            devices = _devices(args, cluster)
            shards = _shards(args, total, cluster, len(runnable) * len(devices))
            units = plan(runnable, devices, total=total, shards=shards, seed=seed, profile=args.profile,
                         timeout=args.timeout, isolate=not args.no_isolation, database=location)
            print(
                f"rnn-harness fuzz: profile {args.profile}, seed {seed}, devices {','.join(devices)}, on {args.scheduler} "
                f"({len(cluster.workers)} workers, {cluster.threads} threads): {len(units)} units "
                f"({len(runnable)} implementations x {len(devices)} devices x {shards} shards)",
                file=sys.stderr,
            )
            replay = f" --profile {args.profile}" + (f" --max-examples {args.max_examples}" if args.max_examples else "")
            replay += "".join(f" --device {device}" for device in devices) + f" --scheduler {args.scheduler} --shards {shards}"
            collector = _Collector(units, seed, args.profile, args.repro_dir, replay, report.Progress(sys.stderr))
            execution = Execution(client, cluster, sys.stderr)
            execution.on_outcome = collector.add
            unfinished = execution.run(units, interrupted)
    finally:
        client.close()
    if unfinished:
        print("\ninterrupted: reporting what finished; the units still on the cluster were cancelled", file=sys.stderr)
    results = []
    for name in names:
        if name in broken:
            results.append(ImplementationResult(name, "error", 0, 0.0, seed, args.profile, reason=broken[name].error))
        else:
            results.append(collector.result(name, [unit for unit in unfinished if unit.name == name]))
    return report.finish(args, results, seed=seed, devices=devices)


class _Collector:
    """Gathers outcomes as they come, says so on stderr, and merges an implementation
    as soon as its last unit is in."""

    def __init__(self, units: list[Unit], seed: int, profile: str, repro_dir: Path | None, replay_options: str, progress):
        self.expected = {unit.name: 0 for unit in units}
        for unit in units:
            self.expected[unit.name] += 1
        self.outcomes: dict[str, list[Outcome]] = {name: [] for name in self.expected}
        self.merged: dict[str, ClusterResult] = {}
        self.seed, self.profile, self.repro_dir = seed, profile, repro_dir
        self.replay_options = replay_options
        self.progress = progress

    def add(self, outcome: Outcome) -> None:
        result, name = outcome.result, outcome.unit.name
        print(
            f"  {outcome.unit.label} on {outcome.worker or '?'}: {result.verdict} after {result.examples} examples in {result.seconds:.1f}s",
            file=self.progress.stream, flush=True,
        )
        self.outcomes[name].append(outcome)
        if len(self.outcomes[name]) == self.expected[name]:
            self.merged[name] = self.result(name, [])
            self.progress.done(self.merged[name])

    def result(self, name: str, unfinished: list[Unit]) -> ClusterResult:
        if name in self.merged:
            return self.merged[name]
        replay = f"python -m harness fuzz --impl {name} --seed {self.seed}{self.replay_options}"
        return merge(name, self.outcomes[name], unfinished, seed=self.seed, profile=self.profile, repro_dir=self.repro_dir, replay=replay)
