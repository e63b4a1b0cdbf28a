"""harness.packing converts run_direction's packed form to a padded batch and back,
as torch's own pack/pad functions do, with gradients; the template uses it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from harness import Implementation, packed_from_padded, padded_from_packed, reverse_padded
from harness.campaign import fuzz_implementation

TEMPLATE_RNN = Path(__file__).parents[1] / "examples" / "plugin-template" / "my_rnn" / "rnn.py"


def packed_example():
    lengths = torch.tensor([4, 2, 2, 1])
    padded = torch.randn(4, 4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    packed = pack_padded_sequence(padded, lengths)
    return packed, tuple(packed.batch_sizes.tolist()), lengths


def test_padded_form_matches_torchs_and_comes_back():
    packed, batch_sizes, lengths = packed_example()
    padded, got_lengths = padded_from_packed(packed.data, batch_sizes)
    expected, expected_lengths = pad_packed_sequence(packed)
    torch.testing.assert_close(padded, expected, rtol=0, atol=0)
    assert got_lengths.tolist() == expected_lengths.tolist() == lengths.tolist()
    torch.testing.assert_close(packed_from_padded(padded, batch_sizes), packed.data, rtol=0, atol=0)


def test_reverse_padded_reverses_each_sequence_within_its_length():
    packed, batch_sizes, lengths = packed_example()
    padded, lengths = padded_from_packed(packed.data, batch_sizes)
    reversed_ = reverse_padded(padded, lengths)
    for row, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(reversed_[:length, row], padded[:length, row].flip(0), rtol=0, atol=0)
        assert reversed_[length:, row].abs().sum() == 0, "padding stays at the end, as zeros"
    torch.testing.assert_close(reverse_padded(reversed_, lengths), padded, rtol=0, atol=0)


def test_gradients_flow_through_the_conversion():
    packed, batch_sizes, _ = packed_example()
    data = packed.data.clone().requires_grad_()
    padded, lengths = padded_from_packed(data, batch_sizes)
    packed_from_padded(reverse_padded(padded * 2, lengths), batch_sizes).sum().backward()
    torch.testing.assert_close(data.grad, torch.full_like(data, 2.0))


def test_empty_batch():
    data = torch.zeros(0, 3)
    padded, lengths = padded_from_packed(data, (0, 0))
    assert padded.shape == (2, 0, 3) and lengths.shape == (0,)
    assert packed_from_padded(padded, (0, 0)).shape == (0, 3)


def test_the_template_built_on_it_matches_torch():
    spec = importlib.util.spec_from_file_location("template_rnn", TEMPLATE_RNN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    template = Implementation(name="template-padded", factory=module.MyRNN)
    result = fuzz_implementation(template, profile="ci", seed=0, repro_dir=None, database_dir=None, isolate=False)
    assert result.verdict == "pass", result.failure.summary if result.failure else result.reason
