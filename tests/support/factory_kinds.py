"""Factories that work in-process and are not module-level classes or functions: the
kinds plugin authors write when they wrap another framework or generate variants.
Each `Implementation` here is reachable by a module-level name, which is all a worker
process needs (tests/test_isolation.py)."""

from __future__ import annotations

import functools

from harness import Implementation
from impls.loop import LoopRNN


def _closure_over(base):
    def build(**constructor):
        return base(**constructor)

    return build


def _class_built_in_a_function():
    class Local(LoopRNN):
        pass

    return Local


CLOSURE = Implementation(name="kind-closure", factory=_closure_over(LoopRNN))
LOCAL_CLASS = Implementation(name="kind-local-class", factory=_class_built_in_a_function())
PARTIAL_OF_LAMBDA = Implementation(name="kind-partial-of-lambda", factory=functools.partial(lambda base, **constructor: base(**constructor), LoopRNN))
# A generated family: classes made with type() at import time, kept only in a list.
GENERATED = [Implementation(name=f"kind-generated-{index}", factory=type(f"Generated{index}", (LoopRNN,), {})) for index in range(2)]
BY_NAME = {"kind-in-a-dict": Implementation(name="kind-in-a-dict", factory=lambda **constructor: LoopRNN(**constructor))}

ALL = [CLOSURE, LOCAL_CLASS, PARTIAL_OF_LAMBDA, GENERATED[1], BY_NAME["kind-in-a-dict"]]
