"""The plugin record: what an implementation is and what it claims to support.

An outside package exposes one `Implementation` per entry point in the group
``rnn_harness.impls``. Everything here is plain data; nothing is imported or built
until the harness calls ``factory``.
"""

from __future__ import annotations

import dataclasses
import math
import traceback
from collections.abc import Callable, Collection, Mapping
from typing import Any

import torch
from torch import nn

from harness.families import FAMILY_NAMES, family as family_record

"""The families the harness checks: torch's class names (harness/families.py)."""

ALL_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
ALL_NONLINEARITIES = frozenset({"tanh", "relu"})
WAIVABLE_KINDS = frozenset({"aliasing", "mutation"})
"""Findings a `KnownFailure` can set aside while the rest of the case is checked:
those whose checks are separate steps of `harness.oracle.check`."""
DEFAULT_PROFILE_EXAMPLES = 300
"""Examples per implementation in the default profile (``python -m harness fuzz``)."""


@dataclasses.dataclass(frozen=True)
class KnownFailure:
    """A configuration on which the implementation is known to differ, and why.

    ``when`` receives a `harness.Case` (its fields: dtype, num_layers, layout, ...)
    and returns True for the cases it covers. The fuzzer does not hold those cases
    against the implementation and reports how many it set aside, with the reason.

    ``kinds`` narrows it to some checks: with ``kinds={"aliasing"}`` the covered cases
    still run and every other check holds; only that kind of finding is set aside.
    The kinds that can be set aside alone are `WAIVABLE_KINDS`.
    """

    when: Callable[[Any], bool]
    reason: str
    kinds: Collection[str] | None = None

    def __post_init__(self) -> None:
        if self.kinds is not None:
            kinds = frozenset(self.kinds)
            unknown = kinds - WAIVABLE_KINDS
            if not kinds or unknown:
                raise ValueError(
                    f"KnownFailure kinds={sorted(kinds)}: expected a non-empty subset of {sorted(WAIVABLE_KINDS)} "
                    "(checks that run on their own), or None to set the whole case aside"
                )
            object.__setattr__(self, "kinds", kinds)

    def label(self) -> str:
        """The reason as reports count it; says which checks alone were set aside."""
        if self.kinds is None:
            return self.reason
        return f"[{', '.join(sorted(self.kinds))} check only] {self.reason}"


class Unavailable(RuntimeError):
    """Raised by a factory that cannot work in this environment (say, a compiler is
    missing). The harness reports the implementation as skipped with this reason
    instead of calling it wrong."""


