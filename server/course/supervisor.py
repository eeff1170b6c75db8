"""Run each course server as a supervised child process: start it, know it is ready, stop it.

A server is a `Recipe`: a command line, the line the server prints once it listens, and a probe
that asks its port for an answer. Starting one takes three steps:

1. **Spawn.** The command runs in a session of its own, so the server and every process it
   forks (nginx's workers, gunicorn's) form one process group, signalled as a whole. The group
   is registered with the reaper watchdog at once, before anything else can go wrong. Its
   output goes to a log file of its own (`server.course.logs`), never into a notebook cell.
2. **Listening.** The launcher reads that log until the server says it listens: uvicorn's
   "Uvicorn running on http://127.0.0.1:PORT", nginx's "start worker processes", redis's
   "Ready to accept connections". A server prints its line only after it has bound its port,
   so the port is its own, not whatever other process happens to listen there. A server that
   can bind port 0 (uvicorn, gunicorn) gets a port from the OS that nobody else can hold, and
   its line says which. One that cannot (nginx, redis) is given a free port; if another
   process takes it first, the server exits, and the launcher tries another port.
3. **Answering.** Then the launcher asks the port (an HTTP request, a redis PING, a TCP
   connection) until it answers: gunicorn, for one, listens before its worker has loaded the
   app. Polled, never a sleep and a hope.

A server that exits first fails at once, with the end of its log; one that is not ready in
time is stopped and reported. Stopping is SIGTERM to the group, then SIGKILL after a timeout:
uvicorn waits for open streams to end before it exits, and an SSE stream never ends by itself.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from server.course.errors import PortInUseError, ReadinessTimeoutError, ServerCrashedError
from server.course.logs import create_log, reopen_log
from server.course.ports import LOOPBACK, check_port_free, free_port
from server.course.reaper import Watchdog
from server.course.urls import browser_url

STOP_TIMEOUT = 5.0

Probe = Callable[[str, int], bool]  # (host, port) -> does it answer yet?


@dataclass(frozen=True)
class Recipe:
    """How to run one server, and how to tell that it is ready."""

    name: str
    # "{port}" becomes the port (0: the OS picks), "{workdir}" the server's private folder.
    command: Sequence[str]
    # The server's own line saying it listens. If the pattern has a group, it is the port the
    # server bound, and the server can be started on port 0.
    listening: re.Pattern[str]
    answers: Probe
    host: str = LOOPBACK
    scheme: str = "http"
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 20.0


@dataclass(eq=False)
class Server:
    """A running server: where it listens, where it logs, how to stop, kill or restart it."""

    recipe: Recipe = field(repr=False)
    process: subprocess.Popen[bytes] = field(repr=False)
    port: int
    log_path: Path
    workdir: Path | None = None
    _exit_code: int | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def host(self) -> str:
        return self.recipe.host

    @property
    def pid(self) -> int:
        """The process id of the server, and the id of its process group."""
        return self.process.pid

    @property
    def url(self) -> str:
        """The URL for code running in the kernel (httpx2, the openai client, redis-py)."""
        return f"{self.recipe.scheme}://{self.host}:{self.port}"

    def browser_url(self, path: str = "/") -> str:
        """The URL for the learner's browser (JupyterHub-aware, see `server.course.urls`)."""
        return browser_url(self.port, path)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last `lines` lines of this server's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM the server's process group, then SIGKILL it after `timeout` seconds.

        Returns the exit code. Escalation matters: uvicorn waits for open streams to close
        before it exits, and an endless SSE stream never closes by itself.
        """
        if self._exit_code is not None:
            return self._exit_code
        _signal_group(self.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        return self._end()

    def kill(self) -> int:
        """SIGKILL the whole process group at once, as a crash would, and wait until it is gone.

        Returns the exit code (-9). Nothing graceful happens: open streams are cut in the
        middle of an event, and no shutdown code runs. Lesson 09 kills a worker this way and
        counts the events its clients lose; `restart()` brings it back.
        """
        return self._exit_code if self._exit_code is not None else self._end()

    def restart(self) -> None:
        """Run the same command again on the same port, its output added to the same log.

        A server that still runs is stopped first. Readiness is awaited as at the first start.
        """
        self.stop()
        check_port_free(self.host, self.port)
        with reopen_log(self.log_path) as log:
            self.process, output_from = _spawn(self.recipe, self.port, log, self.workdir)
        self._exit_code = None
        _registry.add(self)
        self._wait_ready(output_from)

    def _end(self) -> int:
        """SIGKILL what is left of the group (the leader, or workers that outlived it)."""
        _signal_group(self.pid, signal.SIGKILL)
        self._exit_code = self.process.wait()
        _registry.forget(self)
        return self._exit_code

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_ready(self, output_from: int) -> None:
        """Wait for the server's listening line (in its log from `output_from`), then for an
        answer on its port; fail fast, with its log, if it exits first."""
        recipe = self.recipe
        deadline = time.monotonic() + recipe.timeout
        listening = False
        delay = 0.01
        while True:
            if not listening and (port := self._announced_port(output_from)) is not None:
                listening, self.port = True, port
            if listening and recipe.answers(self.host, self.port):
                return
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()
                if self.port and not listening:
                    check_port_free(self.host, self.port)  # lost it to another process?
                raise ServerCrashedError(
                    f"{self.name} exited with code {code} while starting. "
                    f"The end of its log ({self.log_path}):\n{self.log_tail(15)}"
                )
            if time.monotonic() > deadline:
                self.stop()
                what = (
                    f"listens on port {self.port} but did not answer"
                    if listening
                    else "did not say that it was listening"
                )
                raise ReadinessTimeoutError(
                    f"{self.name} {what} within {recipe.timeout:g} s. "
                    f"The end of its log ({self.log_path}):\n{self.log_tail(15)}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _announced_port(self, output_from: int) -> int | None:
        """The port from the server's listening line, once it has printed it; else None."""
        with open(self.log_path, "rb") as log:
            log.seek(output_from)
            found = self.recipe.listening.search(log.read().decode(errors="replace"))
        if found is None:
            return None
        return int(found.group(1)) if self.recipe.listening.groups else self.port


