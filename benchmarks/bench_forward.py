"""Forward pass under no_grad: time, peak memory, and worst error against float64."""

from .common import RNNBenchmark


class RNNForward(RNNBenchmark):
    mode = "forward"

    def time_forward(self, name, shape, threads):
        self.workload()

    def peakmem_forward(self, name, shape, threads):
        self.workload()

    def track_worst_error(self, name, shape, threads):
        return self.worst_error(name, shape)

    track_worst_error.unit = "max abs error vs float64"


class LSTMForward(RNNForward):
    family = "LSTM"


class GRUForward(RNNForward):
    family = "GRU"
