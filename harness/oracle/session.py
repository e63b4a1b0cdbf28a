"""The modules of one case: the reference (torch's ATen kernels in float64), the
probes whose distance from it measures what rounding costs in this case
(docs/error-model.md), and the candidate, all loaded with the same torch-keyed
weights and changed together between calls."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Callable

import torch
from torch import Tensor

from harness.cases import Case, Materialized, materialize
from harness.families import FAMILIES
from harness.implementation import Implementation
from harness.oracle.results import Discrepancy, exception_line, short_traceback
from harness.oracle.running import canonical_results, value_layout
from harness.probes import ADJOINT_CHUNK, activation_adjoint_factory, activation_probe_factory, needs_activation_probes
from harness.references.aten import ATEN_MODULES
from harness.tolerance import ErrorModel


def reference_factory(family: str = "RNN"):
    """The family's torch module on ATen's own kernels (no cuDNN/oneDNN)."""
    record = FAMILIES[family]
    return ATEN_MODULES.get(family, record.module_class)


def construct(factory, case: Case, dtype: torch.dtype, device) -> torch.nn.Module:
    with warnings.catch_warnings():
        # dropout > 0 with one layer warns in torch; the case is legitimate.
        warnings.filterwarnings("ignore", message=".*dropout option adds dropout after all but last.*")
        module = factory(**case.constructor(), dtype=dtype, device=device)
    if not isinstance(module, torch.nn.Module):
        raise Discrepancy("contract", "factory", f"the factory returned a {type(module).__name__}, not an nn.Module; it must return a drop-in for torch.nn.{case.family}")
    module.train(case.training)
    return module


def load_weights(module: torch.nn.Module, weights: dict[str, Tensor], who: str) -> None:
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


def perturbed(tensor: Tensor, generator: torch.Generator, relative: float) -> Tensor:
    noise = torch.rand(tensor.shape, generator=generator, dtype=torch.float64) * 2 - 1
    return tensor * (1 + relative * noise)


class Session:
    """The three modules of one case and how to run them."""

    def __init__(self, implementation: Implementation, case: Case, model: ErrorModel):
        self.case = case
        self.model = model
        self.materialized = materialize(case)
        self.dtype = case.torch_dtype
        AtenRNN = reference_factory(case.family)
        self.reference = construct(AtenRNN, case, torch.float64, "cpu")
        load_weights(self.reference, self.materialized.weights, "reference")
        if self.dtype == torch.float64:
            generator = torch.Generator().manual_seed(case.seed + 1)
            relative = model.probe_perturbation_ulps * model.unit_roundoff(torch.float64)
            self.probe_weights = {k: perturbed(w, generator, relative) for k, w in self.materialized.weights.items()}
            self.probe_input = dataclasses.replace(
                self.materialized,
                padded_input=perturbed(self.materialized.padded_input, generator, relative),
                initial_states=None if self.materialized.initial_states is None else tuple(perturbed(state, generator, relative) for state in self.materialized.initial_states),
            )
        else:
            self.probe_weights = self.materialized.weights
            self.probe_input = self.materialized
        self.probe = construct(AtenRNN, case, self.dtype, case.device)
        load_weights(self.probe, self.probe_weights, "probe")
        # For float64 a second probe: torch in float32, its error scaled down to
        # float64's roundoff. It sees what perturbing inputs cannot: the rounding of
        # every intermediate sum, step after step (docs/error-model.md).
        self._low_probe_module = None  # built on first use (`low_probe`)
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
        self.with_gradients = case.backward and not case.no_grad
        self.sensitivity_plans = []  # (signed ulps, widens values too), in the order they widen
        if self.dtype != torch.float64:
            self.sensitivity_plans += [(sign * model.sensitivity_perturbation_ulps, True) for sign in (1.0, -1.0)]
        if case.nonlinearity == "relu" and self.with_gradients:
            self.sensitivity_plans += [(sign * model.kink_perturbation_ulps, False) for sign in (1.0, -1.0)]
        self._sensitivity_modules: dict[int, tuple] = {}  # built on first use (`sensitivity_probe`)
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
            self.candidate = construct(implementation.factory, case, self.dtype, case.device)
        except Discrepancy:
            raise
        except Exception as error:
            raise Discrepancy("exception", "constructor", f"constructing the candidate raised {exception_line(error)}", {"traceback": short_traceback(error)}) from error
        load_weights(self.candidate, self.materialized.weights, "candidate")

    @property
    def sampling_only_relaxes(self) -> bool:
        """Whether the float32 probe and the sensitivity pairs (`sampled_probes` in
        harness/oracle/widening.py) can only make the verdict more lenient, so a case
        that holds without them holds with them. Values: their bound grows with the
        probe's error and a non-finite probe value stops the comparison there.
        Gradients: in half and single precision a probe gradient non-finite where
        float64's is finite stops every gradient comparison (torch's backward
        overflowed); in float64 it would only drop that element, and the bound over the
        others, which is taken from the remaining elements, could shrink. So: every
        case but float64 ones with gradients."""
        return self.dtype != torch.float64 or not self.with_gradients

    def low_probe(self):
        """float64 cases: torch in float32, loaded with the current weights rounded to
        float32, built the first time a verdict needs it (None for other dtypes)."""
        if self.dtype != torch.float64:
            return None
        if self._low_probe_module is None:
            self._low_probe_module = self._torch_module(torch.float32, self._rounded_to_float32(self.materialized.weights), "float32 probe")
        return self._low_probe_module

    @staticmethod
    def _rounded_to_float32(weights: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: w.float().double() for k, w in weights.items()}

    def sensitivity_probe(self, index: int) -> tuple:
        """The ``index``-th of the sensitivity and kink probes (`sensitivity_plans`) as
        (module, signed ulps, widens values too), built and loaded with the current
        weights the first time a verdict needs it."""
        if index not in self._sensitivity_modules:
            ulps, values = self.sensitivity_plans[index]
            module = self._torch_module(self.dtype, self._sensitivity_weights(self.materialized.weights, ulps), "sensitivity probe")
            self._sensitivity_modules[index] = (module, ulps, values)
        return self._sensitivity_modules[index]

    def _torch_module(self, dtype: torch.dtype, weights: dict[str, Tensor], who: str) -> torch.nn.Module:
        """torch's module of the case's family on ATen, in ``dtype``, loaded with ``weights``."""
        module = construct(reference_factory(self.case.family), self.case, dtype, self.case.device)
        load_weights(module, weights, who)
        return module

    def activation_probes(self) -> list:
        """The activation probes, built and loaded with the current weights the first
        time a verdict needs them."""
        if self._activation_modules is None:
            self._activation_modules = []
            for factory in self.activation_factories:
                module = construct(factory, self.case, self.dtype, self.case.device)
                load_weights(module, self.materialized.weights, "activation probe")
                self._activation_modules.append(module)
        return self._activation_modules

    def activation_adjoint(self) -> Callable[[str, Tensor], Tensor]:
        """worst(name, index): for (N, 4) indices into the values of result ``name``, the
        most any pattern of activation errors within the budget can move each element,
        to first order (`harness.probes.ActivationAdjoint`). One float64 forward on the
        CPU around the reference's trajectory with the current weights, kept for the
        calls that follow; each call is one batched backward per 64 elements."""
        case = self.case
        module = construct(activation_adjoint_factory(self.model, self.dtype, case.family), case, torch.float64, "cpu")
        load_weights(module, self.materialized.weights, "activation adjoint")
        x, hx = self.materialized.module_input(case, torch.float64, "cpu")
        with torch.enable_grad():
            values = value_layout(case, canonical_results(case, module(x, hx)))
        shifts = [shift for shift, _ in module.shifts]
        allowances = [allowance for _, allowance in module.shifts]

        def worst(name: str, index: Tensor) -> Tensor:
            total = torch.zeros(len(index), dtype=torch.float64)
            selected = values[name][tuple(index.T)]
            if not shifts or not selected.requires_grad:
                return total
            for start in range(0, len(index), ADJOINT_CHUNK):
                part = selected[start : start + ADJOINT_CHUNK]
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
            for sign in (1.0, -1.0):
                ulps = sign * self.tipping_ulps
                self._tipping_modules.append((self._torch_module(self.dtype, self._sensitivity_weights(self.materialized.weights, ulps), "tipping probe"), ulps))
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
            self._order_module = self._torch_module(self.dtype, self._reordered(self.materialized.weights), "order probe")
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
        if self._low_probe_module is not None:
            modules.append((self._low_probe_module, self._rounded_to_float32(new)))
        modules += [(module, self._sensitivity_weights(new, ulps)) for module, ulps, _ in self._sensitivity_modules.values()]
        modules += [(module, new) for module in self._activation_modules or ()]
        modules += [(module, self._sensitivity_weights(new, ulps)) for module, ulps in self._tipping_modules or ()]
        if self._order_module is not None:
            modules.append((self._order_module, self._reordered(new)))
        for module, weights in modules:
            if weights is None:  # the float64 probe keeps its perturbation pattern
                generator = torch.Generator().manual_seed(self.case.seed + 2)
                relative = self.model.probe_perturbation_ulps * self.model.unit_roundoff(torch.float64)
                weights = {k: perturbed(w, generator, relative) for k, w in new.items()}
            if self.case.second_call == "optimizer_step":
                parameters = module.state_dict(keep_vars=True)
                with torch.no_grad():
                    for key, value in weights.items():
                        parameters[key].copy_(value.to(parameters[key].dtype))
            else:
                module.load_state_dict({k: v.to(module.state_dict()[k].dtype).to(module.state_dict()[k].device) for k, v in weights.items()})


def probe_tensors(session: Session) -> Materialized:
    if session.dtype == torch.float64:
        return dataclasses.replace(session.probe_input, weights=session.materialized.weights)
    return session.materialized
