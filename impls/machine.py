"""What this CPU and this torch build can do, as torch itself reports it at run time.

The built-ins' declarations (`KnownFailure` predicates) that depend on the hardware
or the build read these functions, never a fact about the machine they were written
on: torch picks oneDNN for bfloat16 only where oneDNN says the CPU has bfloat16
instructions, and Inductor's C++ code differs with the vector ISA it picks. Each
answer is what the running process will do: ``ONEDNN_MAX_CPU_ISA`` (read by oneDNN)
and ``ATEN_CPU_CAPABILITY`` (read by ATen and Inductor) change it, which is how
tests/test_other_cpus.py exercises older CPUs on a newer one.
"""

from __future__ import annotations

import functools

import torch


def onednn_on() -> bool:
    """torch was built with oneDNN, and it is switched on (``torch.backends.mkldnn.enabled``)."""
    return torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled


@functools.cache
def onednn_bfloat16() -> bool:
    """oneDNN computes in bfloat16 on this CPU: ATen's ``mkldnn_bf16_device_check``
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``), which eager nn.LSTM consults
    before it hands a bfloat16 input to oneDNN. False on AVX2-only CPUs, and under
    ``ONEDNN_MAX_CPU_ISA=AVX2``."""
    try:
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without the operator
        return False


@functools.cache
def onednn_float16() -> bool:
    """oneDNN computes in float16 on this CPU (``torch.ops.mkldnn._is_mkldnn_fp16_supported``:
    AVX-512 FP16 or AVX-NE-CONVERT), consulted by eager nn.LSTM for float16 without autograd."""
    try:
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):
        return False


def eager_lstm_takes_onednn(dtype: str, *, grad_enabled: bool, device: str = "cpu") -> bool:
    """Whether eager nn.LSTM (``at::native::lstm``) runs oneDNN's ``mkldnn_rnn_layer``
    for a non-empty input of this dtype: ``use_mkldnn`` in aten/src/ATen/native/RNN.cpp,
    which asks oneDNN whether the CPU has the half-precision instructions."""
    if device != "cpu" or not onednn_on():
        return False
    if dtype == "float32":
        return True
    if dtype == "bfloat16":
        return onednn_bfloat16()
    if dtype == "float16":
        return not grad_enabled and onednn_float16()
    return False


@functools.cache
def inductor_vector_isa() -> str:
    """The vector instruction set Inductor's C++ backend generates code for here
    (``torch._inductor.cpu_vec_isa.pick_vec_isa``: the CPU's, capped by
    ``ATEN_CPU_CAPABILITY``): ``"avx512 avx512_vnni"``, ``"avx2"``, or ``""`` for
    scalar code (``ATEN_CPU_CAPABILITY=default``, or no usable compiler)."""
    try:
        from torch._inductor import cpu_vec_isa

        isa = cpu_vec_isa.pick_vec_isa()
        return str(isa) if isa else ""
    except Exception:  # noqa: BLE001 - no compiler, or an Inductor that moved: no vector code
        return ""


def inductor_avx512() -> bool:
    """Inductor generates AVX-512 code here (AMX CPUs included: their ISA extends it)."""
    return "avx512" in inductor_vector_isa().split()


def inductor_targets_cuda() -> bool:
    """Inductor can compile for the GPU here: CUDA is available and Triton, which
    generates Inductor's GPU code, is installed (CPU wheels of torch come without it)."""
    if not torch.cuda.is_available():
        return False
    try:
        from torch.utils._triton import has_triton_package
    except ImportError:  # a torch that moved it: let the campaign find out
        return True
    return has_triton_package()


def summary() -> dict[str, object]:
    """Everything above, for a note or a test's message: what this process sees."""
    return {
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn": onednn_on(),
        "onednn_bfloat16": onednn_bfloat16(),
        "onednn_float16": onednn_float16(),
        "inductor_vector_isa": inductor_vector_isa() or "none (scalar code)",
        "cuda": torch.cuda.is_available(),
        "inductor_cuda": inductor_targets_cuda(),
    }
