"""Run the reference and a candidate on one case, compare, and explain any difference.

The reference is torch's own ATen kernel in float64 on the CPU. Next to it runs a
*probe* (torch in the candidate's dtype and device; for float64, a slightly perturbed
float64 reference and a float32 run scaled down) whose distance from the reference measures how much this case amplifies
rounding; harness/tolerance.py turns that into the bound. Everything a drop-in must
match is checked: exceptions, return types, shapes, dtypes, devices, PackedSequence
metadata, values, NaN/Inf, gradients of a random linear functional with respect to
the input, h_0 and every parameter (by state_dict key), inputs left unmutated, no
new aliasing, and weight changes between calls taking effect.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import traceback
import warnings
from typing import Any, Callable

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from harness.cases import Case, Materialized, materialize
from harness.families import FAMILIES
from harness.implementation import Implementation
from harness.probes import activation_adjoint_factory, activation_probe_factory, needs_activation_probes
from harness.tolerance import DEFAULT_MODEL, ErrorModel


_NOT_GIVEN = object()  # "torch's outcome on an invalid input is not known yet"
_ADJOINT_CHUNK = 64  # result elements per batched backward of the activation adjoint
_ADJOINT_FIRST_CHUNK = 8  # the worst elements, tried first on their own
_ADJOINT_LIMIT = 512  # out-of-bound elements the adjoint may clear before the rest count as they are


MARGIN_OBSERVER: contextvars.ContextVar[Callable[[str, str, float, Case], None] | None] = contextvars.ContextVar("margin_observer", default=None)
"""Set to a callable(kind, name, worst |error| / bound, case) to watch how close each
compared tensor comes to its bound (tools/error_margins.py); it never changes a verdict."""


CASE_MARGINS: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("case_margins", default=None)
"""The list `check` collects the case's worst |error| / bound per compared tensor in,
under the bounds that judged it (the narrower ones unless the candidate was out of
them). Unlike MARGIN_OBSERVER it does not make the lazy probes run on every case."""


def _observe_margin(case: Case, kind: str, name: str, error: Tensor, bound: Tensor | float, compared: Tensor) -> None:
    observer, margins = MARGIN_OBSERVER.get(), CASE_MARGINS.get()
    if (observer is None and margins is None) or not bool(compared.any()):
        return
    ratio = (error / bound).nan_to_num(nan=math.inf)
    worst = float(torch.where(compared, ratio, torch.zeros_like(ratio)).max())
    if margins is not None:
        margins.append(worst)
    if observer is not None:
        observer(kind, name, worst, case)


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


def reference_factory(family: str = "RNN"):
    """The family's torch module on ATen's own kernels (no cuDNN/oneDNN); imported lazily."""
    from impls.torch_aten import ATEN_MODULES

    record = FAMILIES[family]
    return ATEN_MODULES.get(family, record.module_class)


def _quiet_construct(factory, case: Case, dtype: torch.dtype, device) -> torch.nn.Module:
    with warnings.catch_warnings():
        # dropout > 0 with one layer warns in torch; the case is legitimate.
        warnings.filterwarnings("ignore", message=".*dropout option adds dropout after all but last.*")
        module = factory(**case.constructor(), dtype=dtype, device=device)
    if not isinstance(module, torch.nn.Module):
        raise Discrepancy("contract", "factory", f"the factory returned a {type(module).__name__}, not an nn.Module; it must return a drop-in for torch.nn.{case.family}")
    module.train(case.training)
    return module


def _load(module: torch.nn.Module, weights: dict[str, Tensor], who: str) -> None:
    """Load torch-keyed weights and check they really arrived (fastrnns' lesson)."""
    expected = list(weights)
    try:
        keys = list(module.state_dict(keep_vars=True))
    except Exception as error:  # noqa: BLE001
        raise Discrepancy("contract", "state_dict", f"{who}.state_dict(keep_vars=True) raised {type(error).__name__}: {error}") from error
    if sorted(keys) != sorted(expected):
        raise Discrepancy(
            "contract", "state_dict",
            f"{who}.state_dict() keys differ from torch's:\n  missing: {sorted(set(expected) - set(keys))}\n"
            f"  unexpected: {sorted(set(keys) - set(expected))}",
        )
    template = module.state_dict()
    try:
        module.load_state_dict({k: w.to(template[k].dtype).to(template[k].device) for k, w in weights.items()})
    except Exception as error:  # noqa: BLE001
        raise Discrepancy("contract", "load_state_dict", f"{who}.load_state_dict(torch_state_dict) raised {type(error).__name__}: {error}") from error
    loaded = module.state_dict()
    for key, value in weights.items():
        if not torch.equal(loaded[key].double().cpu(), value):
            raise Discrepancy("contract", key, f"after load_state_dict, {who}.state_dict()[{key!r}] does not hold the loaded values")


def _perturbed(tensor: Tensor, generator: torch.Generator, relative: float) -> Tensor:
    noise = torch.rand(tensor.shape, generator=generator, dtype=torch.float64) * 2 - 1
    return tensor * (1 + relative * noise)


class _Session:
    """The three modules of one case and how to run them."""

    def __init__(self, implementation: Implementation, case: Case, model: ErrorModel):
        self.case = case
        self.model = model
        self.materialized = materialize(case)
        self.dtype = case.torch_dtype
        AtenRNN = reference_factory(case.family)
        self.reference = _quiet_construct(AtenRNN, case, torch.float64, "cpu")
        _load(self.reference, self.materialized.weights, "reference")
        if self.dtype == torch.float64:
            generator = torch.Generator().manual_seed(case.seed + 1)
            relative = model.probe_perturbation_ulps * model.unit_roundoff(torch.float64)
            self.probe_weights = {k: _perturbed(w, generator, relative) for k, w in self.materialized.weights.items()}
            self.probe_input = dataclasses.replace(
                self.materialized,
                padded_input=_perturbed(self.materialized.padded_input, generator, relative),
                initial_states=None if self.materialized.initial_states is None else tuple(_perturbed(state, generator, relative) for state in self.materialized.initial_states),
            )
        else:
            self.probe_weights = self.materialized.weights
            self.probe_input = self.materialized
        self.probe = _quiet_construct(AtenRNN, case, self.dtype, case.device)
        _load(self.probe, self.probe_weights, "probe")
        # For float64 a second probe: torch in float32, its error scaled down to
        # float64's roundoff. It sees what perturbing inputs cannot: the rounding of
        # every intermediate sum, step after step (docs/error-model.md).
        self.low_probe = None
        if self.dtype == torch.float64:
            self.low_probe = _quiet_construct(AtenRNN, case, torch.float32, case.device)
            _load(self.low_probe, {k: w.float().double() for k, w in self.materialized.weights.items()}, "float32 probe")
        # Torch's own run is one sample of how rounding moves this case, and in
        # saturating or chaotic regimes the spread is wider than one sample shows: a
        # float32 candidate that merely rounds differently was measured at 15x torch's
        # own error on a case where torch happened to land close; in half precision a
        # trajectory near a tipping point can go either way, and a saturated tanh
        # stores h so close to +/-1 that 1 - h^2 loses its digits; relu's derivative
        # jumps at 0, so where a pre-activation sits within rounding of 0 a gradient
        # can change by O(1). Pairs of torch runs in the candidate's dtype, with weights
        # and input perturbed by +/- the same noise, sample that spread (for a kink one
        # of the two always pushes it across): 1 ulp for values and gradients, 16 ulps
        # more for relu gradients. (float64 has its perturbed probe above.)
        with_gradients = case.backward and not case.no_grad
        self.sensitivity_probes = []  # (module, signed ulps, widens values too)
        plans = []
        if self.dtype != torch.float64:
            plans.append((model.sensitivity_perturbation_ulps, True))
        if case.nonlinearity == "relu" and with_gradients:
            plans.append((model.kink_perturbation_ulps, False))
        for ulps, values in plans:
            for sign in (1.0, -1.0):
                module = _quiet_construct(AtenRNN, case, self.dtype, case.device)
                _load(module, self._sensitivity_weights(self.materialized.weights, sign * ulps), "sensitivity probe")
                self.sensitivity_probes.append((module, sign * ulps, values))
        # Libraries' tanh and sigmoid are a few ulps off where torch's are half an ulp:
        # a +/- pair of `loop` runs with every activation output moved by the budget
        # measures what that costs in this case (harness/probes.py).
        self.activation_factories = []
        if needs_activation_probes(model, case.family_record.elementwise_functions(case.nonlinearity), self.dtype):
            # Two pairs: outputs moved at random (errors that average out along the
            # recurrence) and all one way (an approximation's error where the arguments
            # stay close, as in saturation, adds up step after step).
            self.activation_factories = [
                activation_probe_factory(model, case.seed * 1000 + 1, sign, case.family, systematic)
                for sign, systematic in ((1.0, False), (-1.0, False), (1.0, True), (-1.0, True))
            ]
        self._activation_modules: list | None = None  # built on first use: most examples never need them
        self.tipping_ulps = model.tipping_perturbation_ulps if self.dtype != torch.float64 and model.tipping_perturbation_ulps > 0 else None
        self._tipping_modules: list | None = None  # built on first use, as the activation probes
        self._order_module = None  # likewise (`order_probe`)
        try:
            self.candidate = _quiet_construct(implementation.factory, case, self.dtype, case.device)
        except Discrepancy:
            raise
        except Exception as error:
            raise Discrepancy("exception", "constructor", f"constructing the candidate raised {_exception_line(error)}", {"traceback": _short_traceback(error)}) from error
        _load(self.candidate, self.materialized.weights, "candidate")

    def activation_probes(self) -> list:
        """The activation probes, built and loaded with the current weights the first
        time a verdict needs them."""
        if self._activation_modules is None:
            self._activation_modules = []
            for factory in self.activation_factories:
                module = _quiet_construct(factory, self.case, self.dtype, self.case.device)
                _load(module, self.materialized.weights, "activation probe")
                self._activation_modules.append(module)
        return self._activation_modules

    def activation_adjoint(self) -> Callable[[str, Tensor], Tensor]:
        """worst(name, index): for (N, 4) indices into the values of result ``name``, the
        most any pattern of activation errors within the budget can move each element,
        to first order (`harness.probes.ActivationAdjoint`). One float64 forward on the
        CPU around the reference's trajectory with the current weights, kept for the
        calls that follow; each call is one batched backward per 64 elements."""
        case = self.case
        module = _quiet_construct(activation_adjoint_factory(self.model, self.dtype, case.family), case, torch.float64, "cpu")
        _load(module, self.materialized.weights, "activation adjoint")
        x, hx = self.materialized.module_input(case, torch.float64, "cpu")
        with torch.enable_grad():
            values = _value_layout(case, canonical_results(case, module(x, hx)))
        shifts = [shift for shift, _ in module.shifts]
        allowances = [allowance for _, allowance in module.shifts]

        def worst(name: str, index: Tensor) -> Tensor:
            total = torch.zeros(len(index), dtype=torch.float64)
            selected = values[name][tuple(index.T)]
            if not shifts or not selected.requires_grad:
                return total
            for start in range(0, len(index), _ADJOINT_CHUNK):
                part = selected[start : start + _ADJOINT_CHUNK]
                grads = torch.autograd.grad(
                    part, shifts, torch.eye(len(part), dtype=torch.float64),
                    retain_graph=True, allow_unused=True, is_grads_batched=True,
                )
                for grad, allowance in zip(grads, allowances):
                    if grad is not None:
                        total[start : start + len(part)] += (grad.abs() * allowance).flatten(1).sum(1)
            return total

        return worst

    def tipping_probes(self) -> list:
        """The +/- pair of torch runs perturbed by `tipping_perturbation_ulps`, as
        (module, signed ulps), built and loaded the first time a verdict needs them."""
        if self._tipping_modules is None:
            self._tipping_modules = []
            AtenRNN = reference_factory(self.case.family)
            for sign in (1.0, -1.0):
                ulps = sign * self.tipping_ulps
                module = _quiet_construct(AtenRNN, self.case, self.dtype, self.case.device)
                _load(module, self._sensitivity_weights(self.materialized.weights, ulps), "tipping probe")
                self._tipping_modules.append((module, ulps))
        return self._tipping_modules

    def order_probe(self):
        """torch in the candidate's dtype with the input's features in reverse order
        (and W_ih's columns with them): the same function, summed in another order.
        A hoisted or blocked input GEMM sums in another order too, and where the input
        product cancels (wide, large inputs against large weights: 29 features x5
        against weights x3 left 0.5 of terms summing to 78) that moves an output by
        20 times torch's own error, which one sample of torch's own order may not show.
        float32 and half precision, with more than one input feature; built and loaded
        the first time a verdict needs it (None where it does not apply)."""
        if self.dtype == torch.float64 or self.case.input_size < 2:
            return None
        if self._order_module is None:
            self._order_module = _quiet_construct(reference_factory(self.case.family), self.case, self.dtype, self.case.device)
            _load(self._order_module, self._reordered(self.materialized.weights), "order probe")
        return self._order_module

    @staticmethod
    def _reordered(weights: dict[str, Tensor]) -> dict[str, Tensor]:
        """The weights with the first layer's input columns reversed."""
        first_layer = ("weight_ih_l0", "weight_ih_l0_reverse", "weight_ih")
        return {k: (w.flip(-1) if k in first_layer else w) for k, w in weights.items()}

    def order_inputs(self) -> Materialized:
        return dataclasses.replace(self.materialized, padded_input=self.materialized.padded_input.flip(-1))

    def _sensitivity_noise(self, name: str, shape) -> Tensor:
        generator = torch.Generator().manual_seed(self.case.seed * 1000 + sum(map(ord, name)))
        return torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1

    def _sensitivity_weights(self, weights: dict[str, Tensor], ulps: float) -> dict[str, Tensor]:
        relative = ulps * self.model.unit_roundoff(self.dtype)
        return {k: (w * (1 + relative * self._sensitivity_noise(k, w.shape))).to(self.dtype).double() for k, w in weights.items()}

    def sensitivity_inputs(self, ulps: float) -> Materialized:
        relative = ulps * self.model.unit_roundoff(self.dtype)
        tensors = self.materialized
        states = None
        if tensors.initial_states is not None:
            # the first state's noise is keyed "h0" as it always was, so nn.RNN cases keep their probes
            states = tuple(state * (1 + relative * self._sensitivity_noise(key, state.shape)) for key, state in zip(("h0", "c0"), tensors.initial_states))
        x = tensors.padded_input * (1 + relative * self._sensitivity_noise("input", tensors.padded_input.shape))
        return dataclasses.replace(tensors, padded_input=x, initial_states=states)

    def update_weights(self) -> None:
        """Change the weights between calls, the way the case says."""
        new = self.materialized.second_weights
        assert new is not None
        self.materialized = dataclasses.replace(self.materialized, weights=new)
        modules = [(self.reference, new), (self.probe, new if self.dtype != torch.float64 else None), (self.candidate, new)]
        if self.low_probe is not None:
            modules.append((self.low_probe, {k: w.float().double() for k, w in new.items()}))
        modules += [(module, self._sensitivity_weights(new, ulps)) for module, ulps, _ in self.sensitivity_probes]
        modules += [(module, new) for module in self._activation_modules or ()]
        modules += [(module, self._sensitivity_weights(new, ulps)) for module, ulps in self._tipping_modules or ()]
        if self._order_module is not None:
            modules.append((self._order_module, self._reordered(new)))
        for module, weights in modules:
            if weights is None:  # the float64 probe keeps its perturbation pattern
                generator = torch.Generator().manual_seed(self.case.seed + 2)
                relative = self.model.probe_perturbation_ulps * self.model.unit_roundoff(torch.float64)
                weights = {k: _perturbed(w, generator, relative) for k, w in new.items()}
            if self.case.second_call == "optimizer_step":
                parameters = module.state_dict(keep_vars=True)
                with torch.no_grad():
                    for key, value in weights.items():
                        parameters[key].copy_(value.to(parameters[key].dtype))
            else:
                module.load_state_dict({k: v.to(module.state_dict()[k].dtype).to(module.state_dict()[k].device) for k, v in weights.items()})


def _leaf(tensor: Tensor) -> Tensor:
    return tensor.detach().requires_grad_()


def run_module(module, case: Case, tensors: Materialized, dtype, device, who: str) -> RunResult:
    """One forward (and backward, if the case asks) in the case's layout."""
    family = case.family_record
    x, hx = tensors.module_input(case, dtype, device)
    want_grad = case.backward and not case.no_grad
    if want_grad and case.input_grad:
        if isinstance(x, PackedSequence):
            x = PackedSequence(_leaf(x.data), x.batch_sizes, x.sorted_indices, x.unsorted_indices)
        else:
            x = _leaf(x)
        if hx is not None:
            hx = tuple(_leaf(state) for state in hx) if family.cell_state else _leaf(hx)
    initial = None if hx is None else (tuple(hx) if family.cell_state else (hx,))
    grad_mode = torch.no_grad() if case.no_grad else contextlib.nullcontext()
    with grad_mode:
        raw = module(x, hx)
    if who == "candidate":
        check_structure(case, raw, x)
    flat = canonical_results(case, raw)
    gradients: dict[str, Tensor] = {}
    if want_grad:
        functional = sum((value.double() * tensors.cotangents[name].to(value.device)).sum() for name, value in flat.items())
        parameters = module.state_dict(keep_vars=True)
        state_names = list(family.initial_state_names[: len(initial)]) if initial is not None else []
        if case.input_grad:
            names = ["input"] + state_names + list(tensors.weights)
            leaves = [x.data if isinstance(x, PackedSequence) else x] + list(initial or ()) + [parameters[k] for k in tensors.weights]
        else:
            names, leaves = list(tensors.weights), [parameters[k] for k in tensors.weights]
        if not functional.requires_grad:
            cut = f"the input, {', '.join(family.initial_state_names)} and parameters" if case.input_grad else "the parameters (the input and states do not require grad here)"
            raise Discrepancy(
                "gradient", family.result_names[0],
                f"the results ({', '.join(flat)}) do not require grad: the graph to {cut} is cut (a .detach() or torch.no_grad() inside forward?)",
            )
        grads = torch.autograd.grad(functional, leaves, allow_unused=True)
        for name, grad in zip(names, grads):
            if grad is None:
                if who == "candidate":
                    raise Discrepancy("gradient", name, f"no gradient reaches {name}: it is not connected to the results in the candidate's graph")
                continue
            gradients[name] = grad.detach().double().cpu()
    values = {name: value.detach().double().cpu() for name, value in _value_layout(case, flat).items()}
    return RunResult(raw, values, gradients, x, initial)


def _value_layout(case: Case, flat: dict[str, Tensor]) -> dict[str, Tensor]:
    """`canonical_results` in the layout of `RunResult.values` (still on the graph)."""
    values = {}
    for name, value in flat.items():
        if name == "output":
            value = value.reshape(value.shape[0], value.shape[1], case.num_directions, case.state_width)
        else:  # a state, or a cell's one-step result
            value = value.unsqueeze(2)
        values[name] = value
    return values


def returned_tensors(case: Case, raw: Any) -> dict[str, Any]:
    """What forward returned, by the family's result names (structure already checked)."""
    family = case.family_record
    if family.cell:
        return dict(zip(family.result_names, raw if family.cell_state else (raw,)))
    output, state = raw
    return dict(zip(family.result_names, (output, *(state if family.cell_state else (state,)))))


def canonical_results(case: Case, raw: Any) -> dict[str, Tensor]:
    """The results in the canonical shapes of `harness.cases.result_shapes`."""
    family = case.family_record
    unbatched = case.layout == "unbatched"
    flat = {}
    for name, value in returned_tensors(case, raw).items():
        if family.cell:
            value = value.unsqueeze(0).unsqueeze(0) if unbatched else value.unsqueeze(0)
        elif name == "output":
            if isinstance(value, PackedSequence):
                value, _ = pad_packed_sequence(value, total_length=case.seq_len)
            elif unbatched:
                value = value.unsqueeze(1)
            elif case.batch_first:
                value = value.transpose(0, 1)
        elif unbatched:
            value = value.unsqueeze(1)
        flat[name] = value
    return flat


def expected_shapes(case: Case) -> dict[str, tuple[int, ...]]:
    """torch's shapes for each returned tensor (a PackedSequence output: its data)."""
    family = case.family_record
    B, H, R = case.batch, case.hidden_size, case.state_width
    if family.cell:
        shape = (H,) if case.layout == "unbatched" else (B, H)
        return {name: shape for name in family.result_names}
    D, L, T = case.num_directions, case.num_layers, case.seq_len
    if case.layout == "unbatched":
        shapes = {"output": (T, D * R), "h_n": (L * D, R), "c_n": (L * D, H)}
    else:
        if case.packed:
            output = (sum(case.lengths), D * R)
        else:
            output = (B, T, D * R) if case.batch_first else (T, B, D * R)
        shapes = {"output": output, "h_n": (L * D, B, R), "c_n": (L * D, B, H)}
    return {name: shapes[name] for name in family.result_names}


def check_structure(case: Case, raw: Any, given_input) -> None:
    """Types, shapes, dtypes, devices and PackedSequence metadata, exactly as torch returns them."""
    family = case.family_record
    expected = family.return_signature()

    def wrong(what: str) -> Discrepancy:
        return Discrepancy("type", "return value", f"forward returned {what}, but torch.nn.{family.name} returns {expected}")

    def describe(value) -> str:
        if isinstance(value, tuple):
            return f"a tuple of {len(value)} ({', '.join(type(v).__name__ for v in value)})"
        return f"a {type(value).__name__}"

    if family.cell:
        if family.cell_state:
            if not isinstance(raw, tuple) or len(raw) != 2 or not all(isinstance(v, Tensor) for v in raw):
                raise wrong(describe(raw))
        elif not isinstance(raw, Tensor) or isinstance(raw, PackedSequence):
            raise wrong(describe(raw))
    else:
        if not isinstance(raw, tuple) or len(raw) != 2:
            raise wrong(describe(raw))
        output, state = raw
        expected_type = PackedSequence if case.packed else Tensor
        if not isinstance(output, expected_type) or (expected_type is Tensor and isinstance(output, PackedSequence)):
            raise Discrepancy("type", "output", f"output is a {type(output).__name__}, but torch returns a {expected_type.__name__} for {case.layout} input")
        if family.cell_state:
            if not isinstance(state, tuple) or len(state) != 2 or not all(isinstance(v, Tensor) for v in state):
                raise Discrepancy("type", "h_n", f"the state is {describe(state)}, but torch.nn.{family.name} returns a tuple (h_n, c_n) of Tensors")
        elif not isinstance(state, Tensor):
            raise Discrepancy("type", "h_n", f"h_n is {describe(state)}, but torch.nn.{family.name} returns a Tensor")
    shapes = expected_shapes(case)
    for name, value in returned_tensors(case, raw).items():
        label, tensor = (name + ".data", value.data) if isinstance(value, PackedSequence) else (name, value)
        shape = shapes[name]
        if tuple(tensor.shape) != shape:
            raise Discrepancy("shape", name, f"{label}.shape={tuple(tensor.shape)}, but torch gives {shape}")
        if tensor.dtype != case.torch_dtype:
            raise Discrepancy("dtype", name, f"{label}.dtype={tensor.dtype}, but torch gives {case.torch_dtype}")
        if tensor.device != torch.device(case.device) and tensor.device.type != torch.device(case.device).type:
            raise Discrepancy("device", name, f"{label} is on {tensor.device}, but torch returns it on {case.device}")
    if case.packed:
        output = raw[0]
        for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
            got, want = getattr(output, field), getattr(given_input, field)
            same = (got is None and want is None) or (got is not None and want is not None and torch.equal(got.cpu(), want.cpu()))
            if not same:
                raise Discrepancy("packed_metadata", f"output.{field}", f"output.{field}={got}, but torch returns {want} (the input's)")


def _exception_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def _short_traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)[-6:])


