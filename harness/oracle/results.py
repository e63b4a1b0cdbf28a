"""What the oracle produces: one module's run on a case (`RunResult`) and the
finding a check raises when the candidate differs from torch (`Discrepancy`)."""

from __future__ import annotations

import dataclasses
import traceback
from typing import Any

from torch import Tensor


class Discrepancy(AssertionError):
    """The candidate differs from torch. ``summary`` is for people; ``evidence`` is
    what the repro script needs to show the same thing again."""

    def __init__(self, kind: str, subject: str, summary: str, evidence: dict[str, Any] | None = None):
        super().__init__(summary)
        self.kind = kind
        self.subject = subject
        self.summary = summary
        self.evidence = evidence or {}


@dataclasses.dataclass
class RunResult:
    raw: Any  # what the module returned
    values: dict[str, Tensor]
    """float64 CPU, by the family's result names: ``output`` (T, B, D, R), zero past
    each sequence's end; ``h_n``/``c_n`` (L*D, B, 1, width); a cell's ``h'``/``c'``
    as a one-step output (1, B, 1, H)."""
    gradients: dict[str, Tensor]  # "input", "h_0", "c_0", and state_dict keys; float64 CPU
    input: Any
    initial: tuple[Tensor, ...] | None  # the initial state tensors passed, h_0 [, c_0]

    @property
    def output(self) -> Tensor:
        return next(iter(self.values.values()))

    @property
    def h0(self) -> Tensor | None:
        return None if self.initial is None else self.initial[0]


def exception_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def short_traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)[-6:])
