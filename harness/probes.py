"""The activation probe: how far this case carries an elementwise function's inaccuracy.

torch's tanh is accurate to half an ulp, so torch's own error (the oracle's main
probe) says nothing about a correct port whose tanh is off by a few ulps, as
onnxruntime's, XLA's or a hand-written kernel's are. The error model grants every
elementwise function a budget (`ErrorModel.activation_ulps`); this probe is the
`loop` reference (harness/references/loop.py) with each elementwise output moved by
up to that budget, at every step and element, in the candidate's dtype and on its
device. Its distance from the float64 reference widens the bounds the way the
sensitivity probes do.

The perturbation goes through `DropInRNN.elementwise`, so it reaches every function
a recurrence routes there: tanh and relu for nn.RNN, and the gates of any family
whose cell does the same.
"""

from __future__ import annotations

import torch
from torch import Tensor

from harness.dropin import ELEMENTWISE
from harness.references import loop
from harness.tolerance import ErrorModel


class ShiftedOutput(torch.autograd.Function):
    """y' = f(x) + noise * max(|f(x)|, floor), noise a constant; the derivative comes
    from y', the output returned (1 - y'^2 for tanh, y' (1 - y') for sigmoid), as
    torch's own backward and most libraries' compute it. Near saturation that is
    what a few-ulp tanh costs a gradient: 1 - y'^2 is off by about 2 |y' - y|."""

    @staticmethod
    def forward(ctx, x: Tensor, name: str, noise: Tensor, floor: float) -> Tensor:
        y = ELEMENTWISE[name](x)
        # y + noise * y, not y * (1 + noise): 1 + noise would round to a multiple of
        # 2 units of roundoff and overshoot the budget. Below the floor the move keeps
        # y's sign, as noise * y does above it: a floor then only enlarges the moves of
        # small outputs and leaves every other element's move as it was (a tanh floor
        # that flipped the noise of negative outputs drew another sample, under which
        # correct-approximate-activations went from 0.73 of its bound to 1.14).
        shifted = y + noise * (y if floor == 0 else torch.copysign(y.abs().clamp_min(floor), y))
        ctx.save_for_backward(shifted)
        ctx.name = name
        return shifted

    @staticmethod
    def backward(ctx, grad: Tensor):
        (y,) = ctx.saved_tensors
        derivative = 1 - y * y if ctx.name == "tanh" else y * (1 - y)
        return grad * derivative, None, None, None


class PerturbedActivations:
    """Mixed into a family's `loop` module: its elementwise outputs y each become y + sign * e * u * max(|y|, floor)
    (`ShiftedOutput`), e uniform in [-activation_ulps, activation_ulps], u the dtype's
    unit roundoff, fixed by ``seed`` (one draw per call, in call order, restarting at
    every forward, so the +/- pair of probes sees the same pattern with opposite signs)."""

    def configure(self, model: ErrorModel, seed: int, sign: float, systematic: bool = False) -> "PerturbedActivations":
        """``systematic``: every output moved by the whole budget the same way, as a
        smooth approximation's error is where the arguments stay close (saturation);
        otherwise by a random amount per element and step."""
        self.error_model, self.noise_seed, self.sign, self.systematic = model, seed, sign, systematic
        return self

    def restart_noise(self) -> None:
        """Draw the noise from its beginning again (every forward does this first)."""
        self._noise = torch.Generator().manual_seed(self.noise_seed)

    def forward(self, input, hx=None):
        self.restart_noise()
        return super().forward(input, hx)

    def elementwise(self, name: str, x: Tensor) -> Tensor:
        budget = self.error_model.activation_budget(name, x.dtype, systematic=self.systematic)
        if budget is None:
            return super().elementwise(name, x)
        ulps, floor = budget
        relative = self.sign * ulps * self.error_model.unit_roundoff(x.dtype)
        if self.systematic:
            noise = torch.full(x.shape, relative, dtype=x.dtype, device=x.device)
        else:
            noise = torch.rand(x.shape, generator=self._noise, dtype=x.dtype).mul_(2 * relative).sub_(relative).to(x.device)
        return ShiftedOutput.apply(x, name, noise, floor)


