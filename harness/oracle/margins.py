"""How close a case that held came to its bounds (`Margins`): what the comparison
returns, the campaign's guided search climbs and tools/error_margins.py tabulates."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Margin:
    """One compared tensor's worst |error| / bound over its compared elements
    (infinite where the error is NaN); it held when at most 1."""

    kind: str  # "value" (output, h_n, c_n, a cell's h' and c') or "gradient"
    name: str  # the compared tensor: a result name, or an input or state_dict key for a gradient
    ratio: float


@dataclasses.dataclass(frozen=True)
class Margins:
    """The margins of every tensor one case compared, in the order compared: each call's
    values, then its gradients, for the first call and then the second."""

    compared: tuple[Margin, ...] = ()

    def __add__(self, other: "Margins") -> "Margins":
        return Margins(self.compared + other.compared)

    def worst(self, kind: str | None = None) -> float | None:
        """The largest ratio (of ``kind`` only, if given), or None when nothing was compared."""
        return max((margin.ratio for margin in self.compared if kind is None or margin.kind == kind), default=None)
