"""asv suites for any installed implementation, each against torch's module of its family.

A plugin's ``benchmarks/benchmarks.py`` needs two lines::

    from harness.bench.asv import suites
    globals().update(suites("my-rnn", "my-lstm"))

`suites` makes two classes per implementation, ``MyRnnForward`` and ``MyRnnBackward``
(asv finds them among the module's attributes and names its benchmarks by the
class's ``__name__``), each with a ``time_``, a ``peakmem_`` and a ``track_``
benchmark parametrised over [the implementation, ``torch``] x shapes x threads, where
``torch`` is torch's module of the implementation's family (nn.LSTM for an LSTM,
nn.GRUCell for a GRUCell). The workload is `harness.bench.workload`'s, so asv times
what ``python -m harness bench`` times; cells are timed looped over the sequence.

The project's own suites are `ForwardSuite` and `BackwardSuite` too, parametrised
over built-in base names instead: the default suite (benchmarks/, time and peak
memory of the implementations worth tracking) and the full one (benchmarks_full/,
every built-in and shape, with `TracksWorstError`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping

import torch

from harness.bench import BASELINE, COMPUTE_BOUND, LATENCY_BOUND
from harness.bench.workload import Shape, build_workload, builtin_name, worst_error
from harness.implementation import Implementation
from harness.registry import UnknownImplementationError, discover

SHAPES = {
    f"latency {LATENCY_BOUND.label}": LATENCY_BOUND,
    f"compute {COMPUTE_BOUND.label}": COMPUTE_BOUND,
}
"""The default shapes, by the label asv shows: the latency-bound and the compute-bound case."""

THREADS = (1,)
"""torch threads while timing; a parameter so that asv records it with each result."""

TORCH = BASELINE
"""The parameter value that stands for torch's module of the implementation's family."""


@functools.cache
def load(name: str) -> Implementation:
    """The installed implementation called ``name``.

    Raises NotImplementedError, which asv records as a skip, when nothing installed
    registers the name (at an old commit, say); a plugin that is installed but fails
    to import raises RuntimeError, a failure.
    """
    try:
        registry = discover([name])
    except UnknownImplementationError:
        raise NotImplementedError(f"implementation {name!r} is not installed in this environment") from None
    if name not in registry.loaded:
        broken = next(plugin for plugin in registry.broken if plugin.name == name)
        raise RuntimeError(f"implementation {name!r} is installed but does not load: {broken.error}\n{broken.details}")
    return registry.implementation(name)


class Suite:
    """What every suite shares: build the workload in setup, restore threads in teardown.

    A subclass says which implementation a parameter value stands for
    (`implementation_name`) and sets ``params``: implementation names, shape labels
    (keys of ``shapes``) and thread counts.
    """

    mode = "forward"
    shapes: Mapping[str, Shape] = SHAPES
    param_names = ["implementation", "shape", "threads"]
    # A compiling implementation compiles in setup, on the first call.
    timeout = 600

    def implementation_name(self, name: str) -> str:
        raise NotImplementedError(f"{type(self).__name__} does not say which implementation {name!r} stands for")

    def implementation(self, name: str) -> Implementation:
        return load(self.implementation_name(name))

    def setup(self, name: str, shape: str, threads: int) -> None:
        self.threads_before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            # Builds, loads torch's seeded weights, and warms up: compiling
            # implementations compile here, not in the timed call.
            self.workload = build_workload(self.implementation(name), self.shapes[shape], self.mode)
        except BaseException:
            torch.set_num_threads(self.threads_before)  # asv skips teardown after a failed setup
            raise

    def teardown(self, name: str, shape: str, threads: int) -> None:
        torch.set_num_threads(self.threads_before)


class TracksWorstError:
    """Mixed in before a `Suite`: ``track_worst_error``, the accuracy beside the timings."""

    def track_worst_error(self, name: str, shape: str, threads: int) -> float:
        """The largest |difference| from torch's module in float64 (values, and
        gradients in backward mode) on the same seeded case."""
        return worst_error(self.implementation(name), self.shapes[shape], self.mode)

    track_worst_error.unit = "max abs error vs float64"


class ForwardSuite(Suite):
    """The forward pass under no_grad: time and peak memory."""

    mode = "forward"

    def time_forward(self, name, shape, threads):
        self.workload()

    def peakmem_forward(self, name, shape, threads):
        self.workload()


class BackwardSuite(Suite):
    """Forward then backward: time and peak memory."""

    mode = "backward"

    def time_forward_backward(self, name, shape, threads):
        self.workload()

    def peakmem_forward_backward(self, name, shape, threads):
        self.workload()


class PluginSuite(TracksWorstError, Suite):
    """One implementation and torch's module of its family (the parameter ``torch``),
    with its worst error beside the timings."""

    implementation_under_test: str

    def implementation_name(self, name: str) -> str:
        if name != TORCH:
            return name
        try:
            family = load(self.implementation_under_test).family
        except NotImplementedError as error:
            raise NotImplementedError(f"{error}, so torch's module of its family is unknown") from None
        return builtin_name(TORCH, family)


def class_name(implementation: str) -> str:
    """``my-rnn`` -> ``MyRnn``: asv splits a benchmark's name at '.' and '-', so the
    class's name keeps letters and digits only."""
    words = [word for word in re.split(r"[^0-9A-Za-z]+", implementation) if word]
    if not words:
        raise ValueError(f"implementation name {implementation!r} has no letters or digits to name an asv suite by")
    name = "".join(word[0].upper() + word[1:] for word in words)
    return name if name[0].isalpha() else f"Impl{name}"


