"""Fuzz implementations and report how close each example comes to its bound.

For every example that held, the worst |error| / bound over the output and h_n
("values") and over every gradient tensor ("gradients") is taken from the margins
`harness.oracle.check` returns, under the bounds with the activation probes (run on
every case here; the verdict is the same). The table gives,
per implementation and seed, the verdict and the median, 99th percentile and maximum
of those per-example worst ratios: how much room a correct implementation leaves
(docs/error-model.md quotes it). Candidates run in this process (no isolation).

    python tools/error_margins.py correct-approximate-activations --profile long --seeds 0 1
    python tools/error_margins.py loop vectorized --max-examples 300

Names are registered implementations or entries of the mutation catalogue
(tests/mutants: correct variants and mutants).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="implementations or catalogue entries")
    parser.add_argument("--profile", default="long", help="fuzzing profile (default: %(default)s)")
    parser.add_argument("--max-examples", type=int, help="override the profile's example count")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="Hypothesis seeds (default: 0)")
    return parser.parse_args(argv)


def find_implementation(name: str):
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from mutants import CORRECT_VARIANTS, MUTANTS

    catalogue = {entry.name: entry for entry in CORRECT_VARIANTS + MUTANTS}
    if name in catalogue:
        return catalogue[name]
    from harness.registry import discover

    return discover().implementation(name)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def distribution(values: list[float]) -> str:
    if not values:
        return "- | - | -"
    return f"{statistics.median(values):.3g} | {quantile(values, 0.99):.3g} | {max(values):.3g}"


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    from harness.campaign import fuzz_implementation

    warnings.simplefilter("ignore")  # constructor warnings (dropout with one layer) are expected
    print(f"worst |error| / bound per example: profile {arguments.profile}, seeds {' '.join(map(str, arguments.seeds))}")
    print("\n| implementation | seed | verdict | examples | compared (values / gradients) "
          "| values: median | p99 | max | gradients: median | p99 | max | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    failures = 0
    details = []
    for name in arguments.names:
        implementation = find_implementation(name)
        for seed in arguments.seeds:
            per_example: list[dict[str, float]] = []
            worst: dict[str, tuple[float, str, object]] = {}  # kind -> (ratio, tensor, case)

            def observe(case, margins) -> None:
                example = {}
                for margin in margins.compared:
                    example[margin.kind] = max(example.get(margin.kind, 0.0), margin.ratio)
                    example["dtype"] = str(case.dtype)
                    if margin.ratio > worst.get(margin.kind, (-1.0,))[0]:
                        worst[margin.kind] = (margin.ratio, margin.name, case)
                per_example.append(example)

            started = time.perf_counter()
            result = fuzz_implementation(
                implementation, profile=arguments.profile, max_examples=arguments.max_examples, seed=seed,
                repro_dir=None, database_dir=None, isolate=False, on_margins=observe, lazy_probes=False,
            )
            values = [example["value"] for example in per_example if "value" in example]
            gradients = [example["gradient"] for example in per_example if "gradient" in example]
            failures += result.verdict != "pass"
            print(
                f"| {name} | {seed} | {result.verdict} | {result.examples} | {len(values)} / {len(gradients)} "
                f"| {distribution(values)} | {distribution(gradients)} | {time.perf_counter() - started:.0f} |",
                flush=True,
            )
            if result.failure is not None:
                print(result.failure.summary.replace("\n", "\n    "), flush=True)
            details.append((name, seed, per_example, worst))
    print_worst(details)
    return 1 if failures else 0


def print_worst(details: list) -> None:
    """Per run: the largest ratio by kind and dtype, and the case behind each kind's
    largest (a reader judging soundness wants the closest call, not only the verdict)."""
    print("\nworst |error| / bound by kind of comparison and dtype (compared examples):")
    print("\n| implementation | seed | kind | dtype | examples | max |")
    print("|---|---|---|---|---|---|")
    for name, seed, per_example, _ in details:
        for kind in ("value", "gradient"):
            for dtype in sorted({example["dtype"] for example in per_example if kind in example}):
                ratios = [example[kind] for example in per_example if kind in example and example["dtype"] == dtype]
                print(f"| {name} | {seed} | {kind} | {dtype} | {len(ratios)} | {max(ratios):.3g} |")
    for name, seed, _, worst in details:
        for kind, (ratio, tensor, case) in sorted(worst.items()):
            description = case.describe().replace("\n", "\n      ")
            print(f"\n{name}, seed {seed}: largest {kind} ratio {ratio:.3g} ({tensor}) on\n      {description}")


if __name__ == "__main__":
    sys.exit(main())
