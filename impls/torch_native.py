"""`torch`: torch's own modules with torch's default dispatch (oneDNN where torch
picks it on CPU, cuDNN on CUDA), one implementation per family."""

from torch import nn

from harness import Implementation, KnownFailure
from impls import BUILTIN_EXAMPLES, machine

ONEDNN_PACKED_UNCHECKED = (
    "wrong_width", "input_one_feature", "h0_wrong_batch", "h0_one_layer", "h0_one_row", "c0_one_row",
)
"""The invalid inputs that nn.LSTM's oneDNN path takes for a PackedSequence of equal
lengths without torch's checks (docs/found-bugs.md)."""


def onednn_takes_unchecked_packed_input(case) -> bool:
    """nn.LSTM on the CPU hands a PackedSequence whose sequences all have the same
    length to oneDNN, and with a PackedSequence nn.LSTM.forward skips
    check_forward_args: the wrong shapes reach oneDNN unchecked. Which dtypes go to
    oneDNN is this machine's: float32 wherever torch has oneDNN, bfloat16 where oneDNN
    has bfloat16 instructions, float16 never here (only without autograd, and the
    invalid-input check runs with it)."""
    return (
        case.defect in ONEDNN_PACKED_UNCHECKED
        and case.packed
        and len(set(case.lengths)) == 1
        and case.proj_size == 0
        and machine.eager_lstm_takes_onednn(str(case.dtype), grad_enabled=True, device=case.device)
    )


LSTM_ONEDNN_PACKED = KnownFailure(
    when=onednn_takes_unchecked_packed_input,
    reason=(
        "torch 2.13 bug: nn.LSTM.forward does not call check_forward_args for a PackedSequence, and "
        "at::native::lstm (packed overload) sends equal-length batches to oneDNN (mkldnn_rnn_layer), "
        "which checks neither the input width nor h_0/c_0's shape: a wrong width or an extra h_0 row "
        "returns garbage, a one-layer h_0 raises IndexError instead of RuntimeError, and a one-row "
        "h_0 or c_0 corrupts the heap (glibc abort). docs/found-bugs.md"
    ),
)

_DESCRIPTION = "torch.nn.{} with default dispatch (oneDNN/ATen on CPU, cuDNN on CUDA)"
IMPLEMENTATION = Implementation(name="torch", factory=nn.RNN, family="RNN", default_examples=BUILTIN_EXAMPLES["RNN"], description=_DESCRIPTION.format("RNN"))
LSTM = Implementation(
    name="torch-lstm", factory=nn.LSTM, family="LSTM", default_examples=BUILTIN_EXAMPLES["LSTM"], description=_DESCRIPTION.format("LSTM"),
    known_failures=(LSTM_ONEDNN_PACKED,),
)
GRU = Implementation(name="torch-gru", factory=nn.GRU, family="GRU", default_examples=BUILTIN_EXAMPLES["GRU"], description=_DESCRIPTION.format("GRU"))
RNN_CELL = Implementation(name="torch-rnncell", factory=nn.RNNCell, family="RNNCell", default_examples=BUILTIN_EXAMPLES["RNNCell"], description="torch.nn.RNNCell (ATen's cell kernel; fused kernel on CUDA)")
LSTM_CELL = Implementation(name="torch-lstmcell", factory=nn.LSTMCell, family="LSTMCell", default_examples=BUILTIN_EXAMPLES["LSTMCell"], description="torch.nn.LSTMCell (ATen's cell kernel; fused kernel on CUDA)")
GRU_CELL = Implementation(name="torch-grucell", factory=nn.GRUCell, family="GRUCell", default_examples=BUILTIN_EXAMPLES["GRUCell"], description="torch.nn.GRUCell (ATen's cell kernel; fused kernel on CUDA)")
