"""Built-in implementations of torch.nn.RNN.

Each module exposes one `harness.Implementation` named ``IMPLEMENTATION`` and is
registered through the ``rnn_harness.impls`` entry-point group in pyproject.toml,
exactly as an outside plugin would be. Nothing here is imported by the harness
directly.
"""
