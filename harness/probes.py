"""The activation probe: how far this case carries an elementwise function's inaccuracy.

torch's tanh is accurate to half an ulp, so torch's own error (the oracle's main
probe) says nothing about a correct port whose tanh is off by a few ulps, as
onnxruntime's, XLA's or a hand-written kernel's are. The error model grants every
elementwise function a budget (`ErrorModel.activation_ulps`); this probe is the
`loop` built-in with each elementwise output moved by up to that budget, at every
step and element, in the candidate's dtype and on its device. Its distance from the
float64 reference widens the bounds the way the sensitivity probes do.

The perturbation goes through `DropInRNN.elementwise`, so it reaches every function
a recurrence routes there: tanh and relu for nn.RNN, and the gates of any family
whose cell does the same.
"""

from __future__ import annotations

import torch
from torch import Tensor

from harness.dropin import ELEMENTWISE
from harness.tolerance import ErrorModel
from impls.loop import LoopRNN


class PerturbedActivations(LoopRNN):
    """`loop` whose elementwise outputs y each become y + sign * e * max(|y|, floor),
    e uniform in [-activation_ulps, activation_ulps] units of roundoff and fixed by
    ``seed`` (one draw per call, in call order, restarting at every forward, so the
    +/- pair of probes sees the same pattern with opposite signs). Gradients flow
    through the function and the factor; the noise is a constant."""

    def configure(self, model: ErrorModel, seed: int, sign: float) -> "PerturbedActivations":
        self.error_model, self.noise_seed, self.sign = model, seed, sign
        return self

    def forward(self, input, hx: Tensor | None = None):
        self._noise = torch.Generator().manual_seed(self.noise_seed)
        return super().forward(input, hx)

    def elementwise(self, name: str, x: Tensor) -> Tensor:
        y = ELEMENTWISE[name](x)
        budget = self.error_model.activation_budget(name, y.dtype)
        if budget is None:
            return y
        ulps, floor = budget
        relative = self.sign * ulps * self.error_model.unit_roundoff(y.dtype)
        noise = torch.rand(y.shape, generator=self._noise, dtype=y.dtype).mul_(2 * relative).sub_(relative).to(y.device)
        if floor == 0:
            return y * noise.add_(1)
        return y + noise * y.detach().abs().clamp_min(floor)


def needs_activation_probes(model: ErrorModel, functions, dtype: torch.dtype) -> bool:
    """Whether any of the recurrence's elementwise ``functions`` has a budget in
    ``dtype`` (otherwise the probe would be an unperturbed `loop`)."""
    return any(model.activation_budget(name, dtype) is not None for name in functions)


def activation_probe_factory(model: ErrorModel, seed: int, sign: float):
    """A factory with torch.nn.RNN's keywords for one probe of the +/- pair."""

    def factory(**kwargs) -> PerturbedActivations:
        return PerturbedActivations(**kwargs).configure(model, seed, sign)

    return factory
