"""Forward then backward: time, peak memory, and worst error (gradients included)."""

from .common import RNNBenchmark


class RNNBackward(RNNBenchmark):
    mode = "backward"

    def time_forward_backward(self, name, shape, threads):
        self.workload()

    def peakmem_forward_backward(self, name, shape, threads):
        self.workload()

    def track_worst_error(self, name, shape, threads):
        return self.worst_error(name, shape)

    track_worst_error.unit = "max abs error vs float64"


class LSTMBackward(RNNBackward):
    family = "LSTM"


class GRUBackward(RNNBackward):
    family = "GRU"
