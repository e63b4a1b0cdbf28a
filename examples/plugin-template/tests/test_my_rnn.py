"""my-rnn, my-lstm and my-grucell against torch.nn.RNN, nn.LSTM and nn.GRUCell.

The first tests are rnn-harness's differential fuzzer, through its pytest plugin. It
takes its settings from the command line: --rnn-profile (ci, quick, default, long),
--rnn-max-examples N, --rnn-seed S, --rnn-report report.json, --rnn-repro-dir DIR.
"""

import torch

from my_rnn import MyLSTM, MyRNN


def test_my_rnn_matches_torch(rnn_harness_fuzz):
    # By name, so this also checks that the package's entry point is installed.
    rnn_harness_fuzz("my-rnn")


def test_my_lstm_matches_torch(rnn_harness_fuzz):
    rnn_harness_fuzz("my-lstm")


def test_my_grucell_matches_torch(rnn_harness_fuzz):
    rnn_harness_fuzz("my-grucell")


def test_weights_load_into_torch_and_give_the_same_output():
    mine = MyRNN(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    reference = torch.nn.RNN(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    reference.load_state_dict(mine.state_dict())  # same keys, same shapes
    inputs = torch.randn(4, 7, 3)
    (output, h_n), (expected_output, expected_h_n) = mine(inputs), reference(inputs)
    torch.testing.assert_close(output, expected_output)
    torch.testing.assert_close(h_n, expected_h_n)


def test_lstm_weights_load_into_torch_with_projections():
    mine = MyLSTM(3, 6, num_layers=2, proj_size=2, bidirectional=True)
    reference = torch.nn.LSTM(3, 6, num_layers=2, proj_size=2, bidirectional=True)
    reference.load_state_dict(mine.state_dict())  # weight_hr_l0, weight_hr_l0_reverse, ... included
    inputs = torch.randn(5, 4, 3)
    (output, (h_n, c_n)), (expected_output, (expected_h_n, expected_c_n)) = mine(inputs), reference(inputs)
    torch.testing.assert_close(output, expected_output)
    torch.testing.assert_close(h_n, expected_h_n)
    torch.testing.assert_close(c_n, expected_c_n)
