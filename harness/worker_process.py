"""A worker process: how it starts, and what it does until told to stop.

Workers fork from a server that has already imported torch (`harness.forkserver`);
where there is no fork, multiprocessing's spawn starts them. A worker is told which
implementation to load (by name, `harness.locate`) and then answers the parent's
requests (`harness.isolation.Worker`) one at a time: each a dataclass of
`harness.protocol` (check a case, localise a failure, ask torch what it raises on an
invalid input or what it computes on a case), carried out by `protocol.answer`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import sys
import threading
import traceback
import warnings

from harness import forkserver, locate, protocol
from harness.implementation import Implementation
from harness.oracle import Discrepancy
from harness.tolerance import ErrorModel

# "__main__" as multiprocessing's forkserver does: a script is imported once, in the
# server, instead of again in every worker it forks.
_PRELOAD = ["__main__", "torch", "harness.oracle", "harness.cases"]
SERVE = "harness.worker_process:serve"
"""What each forked worker runs (`harness.forkserver`)."""
_shared_imports: set[str] = set()
_server: forkserver.Client | None = None
_server_lock = threading.Lock()


def share_imports(implementations) -> None:
    """Have the worker server import what these implementations declare in ``preload``,
    once for all their workers. Effective only before the first worker starts: the
    server is started once per process; a module that fails to import there is
    skipped (the worker then imports it itself, and reports the error)."""
    for implementation in implementations:
        _shared_imports.update(implementation.preload)


def start_server() -> None:
    """Start the server the workers fork from, if it is not running: it imports torch
    (about a second and a quarter here) while this process goes on (importing torch
    itself, discovering the implementations, planning the campaigns), instead of when
    the first worker is asked for. What `share_imports` names is told to it then."""
    global _server
    if not forkserver.available():
        return
    with _server_lock:
        if _server is None or not _server.alive():
            _server = forkserver.take_early(SERVE) or forkserver.Client(None, SERVE, imports_first=("torch",))


def _running_server() -> forkserver.Client | None:
    if not forkserver.available():
        return None
    start_server()
    with _server_lock:
        if not _server.configured:
            _server.configure(_PRELOAD + sorted(_shared_imports))
        return _server


def start_process():
    """A fresh worker process and the parent's end of its channel, not yet told what to serve."""
    server = _running_server()
    if server is not None:
        return server.start()
    # No fork (Windows): multiprocessing's spawn, which a daemon process cannot use.
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    process = context.Process(target=serve, args=(child_end,), name="rnn-harness worker", daemon=True)
    process.start()
    child_end.close()
    return process, parent_end


def exact_float32_math() -> None:
    """No TF32 in this process: on CUDA, cuDNN's recurrent kernels use it by default,
    and its 10-bit mantissa is not float32 arithmetic (the error model's premise)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


@contextlib.contextmanager
def exact_float32_math_within():
    """`exact_float32_math` for a with block only (a campaign run in this process,
    --no-isolation); the settings it found are restored after."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    exact_float32_math()
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@dataclasses.dataclass(frozen=True)
class Serve:
    """The first message to a fresh worker: which implementation to load (by name, from
    ``address``), the error model its checks use, and the parent's ``sys.path``."""

    address: locate.Address
    name: str
    model: ErrorModel
    parent_path: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Stop:
    """The last message to a worker: it returns, and its process exits."""


STOP = Stop()


def serve(connection) -> None:
    """A worker process's life: told what to load (`Serve`), then `_serve` until told to stop."""
    try:
        message = connection.recv()
    except EOFError:
        return
    if isinstance(message, Serve):
        _serve(connection, message)


def _serve(connection, told: Serve) -> None:
    """The worker's loop: one request in, one answer out, until told to stop."""
    import torch

    # Ctrl-C is for the parent, which reports what finished and then stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One thread by default: fuzzing tensors are small, and workers often run side
    # by side (pytest -n, several campaigns), where more threads only wait on each other.
    torch.set_num_threads(int(os.environ.get("RNN_HARNESS_WORKER_THREADS", "1")))
    exact_float32_math()
    # torch notes once per process that oneDNN cannot project and ATen runs instead:
    # a dispatch detail of the reference (and of torch-lstm), printed into the middle
    # of the progress lines, not something about the candidate.
    warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN", category=UserWarning)
    # Import by name from where the parent imports (pytest's rootdir, a script's folder).
    sys.path[:0] = [entry for entry in told.parent_path if entry not in sys.path]
    try:
        implementation = Implementation(name=told.name, factory=locate.resolve(told.address))
    except BaseException as error:  # noqa: BLE001 - told to the parent, which reports it
        connection.send(("failed", "".join(traceback.format_exception_only(type(error), error)).strip()))
        return
    connection.send(("ready", None))
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if isinstance(message, Stop):
            return
        connection.send(reply(message, implementation, told.model))


def reply(request: protocol.Request, implementation: Implementation, model: ErrorModel) -> tuple[str, object]:
    """`protocol.answer`'s outcome as it crosses the pipe: ("ok", the answer),
    ("discrepancy", its fields), or ("error", the traceback's last lines)."""
    try:
        return "ok", protocol.answer(request, implementation, model)
    except Discrepancy as found:
        return "discrepancy", (found.kind, found.subject, found.summary, found.evidence)
    except Exception as error:  # noqa: BLE001 - the harness or the reference failed: told to the parent
        return "error", "".join(traceback.format_exception(type(error), error, error.__traceback__)[-8:])