@dataclasses.dataclass(frozen=True)
class Implementation:
    """One implementation of a recurrent layer, described as data.

    ``factory(**kwargs)`` takes the family's torch constructor keywords and returns a
    drop-in ``nn.Module``. The capability fields default to "everything torch
    supports for the family"; narrowing one is a declaration that the harness
    respects (it never generates such a case) and shows in ``python -m harness list``.
    """

    name: str
    factory: Callable[..., nn.Module]
    family: str = "RNN"
    dtypes: Collection[torch.dtype] | None = None
    devices: Collection[str] | None = None
    nonlinearities: Collection[str] | None = None
    max_layers: int | None = None
    bidirectional: bool = True
    packed: bool = True
    unbatched: bool = True
    projections: bool = True
    """LSTM only: supports ``proj_size > 0``."""
    backward: bool = True
    error_budget: float = 1.0
    """Multiplies the error model's bound; above 1 declares an approximate implementation,
    and every report says so."""
    known_failures: tuple[KnownFailure, ...] = ()
    description: str = ""
    default_examples: int | None = None
    """This implementation's budget under the default profile, for one that is slow per
    example (compiling, exporting) or one of many registered together: smaller profiles
    give at most this many, the long profile as many times more as it has more examples
    than the default one (`example_budget`); ``--max-examples`` overrides. Shown in
    ``list`` and in every report."""
    example_timeout: float | None = None
    """Seconds one example may take before the candidate counts as hung, if more than
    ``--timeout``: a path that compiles a new graph for a new shape needs minutes. It
    also says the time does not follow the case's size, so every example gets this full
    limit, never one predicted from the cases that passed (`harness.isolation`)."""
    preload: tuple[str, ...] = ()
    """Modules this implementation's worker would import anyway and that take seconds
    (``torch._dynamo``, a JAX or TensorFlow runtime): the server every worker forks
    from imports them once, instead of each new worker again. Only modules that start
    no threads or processes when imported: a fork does not copy threads."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Implementation.name must be a non-empty string, got {self.name!r}")
        if not callable(self.factory):
            raise TypeError(
                f"Implementation {self.name!r}: factory must be callable "
                f"(a class or a function returning an nn.Module), got {self.factory!r}"
            )
        if self.family not in FAMILY_NAMES:
            raise ValueError(
                f"Implementation {self.name!r}: family {self.family!r} is not one of torch's recurrent modules; "
                f"expected one of {', '.join(FAMILY_NAMES)} (torch's class names, exactly)"
            )
        # Freeze the collections so two records compare and hash by value.
        for field in ("dtypes", "devices", "nonlinearities"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, frozenset(value))
        unknown = set(self.dtypes or ()) - ALL_DTYPES
        if unknown:
            raise ValueError(f"Implementation {self.name!r}: dtypes {sorted(map(str, unknown))} are not floating types torch's RNN supports")
        unknown = set(self.nonlinearities or ()) - ALL_NONLINEARITIES
        if unknown:
            raise ValueError(f"Implementation {self.name!r}: unknown nonlinearities {sorted(unknown)}; expected tanh or relu")
        if not self.error_budget >= 1.0:
            raise ValueError(f"Implementation {self.name!r}: error_budget must be at least 1 (1 = exact like torch), got {self.error_budget}")
        object.__setattr__(self, "known_failures", tuple(self.known_failures))
        for known in self.known_failures:
            if not isinstance(known, KnownFailure):
                raise TypeError(f"Implementation {self.name!r}: known_failures must hold KnownFailure(when=..., reason=...), got {known!r}")
        if self.default_examples is not None and self.default_examples < 1:
            raise ValueError(f"Implementation {self.name!r}: default_examples must be at least 1, got {self.default_examples}")
        if self.example_timeout is not None and not self.example_timeout > 0:
            raise ValueError(f"Implementation {self.name!r}: example_timeout must be a positive number of seconds, got {self.example_timeout}")
        object.__setattr__(self, "preload", (self.preload,) if isinstance(self.preload, str) else tuple(self.preload))
        for module in self.preload:
            if not isinstance(module, str) or not module:
                raise TypeError(f"Implementation {self.name!r}: preload must hold module names such as 'torch._dynamo', got {module!r}")
        if self.max_layers is not None and self.max_layers < 1:
            raise ValueError(f"Implementation {self.name!r}: max_layers must be at least 1, got {self.max_layers}")

    def unsupported_reason(
        self,
        constructor: Mapping[str, Any],
        *,
        device: str = "cpu",
        packed: bool = False,
        unbatched: bool = False,
        backward: bool = False,
    ) -> str | None:
        """Why this implementation declares the case out of scope, or None if it claims it."""
        dtype = constructor.get("dtype") or torch.get_default_dtype()
        if self.dtypes is not None and dtype not in self.dtypes:
            return f"dtype {dtype} not in declared dtypes"
        device_type = torch.device(device).type
        if self.devices is not None and device_type not in self.devices:
            return f"device {device_type} not in declared devices"
        nonlinearity = constructor.get("nonlinearity", "tanh")
        if self.nonlinearities is not None and nonlinearity not in self.nonlinearities:
            return f"nonlinearity {nonlinearity} not declared"
        num_layers = constructor.get("num_layers", 1)
        if self.max_layers is not None and num_layers > self.max_layers:
            return f"num_layers={num_layers} exceeds max_layers={self.max_layers}"
        if constructor.get("bidirectional", False) and not self.bidirectional:
            return "bidirectional not supported"
        if packed and not self.packed:
            return "PackedSequence input not supported"
        if unbatched and not self.unbatched:
            return "unbatched (2-D) input not supported"
        if constructor.get("proj_size", 0) and not self.projections:
            return "proj_size > 0 (projections) not supported"
        if backward and not self.backward:
            return "backward not supported"
        return None

    @property
    def family_record(self):
        """The `harness.families.Family` record of this implementation's family."""
        return family_record(self.family)

    def limits(self) -> dict[str, str]:
        """The declared capability limits, for display; empty when it claims everything."""
        shown: dict[str, str] = {}
        if self.dtypes is not None:
            shown["dtypes"] = ",".join(sorted(str(d).removeprefix("torch.") for d in self.dtypes))
        if self.devices is not None:
            shown["devices"] = ",".join(sorted(self.devices))
        if self.nonlinearities is not None:
            shown["nonlinearities"] = ",".join(sorted(self.nonlinearities))
        if self.max_layers is not None:
            shown["max_layers"] = str(self.max_layers)
        for flag in ("bidirectional", "packed", "unbatched", "projections", "backward"):
            if not getattr(self, flag):
                shown[flag] = "no"
        if self.error_budget != 1.0:
            shown["approximate"] = f"bound x{self.error_budget:g}"
        if self.known_failures:
            shown["known_failures"] = str(len(self.known_failures))
        if self.default_examples is not None:
            shown["default_examples"] = str(self.default_examples)
        if self.example_timeout is not None:
            shown["example_timeout"] = f"{self.example_timeout:g}s"
        return shown

    def example_budget(self, profile_examples: int) -> int:
        """How many examples a profile that asks for ``profile_examples`` gives this one.

        Up to the default profile's count the declared ``default_examples`` caps it (a
        quick look stays quick). Beyond it the cap grows in proportion: the long
        profile's campaign stays as much longer than the default one as it is for an
        implementation that declares nothing, instead of stopping at the quick budget."""
        if self.default_examples is None:
            return profile_examples
        if profile_examples <= DEFAULT_PROFILE_EXAMPLES:
            return min(profile_examples, self.default_examples)
        return min(profile_examples, math.ceil(self.default_examples * profile_examples / DEFAULT_PROFILE_EXAMPLES))

    def known_failure(self, case) -> KnownFailure | None:
        """The declared known failure covering this case, if any."""
        return next((known for known in self.known_failures if known.when(case)), None)


class KnownFailurePredicateError(BaseException):
    """A `KnownFailure.when` raised. A BaseException, so Hypothesis does not shrink
    it: the mistake is in the plugin's declaration, not in a case; the campaign stops."""

    def __init__(self, implementation: Implementation, index: int, known: KnownFailure, error: Exception):
        frames = traceback.format_exception(type(error), error, error.__traceback__)
        text = (
            f"{implementation.name}: known_failures[{index}] (reason {known.reason!r}): its `when` predicate raised "
            "on a case instead of returning True or False. `when` receives a harness.Case; "
            "docs/plugins.md lists its fields.\n" + "".join(frames[1:]).rstrip()
        )
        super().__init__(text)
        self.text = text


def known_failures_covering(implementation: Implementation, case) -> list[KnownFailure]:
    """The declared known failures covering this case, with a predicate that raises
    named as such."""
    covering = []
    for index, known in enumerate(implementation.known_failures):
        try:
            if known.when(case):
                covering.append(known)
        except Exception as error:  # noqa: BLE001 - the plugin's predicate; reported as its error
            raise KnownFailurePredicateError(implementation, index, known, error) from None
    return covering