def _storages(tensors: dict[str, Tensor | None]) -> set[frozenset[str]]:
    """Pairs of names whose tensors share memory."""
    pointers = {}
    for name, tensor in tensors.items():
        if tensor is not None and tensor.numel() > 0:
            pointers[name] = tensor.untyped_storage().data_ptr()
    names = sorted(pointers)
    return {frozenset((a, b)) for i, a in enumerate(names) for b in names[i + 1 :] if pointers[a] == pointers[b]}


def _alias_view(case: Case, run: RunResult) -> dict[str, Tensor | None]:
    view = {}
    for name, value in returned_tensors(case, run.raw).items():
        view[name] = value.data if isinstance(value, PackedSequence) else value
    view["input"] = run.input.data if isinstance(run.input, PackedSequence) else run.input
    for name, state in zip(case.family_record.initial_state_names, run.initial or ()):
        view[name] = state
    return view


def _input_snapshot(x, hx) -> list[Tensor]:
    data = x.data if isinstance(x, PackedSequence) else x
    states = [] if hx is None else (list(hx) if isinstance(hx, tuple) else [hx])
    return [data.detach().clone()] + [state.detach().clone() for state in states]


def compare_values(
    case: Case, reference: RunResult, probe: RunResult, candidate: RunResult, model: ErrorModel, call: str,
    rounding: RunResult | None = None, adjoint: Callable[[str, Tensor], Tensor] | None = None,
) -> None:
    """Every returned tensor within the error model; NaN/Inf only where torch has them.

    Step-by-step results (a layer's output, a cell's h' and c') get a bound that
    grows along each direction's time order; final states (h_n, c_n) one per batch
    row, which borrows the error the row's outputs showed at every step, and are not
    compared in a row whose outputs went past the horizon.

    With ``rounding`` (the probe without the activation probes) and ``adjoint``
    (`_Session.activation_adjoint`), an element out of its bound is held instead to
    the bound ``rounding`` gives plus the most that activation errors within the
    budget can move it (`_worst_case_bounds`), where that is larger.
    """
    family = case.family_record
    first = family.result_names[0]
    steps, batch = reference.values[first].shape[:2]
    valid = torch.zeros(steps, batch, dtype=torch.bool)
    if case.lengths is not None:
        for row, length in enumerate(case.lengths):
            valid[:length, row] = True
    else:
        valid[:] = True
    causal = case.num_layers == 1 or not case.bidirectional
    row_error = _row_error(reference.values[first], probe.values[first], valid)
    rows_past = model.rows_past_horizon(reference.values[first], row_error, valid) if row_error is not None and not family.cell else None
    for name in family.result_names:
        want, near, got = reference.values[name], probe.values[name], candidate.values[name]
        rounding_bound = None
        if family.cell or name == "output":
            bound, compare = model.value_bound(want, near, valid, case.torch_dtype, causal)
            if rounding is not None:
                rounding_bound, _ = model.value_bound(want, rounding.values[name], valid, case.torch_dtype, causal)
            _check_elements(case, name, want, near, got, bound, compare, call, valid, rounding_bound, adjoint)
        else:
            state_valid = torch.ones(want.shape[0], want.shape[1], dtype=torch.bool)
            bound, compare = model.value_bound(want, near, state_valid, case.torch_dtype, causal=False, row_error=row_error)
            if rounding is not None:
                rounding_row_error = _row_error(reference.values[first], rounding.values[first], valid)
                rounding_bound, _ = model.value_bound(want, rounding.values[name], state_valid, case.torch_dtype, causal=False, row_error=rounding_row_error)
            if rows_past is not None:
                compare = compare & ~rows_past.reshape(1, -1, 1, 1)
            _check_elements(case, name, want, near, got, bound, compare, call, state_valid, rounding_bound, adjoint)


