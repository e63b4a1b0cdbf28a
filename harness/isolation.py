"""Run a candidate in a worker process, so a crash or a hang is a finding, not the end.

One `Worker` per implementation. The parent (where Hypothesis runs) sends it cases;
the worker runs `oracle.check` and answers. A worker that dies (a broken native
extension calling abort(), a segfault) or does not answer within the per-example
timeout is killed and reported as a discrepancy of kind ``crash`` or ``timeout`` on
that case; the next case starts a fresh worker. Workers fork from a server process
that has already imported torch (`harness.forkserver`, started with subprocess, so
a daemon process such as a Dask worker under its nanny may use it), so a restart
costs milliseconds, not an import. A worker obtains the implementation by name
(`harness.locate`), as its parent did; what runs there is `harness.worker_process`.

Hangs are made cheap. Each case's limit is predicted from the implementation's own
measured time on the cases that passed (warm: a fresh worker's first call pays its lazy
setup; before the first case the smallest case like it runs twice, `calibration_case`),
scaled by the case's size (`case_cost`):
before any hang generously (`FIRST_LIMIT_FACTOR` times, at least `FIRST_LIMIT_FLOOR`
seconds, at most the timeout), so a hang is noticed in seconds, not after the full
timeout; until enough cases have passed, and for an implementation that declares
``example_timeout`` (its cost does not follow the size: it compiles per shape), the
limit is the full timeout. The first case over its limit runs once more in a fresh
worker with `SLOW_CONFIRM_FACTOR` times as long (a predicted limit: at least
`FIRST_CONFIRM_FLOOR` seconds, at most the timeout):
finishing there, it was slow (a loaded machine, a kernel compiled on a first call),
not hung. After a hang, shrinking runs under tighter limits (`SHORT_LIMIT_FACTOR`),
so it takes seconds; `confirm_hang` re-checks the minimal case with a longer limit
before it is reported, so a merely slow case is never called a hang.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import time

from harness import locate, protocol, worker_process
from harness.cases import Case
from harness.implementation import Implementation
from harness.oracle import Discrepancy
from harness.tolerance import ErrorModel

FIRST_LIMIT_FACTOR = 20.0
"""Before any hang: a case may take this many times what its size predicts..."""
FIRST_LIMIT_FLOOR = 5.0
"""...and never less than this many seconds (a loaded machine; a fresh worker's lazy setup)."""
MEASURED_BEFORE_PREDICTING = 1
"""Warm cases that must have passed before limits are predicted rather than the full
timeout (the calibration before the first case gives one)."""
SHORT_LIMIT_FACTOR = 10.0
"""After a hang: a case may take this many times what its size predicts."""
SHORT_LIMIT_FLOOR = 0.3
"""After a hang: never less than this many seconds per case (a busy machine)."""
CONFIRM_FACTOR, CONFIRM_FLOOR = 3.0, 3.0
"""The minimal hanging case is re-run with 3x its limit, at least 3 s, before it is reported."""
SLOW_CONFIRM_FACTOR = 3.0
"""The first case over its limit is run once more, in a fresh worker, with this many
times that limit before it counts as a hang: on a loaded machine a case can take several
times its usual time, a fresh worker pays its lazy setup again, and slow is not hung."""
FIRST_CONFIRM_FLOOR = 15.0
"""After a predicted limit, that second run gets at least this many seconds (at most the timeout)."""


def calibration_case(case: Case) -> Case:
    """The smallest valid case like ``case`` (its family, dtype, device and mode): one
    step of one one-wide layer, one row, nothing invalid. Within every declared limit
    that ``case`` is within."""
    return dataclasses.replace(
        case, input_size=1, hidden_size=1, num_layers=1, bidirectional=False, proj_size=0, dropout=0.0,
        layout="batched", seq_len=1, batch=1, lengths=None, noncontiguous="none", second_call="none", defect=None,
    )


def case_cost(case: Case) -> float:
    """How much work a case is, in arbitrary units: steps run times the size of one step.
    Only ratios matter: they scale the measured seconds of passing cases to a new case."""
    steps = (case.seq_len + 1) * case.num_layers * case.num_directions * (2 if case.second_call != "none" else 1)
    width = max(case.batch, 1) * case.hidden_size * (case.hidden_size + case.input_size)
    return steps * (1.0 + width / 4096.0)


def _first_hang_finding(limit: float, longer: float, full: bool) -> tuple[str, dict]:
    """What is reported of the first case that exceeded ``limit``, then ``longer`` in a fresh worker."""
    text = (f"the candidate did not finish within {limit:.3g}s on this case, nor within {longer:.3g}s when run "
            "again in a fresh worker (a hang or an infinite loop); the worker was killed. "
            + ("Raise the limit with --timeout if the case is merely slow." if full else
               f"The first limit was {FIRST_LIMIT_FACTOR:g}x what the case's size predicts from the cases that passed "
               f"(at least {FIRST_LIMIT_FLOOR:g}s); an implementation whose time does not follow the size declares "
               "example_timeout, which keeps the full --timeout."))
    return text, {"limit": limit, "confirm_limit": longer, "full_timeout": full, "confirmed": True}


class HarnessError(RuntimeError):
    """The harness or the reference failed in the worker: not the candidate's fault."""


class Worker:
    """A worker process for one implementation, restarted after a crash or a hang."""

    def __init__(self, implementation: Implementation, model: ErrorModel, timeout: float, cancel=None):
        self.implementation = implementation
        self.cancel = cancel  # a threading.Event: set, a running request kills the worker and raises KeyboardInterrupt
        self.model = model
        self.timeout = timeout
        self.process = None
        self.connection = None
        self.restarts = 0
        self.address: locate.Address | None = None
        self.fixed_seconds = None  # the fastest passing case: the cost of a call at all
        self.seconds_per_cost = 0.0  # the steepest passing case above that, per unit of case_cost
        self.measured = 0  # warm passing cases measured
        self.calibrated = False  # the smallest case was timed before the first one (`_calibrate`)
        self.first_hang: Case | None = None  # the first case that exceeded its limit, twice
        self.first_hang_limits: tuple[float, float] | None = None  # its two limits: the first, and the fresh worker's
        self.slow_cases: list[float] = []  # seconds taken by cases that exceeded their limit once, then finished
        self.warm = False  # a fresh worker's first case pays for lazy setup: not measured

    def predicted_seconds(self, case: Case) -> float | None:
        """What this case should take, from the passing cases: fixed + slope x size."""
        if self.fixed_seconds is None:
            return None
        return self.fixed_seconds + self.seconds_per_cost * case_cost(case)

    def _measured(self, case: Case, seconds: float) -> None:
        if self.fixed_seconds is None or seconds < self.fixed_seconds:
            self.fixed_seconds = seconds
        self.seconds_per_cost = max(self.seconds_per_cost, (seconds - self.fixed_seconds) / case_cost(case))
        self.measured += 1

    def limit_for(self, case: Case | None) -> float:
        """Seconds this case may take: what its size predicts from the cases that passed,
        times FIRST_LIMIT_FACTOR (at least FIRST_LIMIT_FLOOR), or times SHORT_LIMIT_FACTOR
        once a case has hung; the full timeout while there is nothing to predict from, or
        when the implementation's cost does not follow the size (``example_timeout``)."""
        predicted = None if case is None else self.predicted_seconds(case)
        if predicted is None:
            return self.timeout
        if self.first_hang is not None:
            return min(self.timeout, max(SHORT_LIMIT_FLOOR, SHORT_LIMIT_FACTOR * predicted))
        if self.measured < MEASURED_BEFORE_PREDICTING or self.implementation.example_timeout is not None:
            return self.timeout
        return min(self.timeout, max(FIRST_LIMIT_FLOOR, FIRST_LIMIT_FACTOR * predicted))

    def _start(self) -> None:
        if self.address is None:
            try:
                self.address = locate.address_of(self.implementation)
            except locate.Unreachable as error:
                raise HarnessError(str(error)) from None
        worker_process.share_imports([self.implementation])
        try:
            self.process, parent_end = worker_process.start_process()
        except OSError as error:
            raise HarnessError(f"cannot start the process that isolates {self.implementation.name!r}: {error}") from None
        try:
            parent_end.send(worker_process.Serve(self.address, self.implementation.name, self.model, tuple(sys.path)))
        except Exception as error:  # noqa: BLE001 - pickling the factory failed
            parent_end.close()
            self.process.kill()
            self.process = None
            raise HarnessError(
                f"the factory of {self.implementation.name!r} cannot be sent to a worker process "
                f"({type(error).__name__}: {error}); make it importable by name (a module-level "
                "class or function), or run with --no-isolation"
            ) from None
        self.connection = parent_end
        # A worker that dies before saying "ready" never reached the candidate: the
        # harness could not start it, which is not the candidate's crash.
        try:
            if not parent_end.poll(120):
                raise EOFError
            status, message = parent_end.recv()
        except (EOFError, OSError):
            status, message = None, None
        if status == "failed":
            self._kill()
            raise HarnessError(
                f"the worker process could not obtain {self.implementation.name!r} the way this process did "
                f"({self.address.describe()}): {message}"
            )
        if status is None:
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
        self.warm = False

    def request(self, request: protocol.Request, *, limit: float | None = None, again: bool = False):
        """Carry ``request`` out in the worker process and return its answer, within
        ``limit`` seconds (by default what `limit_for` predicts). Raises `Discrepancy` for
        the candidate's finding, a crash or a hang included, and `HarnessError` when the
        harness or the reference failed. ``again``: a re-run (a confirmation or the
        calibration), which neither calibrates first nor gets a second chance if slow."""
        protocol.require_request(request)
        if self._calibration_due(request, again):
            self._calibrate(request.case)
        if self.process is None:
            self._start()
        limit = self.limit_for(request.case) if limit is None else limit
        started = time.perf_counter()
        if not self._sent_and_answered(request, limit):
            return self._after_timeout(request, limit, again)
        answer = self._received()
        self._measure(request, time.perf_counter() - started)
        return answer

    def _calibration_due(self, request: protocol.Request, again: bool) -> bool:
        """Whether `_calibrate` runs before this request: the first check of a worker whose
        cost follows the case's size, before anything was measured."""
        return (isinstance(request, protocol.CANDIDATE_CHECKS) and not again and not self.calibrated
                and self.measured == 0 and self.implementation.example_timeout is None)

    def _sent_and_answered(self, request: protocol.Request, limit: float) -> bool:
        """Send the request; whether an answer (or the worker's death) came within ``limit`` seconds."""
        try:
            self.connection.send(request)
            return self._wait(limit)
        except (BrokenPipeError, EOFError, OSError):
            return True  # the worker is gone; `_received` says how

    def _received(self):
        """The worker's answer: returned, or raised as what it says went wrong."""
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

    def _measure(self, request: protocol.Request, seconds: float) -> None:
        """Keep a passing check's time for the limits to come; a fresh worker's first
        check pays its lazy setup and is not kept."""
        if not isinstance(request, protocol.CANDIDATE_CHECKS):
            return
        cold = not self.warm
        self.warm = True
        if not cold:
            self._measured(request.case, seconds)

    def _after_timeout(self, request: protocol.Request, limit: float, again: bool):
        """The worker did not answer within ``limit``: it is killed. The first case over
        its limit runs once more, fresh and with longer (`_run_again_slower`): finishing
        there, its answer is returned. Otherwise the timeout is raised."""
        self._kill()
        full = limit >= self.timeout
        if self.first_hang is None and request.case is not None and not again:
            answer, longer = self._run_again_slower(request, limit, full)
            if longer is None:
                return answer
            self.first_hang, self.first_hang_limits = request.case, (limit, longer)
            text, evidence = _first_hang_finding(limit, longer, full)
        elif again:
            text = f"the candidate did not finish within {limit:.3g}s on this case (a hang or an infinite loop); the worker was killed."
            evidence = {"limit": limit, "full_timeout": full, "confirmed": False}
        else:
            text = (f"the candidate did not finish within {limit:.3g}s on this case (a hang or an infinite loop); "
                    f"the worker was killed. A larger case had already exceeded its limit twice, "
                    f"so this case's limit was {SHORT_LIMIT_FACTOR:g}x what its size predicts from the cases that passed.")
            evidence = {"limit": limit, "full_timeout": full, "confirmed": False}
        # One raise for every timeout: Hypothesis tells bugs apart by where they were
        # raised, and the first hang and its shrunk cases are one bug.
        raise Discrepancy("timeout", "forward", text, evidence)

    def _run_again_slower(self, request: protocol.Request, limit: float, full: bool):
        """The first case over its limit: slow, or hung? Once more, in a fresh worker, with
        `SLOW_CONFIRM_FACTOR` times as long. Returns (the answer, None) when it finished,
        or (None, the longer limit) when it timed out again; any other finding is raised."""
        if full:
            longer = SLOW_CONFIRM_FACTOR * limit
        else:  # a predicted limit: the second run gets up to the full timeout
            longer = min(self.timeout, max(FIRST_CONFIRM_FLOOR, SLOW_CONFIRM_FACTOR * limit))
        started = time.perf_counter()
        try:
            answer = self.request(request, limit=longer, again=True)
        except Discrepancy as found:
            if found.kind != "timeout":
                self.slow_cases.append(time.perf_counter() - started)
                raise
            return None, longer
        self.slow_cases.append(time.perf_counter() - started)
        return answer, None

    def _calibrate(self, case: Case) -> None:
        """Before the first case: the smallest case like it, twice (a fresh worker's first
        call pays its lazy setup; the second is measured), so that the first case's limit
        is already predicted, even if it is the one that hangs. Its outcome is not a
        finding (the campaign draws that case itself if it matters), only its time is kept."""
        self.calibrated = True
        smallest = protocol.Check(calibration_case(case))
        for _ in range(2):
            try:
                self.request(smallest, limit=min(self.timeout, FIRST_CONFIRM_FLOOR), again=True)
            except (Discrepancy, HarnessError):
                return

    def _wait(self, limit: float) -> bool:
        """Whether the answer came within ``limit`` seconds. With a ``cancel`` event
        (campaigns run side by side, where Ctrl-C reaches only the main thread), a
        set event kills the worker at once instead of after a long case."""
        if self.cancel is None:
            return self.connection.poll(limit)
        deadline = time.perf_counter() + limit
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return False
            if self.connection.poll(min(remaining, 0.2)):
                return True
            if self.cancel.is_set():
                self._kill()
                raise KeyboardInterrupt

    def confirm_hang(self, case: Case, limit: float) -> float | None:
        """Re-run a case that exceeded a shortened limit with a longer one (at most the
        full timeout). Returns that longer limit if the case still does not finish, None
        if it does: then it was slow, not hung."""
        longer = min(self.timeout, max(CONFIRM_FLOOR, CONFIRM_FACTOR * limit))
        try:
            self.request(protocol.Check(case), limit=longer, again=True)
        except Discrepancy as found:
            return longer if found.kind == "timeout" else None
        except HarnessError:
            return None
        return None

    def close(self) -> None:
        if self.process is not None and self.process.is_alive():
            try:
                self.connection.send(worker_process.STOP)
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

    def __init__(self, implementation: Implementation, model: ErrorModel, lazy_probes: bool = True):
        self.implementation = dataclasses.replace(implementation)
        self.model = model
        self.lazy_probes = lazy_probes  # False: every probe that widens a bound runs on every case (`oracle.check`)
        self.restarts = 0
        self.first_hang = None  # nothing times out in-process

    def request(self, request: protocol.Request, *, limit: float | None = None):
        """Carry ``request`` out in this process (``limit`` is ignored: nothing times out here)."""
        return protocol.answer(request, self.implementation, self.model, lazy_probes=self.lazy_probes)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

