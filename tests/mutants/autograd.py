"""Mutants whose forward values are exactly right and whose gradients are not: the
graph is cut where a real person cuts it to save memory or to "stop" backprop."""

from __future__ import annotations

import torch

from ._base import StepwiseRNN


class StateDetachedBetweenSteps(StepwiseRNN):
    """Detaches the state carried to the next step: truncated backprop through time
    with a window of one step, by accident.

    Copied from a training loop where ``h = h.detach()`` belongs between batches, not
    between steps. Exposed by: gradients with seq_len >= 2.
    """

    def carry(self, h_t, h):
        return torch.cat([h_t.detach(), h[h_t.shape[0] :]])


class FinalStateDetached(StepwiseRNN):
    """Returns h_n detached from the graph.

    "The caller feeds h_n into the next batch and must not backprop into this one" —
    a caller's decision made inside the module. Exposed by: any gradient taken
    through h_n.
    """

    def _restore(self, prepared, output, h_n):
        output, h_n = super()._restore(prepared, output, h_n)
        return output, h_n.detach()