def _row_error(reference: Tensor, probe: Tensor, valid: Tensor) -> Tensor | None:
    """(B,): the probe's largest error on each batch row's valid steps of a layer output."""
    error = (probe - reference).abs().nan_to_num(nan=math.inf)
    error = torch.where(valid.reshape(*valid.shape, 1, 1), error, torch.zeros_like(error))
    return error.amax(dim=(0, 2, 3)) if error.numel() else None


def _worst_case_bounds(name: str, error: Tensor, bound: Tensor, rounding_bound: Tensor, violation: Tensor, adjoint) -> tuple[Tensor, dict]:
    """``bound`` raised, at the out-of-bound elements, to ``rounding_bound`` plus the
    activation adjoint's worst case there, where that is larger. The elements go worst
    first (by |error| / bound), 8 and then 64 per batched backward; the first batch with an
    element still out of bound ends the search (one is enough for a verdict; a real
    bug rarely costs more than the first batch, of 8), as do 512 elements. Returns the new bound
    and {index: worst case} for the elements searched."""
    ratio = (error / bound).nan_to_num(nan=math.inf, posinf=math.inf)
    candidates = (violation & torch.isfinite(error)).nonzero()
    if not len(candidates):
        return bound, {}
    order = ratio[tuple(candidates.T)].argsort(descending=True)
    candidates = candidates[order][:_ADJOINT_LIMIT]
    bound = bound.clone()
    searched = {}
    start = 0
    while start < len(candidates):
        # 8 first: a real bug is nearly always still out of bound at its worst element,
        # and a batch of 8 costs a tenth of a batch of 64 on a large LSTM.
        size = _ADJOINT_FIRST_CHUNK if start == 0 else _ADJOINT_CHUNK
        index = candidates[start : start + size]
        start += size
        where = tuple(index.T)
        worst = adjoint(name, index)
        bound[where] = torch.maximum(bound[where], rounding_bound[where] + worst)
        searched.update({tuple(int(i) for i in row): float(w) for row, w in zip(index, worst)})
        if bool((error[where] > bound[where]).any()):
            break
    return bound, searched


