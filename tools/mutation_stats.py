"""Run the fuzzer on every mutant of the catalogue and print how fast it kills them.

Prints a markdown table (one row per mutant: verdict, examples and seconds until
the first failing example, and what the fuzzer reported), the kill rate, the median
examples and seconds to detection, and the correct variants' verdicts. The tables
in docs/mutation-catalogue.md come from this script:

    python tools/mutation_stats.py                 # default profile, seed 0
    python tools/mutation_stats.py --seeds 0 1 2   # medians over several seeds
    python tools/mutation_stats.py -k padding      # only mutants whose name contains it
    python tools/mutation_stats.py --family LSTM   # only one family's mutants and variants

"Detection" is the first failing example, before Hypothesis shrinks it ("seconds
with shrinking" is the whole run, what the test suite pays). The saved example
database is not used, so every run starts cold.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", help="fuzzing profile (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="Hypothesis seeds to run each mutant with (default: 0)")
    parser.add_argument("-k", dest="select", metavar="TEXT", help="only mutants and variants whose name contains TEXT")
    parser.add_argument("--family", action="append", help="only this family's mutants and variants (repeatable)")
    parser.add_argument("--variant-examples", type=int, help="max_examples for the correct variants (default: the profile's)")
    parser.add_argument("--no-variants", action="store_true", help="skip the correct variants")
    parser.add_argument(
        "--activation-ulps", type=float, metavar="U",
        help="ErrorModel.activation_ulps to fuzz with (default: the model's; 0 is the model before its activation probe)",
    )
    return parser.parse_args(argv)


def finding(result) -> str:
    """One short phrase for what the fuzzer reported."""
    if result.failure is None:
        return result.reason.strip().splitlines()[-1][:80] if result.reason else "-"
    subject = f" ({result.failure.subject})" if result.failure.subject else ""
    return f"{result.failure.kind}{subject}"


def median_text(values: list[float], digits: int) -> str:
    return "-" if not values else f"{statistics.median(values):.{digits}f}"


def worst_text(values: list[float], digits: int, runs: int) -> str:
    """The slowest seed's detection; a seed that never detected is the worst of all."""
    if len(values) < runs:
        return "not killed"
    return "-" if not values else f"{max(values):.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    # The catalogue lives beside the tests and is imported the way pytest imports it.
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from harness.campaign import fuzz_implementation
    from harness.tolerance import DEFAULT_MODEL
    from mutants import CORRECT_VARIANTS, MUTANTS

    model = DEFAULT_MODEL
    if arguments.activation_ulps is not None:
        model = dataclasses.replace(DEFAULT_MODEL, activation_ulps=arguments.activation_ulps)

    warnings.simplefilter("ignore")  # constructor warnings (dropout with one layer) are expected
    def selected(implementation) -> bool:
        return (not arguments.select or arguments.select in implementation.name) and (
            not arguments.family or implementation.family in arguments.family
        )

    mutants = [m for m in MUTANTS if selected(m)]
    variants = [] if arguments.no_variants else [v for v in CORRECT_VARIANTS if selected(v)]
    repro_dir = Path(tempfile.mkdtemp(prefix="mutation-stats-"))

    def fuzz(implementation, max_examples=None):
        return [
            fuzz_implementation(
                implementation, profile=arguments.profile, seed=seed, max_examples=max_examples, repro_dir=repro_dir,
                database_dir=None, model=model,
            )
            for seed in arguments.seeds
        ]

    print(f"Mutation catalogue: profile {arguments.profile}, seeds {' '.join(map(str, arguments.seeds))}, activation_ulps {model.activation_ulps:g}")
    if mutants:
        print("\n| mutant | killed | examples to detection (median, worst seed) | seconds to detection (median, worst) | seconds with shrinking | reported as | mistake |")
        print("|---|---|---|---|---|---|---|")
    all_examples: list[float] = []
    all_seconds: list[float] = []
    killed_runs = runs = 0
    survivors = []
    per_family: dict[str, dict[str, list]] = {}
    for mutant in mutants:
        results = fuzz(mutant)
        killed = [r for r in results if r.verdict == "fail"]
        runs += len(results)
        killed_runs += len(killed)
        examples = [r.examples_to_failure for r in killed if r.examples_to_failure is not None]
        seconds = [r.seconds_to_failure for r in killed if r.seconds_to_failure is not None]
        all_examples += examples
        all_seconds += seconds
        tally = per_family.setdefault(mutant.family, {"mutants": [], "runs": [], "examples": [], "seconds": []})
        tally["mutants"].append(mutant.name)
        tally["runs"] += [r.verdict == "fail" for r in results]
        tally["examples"] += examples
        tally["seconds"] += seconds
        if len(killed) < len(results):
            survivors.append(mutant.name)
        shown = killed[0] if killed else results[0]
        total = [r.seconds for r in results]
        print(
            f"| {mutant.name} | {len(killed)}/{len(results)} | {median_text(examples, 0)}, {worst_text(examples, 0, len(results))} "
            f"| {median_text(seconds, 1)}, {worst_text(seconds, 1, len(results))} "
            f"| {median_text(total, 1)} | {finding(shown)} | {mutant.description} |",
            flush=True,
        )
    if runs:
        print(
            f"\nKill rate: {killed_runs}/{runs} runs ({100 * killed_runs / runs:.0f}%); "
            f"median to detection: {median_text(all_examples, 0)} examples, {median_text(all_seconds, 1)} s; "
            f"worst run: {worst_text(all_examples, 0, runs)} examples, {worst_text(all_seconds, 1, runs)} s."
        )
    if survivors:
        print(f"Survivors: {', '.join(survivors)}")
    if len(per_family) > 1:
        print("\n| family | mutants | killed runs | kill rate | examples to detection (median, worst) | seconds to detection (median, worst) |")
        print("|---|---|---|---|---|---|")
        for family_name, tally in per_family.items():
            killed_count, run_count = sum(tally["runs"]), len(tally["runs"])
            print(
                f"| {family_name} | {len(tally['mutants'])} | {killed_count}/{run_count} | {100 * killed_count / run_count:.0f}% "
                f"| {median_text(tally['examples'], 0)}, {worst_text(tally['examples'], 0, run_count)} "
                f"| {median_text(tally['seconds'], 1)}, {worst_text(tally['seconds'], 1, run_count)} |"
            )

    false_alarms = []
    if variants:
        print("\n| correct variant | verdict | examples | seconds | note |\n|---|---|---|---|---|")
        for variant in variants:
            for result in fuzz(variant, max_examples=arguments.variant_examples):
                note = "" if result.verdict == "pass" else finding(result)
                if result.verdict != "pass":
                    false_alarms.append(variant.name)
                print(f"| {variant.name} | {result.verdict} | {result.examples} | {result.seconds:.1f} | {note} |", flush=True)
    print(f"\n(repro scripts of this run: {repro_dir})")
    return 1 if survivors or false_alarms else 0


if __name__ == "__main__":
    sys.exit(main())
