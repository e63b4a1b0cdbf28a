"""Built-in implementations of torch's recurrent modules.

Each module exposes `harness.Implementation` records (``IMPLEMENTATION`` for nn.RNN,
``LSTM``, ``GRU``, ``RNN_CELL``, ... for the other families), each registered through the ``rnn_harness.impls`` entry-point group in pyproject.toml,
exactly as an outside plugin would be. Nothing here is imported by the harness
directly.
"""

BUILTIN_EXAMPLES = {"RNN": 40, "LSTM": 32, "GRU": 32, "RNNCell": 50, "LSTMCell": 50, "GRUCell": 50}
"""Each eager built-in's budget under the default profile (``default_examples``).

``python -m harness fuzz`` runs every registered implementation, 40-odd built-ins
among them, and must finish within two minutes on a 2-core machine. An outside
plugin keeps the default profile's 300 examples; a built-in takes about two seconds
of one core: examples per family in inverse proportion to their cost (an LSTM
example costs about twice an nn.RNN one, a cell example a third). Each budget holds
the family's covering cases (26 for a layer, 24 for a cell; harness/case_space.py) and
a few random ones; the invalid inputs come on top. The long profile
scales these (`Implementation.example_budget`); our zero-false-alarm campaigns give
every built-in 5,000 with ``--max-examples``."""