def _check_elements(case, name, reference, probe, candidate, bound, compare, call, valid, rounding_bound=None, adjoint=None) -> None:
    # Non-finite values: where the reference and the probe agree on a non-finite value,
    # the candidate must have it too; where both are finite, it must be finite.
    both_finite = torch.isfinite(reference) & torch.isfinite(probe) & valid.reshape(*valid.shape, *([1] * (reference.dim() - valid.dim())))
    bad_nonfinite = both_finite & ~torch.isfinite(candidate)
    error = (candidate - reference).abs()
    violation = compare & ~(error <= bound)  # NaN error counts as a violation
    searched: dict = {}
    if adjoint is not None and rounding_bound is not None and bool(violation.any()):
        bound, searched = _worst_case_bounds(name, error, bound, rounding_bound, violation, adjoint)
        violation = compare & ~(error <= bound)
    _observe_margin(case, "value", name, error, bound, compare)
    if bool(bad_nonfinite.any()):
        violation = violation | bad_nonfinite
    if not bool(violation.any()):
        return
    ratio = torch.where(violation, (error / bound).nan_to_num(nan=math.inf, posinf=math.inf), torch.zeros_like(error))
    shown = violation.clone()
    if searched:
        # Report an element whose worst case was computed and is still exceeded.
        tried = torch.zeros_like(violation)
        tried[tuple(torch.tensor(list(searched)).T)] = True
        if bool((violation & tried).any()):
            shown = violation & tried
    ratio = torch.where(shown, ratio, torch.zeros_like(ratio))
    worst = tuple(int(i) for i in divmod_index(int(ratio.flatten().argmax()), ratio.shape))
    where = _where(case, name, worst)
    finite_error = torch.where(compare, error, torch.zeros_like(error)).nan_to_num(nan=math.inf)
    # A relative error means something only where the reference is larger than the bound
    # (at an exact zero it is infinite, near one it is noise).
    magnitude = abs(float(reference[worst]))
    relative = f" (relative {float(error[worst]) / magnitude:.3g})" if magnitude > float(bound[worst]) else ""
    lines = [
        f"{name} differs{call}: worst at {where}: candidate {float(candidate[worst]):.9g}, reference {float(reference[worst]):.9g}, "
        f"|error| {float(error[worst]):.3g}{relative} > bound {float(bound[worst]):.3g}",
        f"  {int(violation.sum())} of {int(compare.sum())} compared elements out of bound; max |error| {float(finite_error.max()):.3g}; "
        f"torch's own {case.dtype} error there {float((probe - reference).abs()[worst]):.3g}",
    ]
    if worst in searched:
        lines.append(
            f"  tanh and sigmoid off by their whole budget (`ErrorModel.activation_ulps`), in the worst pattern for this element, move it by {searched[worst]:.3g} "
            f"(first order); the bound is at least torch's rounding bound plus that"
        )
    if name == "output":
        lines.extend(_first_divergence(case, violation))
    raise Discrepancy(
        "value", name, "\n".join(lines),
        {"index": list(worst), "bound": float(bound[worst]), "reference": float(reference[worst]), "candidate": float(candidate[worst])},
    )


