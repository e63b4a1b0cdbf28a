"""Run a candidate in a worker process, so a crash or a hang is a finding, not the end.

One `Worker` per implementation. The parent (where Hypothesis runs) sends it cases;
the worker runs `oracle.check` and answers. A worker that dies (a broken native
extension calling abort(), a segfault) or does not answer within the per-example
timeout is killed and reported as a discrepancy of kind ``crash`` or ``timeout`` on
that case; the next case starts a fresh worker. Workers fork from a forkserver that
has already imported torch, so a restart costs milliseconds, not an import.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import traceback

from harness.cases import Case
from harness.implementation import Implementation, Unavailable
from harness.oracle import Discrepancy
from harness.tolerance import ErrorModel

_PRELOAD = ["torch", "harness.oracle", "harness.cases"]


def _context():
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


class HarnessError(RuntimeError):
    """The harness or the reference failed in the worker: not the candidate's fault."""


def _serve(connection, factory, name: str, model: ErrorModel) -> None:
    """The worker's loop: one request in, one answer out, until told to stop."""
    import torch

    from harness import oracle

    # Ctrl-C is for the parent, which reports what finished and then stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One thread by default: fuzzing tensors are small, and workers often run side
    # by side (pytest -n, several campaigns), where more threads only wait on each other.
    torch.set_num_threads(int(os.environ.get("RNN_HARNESS_WORKER_THREADS", "1")))
    implementation = Implementation(name=name, factory=factory)
    connection.send(("ready", None))
    while True:
        try:
            request, payload = connection.recv()
        except EOFError:
            return
        if request == "stop":
            return
        try:
            if request == "available":
                try:
                    factory(input_size=1, hidden_size=1)
                    answer = ("ok", None)
                except Unavailable as error:
                    answer = ("ok", str(error))
                except Exception:  # noqa: BLE001 - a broken factory is the fuzzer's finding
                    answer = ("ok", None)
            elif request == "check":
                oracle.check(implementation, Case.from_json(payload), model)
                answer = ("ok", None)
            elif request == "localize":
                answer = ("ok", oracle.localize_layer(implementation, Case.from_json(payload), model))
            else:
                answer = ("error", f"unknown request {request!r}")
        except Discrepancy as found:
            answer = ("discrepancy", (found.kind, found.subject, found.summary, found.evidence))
        except Exception as error:  # noqa: BLE001
            answer = ("error", "".join(traceback.format_exception(type(error), error, error.__traceback__)[-8:]))
        connection.send(answer)


class Worker:
    """A worker process for one implementation, restarted after a crash or a hang."""

    def __init__(self, implementation: Implementation, model: ErrorModel, timeout: float):
        self.implementation = implementation
        self.model = model
        self.timeout = timeout
        self.process = None
        self.connection = None
        self.restarts = 0

    def _start(self) -> None:
        context = _context()
        parent_end, child_end = context.Pipe()
        self.process = context.Process(
            target=_serve,
            args=(child_end, self.implementation.factory, self.implementation.name, self.model),
            name=f"rnn-harness worker: {self.implementation.name}",
            daemon=True,
        )
        try:
            self.process.start()
        except Exception as error:  # noqa: BLE001 - pickling the factory failed
            child_end.close()
            parent_end.close()
            self.process = None
            raise HarnessError(
                f"the factory of {self.implementation.name!r} cannot be sent to a worker process "
                f"({type(error).__name__}: {error}); make it importable by name (a module-level "
                "class or function), or run with --no-isolation"
            ) from None
        child_end.close()
        self.connection = parent_end
        # A worker that dies before saying "ready" never reached the candidate: the
        # harness could not start it, which is not the candidate's crash.
        try:
            if not parent_end.poll(120):
                raise EOFError
            parent_end.recv()
        except (EOFError, OSError):
            self.process.join(timeout=5)
            code = self.process.exitcode
            self._kill()
            raise HarnessError(
                f"the worker process for {self.implementation.name!r} did not start (exit code {code}). "
                "If you call the harness from your own script, put the call under "
                "`if __name__ == \"__main__\":` (worker processes re-import the main module), "
                "and make sure the factory is importable by name (a module-level class or function)."
            ) from None

    def _kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
        if self.process is not None:
            self.process.join(timeout=5)
        if self.connection is not None:
            self.connection.close()
        self.process = self.connection = None
        self.restarts += 1

    def request(self, request: str, case: Case | None = None):
        if self.process is None:
            self._start()
        try:
            self.connection.send((request, None if case is None else case.to_json()))
            ready = self.connection.poll(self.timeout)
        except (BrokenPipeError, EOFError, OSError):
            ready = True  # the worker is gone; recv below says how
        if not ready:
            self._kill()
            raise Discrepancy(
                "timeout", "forward",
                f"the candidate did not finish within {self.timeout:g}s on this case (a hang or an infinite loop); "
                "the worker was killed. Raise the limit with --timeout if the case is merely slow.",
            )
        try:
            status, payload = self.connection.recv()
        except (EOFError, OSError):
            self.process.join(timeout=5)
            code = self.process.exitcode
            self._kill()
            how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
            raise Discrepancy(
                "crash", "process",
                f"the worker process running the candidate died ({how}) on this case: "
                "a crash in native code (abort, segfault) or os._exit",
            ) from None
        if status == "discrepancy":
            kind, subject, summary, evidence = payload
            raise Discrepancy(kind, subject, summary, evidence)
        if status == "error":
            raise HarnessError(payload)
        return payload

    def close(self) -> None:
        if self.process is not None and self.process.is_alive():
            try:
                self.connection.send(("stop", None))
                self.process.join(timeout=5)
            except (BrokenPipeError, OSError):
                pass
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        if self.connection is not None:
            self.connection.close()
        self.process = self.connection = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class InProcess:
    """The same interface without a process boundary: for debugging (--no-isolation)."""

    def __init__(self, implementation: Implementation, model: ErrorModel):
        self.implementation = dataclasses.replace(implementation)
        self.model = model
        self.restarts = 0

    def request(self, request: str, case: Case | None = None):
        from harness import oracle

        if request == "available":
            try:
                self.implementation.factory(input_size=1, hidden_size=1)
            except Unavailable as error:
                return str(error)
            except Exception:  # noqa: BLE001
                return None
            return None
        if request == "check":
            return oracle.check(self.implementation, case, self.model)
        if request == "localize":
            return oracle.localize_layer(self.implementation, case, self.model)
        raise ValueError(request)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
