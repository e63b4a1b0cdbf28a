"""my-rnn against torch.nn.RNN.

The first test is rnn-harness's differential fuzzer, through its pytest plugin. It
takes its settings from the command line: --rnn-profile (ci, quick, default, long),
--rnn-max-examples N, --rnn-seed S, --rnn-report report.json, --rnn-repro-dir DIR.
"""

import torch

from my_rnn import MyRNN


def test_my_rnn_matches_torch(rnn_harness_fuzz):
    # By name, so this also checks that the package's entry point is installed.
    rnn_harness_fuzz("my-rnn")


def test_weights_load_into_torch_and_give_the_same_output():
    mine = MyRNN(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    reference = torch.nn.RNN(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    reference.load_state_dict(mine.state_dict())  # same keys, same shapes
    inputs = torch.randn(4, 7, 3)
    (output, h_n), (expected_output, expected_h_n) = mine(inputs), reference(inputs)
    torch.testing.assert_close(output, expected_output)
    torch.testing.assert_close(h_n, expected_h_n)
