"""Plugins that get a family's *structure* or *checks* wrong, the way ports do: an
LSTM that returns nn.RNN's tuple, a cell that returns a layer's tuple, a GRU that
lets a one-row h_0 broadcast where torch raises (tests/test_families.py)."""

import torch

from harness import Implementation
from impls.loop import LoopGRU, LoopLSTM, LoopLSTMCell, LoopRNNCell


class LSTMReturnsRNNTuple(LoopLSTM):
    """Returns (output, h_n) as nn.RNN does, dropping c_n."""

    def forward(self, input, hx=None):
        output, (h_n, _) = super().forward(input, hx)
        return output, h_n


class CellReturnsLayerTuple(LoopRNNCell):
    """Returns (h', h') as if it were a layer's (output, h_n)."""

    def forward(self, input, hx=None):
        h = super().forward(input, hx)
        return h, h


class GRUBroadcastsOneRowState(LoopGRU):
    """Expands an h_0 of one row to the batch instead of rejecting it."""

    def forward(self, input, hx=None):
        if hx is not None and hx.dim() == 3 and hx.shape[1] == 1:
            batch = input.batch_sizes[0] if hasattr(input, "batch_sizes") else input.shape[0 if self.batch_first else 1]
            hx = hx.expand(-1, int(batch), -1).contiguous()
        return super().forward(input, hx)


class LSTMCellIgnoresC0(LoopLSTMCell):
    """Starts every step from c = 0, whatever c_0 the caller passes."""

    def step(self, input, state):
        h, c = state
        return super().step(input, (h, torch.zeros_like(c)))


class LSTMIgnoresC0(LoopLSTM):
    """Runs every direction from c = 0, whatever c_0 the caller passes."""

    def run_direction(self, data, batch_sizes, state, layer, direction):
        h0, c0 = state
        return super().run_direction(data, batch_sizes, (h0, torch.zeros_like(c0)), layer, direction)


LSTM_RETURNS_RNN_TUPLE = Implementation(name="lstm-returns-rnn-tuple", factory=LSTMReturnsRNNTuple, family="LSTM")
CELL_RETURNS_LAYER_TUPLE = Implementation(name="cell-returns-layer-tuple", factory=CellReturnsLayerTuple, family="RNNCell")
GRU_BROADCASTS_ONE_ROW_STATE = Implementation(name="gru-broadcasts-one-row-state", factory=GRUBroadcastsOneRowState, family="GRU")
LSTMCELL_IGNORES_C0 = Implementation(name="lstmcell-ignores-c0", factory=LSTMCellIgnoresC0, family="LSTMCell")
LSTM_IGNORES_C0 = Implementation(name="lstm-ignores-c0", factory=LSTMIgnoresC0, family="LSTM")
