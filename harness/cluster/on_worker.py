"""What runs on a Dask worker: the probe that asks whether it can run the campaign,
and one unit's campaign (`run_unit`, the Dask task), which never raises."""

from __future__ import annotations

import functools
import shutil
import tempfile
import time
import traceback
from pathlib import Path

from harness.cluster.units import GPU, Outcome, Unit, unit_error
from harness.database import Location
from harness.campaign_result import ImplementationResult

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
            return unit_error(unit, f"on worker {address}: {implementation}", worker=address, started=started, finished=time.time())
        import torch

        if unit.device == "cuda" and not torch.cuda.is_available():
            reason = f"worker {address} offers a {GPU} resource, but torch.cuda.is_available() is False there"
            return unit_error(unit, reason, worker=address, started=started, finished=time.time())
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
        cancelled = ImplementationResult.skipped(unit.name, unit.seed, unit.profile, "cancelled", seconds=time.time() - started)
        return Outcome(unit, cancelled, address, started, time.time())
    except Exception as error:  # noqa: BLE001 - reported as this unit's error
        detail = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-8:])
        return unit_error(unit, f"on worker {address}: {detail}", worker=address, started=started, finished=time.time())


def probe_worker(names: list[str], database: Location | None, isolate: bool) -> dict:
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