def divmod_index(flat: int, shape) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        flat, rest = divmod(flat, size)
        index.append(rest)
    return tuple(reversed(index))


def _where(case: Case, name: str, index: tuple[int, ...]) -> str:
    if case.family_record.cell:
        _, row, _, feature = index
        return f"batch row {row}, feature {feature}" if case.layout != "unbatched" else f"feature {feature}"
    if name == "output":
        step, row, direction, feature = index
        text = f"time step {step}, batch row {row}, feature {feature}"
        if case.bidirectional:
            text += f" ({'reverse' if direction else 'forward'} half, output feature {direction * case.state_width + feature})"
        return text
    layer_direction, row, _, feature = index
    layer, direction = divmod(layer_direction, case.num_directions)
    return f"{name}[{layer_direction}] (layer {layer}, {'reverse' if direction else 'forward'} direction), batch row {row}, feature {feature}"


def _first_divergence(case: Case, violation: Tensor) -> list[str]:
    """Where each direction first leaves the reference, in its own processing order."""
    lines = []
    for direction in range(case.num_directions):
        steps = violation[:, :, direction].flatten(1).any(dim=1).nonzero().flatten().tolist()
        if not steps:
            continue
        first = max(steps) if direction == 1 else min(steps)
        label = "reverse" if direction == 1 else "forward"
        lines.append(f"  first divergent step of the last layer's {label} direction: t={first}")
    return lines


