"""The ``bench --plot`` figure: time against sequence length and against hidden size.

One panel per (mode, axis), one line per implementation. A sweep is a set of
measured shapes that differ only in the swept dimension (for hidden size, I = H
move together); the longest such sweep in the results is drawn.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from harness.bench.workload import MODE_TITLES, MODES, Shape


def _sweep(shapes: set[Shape], axis: str) -> list[Shape]:
    """The longest run of shapes that differ only in ``axis``."""
    groups: dict[tuple, list[Shape]] = defaultdict(list)
    for shape in shapes:
        if axis == "steps":
            key = dataclasses.replace(shape, steps=0)
        else:
            if shape.input_size != shape.hidden_size:
                continue
            key = dataclasses.replace(shape, input_size=0, hidden_size=0)
        groups[key].append(shape)
    sweeps = [sorted(group, key=lambda s: getattr(s, axis)) for group in groups.values() if len(group) >= 2]
    return max(sweeps, key=len, default=[])


def plot_times(results, path: str, *, threads: int) -> None:
    """Write the figure to ``path`` (PNG). Panels without a sweep say so."""
    # The object-oriented API, not pyplot: no global figure state, no GUI backend.
    from matplotlib.figure import Figure

    modes = [mode for mode in MODES if any(r.mode == mode for r in results)]
    axes_spec = (("steps", "sequence length L"), ("hidden_size", "hidden size H (= I)"))
    figure = Figure(figsize=(12, 4.5 * len(modes)), layout="constrained")
    grid = figure.subplots(len(modes), 2, squeeze=False)
    for row, mode in enumerate(modes):
        mode_results = [r for r in results if r.mode == mode]
        for column, (axis, axis_title) in enumerate(axes_spec):
            ax = grid[row][column]
            sweep = _sweep({r.shape for r in mode_results}, axis)
            if not sweep:
                ax.text(0.5, 0.5, f"no shapes varying only {axis_title} were measured", ha="center", va="center")
                ax.set_axis_off()
                continue
            fixed = sweep[0]
            by_name: dict[str, list[tuple[int, float]]] = defaultdict(list)
            for result in mode_results:
                if result.shape in sweep:
                    by_name[result.implementation].append((getattr(result.shape, axis), result.median_seconds * 1e3))
            for name, points in sorted(by_name.items()):
                points.sort()
                ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=name)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel(axis_title)
            ax.set_ylabel("median time (ms)")
            others = (
                f"N={fixed.batch} I=H" if axis == "hidden_size" else f"N={fixed.batch} I={fixed.input_size} H={fixed.hidden_size}"
            )
            if axis == "hidden_size":
                others = f"L={fixed.steps} " + others
            ax.set_title(f"{MODE_TITLES[mode]}, {others}, {threads} thread(s)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
    figure.savefig(path, dpi=100)
