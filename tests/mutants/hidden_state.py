"""Mutants that compute every step right and get h_0 or h_n wrong: its layout, its
row order for packed input, or whether it is used at all."""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence

from ._base import StepwiseRNN


class FinalStateBatchFirst(StepwiseRNN):
    """Returns h_n as (batch, layers*directions, hidden) when batch_first=True.

    batch_first is documented to apply to input and output only, but "batch first
    everywhere" feels consistent, so h_n gets the same transpose. Exposed by:
    batch_first=True with batched input (a shape error unless batch equals
    num_layers*num_directions, then wrong values if batch > 1).
    """

    def _restore(self, prepared, output, h_n):
        output, h_n = super()._restore(prepared, output, h_n)
        if self.batch_first and prepared.packed is None and not prepared.unbatched:
            h_n = h_n.transpose(0, 1)
        return output, h_n


class FinalStateDirectionMajor(StepwiseRNN):
    """Orders h_n direction-major (all forward layers, then all reverse layers).

    The states are collected in two lists, ``forward_states`` and ``reverse_states``,
    and concatenated; torch interleaves them layer by layer. Exposed by:
    bidirectional=True with num_layers >= 2.
    """

    def stack_final_states(self, final_states):
        if not self.bidirectional:
            return torch.stack(final_states)
        forward_states, reverse_states = final_states[0::2], final_states[1::2]
        return torch.stack(forward_states + reverse_states)


class InitialStateIgnored(StepwiseRNN):
    """Starts every sequence from zeros, whatever h_0 the caller passes.

    ``hx`` is validated (so wrong shapes still raise) and then shadowed by
    ``torch.zeros(...)``, a leftover from before h_0 was supported. Exposed by: any
    non-zero h_0.
    """

    def _prepare(self, input, hx):
        prepared = super()._prepare(input, hx)
        return prepared._replace(states=(torch.zeros_like(prepared.hx),))


class InitialStateNotSorted(StepwiseRNN):
    """Uses h_0 in the caller's batch order for a packed batch that torch has sorted.

    With ``enforce_sorted=False`` the packed rows are ordered by decreasing length
    and h_0 must be permuted by ``sorted_indices`` to match; the permutation is easy
    to miss because the sorted case needs none. Exposed by: PackedSequence with
    enforce_sorted=False, lengths not already decreasing, and an h_0.
    """

    def _prepare(self, input, hx):
        prepared = super()._prepare(input, hx)
        if isinstance(input, PackedSequence) and hx is not None:
            prepared = prepared._replace(states=(hx,))
        return prepared


class FinalStateNotUnsorted(StepwiseRNN):
    """Returns h_n in the sorted (by length) row order of a packed batch.

    The output PackedSequence carries its own indices and comes out right, which
    hides that h_n, a plain tensor, must be put back in the caller's order with
    ``unsorted_indices``. Exposed by: PackedSequence with enforce_sorted=False and
    lengths not already decreasing.
    """

    def _restore(self, prepared, output, h_n):
        if prepared.packed is not None:
            packed = prepared.packed
            return PackedSequence(output, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices), h_n
        return super()._restore(prepared, output, h_n)


class UnbatchedFinalStateKeepsBatch(StepwiseRNN):
    """Returns a 3-D h_n (layers*directions, 1, hidden) for unbatched 2-D input.

    Unbatched input is handled by adding a batch of one; the output is squeezed back
    and h_n is forgotten. Exposed by: 2-D (unbatched) input.
    """

    def _restore(self, prepared, output, h_n):
        output, squeezed = super()._restore(prepared, output, h_n)
        return output, (h_n if prepared.unbatched else squeezed)