def compare_gradients(case: Case, reference: RunResult, probe: RunResult, candidate: RunResult, model: ErrorModel, call: str) -> None:
    # The longest dot product behind one gradient element: a layer input row, the
    # recurrent row of every gate, over every step and batch row.
    gates = case.family_record.gate_count
    K = (max(case.input_size, case.num_directions * case.state_width) + gates * case.hidden_size) * case.seq_len * max(case.batch, 1)
    if _backward_overflowed(case, reference, probe):
        return
    for name, expected in reference.gradients.items():
        got = candidate.gradients.get(name)
        if got is None:
            raise Discrepancy("gradient", name, f"no gradient for {name}{call}")
        if got.shape != expected.shape:
            raise Discrepancy("gradient", name, f"gradient of {name} has shape {tuple(got.shape)}, but torch's has {tuple(expected.shape)}")
        bound, meaningful = model.tensor_bound(expected, probe.gradients[name], case.torch_dtype, K)
        if not meaningful:
            continue
        finite = torch.isfinite(expected) & torch.isfinite(probe.gradients[name])
        error = (got - expected).abs()
        _observe_margin(case, "gradient", name, error, bound, finite)
        bad = finite & ~(error <= bound)
        if bool(bad.any()):
            masked = torch.where(bad, error.nan_to_num(nan=math.inf), torch.zeros_like(error))
            worst = divmod_index(int(masked.flatten().argmax()), masked.shape)
            raise Discrepancy(
                "gradient", name,
                f"gradient of the random functional w.r.t. {name} differs{call}: worst at index {list(worst)}: "
                f"candidate {float(got[worst]):.9g}, reference {float(expected[worst]):.9g}, |error| {float(error[worst]):.3g} > bound {bound:.3g}\n"
                f"  {int(bad.sum())} of {bad.numel()} elements out of bound; max |reference| {float(expected[finite].abs().max()) if bool(finite.any()) else 0:.3g}",
                {"index": list(worst), "bound": bound, "reference": float(expected[worst]), "candidate": float(got[worst])},
            )


def _backward_overflowed(case: Case, reference: RunResult, probe: RunResult) -> bool:
    """Whether torch's own backward in the case's half or single precision overflowed:
    a gradient non-finite where float64's is finite. Past that, every gradient hangs on
    the order of operations on infinities (inf * 0 is NaN, a masked inf is 0): one
    float16 relu case gave torch 0 and another correct implementation NaN for the
    same input gradient, whose float64 value is 0. No gradient is compared there, as
    past the horizon."""
    if case.torch_dtype == torch.float64:
        return False  # its probes are float64 itself and float32 scaled down: no overflow to read
    return any(
        bool((torch.isfinite(expected) & ~torch.isfinite(probe.gradients[name])).any())
        for name, expected in reference.gradients.items() if name in probe.gradients
    )


def check(
    implementation: Implementation, case: Case, model: ErrorModel = DEFAULT_MODEL,
    expected: str | None | object = _NOT_GIVEN, waive: frozenset[str] = frozenset(),
) -> float | None:
    """Raise `Discrepancy` if the candidate differs from torch on this case (for an
    invalid case, ``expected`` may carry torch's outcome, see `check_invalid`).
    ``waive``: kinds of finding a declared `KnownFailure` sets aside on this case
    (`harness.implementation.WAIVABLE_KINDS`); every other check holds.

    Returns the case's worst |error| / bound over every compared value and gradient
    (what the campaign's guided search climbs), or None when nothing was compared."""
    if case.defect is not None:
        check_invalid(implementation, case, expected)
        return None
    worst: list[float] = []
    token = CASE_MARGINS.set(worst)
    try:
        session = _Session(implementation, case, model)
        _check_call(session, "", waive)
        if case.second_call != "none":
            session.update_weights()
            try:
                _check_call(session, f" on the second call, after {case.second_call.replace('_', ' ')}", waive)
            except Discrepancy as discrepancy:
                discrepancy.evidence["second_call"] = True
                raise
    finally:
        CASE_MARGINS.reset(token)
    return max(worst, default=None)


