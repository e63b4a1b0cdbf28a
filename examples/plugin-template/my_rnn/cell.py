"""MyGRUCell: torch.nn.GRUCell, one step, for a time loop of your own.

`harness.DropInGRUCell` handles what is not the step: unbatched 1-D input, a missing
``hx`` (zeros), torch's checks and exceptions, and torch's parameter names
(``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``). A subclass writes `step` on
an ``(N, input_size)`` batch. `DropInRNNCell` and `DropInLSTMCell` work the same way
(for LSTMCell the state and the result are ``(h, c)``).
"""

from harness import DropInGRUCell


class MyGRUCell(DropInGRUCell):
    def step(self, input, h):
        w_ih, w_hh, b_ih, b_hh = self.cell_weights()
        input_part, hidden_part = input @ w_ih.T, h @ w_hh.T
        if b_ih is not None:
            input_part, hidden_part = input_part + b_ih, hidden_part + b_hh
        # torch stacks the three gate blocks in the order reset, update, new.
        i_r, i_z, i_n = input_part.chunk(3, dim=1)
        h_r, h_z, h_n = hidden_part.chunk(3, dim=1)
        r = self.elementwise("sigmoid", i_r + h_r)
        z = self.elementwise("sigmoid", i_z + h_z)
        # The reset gate multiplies the hidden product *with* its bias b_hn: torch's
        # (and cuDNN's) form, not the one where r is applied to h before the product.
        n = self.elementwise("tanh", i_n + r * h_n)
        return (1 - z) * n + z * h