class ActivationAdjoint:
    """Mixed into a family's `loop` module, run in float64: every elementwise output
    with a budget gets a zero shift that requires grad, recorded with its allowance
    ulps * u * max(|y|, floor) (the systematic floors of `ErrorModel.activation_budget`,
    u the candidate dtype's unit roundoff). The gradient of one result element with
    respect to every shift, in absolute value, weighted by the allowances and summed,
    is the most that any pattern of activation errors within the budget can move that
    element, to first order: the adversary's pattern takes the sign of each gradient.
    The random and systematic probes sample two patterns; this is the supremum over all
    of them, so an approximation whose error oscillates along x (a minimax polynomial's)
    cannot exceed it where it can exceed four times a sampled probe."""

    def configure(self, model: ErrorModel, dtype: torch.dtype) -> "ActivationAdjoint":
        self.error_model, self.budget_dtype, self.shifts = model, dtype, []
        return self

    def forward(self, input, hx=None):
        self.shifts = []  # (shift, allowance) per elementwise call, in call order
        return super().forward(input, hx)

    def elementwise(self, name: str, x: Tensor) -> Tensor:
        y = super().elementwise(name, x)
        budget = self.error_model.activation_budget(name, self.budget_dtype, systematic=True)
        if budget is None:
            return y
        ulps, floor = budget
        shift = torch.zeros_like(y, requires_grad=True)
        allowance = ulps * self.error_model.unit_roundoff(self.budget_dtype) * y.detach().abs().clamp_min(floor)
        self.shifts.append((shift, allowance))
        return y + shift


def needs_activation_probes(model: ErrorModel, functions, dtype: torch.dtype) -> bool:
    """Whether any of the recurrence's elementwise ``functions`` has a budget in
    ``dtype`` (otherwise the probe would be an unperturbed `loop`)."""
    return any(model.activation_budget(name, dtype) is not None for name in functions)


PERTURBED_LOOPS = {
    family: type(f"Perturbed{module.__name__}", (PerturbedActivations, module), {})
    for family, module in {
        "RNN": loop.LoopRNN, "LSTM": loop.LoopLSTM, "GRU": loop.LoopGRU,
        "RNNCell": loop.LoopRNNCell, "LSTMCell": loop.LoopLSTMCell, "GRUCell": loop.LoopGRUCell,
    }.items()
}
"""Each family's `loop` with perturbed elementwise outputs (every formula in
harness.step_formulas routes its tanh, sigmoid and relu through ``elementwise``)."""


ADJOINT_LOOPS = {
    family: type(f"Adjoint{module.__name__}", (ActivationAdjoint, module), {})
    for family, module in {
        "RNN": loop.LoopRNN, "LSTM": loop.LoopLSTM, "GRU": loop.LoopGRU,
        "RNNCell": loop.LoopRNNCell, "LSTMCell": loop.LoopLSTMCell, "GRUCell": loop.LoopGRUCell,
    }.items()
}
"""Each family's `loop` with a recorded zero shift on every budgeted elementwise output."""

ADJOINT_CHUNK = 64  # result elements per batched backward of the activation adjoint
ADJOINT_FIRST_CHUNK = 8  # the worst elements, tried first on their own
ADJOINT_LIMIT = 512  # out-of-bound elements the adjoint may clear before the rest count as they are


def activation_adjoint_factory(model: ErrorModel, dtype: torch.dtype, family: str = "RNN"):
    """A factory with the family's torch keywords for the adjoint of a candidate in ``dtype``."""

    def factory(**kwargs) -> ActivationAdjoint:
        return ADJOINT_LOOPS[family](**kwargs).configure(model, dtype)

    return factory


def activation_probe_factory(model: ErrorModel, seed: int, sign: float, family: str = "RNN", systematic: bool = False):
    """A factory with the family's torch keywords for one probe of a +/- pair."""

    def factory(**kwargs) -> PerturbedActivations:
        return PERTURBED_LOOPS[family](**kwargs).configure(model, seed, sign, systematic)

    return factory
