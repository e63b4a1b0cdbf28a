"""Real services on 127.0.0.1 for the cluster and database tests: a Dask scheduler
with workers, and a Redis server. Each runs as its own process group, is waited for
with a deadline, and is killed whole (workers' nannies, worker processes and their
isolation children) when the `with` block ends, however it ends."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

STARTUP_TIMEOUT = 120.0  # seconds; two workers importing distributed on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(command: list[str], log: Path, environment: dict[str, str], cwd: Path) -> subprocess.Popen:
    with open(log, "w") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment, cwd=cwd, start_new_session=True)


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            pass
        # Whatever is left of the group (a worker process, an isolation child) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


@dataclasses.dataclass
class DaskCluster:
    address: str
    client: object  # a distributed.Client of the test's own, to watch and to kill workers
    directory: Path

    def workers(self) -> dict[str, dict]:
        return self.client.scheduler_info(n_workers=-1)["workers"]

    def wait_for_workers(self, count: int, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while len(self.workers()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} dask workers did not come up within {timeout:g}s; logs in {self.directory}")
            time.sleep(0.2)

    def worker_running(self, prefix: str, timeout: float, *, besides: tuple[str, ...] = ()) -> str:
        """The address of the worker that is running a task whose key starts with `prefix`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for worker, keys in self.client.processing().items():
                if worker not in besides and any(str(key).startswith(prefix) for key in keys):
                    return worker
            time.sleep(0.1)
        raise TimeoutError(f"no worker ran a task {prefix}* within {timeout:g}s")

    def kill_worker(self, worker: str) -> int:
        """SIGKILL the worker process itself (its nanny lives on and starts a new one)."""
        pid = self.client.run(os.getpid, workers=[worker])[worker]
        os.kill(pid, signal.SIGKILL)
        return pid

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(self.directory.glob("*.log")))


@contextlib.contextmanager
def dask_cluster(directory: Path, workers: list[list[str]], environment: dict[str, str]) -> Iterator[DaskCluster]:
    """A scheduler and one ``dask worker`` per entry of `workers` (its extra
    arguments), every worker with one thread and a nanny that restarts it."""
    from distributed import Client

    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    python = [sys.executable, "-m"]
    processes = [_start([*python, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], directory / "scheduler.log", environment, directory)]
    client = None
    try:
        for index, extra in enumerate(workers):
            processes.append(_start(
                [*python, "distributed.cli.dask_worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard",
                 "--death-timeout", "60", "--local-directory", str(directory / f"worker-{index}"), *extra],
                directory / f"worker-{index}.log", environment, directory,
            ))
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while client is None:
            try:
                client = Client(address, timeout=5, set_as_default=False)
            except OSError:
                if time.monotonic() > deadline or processes[0].poll() is not None:
                    raise
        cluster = DaskCluster(address, client, directory)
        cluster.wait_for_workers(len(workers))
        yield cluster
    finally:
        if client is not None:
            client.close()
        _stop(processes[1:])
        _stop(processes[:1])


def redis_binary() -> str | None:
    return shutil.which("redis-server")


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A throwaway redis-server on 127.0.0.1 (no persistence); yields redis://127.0.0.1:PORT."""
    import redis

    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)]
    process = _start(command, directory / "redis.log", dict(os.environ), directory)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start: {(directory / 'redis.log').read_text()}") from None
                time.sleep(0.1)
        client.close()
        yield f"redis://127.0.0.1:{port}"
    finally:
        _stop([process])