def _check_call(session: _Session, call: str, waive: frozenset[str] = frozenset()) -> None:
    case = session.case
    reference = run_module(session.reference, case, session.materialized, torch.float64, "cpu", "reference")
    probe = run_module(session.probe, case, session.probe_input if call == "" else _probe_tensors(session), session.dtype, case.device, "probe")
    if session.low_probe is not None:
        low = run_module(session.low_probe, case, session.materialized, torch.float32, case.device, "probe")
        probe = _combined_probe(reference, probe, low, session.model.unit_roundoff(torch.float64) / session.model.unit_roundoff(torch.float32))
    for module, ulps, values in session.sensitivity_probes:
        perturbed = run_module(module, case, session.sensitivity_inputs(ulps), session.dtype, case.device, "probe")
        probe = _widened(reference, probe, perturbed, values=values)
    x, hx = session.materialized.module_input(case, session.dtype, case.device)
    before = _input_snapshot(x, hx)
    weights_before = {k: v.detach().clone() for k, v in session.candidate.state_dict().items()}
    try:
        candidate = run_module(session.candidate, case, session.materialized, session.dtype, case.device, "candidate")
    except Discrepancy:
        raise
    except Exception as error:  # noqa: BLE001 - the candidate's exception is the finding
        raise Discrepancy("exception", "forward", f"the candidate raised {_exception_line(error)} on a valid input{call} (torch returns normally)", {"traceback": _short_traceback(error)}) from error
    after = _input_snapshot(candidate.input, candidate.initial)
    for name, old, new in zip(("input", *case.family_record.initial_state_names), before, after):
        if "mutation" not in waive and not torch.equal(old.nan_to_num(), new.nan_to_num()):
            raise Discrepancy("mutation", name, f"the candidate modified its {name} in place{call}: max change {float((old.double() - new.double()).abs().max()):.3g}")
    for key, value in session.candidate.state_dict().items():
        if "mutation" not in waive and not torch.equal(weights_before[key].nan_to_num(), value.nan_to_num()):
            raise Discrepancy("mutation", key, f"forward modified the parameter {key} in place{call}")
    new_aliases = _storages(_alias_view(case, candidate)) - _storages(_alias_view(case, probe))
    if new_aliases and "aliasing" not in waive:
        pairs = ", ".join(" and ".join(sorted(pair)) for pair in sorted(new_aliases, key=sorted))
        raise Discrepancy("aliasing", pairs, f"{pairs} share memory in the candidate's result{call}, but not in torch's: writing to one changes the other")

    def judge(probe: RunResult, rounding: RunResult | None = None) -> None:
        adjoint = _lazy(session.activation_adjoint) if rounding is not None and session.activation_factories else None
        compare_values(case, reference, probe, candidate, session.model, call, rounding, adjoint)
        if candidate.gradients or reference.gradients:
            compare_gradients(case, reference, probe, candidate, session.model, call)

    # The activation probes can only widen the bounds (or stop a comparison at the
    # horizon), so running them only where the candidate is out of the narrower
    # bounds gives the same verdict at a fraction of the cost. Margins are watched
    # against the full bounds.
    if not session.activation_factories and session.tipping_ulps is None:
        return judge(probe)
    if MARGIN_OBSERVER.get() is not None:
        return judge(*_with_lazy_probes(session, reference, probe))
    margins = CASE_MARGINS.get()
    judged = 0 if margins is None else len(margins)
    try:
        judge(probe)
    except Discrepancy:
        if margins is not None:
            del margins[judged:]  # what counts is the verdict of the wider bounds
        judge(*_with_lazy_probes(session, reference, probe))


def _lazy(make: Callable[[], Callable]) -> Callable:
    """A callable that calls ``make()`` the first time it is called, and what that
    returned from then on."""
    made: list[Callable] = []

    def call(*args):
        if not made:
            made.append(make())
        return made[0](*args)

    return call


def _with_lazy_probes(session: _Session, reference: RunResult, probe: RunResult) -> tuple[RunResult, RunResult]:
    """The probe widened by every lazy probe, and the same without the activation
    probes (what rounding alone costs, which the activation adjoint adds to)."""
    full = _with_activation_probes(session, reference, probe)
    rounding = probe
    order = session.order_probe()
    if order is not None:
        reordered = run_module(order, session.case, session.order_inputs(), session.dtype, session.case.device, "probe")
        # Values only: its gradients with respect to the input and W_ih are in the
        # reversed feature order, and what they would add is not measured yet.
        reordered = dataclasses.replace(reordered, gradients=reference.gradients)
        full, rounding = (_widened(reference, run, reordered, values=True) for run in (full, rounding))
    if session.tipping_ulps is not None:
        for module, ulps in session.tipping_probes():
            perturbed = run_module(module, session.case, session.sensitivity_inputs(ulps), session.dtype, session.case.device, "probe")
            full, rounding = (_past_horizon_where_tipped(reference, run, perturbed, session.model) for run in (full, rounding))
    return full, rounding


def _past_horizon_where_tipped(reference: RunResult, probe: RunResult, perturbed: RunResult, model: ErrorModel) -> RunResult:
    """The probe, with its values taken from ``perturbed`` only at the elements that
    run moved past the horizon (error over ``horizon`` times 1 + the row's largest
    reference magnitude, as `ErrorModel.value_bound` judges): those elements, and by
    the running maximum what follows them, are then not compared. Gradients and every
    other element keep their bounds."""

    def mark(ref: Tensor, current: Tensor, other: Tensor) -> Tensor:
        error = (other - ref).abs().nan_to_num(nan=math.inf)
        row_scale = 1 + ref.abs().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0).amax(dim=tuple(d for d in range(ref.dim()) if d != 1), keepdim=True)
        tipped = (error > model.horizon * row_scale) & (error > (current - ref).abs().nan_to_num(nan=math.inf))
        return torch.where(tipped, other, current)

    values = {name: mark(reference.values[name], value, perturbed.values[name]) for name, value in probe.values.items()}
    return dataclasses.replace(probe, values=values)


def _with_activation_probes(session: _Session, reference: RunResult, probe: RunResult) -> RunResult:
    # The bound multiplies the probe's error by `amplification`; an activation probe's
    # deviation is granted `activation_amplification` times instead, so it is scaled
    # by their ratio before it widens the probe.
    model = session.model
    scale = model.activation_amplification / model.amplification
    for module in session.activation_probes():
        perturbed = run_module(module, session.case, session.materialized, session.dtype, session.case.device, "probe")
        probe = _widened(reference, probe, _scaled_deviation(reference, perturbed, scale), values=True)
    return probe


def _scaled_deviation(reference: RunResult, perturbed: RunResult, scale: float) -> RunResult:
    """``perturbed`` with its distance from the reference multiplied by ``scale``."""
    values = {name: reference.values[name] + (value - reference.values[name]) * scale for name, value in perturbed.values.items()}
    gradients = {name: reference.gradients[name] + (grad - reference.gradients[name]) * scale for name, grad in perturbed.gradients.items() if name in reference.gradients}
    return dataclasses.replace(perturbed, values=values, gradients=gradients)


def _combined_probe(reference: RunResult, probe: RunResult, low: RunResult, scale: float) -> RunResult:
    """A probe whose error is the larger of the perturbed float64 probe's and the
    float32 probe's scaled to float64 roundoff (elementwise)."""

    def combine(ref: Tensor, high: Tensor, low_precision: Tensor) -> Tensor:
        scaled = (low_precision - ref).abs() * scale
        return ref + torch.maximum((high - ref).abs(), scaled.nan_to_num(nan=math.inf))

    gradients = {name: combine(reference.gradients[name], probe.gradients[name], low.gradients[name]) for name in probe.gradients}
    values = {name: combine(reference.values[name], probe.values[name], low.values[name]) for name in probe.values}
    return dataclasses.replace(probe, values=values, gradients=gradients)


