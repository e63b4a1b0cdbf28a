"""The client's side of a cluster run: reach the scheduler, check its workers before
any work, submit the units and follow them until each has an outcome, turning worker
deaths, Dask errors and Ctrl-C into outcomes instead of hangs."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import socket
import threading
import time
import traceback
from urllib.parse import urlsplit

from harness.cluster.on_worker import probe_worker, run_unit
from harness.cluster.units import GPU, Outcome, Unit, automatic_shards, unit_error
from harness.database import Location

CONNECT_TIMEOUT = 10.0
"""Seconds to reach the scheduler before calling it unreachable."""
WORKER_WAIT = 10.0
"""Seconds to wait for a first worker on a scheduler that has none."""
NO_WORKER_GRACE = 60.0
"""Seconds a unit may wait with no worker able to run it before it is reported."""
ATTEMPTS = 2
"""A unit runs at most this often: once, and once more after its worker died."""
POLL = 0.25
"""Seconds between looks at the scheduler while units run."""


def usage_error(message: str):
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
        raise usage_error(f"--scheduler {address!r} is not an address like tcp://HOST:PORT") from None
    if not host or port is None:
        raise usage_error(f"--scheduler {address!r} is not an address like tcp://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        raise usage_error(f"cannot reach the dask scheduler at {address}: {error.strerror or error}") from None


def connect(address: str):
    """A Dask client on `address`, or a usage error saying why there is none."""
    try:
        import distributed
    except ImportError:
        raise usage_error("--scheduler needs dask.distributed: pip install 'rnn-harness[distributed]'") from None
    _probe_address(address)
    try:
        return distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise usage_error(f"cannot reach the dask scheduler at {address}: {error}") from None


def workers_info(client) -> dict[str, dict]:
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
    workers = workers_info(client)
    if not workers:
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT)
        except TimeoutError:
            raise usage_error(
                f"the dask scheduler at {address} has no workers (waited {WORKER_WAIT:g}s); start some with `dask worker {address}`"
            ) from None
        workers = workers_info(client)
    try:
        probes = client.run(probe_worker, names, database, isolate, on_error="return")
    except Exception as error:  # noqa: BLE001 - e.g. the scheduler went away
        raise usage_error(f"cannot ask the workers of {address} whether they can run the campaign: {error}") from None
    problems = []
    for worker, probe in sorted(probes.items()):
        if isinstance(probe, BaseException):
            problems.append(f"worker {worker} cannot run rnn-harness: {type(probe).__name__}: {probe}")
        else:
            problems += [f"worker {worker}: {problem}" for problem in probe["problems"]]
    if problems:
        raise usage_error(problems[0] + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""))
    threads = sum(state.get("nthreads", 1) for state in workers.values())
    return Cluster(address, {worker: dict(state.get("resources") or {}) for worker, state in workers.items()}, threads)


def devices_for(args, cluster: Cluster) -> list[str]:
    devices = args.device or (["cpu", "cuda"] if cluster.gpu_workers else ["cpu"])
    for device in devices:
        if device not in ("cpu", "cuda"):
            raise usage_error(f"unknown device {device!r}; expected cpu or cuda")
        if device == "cuda" and not cluster.gpu_workers:
            raise usage_error(
                f"--device cuda was asked for, but no worker of {cluster.address} offers a {GPU} resource; "
                f"start GPU workers with `dask worker {cluster.address} --resources {GPU}=1`"
            )
    return list(dict.fromkeys(devices))


def shards_for(args, total: int, cluster: Cluster, base_units: int) -> int:
    if args.shards in (None, "auto"):
        return automatic_shards(total, cluster.threads, base_units)
    try:
        shards = int(args.shards)
    except ValueError:
        raise usage_error(f"--shards {args.shards!r} is not a number; expected a positive integer or auto") from None
    if not 1 <= shards <= total:
        raise usage_error(f"--shards must be between 1 and the campaign's {total} examples, got {shards}")
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
            self._record(key, unit_error(running.unit, "the scheduler cancelled this unit"))
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
            self._record(key, unit_error(running.unit, _deaths_reason(running.deaths)), ran=False)
            return
        detail = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-8:])
        self._record(key, unit_error(running.unit, f"the unit failed on the cluster: {detail}"))

    def _watch_workers(self) -> None:
        processing = self.client.processing()
        live = set(processing)
        if live != set(self.cluster.workers):
            info = workers_info(self.client)
            self.cluster.workers = {worker: dict(state.get("resources") or {}) for worker, state in info.items()}
            live |= set(info)
        where = {key: worker for worker, keys in processing.items() for key in keys}
        now = time.monotonic()
        for key, running in list(self.running.items()):
            if running.last_seen is not None and running.last_seen not in live and running.last_seen not in running.deaths:
                running.deaths.append(running.last_seen)
                if len(running.deaths) >= ATTEMPTS:
                    running.future.cancel()
                    self._record(key, unit_error(running.unit, _deaths_reason(running.deaths)), ran=False)
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
                self._record(key, unit_error(running.unit, f"no {needed} was left on the cluster for {NO_WORKER_GRACE:g}s"), ran=False)

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
                        self._record(key, unit_error(running.unit, f"lost the dask scheduler while this unit ran: {error}"), ran=False)
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