def start(recipe: Recipe, port: int | None, *, workdir: Path | None = None) -> Server:
    """Start `recipe` on `port`, or with None on a port nobody else holds (see above)."""
    if port is None and recipe.listening.groups:
        return start_on(recipe, 0, workdir)  # the OS picks; the listening line says which
    return on_a_free_port(port, lambda chosen: start_on(recipe, chosen, workdir), recipe.host)


def on_a_free_port(
    port: int | None, attempt: Callable[[int], Server], host: str = LOOPBACK
) -> Server:
    """`attempt(port)` once `port` is checked free. With None, on a free port, and on another
    one if the server loses the port to another process before it can bind it."""
    if port is not None:
        check_port_free(host, port)  # a clear error now, rather than a crash later
        return attempt(port)
    for tries in range(3):
        try:
            return attempt(free_port(host))
        except PortInUseError:
            if tries == 2:
                raise
    raise AssertionError("unreachable")


def start_on(recipe: Recipe, port: int, workdir: Path | None = None) -> Server:
    """Start `recipe` on exactly `port` (0: the OS picks), and wait until it is ready."""
    log_path, log = create_log(recipe.name)
    with log:
        process, output_from = _spawn(recipe, port, log, workdir)
    server = Server(recipe, process, port, log_path, workdir)
    _registry.add(server)
    server._wait_ready(output_from)
    return server


def _spawn(
    recipe: Recipe, port: int, log: BinaryIO, workdir: Path | None
) -> tuple[subprocess.Popen[bytes], int]:
    """Run the command with its output to `log`: the process, and where its output starts."""
    command = [
        part.replace("{port}", str(port)).replace("{workdir}", str(workdir))
        for part in recipe.command
    ]
    log.write(f"$ {' '.join(command)}\n".encode())
    log.flush()
    output_from = log.tell()  # now: the child shares this file offset and moves it
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **recipe.env},
        start_new_session=True,  # its own process group: stop() takes its children too
    )
    return process, output_from


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


# --- every server this process started -----------------------------------------------------


def stop_all() -> None:
    """Stop every server this process started (runs at exit too)."""
    for server in _registry.servers():
        server.stop()


def running_servers() -> list[Server]:
    """The servers this process started that are still registered (not stopped)."""
    return _registry.servers()


class _Registry:
    """The servers this process started, mirrored to the reaper watchdog."""

    def __init__(self) -> None:
        self._servers: dict[int, Server] = {}
        self._lock = threading.Lock()
        self._watchdog = Watchdog()
        self._exit_handler = False

    def add(self, server: Server) -> None:
        with self._lock:
            if not self._exit_handler:
                atexit.register(self.shutdown)
                self._exit_handler = True
            self._servers[server.pid] = server
            self._watchdog.add(server.pid)

    def forget(self, server: Server) -> None:
        with self._lock:
            if self._servers.pop(server.pid, None) is not None:
                self._watchdog.remove(server.pid)

    def servers(self) -> list[Server]:
        with self._lock:
            return list(self._servers.values())

    def shutdown(self) -> None:
        """At exit: stop our servers, then let the reaper go (end-of-file on its stdin)."""
        stop_all()
        with self._lock:
            self._watchdog.close(STOP_TIMEOUT)


_registry = _Registry()
