"""``python -m harness fuzz``: its options, and where the campaigns run: on this
machine (`harness.local_run`) or, with ``--scheduler`` or ``--shards``, on a Dask
cluster (`harness.cluster`). Both use `harness.campaign`, which uses neither."""

from __future__ import annotations

from pathlib import Path

from harness import cluster, database as examples_database, local_run
from harness.campaign import DEFAULT_DATABASE, DEFAULT_REPRO_DIR, DEFAULT_TIMEOUT, PROFILES
from harness.local_run import TIME_BUDGETS, default_jobs
from harness.usage import UsageError


def add_arguments(parser) -> None:
    parser.add_argument("--impl", action="append", metavar="NAME", help="implementation to fuzz (repeatable; default: all)")
    parser.add_argument("--profile", choices=list(PROFILES), default="default", help="how many examples: " + "; ".join(f"{k}={v[0]}" for k, v in PROFILES.items()))
    parser.add_argument("--max-examples", type=int, metavar="N", help="override the profile's example count")
    parser.add_argument("--seed", type=int, metavar="S", help="seed for the campaign (printed, so any run can be replayed)")
    parser.add_argument("--device", action="append", metavar="DEV", help="cpu or cuda (repeatable; default: all present)")
    parser.add_argument("--report", type=Path, metavar="PATH", help="write a JSON report here")
    parser.add_argument("--repro-dir", type=Path, default=DEFAULT_REPRO_DIR, metavar="DIR", help="where repro scripts go (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="per-example limit before a candidate counts as hung (default: %(default)s)")
    parser.add_argument("--no-isolation", action="store_true", help="run candidates in this process (faster to debug; a crash ends the campaign)")
    parser.add_argument(
        "--time-budget", type=float, metavar="SECONDS",
        help="stop each campaign before its next example once the command has run this long (never before its first "
        "example or while shrinking a failure; the report says what was cut); 0 for none. Default: "
        + ", ".join(f"{seconds:g} s for the {name} profile" for name, seconds in TIME_BUDGETS.items())
        + " when fuzzing everything registered without --max-examples, none otherwise",
    )
    parser.add_argument(
        "--jobs", type=int, metavar="N",
        help=f"implementations fuzzed at once, each in its own worker process with one thread (default: the CPUs available, {default_jobs()} here)",
    )
    parser.add_argument("--coverage", action="store_true", help="print each campaign's per-dimension counts of the values its cases held, and the value pairs left uncovered")
    parser.add_argument("--database", metavar="URL", help=f"where failures are kept and replayed first: {examples_database.ACCEPTED} (default: {DEFAULT_DATABASE})")
    cluster.add_arguments(parser)


def run_command(args, registry, names: list[str]) -> int:
    if args.scheduler is not None or args.shards is not None:
        if args.jobs is not None:
            raise UsageError("--jobs is for a run on this machine; on a cluster, its workers' threads decide how many units run at once")
        if getattr(args, "time_budget", None) is not None:
            raise UsageError("--time-budget is for a run on this machine; on a cluster, give --max-examples or --shards")
        return cluster.run_command(args, registry, names)
    return local_run.run_command(args, registry, names)
