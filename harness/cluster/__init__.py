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

The package, in the order a run goes through it: `units` (the plan), `on_client`
(reaching the cluster, following the units), `on_worker` (what each unit does
there), `merging` (one result per implementation).
"""

from __future__ import annotations

import random
import sys
import threading

from harness.cluster.merging import ClusterResult, Collector, merge
from harness.cluster.on_client import Execution, connect, ctrl_c_sets, devices_for, shards_for, survey, usage_error
from harness.cluster.on_worker import run_unit
from harness.cluster.units import MIN_SHARD_EXAMPLES, Outcome, Unit, automatic_shards, plan, shard_seed, split
from harness.campaign_result import ImplementationResult

__all__ = [
    "ClusterResult", "Execution", "Outcome", "Unit", "add_arguments", "automatic_shards", "connect", "merge", "plan",
    "run_command", "run_unit", "shard_seed", "split", "survey",
]


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


def run_command(args, registry, names: list[str]) -> int:
    from harness import report
    from harness.campaign import PROFILES, check_arguments

    if args.scheduler is None:
        raise usage_error("--shards splits campaigns over a cluster's workers; give --scheduler tcp://HOST:PORT too")
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
            devices = devices_for(args, cluster)
            shards = shards_for(args, total, cluster, len(runnable) * len(devices))
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
            collector = Collector(units, seed, args.profile, args.repro_dir, replay, report.Progress(sys.stderr))
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
            results.append(ImplementationResult.error(name, seed, args.profile, broken[name].error))
        else:
            results.append(collector.result(name, [unit for unit in unfinished if unit.name == name]))
    return report.finish(args, results, seed=seed, devices=devices)
