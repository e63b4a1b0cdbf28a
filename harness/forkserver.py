"""The process that starts worker processes: imported torch once, forks one worker per request.

multiprocessing refuses to start a child from a daemon process, and a ``dask worker``
started the default way (under its nanny) is one. This server is started with
`subprocess` instead, which any process may use, and forks the workers itself, so a
worker still starts in milliseconds with torch (and whatever the implementations
``preload``) already imported. One server per harness process, started on first use.

The parent talks to the server over a Unix socket: to start a worker it sends two
sockets' descriptors (``socket.send_fds``), the worker's request channel and a status
channel. The server forks; the child calls the parent's ``serve`` function (named
"module:function" when the server starts; `harness.worker_process.serve`, which reads
what to load from the channel) on the first, and the server writes the child's pid and, once it has
reaped it, its exit code to the second. When the parent goes away the server kills
its workers and exits.
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import runpy
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import traceback
import types
from multiprocessing.connection import Connection

_STATUS = struct.Struct("!q")  # a pid, then an exit code (negative: killed by that signal)
_LENGTH = struct.Struct("!I")


def available() -> bool:
    """fork and descriptor passing: POSIX only (elsewhere isolation uses multiprocessing's spawn)."""
    return hasattr(os, "fork") and hasattr(socket, "send_fds") and hasattr(socket, "AF_UNIX")


class ForkedProcess:
    """A worker forked by the server: the parts of multiprocessing.Process that
    `harness.isolation.Worker` uses (``is_alive``, ``kill``, ``join``, ``exitcode``)."""

    def __init__(self, pid: int, status: socket.socket):
        self.pid = pid
        self._status = status
        self._exitcode: int | None = None
        self._status_lost = False

    def _read_status(self, timeout: float | None) -> None:
        if self._exitcode is not None or self._status_lost:
            return
        ready, _, _ = select.select([self._status], [], [], timeout)
        if not ready:
            return
        data = _receive_exactly(self._status, _STATUS.size)
        if data is None:  # the server died before reaping: the code is unknown
            self._status_lost = True
        else:
            (self._exitcode,) = _STATUS.unpack(data)
        self._status.close()

    @property
    def exitcode(self) -> int | None:
        self._read_status(0)
        return self._exitcode

    def is_alive(self) -> bool:
        self._read_status(0)
        return self._exitcode is None and not self._status_lost

    def join(self, timeout: float | None = None) -> None:
        self._read_status(timeout)

    def kill(self) -> None:
        if self.is_alive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _receive_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


class Client:
    """The parent's end: starts the server, asks it for workers."""

    def __init__(self, preload: list[str] | None, serve: str, imports_first: tuple[str, ...] = ()):
        """``preload``: modules the server imports once, before any fork (None: told
        later, `configure`); ``serve``: "module:function", called in each worker with its
        request `Connection`. ``imports_first``: modules the server imports as soon as it
        starts, before it is told anything (torch: most of its start-up)."""
        parent_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._control = parent_end
        self._lock = threading.Lock()
        self._serve = serve
        self.configured = False
        self.process = subprocess.Popen(
            [sys.executable, "-m", "harness.forkserver", str(server_end.fileno()), *imports_first],
            pass_fds=[server_end.fileno()],
            stdin=subprocess.DEVNULL,
            close_fds=True,
        )
        server_end.close()
        atexit.register(self.close)
        if preload is not None:
            self.configure(preload)

    def configure(self, preload: list[str]) -> None:
        """Tell the server what to import before its first fork, and this process's
        ``sys.path`` and main script; once, before the first `start`."""
        setup = pickle.dumps({"preload": preload, "serve": self._serve, "sys_path": list(sys.path), "main_path": _main_path()})
        self._control.sendall(_LENGTH.pack(len(setup)) + setup)
        self.configured = True

    def start(self) -> tuple[ForkedProcess, Connection]:
        """A fresh worker: its process and the parent's end of its request channel.
        Raises OSError if the server is gone."""
        assert self.configured, "configure() the server before its first worker"
        channel, child_channel = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        status, child_status = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                socket.send_fds(self._control, [b"w"], [child_channel.fileno(), child_status.fileno()])
        except OSError:
            for end in (channel, status):
                end.close()
            raise
        finally:
            child_channel.close()
            child_status.close()
        ready, _, _ = select.select([status], [], [], 60)
        data = _receive_exactly(status, _STATUS.size) if ready else None
        if data is None:
            channel.close()
            status.close()
            raise OSError("the worker server did not fork a worker")
        (pid,) = _STATUS.unpack(data)
        connection = Connection(channel.detach())
        return ForkedProcess(pid, status), connection

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """Stop the server (it kills its workers first)."""
        try:
            self._control.close()
        finally:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_early: Client | None = None


def start_early(serve: str, imports_first: tuple[str, ...]) -> None:
    """Start a server now, before this process has imported what its workers need,
    told its preloads later by whoever takes it (`take_early`)."""
    global _early
    if available() and _early is None:
        _early = Client(None, serve, imports_first)


def take_early(serve: str) -> Client | None:
    """The server `start_early` started for ``serve``, if it is still running (once)."""
    global _early
    client, _early = _early, None
    if client is not None and (client._serve != serve or not client.alive()):
        client.close()
        return None
    return client


def _main_path() -> str | None:
    """The script this process runs as ``__main__``, for the server to import once
    under ``__mp_main__`` (as multiprocessing's forkserver does): None for ``-m``
    modules and interactive sessions, whose workers find their names themselves."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    path = getattr(main, "__file__", None)
    if spec is not None or not path or path.endswith("ipython"):
        return None
    return os.path.abspath(path)


# -- the server --------------------------------------------------------------------------------


def _preload(setup: dict) -> None:
    for entry in reversed(setup["sys_path"]):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from harness import locate

    # A script that starts a campaign when imported is refused here, as in a worker.
    locate._IN_WORKER = True
    script = None
    for name in setup["preload"]:
        try:
            if name == "__main__":
                if setup["main_path"] is not None:
                    namespace = runpy.run_path(setup["main_path"], run_name="__mp_main__")
                    script = types.ModuleType("__mp_main__")
                    script.__dict__.update(namespace)
                    sys.modules["__main__"] = sys.modules["__mp_main__"] = script
            else:
                __import__(name)
        except BaseException:  # noqa: BLE001 - the worker imports it again and reports the error
            pass
    if script is None:
        # Importing multiprocessing aliases __mp_main__ to this server's own __main__;
        # a worker must not take that for the parent's script (`locate.resolve`).
        sys.modules.pop("__mp_main__", None)


def _child(channel_fd: int, closing: list, target: str) -> None:
    """In the forked worker: serve requests, then exit without running the server's cleanup."""
    code = 1
    try:
        for item in closing:
            item.close() if hasattr(item, "close") else os.close(item)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        module, function = target.split(":")
        getattr(importlib.import_module(module), function)(Connection(channel_fd))
        code = 0
    except BaseException:  # noqa: BLE001 - printed like an uncaught exception, then the exit code says it
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(control_fd: int) -> None:
    control = socket.socket(fileno=control_fd)
    # Ctrl-C is for the harness process, which reports what finished and then stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    header = _receive_exactly(control, _LENGTH.size)
    if header is None:
        return
    setup = pickle.loads(_receive_exactly(control, _LENGTH.unpack(header)[0]) or b"")
    _preload(setup)

    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup byte is written
    statuses: dict[int, socket.socket] = {}
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in selector.select():
                if key.fileobj is control:
                    try:
                        message, fds, _, _ = socket.recv_fds(control, 1, 2)
                    except OSError:
                        message, fds = b"", []
                    if not message:
                        return  # the parent is gone
                    channel_fd, status_fd = fds
                    status = socket.socket(fileno=status_fd)
                    pid = os.fork()
                    if pid == 0:
                        _child(channel_fd, [control, status, *statuses.values(), wake_read, wake_write, selector], setup["serve"])
                    os.close(channel_fd)
                    statuses[pid] = status
                    try:
                        status.sendall(_STATUS.pack(pid))
                    except OSError:
                        pass
                else:
                    try:
                        os.read(wake_read, 4096)
                    except BlockingIOError:
                        pass
                    _reap(statuses)
    finally:
        for pid in statuses:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap(statuses, block=True)


def _reap(statuses: dict[int, socket.socket], block: bool = False) -> None:
    while statuses:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        channel = statuses.pop(pid, None)
        if channel is not None:
            try:
                channel.sendall(_STATUS.pack(os.waitstatus_to_exitcode(status)))
            except OSError:
                pass
            channel.close()


if __name__ == "__main__":
    for _module in sys.argv[2:]:
        __import__(_module)
    serve(int(sys.argv[1]))
