"""``python -m harness bench``: every selected implementation against torch on a shape grid.

Implementations are compared within their family (RNN, LSTM, GRU and the cells),
each family against torch's own module of that family (``torch``, ``torch-lstm``,
``torch-grucell``, ...). A cell is timed looped over the shape's L steps
(`harness.bench.workload`), as the asv suites time it; a shape with more than one
layer or both directions has no meaning for a cell and is listed as skipped.

For each shape and mode, the implementations are timed in interleaved rounds (each
round times every implementation once with ``torch.utils.benchmark``'s blocked
autorange, in a rotating order, and the rounds are merged), so a burst of load on a
shared machine lands on all of them rather than on one. The table gives the median,
the ratio to torch, the achieved GFLOP/s and that as a fraction of this machine's
measured matmul GFLOP/s at the same thread count (`harness.bench.roofline`). The matmul
is timed in the same interleaved rounds as the implementations, so the fraction
compares numbers taken under the same load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
import timeit

import torch
import torch.utils.benchmark as benchmark

from harness.families import FAMILIES
from harness.registry import Registry
from harness.bench.roofline import matmul_call, thread_count
from harness.bench.workload import MODE_TITLES, MODES, Shape, UnsupportedCase, build_workload, builtin_name

CLOCKS = {"wall": timeit.default_timer, "cpu": time.process_time}
"""What a timed block is measured with. ``cpu`` (this process's CPU time) leaves out
the time other processes hold the cores, so on a shared machine ratios taken
with it move less with their load; it is not latency with more than one thread."""

BASELINE = "torch"
"""The baseline's base name; in family F it is ``builtin_name(BASELINE, F)``."""

BENCH_FAMILIES = tuple(FAMILIES)
"""The families ``bench`` times, each against its own baseline: the layers and the cells."""
ROOFLINE = "(matmul)"  # the roofline's entry among the interleaved timings

LATENCY_BOUND = Shape(50, 1, 32, 32)
COMPUTE_BOUND = Shape(100, 32, 256, 256)

GRIDS = {
    # The two cases the targets are stated for.
    "reference": (LATENCY_BOUND, COMPUTE_BOUND),
    # Those, a medium case, stacking and direction, and two sweeps for the plot:
    # sequence length at fixed width, width at fixed length.
    "standard": (
        LATENCY_BOUND,
        Shape(100, 8, 128, 128),
        COMPUTE_BOUND,
        Shape(50, 8, 64, 64, num_layers=2),
        Shape(50, 8, 64, 64, bidirectional=True),
        *(Shape(steps, 8, 64, 64) for steps in (25, 50, 100, 200)),
        *(Shape(50, 8, hidden, hidden) for hidden in (32, 128, 256)),
    ),
}


@dataclasses.dataclass(frozen=True)
class BenchResult:
    family: str
    implementation: str
    shape: Shape
    mode: str
    median_seconds: float
    iqr_seconds: float
    runs: int  # timed blocks behind the median
    first_call_seconds: float  # includes compilation for compiling implementations
    ratio_to_torch: float | None
    gflops: float
    roofline_gflops: float  # the matmul, timed in the same rounds
    roofline_fraction: float

    def as_json(self) -> dict:
        row = dataclasses.asdict(self)
        row["shape"] = dataclasses.asdict(self.shape) | {"label": self.shape.label}
        return row


def parse_shape(text: str) -> Shape:
    """``L,N,I,H`` with optional ``,layers=K`` and ``,bidir``, e.g. ``50,1,32,32,bidir``."""
    parts = [part.strip() for part in text.split(",")]
    try:
        steps, batch, input_size, hidden_size = (int(part) for part in parts[:4])
        num_layers, bidirectional = 1, False
        for extra in parts[4:]:
            if extra == "bidir":
                bidirectional = True
            elif extra.startswith("layers="):
                num_layers = int(extra.removeprefix("layers="))
            else:
                raise ValueError(extra)
        if min(steps, batch, input_size, hidden_size, num_layers) < 1:
            raise ValueError(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"shape {text!r} is not L,N,I,H (positive integers) optionally followed by "
            "',layers=K' and ',bidir'; for example 50,1,32,32 or 100,32,256,256,layers=2"
        ) from None
    return Shape(steps, batch, input_size, hidden_size, num_layers, bidirectional)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--impl", action="append", dest="impl", metavar="NAME",
                        help="implementation to time (repeatable; default: all of the family). torch's module of "
                             "the family is always timed as the baseline")
    parser.add_argument("--family", action="append", choices=BENCH_FAMILIES, metavar="FAMILY",
                        help=f"time this family's implementations (repeatable; one of {', '.join(BENCH_FAMILIES)}; "
                             "default: the families of the --impl names, else RNN)")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="standard",
                        help="named shape grid (default: standard; 'reference' is the two target cases)")
    parser.add_argument("--shape", action="append", type=parse_shape, metavar="L,N,I,H[,layers=K][,bidir]",
                        help="time this shape instead of the grid (repeatable)")
    parser.add_argument("--mode", choices=(*MODES, "both"), default="both",
                        help="forward (no_grad), backward (forward+backward), or both (default)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads while timing (default: 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where to run (default: cpu). On cuda the timer synchronizes the device around each block")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall-clock time (default) or this process's CPU time, which leaves out time other "
                             "processes hold the cores (steadier on a shared machine; with --threads 1 only)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per shape and mode (default: 3)")
    parser.add_argument("--min-run-time", type=float, default=0.2, metavar="SECONDS",
                        help="blocked autorange time per implementation per round (default: 0.2)")
    parser.add_argument("--matmul-size", type=int, default=1024,
                        help="side of the square matmul that defines the roofline (default: 1024)")
    parser.add_argument("--json", metavar="PATH", help="also write every result as JSON to PATH")
    parser.add_argument("--plot", metavar="PATH.png", help="also plot time against L and against H to PATH.png")