def _widened(reference: RunResult, probe: RunResult, perturbed: RunResult, values: bool) -> RunResult:
    """The probe, with its error raised elementwise to a sensitivity probe's where that
    is larger: always for gradients, for the returned values only when ``values``."""

    def widen(ref: Tensor, current: Tensor, other: Tensor) -> Tensor:
        return ref + torch.maximum((current - ref).abs(), (other - ref).abs().nan_to_num(nan=math.inf))

    gradients = {name: widen(reference.gradients[name], grad, perturbed.gradients[name]) for name, grad in probe.gradients.items()}
    if not values:
        return dataclasses.replace(probe, gradients=gradients)
    widened = {name: widen(reference.values[name], value, perturbed.values[name]) for name, value in probe.values.items()}
    return dataclasses.replace(probe, values=widened, gradients=gradients)


def _probe_tensors(session: _Session) -> Materialized:
    if session.dtype == torch.float64:
        return dataclasses.replace(session.probe_input, weights=session.materialized.weights)
    return session.materialized


def _with_defect(case: Case, x, hx, dtype):
    """Break one thing about a valid input, the way a user's mistake would.

    ``hx`` is the initial state in the case's layout (None, a Tensor, or (h_0, c_0));
    a defect in the state needs one, so pass the state of ``h0_given=True``.
    """
    family = case.family_record
    defect = case.defect
    packed = isinstance(x, PackedSequence)
    data = x.data if packed else x

    def with_data(new):
        return PackedSequence(new, x.batch_sizes, x.sorted_indices, x.unsorted_indices) if packed else new

    if defect == "wrong_width":
        return with_data(torch.cat([data, data[..., :1]], dim=-1)), hx
    if defect == "input_one_feature":
        return with_data(data[..., :1]), hx
    if defect == "dtype_mismatch":
        other = torch.float64 if dtype != torch.float64 else torch.float32
        return with_data(data.to(other)), hx
    if defect == "input_1d":
        return data.reshape(-1), hx
    if defect == "input_4d":
        return data.reshape(1, *([1] * (3 - data.dim())), *data.shape), hx
    if defect == "input_0d":
        return data.new_zeros(()), hx  # a scalar: even an empty batch has one
    if defect == "input_3d":
        return data.reshape(1, -1, data.shape[-1]), hx
    if defect == "empty_sequence":  # generated for plain tensor layouts only
        time_dim = 1 if case.batch_first and data.dim() == 3 else 0
        return data.narrow(time_dim, 0, 0), hx
    states = list(hx) if family.cell_state else [hx]
    if defect == "c0_missing":
        return x, (states[0],)
    if defect == "state_not_tuple":
        return x, states[0]
    target, change = defect.split("_", 1)
    index = 1 if target == "c0" else 0
    state = states[index]
    # the batch dimension of a state in the caller's layout (None when unbatched)
    batch_dim = (0 if state.dim() == 2 else None) if family.cell else (1 if state.dim() == 3 else None)
    if change == "wrong_batch":
        state = torch.cat([state, state.sum(batch_dim, keepdim=True)], dim=batch_dim)
    elif change == "wrong_hidden":
        state = torch.cat([state, state[..., :1]], dim=-1)
    elif change == "wrong_rank":
        state = state.unsqueeze(0)
    elif change == "one_layer":
        state = state[:1]
    elif change == "one_row":
        state = state.narrow(batch_dim, 0, 1)
    elif change == "one_feature":
        state = state[..., :1]
    else:
        raise ValueError(f"unknown defect {defect!r}")
    states[index] = state
    return x, (tuple(states) if family.cell_state else states[0])


def defective_input(case: Case, dtype):
    """The case's (input, state) with its defect applied, in dtype on the case's device."""
    materialized = materialize(dataclasses.replace(case, h0_given=True)) if _state_defect(case) and not case.h0_given else materialize(case)
    x, hx = materialized.module_input(case, dtype, case.device)
    return _with_defect(case, x, hx, dtype)


def _state_defect(case: Case) -> bool:
    return case.defect is not None and (case.defect.startswith(("h0", "c0")) or case.defect in ("c0_missing", "state_not_tuple"))


def reference_outcome(case: Case) -> str | None:
    """The exception type torch's reference raises on the case's invalid input, or None
    if it returns. The campaign asks for this on its own, before the candidate runs,
    so that when torch itself crashes on an input the crash is torch's finding (see
    campaign.py), not the candidate's."""
    module = _quiet_construct(reference_factory(case.family), case, case.torch_dtype, case.device)
    _load(module, materialize(case).weights, "reference")
    x, hx = defective_input(case, case.torch_dtype)
    try:
        module(x, hx)
    except Exception as error:  # noqa: BLE001
        return type(error).__name__
    return None


def check_invalid(implementation: Implementation, case: Case, expected: str | None | object = _NOT_GIVEN) -> None:
    """On an invalid input the candidate must raise the same exception type as torch.

    ``expected`` is torch's outcome when already known (`reference_outcome`: an
    exception type's name, or None for "returns normally"); the campaign passes it so
    that torch does not run a second time on an input where it may misbehave.
    """
    if expected is _NOT_GIVEN:
        expected = reference_outcome(case)
    if expected is None:
        return  # torch accepts this variant; nothing to demand
    materialized = materialize(case)
    try:
        candidate = _quiet_construct(implementation.factory, case, case.torch_dtype, case.device)
    except Discrepancy:
        raise
    except Exception as error:
        raise Discrepancy("exception", "constructor", f"constructing the candidate raised {_exception_line(error)}", {"traceback": _short_traceback(error)}) from error
    _load(candidate, materialized.weights, "candidate")
    x, hx = defective_input(case, case.torch_dtype)
    try:
        candidate(x, hx)
        got = None
    except Exception as error:  # noqa: BLE001
        got = error
    what = case.defect.replace("_", " ")
    if got is None:
        raise Discrepancy("exception_type", "forward", f"torch raises {expected} on this invalid input ({what}), but the candidate returned normally", {"expected": expected, "got": None})
    if expected not in [cls.__name__ for cls in type(got).__mro__]:
        raise Discrepancy(
            "exception_type", "forward",
            f"on this invalid input ({what}) torch raises {expected}\n  but the candidate raises {_exception_line(got)}",
            {"expected": expected, "got": type(got).__name__},
        )


def localize_layer(implementation: Implementation, case: Case, model: ErrorModel = DEFAULT_MODEL) -> int | None:
    """The first layer whose output already differs: rerun with the stack cut after
    each layer (weights of the kept layers only). None if the cut stacks all agree."""
    if case.family_record.cell or case.num_layers == 1 or case.defect is not None:
        return None
    for layers in range(1, case.num_layers):
        shorter = dataclasses.replace(case, num_layers=layers, second_call="none", backward=False)
        try:
            check(implementation, shorter, model)
        except Discrepancy:
            return layers - 1
        except Exception:  # noqa: BLE001 - localisation is best effort
            return None
    return case.num_layers - 1
