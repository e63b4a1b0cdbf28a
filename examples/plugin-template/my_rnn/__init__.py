"""my-rnn: a hand-written torch.nn.RNN, registered with rnn-harness.

`IMPLEMENTATION` is what the ``rnn_harness.impls`` entry point in pyproject.toml
points at: the name, the factory the harness calls with torch.nn.RNN's constructor
keywords, and what the implementation claims to support.
"""

from harness import Implementation

from my_rnn.rnn import MyRNN

IMPLEMENTATION = Implementation(
    name="my-rnn",
    factory=MyRNN,
    description="input projection for all steps at once, then a per-step loop",
    # Every capability defaults to "everything torch.nn.RNN does". Narrow what you do
    # not support and the harness never generates such a case, for example:
    #   dtypes={torch.float32, torch.float64}, devices={"cpu"}, max_layers=2,
    #   bidirectional=False, packed=False, unbatched=False, backward=False,
)

__all__ = ["IMPLEMENTATION", "MyRNN"]
