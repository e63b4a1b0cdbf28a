"""Measure campaigns on a Dask cluster: examples/s on 1 vs 2 workers, and what one
unit costs for going through the scheduler. docs/benchmarks.md quotes it:

    python tools/cluster_throughput.py                          # torch, 1200 examples of the long profile, 2 rounds
    python tools/cluster_throughput.py --impl loop --examples 600 --rounds 3

It starts its own scheduler and two single-threaded workers on 127.0.0.1 (the same
helper as tests/test_cluster.py). Throughput: the same campaign (implementation,
seed, example count; an empty example database each time) as one shard, which keeps
one worker busy, and as two shards on two workers, alternated round by round so a
burst of someone else's load hits both; examples/s is examples over the wall time
from the first unit's start to the last unit's end. Scheduler overhead: one-example
units submitted one at a time; the client's round trip minus the time the unit ran
on the worker.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", default="torch", help="implementation to fuzz (default: %(default)s)")
    parser.add_argument("--profile", default="long", help="whose distribution (default: %(default)s)")
    parser.add_argument("--examples", type=int, default=1200, help="examples per campaign (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="1-worker/2-worker pairs (default: %(default)s)")
    parser.add_argument("--overhead-units", type=int, default=20, help="one-example units for the overhead (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=11)
    return parser.parse_args(argv)


def campaign(client, units, execution_class, cluster):
    import threading

    execution = execution_class(client, cluster, sys.stderr)
    outcomes = []
    execution.on_outcome = outcomes.append
    left = execution.run(units, threading.Event())
    assert not left
    examples = sum(o.result.examples for o in outcomes)
    span = max(o.finished for o in outcomes) - min(o.started for o in outcomes)
    verdicts = {o.result.verdict for o in outcomes}
    for o in outcomes:
        if o.result.verdict != "pass":  # a finding is worth more than the throughput number
            detail = o.result.failure.summary if o.result.failure is not None else o.result.reason
            print(f"!! {o.unit.label}: {o.result.verdict}\n{detail}\n  replay: {o.unit.replay_command()}", file=sys.stderr)
    return examples, span, verdicts, sorted({o.worker for o in outcomes})


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from harness import cluster as cluster_module
    from harness.database import parse
    from support.services import dask_cluster

    # Workers as `dask worker` starts them by default: under a nanny, daemon processes.
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "RNN_HARNESS_WORKER_THREADS": "1"}
    environment.pop("DASK_DISTRIBUTED__WORKER__DAEMON", None)
    with tempfile.TemporaryDirectory() as scratch, dask_cluster(Path(scratch) / "dask", [[], []], environment) as running:
        client = cluster_module.connect(running.address)
        cluster = cluster_module.survey(client, running.address, [arguments.impl], None, True)
        print(f"cluster {running.address}: {len(cluster.workers)} workers, {cluster.threads} threads", file=sys.stderr)

        def units(shards, round_index, total=arguments.examples):
            database = parse(str(Path(scratch) / f"database-{shards}-{round_index}"))
            return cluster_module.plan(
                [arguments.impl], ["cpu"], total=total, shards=shards, seed=arguments.seed,
                profile=arguments.profile, timeout=30.0, isolate=True, database=database.absolute(),
            )

        # Warm both workers (imports, forkserver) before timing anything.
        campaign(client, units(2, -1, total=4), cluster_module.Execution, cluster)
        rates = {1: [], 2: []}
        for round_index in range(arguments.rounds):
            for shards in (1, 2):
                examples, span, verdicts, workers = campaign(client, units(shards, round_index), cluster_module.Execution, cluster)
                rates[shards].append(examples / span)
                print(f"round {round_index + 1}, {shards} worker(s) {workers}: {examples} examples in {span:.1f}s = {examples / span:.1f}/s {verdicts}", file=sys.stderr)
        ratios = [two / one for one, two in zip(rates[1], rates[2])]

        round_trips, on_worker = [], []
        for index in range(arguments.overhead_units):
            (unit,) = cluster_module.plan([arguments.impl], ["cpu"], total=1, shards=1, seed=index, profile=arguments.profile,
                                          timeout=30.0, isolate=True, database=None)
            key = unit.key(1)
            sent = time.perf_counter()
            outcome = client.submit(cluster_module.run_unit, unit, key, key=key, pure=False).result()
            round_trips.append(time.perf_counter() - sent)
            on_worker.append(outcome.finished - outcome.started)
        overheads = [trip - ran for trip, ran in zip(round_trips, on_worker)]
        client.close()

    print(f"\n{arguments.impl}, {arguments.examples} examples of the {arguments.profile} profile, seed {arguments.seed}")
    print("| workers | examples/s per round | median |")
    print("|---|---|---|")
    for shards in (1, 2):
        print(f"| {shards} | {', '.join(f'{rate:.1f}' for rate in rates[shards])} | {statistics.median(rates[shards]):.1f} |")
    print(f"\n2 workers / 1 worker, per round: {', '.join(f'{ratio:.2f}' for ratio in ratios)}; median {statistics.median(ratios):.2f}")
    print(
        f"\nper unit, {arguments.overhead_units} one-example units one at a time: scheduler round trip minus time on the worker "
        f"median {statistics.median(overheads) * 1000:.0f} ms (max {max(overheads) * 1000:.0f} ms); "
        f"the unit itself on the worker (fresh isolation process, Hypothesis start, one example) median {statistics.median(on_worker) * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
