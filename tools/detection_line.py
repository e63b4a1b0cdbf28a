"""Where the fuzzer's line lies for small but real numerical defects.

Sweeps the size of the two small defects of the mutation catalogue,
`mutant-tanh-off-100-ulps` (a tanh off by N units of roundoff, in an oscillating
pattern) and `mutant-bias-off-1e-4` (a constant left out of every pre-activation),
and fuzzes each size with the default profile and several seeds. Prints, per size,
how many runs flagged it and the median examples and seconds to the first failing
example. docs/error-model.md quotes the result. With ``--dtype`` the implementations
declare that dtype only and the tanh is off there (in units of its roundoff): the
line for half precision.

    python tools/detection_line.py                       # seeds 0 1 2
    python tools/detection_line.py --ulps 64 100 --offsets 1e-5 1e-4 --seeds 0
    python tools/detection_line.py --dtype float16 --ulps 16 32 64 --offsets --seeds 0 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ulps", type=float, nargs="*", default=[16, 32, 64, 100, 200], help="tanh errors to try, in units of roundoff")
    parser.add_argument("--offsets", type=float, nargs="*", default=[1e-6, 1e-5, 1e-4, 1e-3], help="bias offsets to try")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Hypothesis seeds (default: 0 1 2)")
    parser.add_argument("--profile", default="default", help="fuzzing profile (default: %(default)s)")
    parser.add_argument("--dtype", choices=["float16", "bfloat16", "float32", "float64"], help="fuzz this dtype only (default: every dtype; the tanh is off in float32 and float64)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    import torch

    from harness import Implementation
    from harness.campaign import fuzz_implementation
    from mutants.numerics import SmallBiasDropped, TanhOff100Ulps

    warnings.simplefilter("ignore")
    dtypes = None if arguments.dtype is None else {getattr(torch, arguments.dtype)}
    tanh_dtypes = TanhOff100Ulps.DTYPES if dtypes is None else tuple(dtypes)
    sizes = [("tanh off by", f"{u:g} units", type("TanhOff", (TanhOff100Ulps,), {"UNITS": u, "DTYPES": tanh_dtypes})) for u in arguments.ulps]
    sizes += [("bias off by", f"{o:g}", type("BiasOff", (SmallBiasDropped,), {"OFFSET": o})) for o in arguments.offsets]
    repro_dir = Path(tempfile.mkdtemp(prefix="detection-line-"))
    print(f"Detection line: profile {arguments.profile}, seeds {' '.join(map(str, arguments.seeds))}, dtype {arguments.dtype or 'any'}, in-process")
    print("\n| defect | size | flagged | median examples to detection | median seconds to detection | reported as |")
    print("|---|---|---|---|---|---|")
    for defect, size, factory in sizes:
        implementation = Implementation(name=f"{defect} {size}".replace(" ", "-"), factory=factory, family="RNN", dtypes=dtypes)
        results = [
            fuzz_implementation(implementation, profile=arguments.profile, seed=seed, repro_dir=repro_dir, database_dir=None, isolate=False)
            for seed in arguments.seeds
        ]
        killed = [r for r in results if r.verdict == "fail"]
        examples = [r.examples_to_failure for r in killed if r.examples_to_failure is not None]
        seconds = [r.seconds_to_failure for r in killed if r.seconds_to_failure is not None]
        reported = sorted({f"{r.failure.kind} ({r.failure.subject})" for r in killed if r.failure is not None})
        print(
            f"| {defect} | {size} | {len(killed)}/{len(results)} | {statistics.median(examples) if examples else '-'} "
            f"| {f'{statistics.median(seconds):.1f}' if seconds else '-'} | {', '.join(reported) or '-'} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