def suites(
    *implementations: str,
    shapes: Mapping[str, Shape] | Iterable[Shape] | None = None,
    threads: Iterable[int] = THREADS,
) -> dict[str, type]:
    """asv suites for the named implementations: ``{"MyRnnForward": class, "MyRnnBackward": class, ...}``.

    Put them in a module of the benchmark directory (``globals().update(suites(...))``):
    asv discovers classes among a module's attributes and names each by its
    ``__name__``, which is the key. Nothing is imported or loaded here; the names are
    looked up with `harness.discover` in setup, so an implementation missing at some
    commit is a skip there, not an import error of the whole suite.

    ``shapes``: a mapping from the label asv shows to a `Shape`, or Shapes (labelled
    by `Shape.label`); default `SHAPES`. ``threads``: torch thread counts, default 1.
    Keep both fixed over your history: asv compares results by parameter.
    """
    if not implementations:
        raise ValueError("suites() needs at least one implementation name, as `python -m harness list` shows them")
    shape_table = _shape_table(SHAPES if shapes is None else shapes)
    thread_counts = list(threads)
    made: dict[str, type] = {}
    for implementation in dict.fromkeys(implementations):
        if not isinstance(implementation, str) or implementation == TORCH:
            raise ValueError(f"{implementation!r} is not an implementation to compare with torch; name one as `python -m harness list` shows it")
        for base, mode_title in ((ForwardSuite, "Forward"), (BackwardSuite, "Backward")):
            name = class_name(implementation) + mode_title
            if name in made:
                other = made[name].implementation_under_test
                raise ValueError(f"implementations {other!r} and {implementation!r} would both be asv suite {name}; benchmark them from separate modules")
            made[name] = type(name, (PluginSuite, base), {
                "__doc__": f"{implementation} and torch's module of its family. {base.__doc__}",
                "implementation_under_test": implementation,
                "shapes": shape_table,
                "params": ([implementation, TORCH], list(shape_table), thread_counts),
            })
    return made


def _shape_table(shapes: Mapping[str, Shape] | Iterable[Shape]) -> dict[str, Shape]:
    """Shapes by the label asv shows: a mapping as given, Shapes by `Shape.label`."""
    if isinstance(shapes, Mapping):
        table = dict(shapes)
    else:
        table = {}
        for shape in shapes:
            label = shape.label if isinstance(shape, Shape) else repr(shape)
            if label in table:
                raise ValueError(f"shape {label} is listed twice")
            table[label] = shape
    for label, shape in table.items():
        if not isinstance(shape, Shape):
            raise TypeError(f"shape {label} is {shape!r}, not a harness.bench.workload.Shape (Shape(steps, batch, input_size, hidden_size, ...))")
    if not table:
        raise ValueError("suites() needs at least one shape")
    return table