def families_to_time(args: argparse.Namespace, registry: Registry, selected_names: list[str]) -> dict[str, list[str]]:
    """Family -> the implementations to time in it, its torch baseline first."""
    from harness.usage import UsageError

    for name in selected_names:
        if name not in registry.loaded:
            raise UsageError(f"implementation {name!r} failed to load; `python -m harness list` shows why")
    family_of = {name: registry.implementation(name).family for name in selected_names}
    if args.family:
        families = list(dict.fromkeys(args.family))
    elif args.impl:
        families = list(dict.fromkeys(family_of.values()))
    else:
        families = ["RNN"]
    chosen = {}
    for family in families:
        if family not in BENCH_FAMILIES:
            raise UsageError(f"bench times the families {', '.join(BENCH_FAMILIES)}; {family!r} is not one of them")
        baseline = builtin_name(BASELINE, family)
        if baseline not in registry.loaded:
            raise UsageError(f"the baseline implementation {baseline!r} is not installed; reinstall rnn-harness")
        chosen[family] = [baseline] + [name for name in selected_names if family_of[name] == family and name != baseline]
    if args.impl:
        left_out = [name for name in selected_names if family_of[name] not in chosen]
        if left_out:
            raise UsageError(
                f"{', '.join(left_out)} {'is' if len(left_out) == 1 else 'are'} not in --family "
                f"{' '.join(families)}; name the family too, or leave --family out"
            )
    return chosen


def run_command(args: argparse.Namespace, registry: Registry, selected_names: list[str]) -> int:
    from harness.usage import EXIT_OK, UsageError

    chosen = families_to_time(args, registry, selected_names)
    if args.threads < 1 or args.rounds < 1 or args.min_run_time <= 0:
        raise UsageError("--threads and --rounds must be at least 1 and --min-run-time positive")
    if args.clock == "cpu" and (args.threads != 1 or args.device != "cpu"):
        raise UsageError("--clock cpu measures one CPU thread's work; use it with --threads 1 and --device cpu")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch.cuda.is_available() is False on this machine")
    if args.plot and not args.plot.lower().endswith(".png"):
        raise UsageError(f"--plot writes a PNG; give a path ending in .png, not {args.plot!r}")
    shapes = tuple(args.shape) if args.shape else GRIDS[args.grid]
    modes = MODES if args.mode == "both" else (args.mode,)

    results, skipped = [], []
    for family, names in chosen.items():
        family_results, family_skipped = measure(registry, names, shapes, modes, args, family)
        results += family_results
        skipped += family_skipped
    print(format_table(results, args))
    for name, shape, mode, reason in skipped:
        print(f"skipped {name} {shape.label} {MODE_TITLES[mode]}: {reason}")
    if args.json:
        write_json(args.json, results, skipped, args)
        progress(f"wrote {args.json}")
    if args.plot:
        from harness.bench.plot import plot_times

        plot_times(results, args.plot, threads=args.threads)
        progress(f"wrote {args.plot}")
    return EXIT_OK


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(registry, names, shapes, modes, args, family="RNN"):
    results: list[BenchResult] = []
    matmul, matmul_flops = matmul_call(args.matmul_size, args.device)
    skipped: list[tuple[str, Shape, str, str]] = []
    total, done = len(shapes) * len(modes), 0
    baseline_name = builtin_name(BASELINE, family)
    gate_count = registry.implementation(baseline_name).family_record.gate_count
    with thread_count(args.threads):
        for shape in shapes:
            for mode in modes:
                done += 1
                progress(f"[{done}/{total}] {family} {shape.label} {MODE_TITLES[mode]}: {', '.join(names)}")
                workloads = {}
                for name in names:
                    try:
                        workloads[name] = build_workload(registry.implementation(name), shape, mode, device=args.device)
                    except UnsupportedCase as reason:
                        skipped.append((name, shape, mode, str(reason)))
                    except Exception as error:  # noqa: BLE001 - one path failing must not stop the others' timings
                        skipped.append((name, shape, mode, f"failed: its first call raised {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"))
                medians = time_interleaved({**workloads, ROOFLINE: matmul}, shape, mode, args)
                roofline_gflops = matmul_flops / medians.pop(ROOFLINE).median / 1e9
                baseline = medians.get(baseline_name)
                for name, measurement in medians.items():
                    gflops = shape.flops(mode, gate_count) / measurement.median / 1e9
                    results.append(BenchResult(
                        family=family,
                        implementation=name,
                        shape=shape,
                        mode=mode,
                        median_seconds=measurement.median,
                        iqr_seconds=measurement.iqr,
                        runs=len(measurement.times),
                        first_call_seconds=workloads[name].first_call_seconds,
                        ratio_to_torch=None if baseline is None else measurement.median / baseline.median,
                        gflops=gflops,
                        roofline_gflops=roofline_gflops,
                        roofline_fraction=gflops / roofline_gflops,
                    ))
                    progress(f"    {name:<18} {format_seconds(measurement.median):>10}")
    return results, skipped


def time_interleaved(workloads: dict, shape: Shape, mode: str, args) -> dict[str, benchmark.Measurement]:
    """Median per implementation over ``args.rounds`` rounds, rotating who goes first."""
    names = list(workloads)
    per_name: dict[str, list[benchmark.Measurement]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        shift = round_index % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            timer = benchmark.Timer(
                "workload()",
                globals={"workload": workloads[name]},
                label=MODE_TITLES[mode],
                sub_label=shape.label,
                description=name,
                num_threads=args.threads,
                timer=CLOCKS[args.clock],
            )
            per_name[name].append(timer.blocked_autorange(min_run_time=args.min_run_time))
    return {name: benchmark.Measurement.merge(measurements)[0] for name, measurements in per_name.items()}


def format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}" if seconds / scale < 100 else f"{seconds / scale:.0f} {unit}"
    return f"{seconds / 1e-9:.0f} ns"


def format_table(results: list[BenchResult], args) -> str:
    header = ("family", "shape", "mode", "implementation", "median", "vs torch", "GFLOP/s", "of matmul", "matmul GFLOP/s")
    rows = [header]
    for result in results:
        rows.append((
            result.family,
            result.shape.label,
            MODE_TITLES[result.mode],
            result.implementation,
            format_seconds(result.median_seconds),
            "-" if result.ratio_to_torch is None else f"{result.ratio_to_torch:.2f}x",
            f"{result.gflops:.2f}",
            f"{100 * result.roofline_fraction:.1f}%",
            f"{result.roofline_gflops:.1f}",
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        f"{args.threads} thread(s), {'CPU' if args.clock == 'cpu' else 'wall-clock'} time. 'vs torch': time / the time of torch's module of the family (lower is faster). "
        f"'of matmul': GFLOP/s as a "
        f"fraction of a {args.matmul_size}^3 float32 matmul's, timed in the same rounds (last column)."
    ]
    previous_group = None
    for index, row in enumerate(rows):
        group = row[:3]
        if index > 1 and group != previous_group:
            lines.append("")
        previous_group = group
        lines.append("  ".join(
            cell.ljust(width) if column < 4 else cell.rjust(width) for column, (cell, width) in enumerate(zip(row, widths))
        ))
    compile_rows = [r for r in results if r.first_call_seconds > 10 * r.median_seconds + 0.5]
    for result in compile_rows:
        lines.append(
            f"first call of {result.implementation} at {result.shape.label} {MODE_TITLES[result.mode]} took "
            f"{result.first_call_seconds:.2f} s (compilation; not in the medians)"
        )
    return "\n".join(lines)


def write_json(path: str, results, skipped, args) -> None:
    document = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": args.threads,
            "clock": args.clock,
            "matmul_size": args.matmul_size,
        },
        "results": [result.as_json() for result in results],
        "skipped": [
            {"implementation": name, "shape": shape.label, "mode": mode, "reason": reason}
            for name, shape, mode, reason in skipped
        ],
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
