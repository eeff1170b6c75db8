"""Start and stop the course's servers (uvicorn apps, nginx, redis-server) as subprocesses.

Every notebook and test starts servers the same way, through this module:

    app = start_app("server.apps.fastapi_streams:app")      # a free port, waits until it answers
    print(app.url)                                # http://127.0.0.1:PORT
    app.stop()                                    # or stop_all(), or `with start_app(...)`

Why subprocesses and not threads inside the kernel: a server thread writes its logs into
whichever cell happens to be running, shares the kernel's event loop and GIL with the code
measuring it, and cannot be killed. A subprocess has its own log file and its own fate.

Guarantees, each tested in tests/test_launcher.py:

- Readiness is polled (an HTTP request, or PING for redis), never guessed with a sleep.
- A port is checked before a server starts: a busy one is a clear error, not a hang.
- Logs go to a file per server (`server.log_path`, `server.log_tail()`), never to the cell.
- Clear errors: `PortInUseError`, `BinaryNotFoundError` (with the install line for this
  platform), `ServerCrashedError` (with the end of its log), `ReadinessTimeoutError`.
- Nothing outlives the kernel: `stop_all()` runs at exit, and a watchdog process
  (`server/course/reaper.py`) stops every server even when the kernel is killed outright.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import http.client
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from server.course.errors import (
    BinaryNotFoundError,
    LauncherError,
    PortInUseError,
    ReadinessTimeoutError,
    ServerCrashedError,
)
from server.course.logs import create_log, log_dir
from server.course.urls import browser_url

__all__ = [
    "SSE_PROXY",
    "BinaryNotFoundError",
    "LauncherError",
    "PortInUseError",
    "ReadinessTimeoutError",
    "Server",
    "ServerCrashedError",
    "find_binary",
    "free_port",
    "install_hint",
    "log_dir",
    "running_servers",
    "start_app",
    "start_nginx",
    "start_python",
    "start_redis",
    "stop_all",
]

LOOPBACK = "127.0.0.1"
STOP_TIMEOUT = 5.0

# The directives every SSE location behind nginx needs (lesson 08 measures each one):
# HTTP/1.1 keep-alive to the upstream, no response buffering, and a read timeout longer than
# the gap between heartbeats.
SSE_PROXY = """\
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_buffering off;
proxy_cache off;
proxy_read_timeout 1h;"""


@dataclass
class Server:
    """A running server: where it listens, where it logs, and how to stop it."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    host: str = LOOPBACK
    workdir: Path | None = None
    scheme: str = "http"
    _exit_code: int | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        """The URL for code running in the kernel (httpx, the openai client, redis-py)."""
        return f"{self.scheme}://{self.host}:{self.port}"

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

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM the server's process group, then SIGKILL it after `timeout` seconds.

        Returns the exit code. Escalation matters: uvicorn waits for open streams to close
        before it exits, and an endless SSE stream never closes by itself.
        """
        if self._exit_code is None:
            _terminate_group(self.process, timeout)
            self._exit_code = self.process.returncode
            _registry.forget(self)
        return self._exit_code

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_app(
    app: str,
    *,
    port: int | None = None,
    host: str = LOOPBACK,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    ready_path: str = "/",
    timeout: float = 20.0,
    name: str | None = None,
) -> Server:
    """Run an ASGI app under uvicorn, given as an import string (`"server.apps.http_demo:app"`).

    With `port=None` the OS picks a free port. Another process could take it in the instant
    before uvicorn binds it; that shows up as a crash with "address already in use", and the
    launcher simply tries another port.

    (Why not bind the socket here and pass it with `uvicorn --fd`? uvicorn wraps an inherited
    socket as AF_UNIX, so asyncio never sets TCP_NODELAY on its connections, and every
    keep-alive response then waits ~40 ms for a delayed ACK. Lesson 01 would measure that.)
    """
    for attempt in range(3):
        chosen = _check_port_free(host, port)
        command = [
            sys.executable, "-m", "uvicorn", app,
            "--host", host, "--port", str(chosen),
            "--timeout-graceful-shutdown", "1",
            *args,
        ]  # fmt: skip
        server = _spawn(name or app, command, chosen, host, env=env)
        try:
            _wait_ready(server, timeout, functools.partial(_http_answers, host, chosen, ready_path))
        except PortInUseError:
            if port is not None or attempt == 2:
                raise
            continue
        return server
    raise AssertionError("unreachable")


def start_nginx(
    upstreams: Sequence[str | Server],
    *,
    port: int | None = None,
    location: str = SSE_PROXY,
    upstream: str = "",
    http: str = "",
    timeout: float = 10.0,
) -> Server:
    """Run nginx as a reverse proxy in front of `upstreams` (Servers or "host:port" strings).

    The config is rendered from `server/nginx.conf.template` into a private temporary prefix,
    so it needs no root and touches nothing in /etc/nginx. `location` holds the directives of
    the proxied `location /` (by default the ones SSE needs, `SSE_PROXY`), `upstream` extra
    directives of the upstream block (`ip_hash;`), `http` extra directives of the http block.
    The rendered config is at `server.workdir / "nginx.conf"`.
    """
    binary = find_binary("nginx")
    port = _check_port_free(LOOPBACK, port)
    workdir = Path(tempfile.mkdtemp(prefix="nginx-", dir=log_dir()))
    servers = "\n".join(
        f"server {u.host}:{u.port};" if isinstance(u, Server) else f"server {u};" for u in upstreams
    )
    config = render_nginx_config(
        prefix=str(workdir),
        port=str(port),
        upstream_servers=servers,
        upstream_extra=upstream,
        location=location,
        http_extra=http,
        user="user root;" if os.geteuid() == 0 else "",
    )
    (workdir / "nginx.conf").write_text(config)
    base = [binary, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-e", "error.log"]
    check = subprocess.run([*base, "-t", "-q"], capture_output=True, text=True)
    if check.returncode != 0:
        raise LauncherError(
            f"nginx rejected the config {workdir / 'nginx.conf'}:\n{check.stderr.strip()}"
        )
    server = _spawn("nginx", base, port, LOOPBACK, workdir=workdir)
    _wait_ready(server, timeout, lambda: _http_answers(LOOPBACK, port, "/"))
    return server


def start_redis(*, port: int | None = None, timeout: float = 10.0) -> Server:
    """Run a throwaway redis-server on loopback: no persistence, data lives in memory only."""
    binary = find_binary("redis-server")
    port = _check_port_free(LOOPBACK, port)
    workdir = Path(tempfile.mkdtemp(prefix="redis-", dir=log_dir()))
    command = [
        binary, "--bind", LOOPBACK, "--port", str(port), "--dir", str(workdir),
        "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "",
    ]  # fmt: skip
    server = _spawn("redis-server", command, port, LOOPBACK, workdir=workdir)
    server.scheme = "redis"
    _wait_ready(server, timeout, lambda: _redis_answers(port))
    return server


def start_python(
    module: str,
    args: Sequence[str] = (),
    *,
    port: int | None = None,
    name: str | None = None,
    timeout: float = 10.0,
) -> Server:
    """Run `python -m module *args`, a TCP server of the course's own (the wiretap, say).

    In `args`, `{port}` becomes the chosen port and `{workdir}` a private temporary folder.
    Ready when a TCP connection to the port succeeds.
    """
    port = _check_port_free(LOOPBACK, port)
    workdir = Path(tempfile.mkdtemp(prefix=f"{module.rsplit('.', 1)[-1]}-", dir=log_dir()))
    filled = [a.format(port=port, workdir=workdir) for a in args]
    command = [sys.executable, "-m", module, *filled]
    server = _spawn(name or module, command, port, LOOPBACK, workdir=workdir)
    _wait_ready(server, timeout, functools.partial(_tcp_answers, port))
    return server


def stop_all() -> None:
    """Stop every server this process started (runs at exit too)."""
    for server in _registry.servers():
        server.stop()


def running_servers() -> list[Server]:
    """The servers this process started that are still registered (not stopped)."""
    return _registry.servers()


# --- binaries ---------------------------------------------------------------------------

_EXTRA_BIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/bin", "/usr/local/bin")
_ENV_OVERRIDE = {"nginx": "NGINX_BIN", "redis-server": "REDIS_SERVER_BIN"}
_APT_PACKAGE = {"nginx": "nginx", "redis-server": "redis-server"}
_BREW_PACKAGE = {"nginx": "nginx", "redis-server": "redis"}


def find_binary(name: str) -> str:
    """The path of `name`: `$NGINX_BIN`/`$REDIS_SERVER_BIN`, PATH, then the usual sbin dirs."""
    override = os.environ.get(_ENV_OVERRIDE.get(name, ""), "")
    if override:
        if os.access(override, os.X_OK):
            return override
        raise BinaryNotFoundError(
            f"{_ENV_OVERRIDE[name]}={override} is not an executable file. "
            f"Unset it, or point it at the {name} binary."
        )
    search_path = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_BIN_DIRS])
    found = shutil.which(name, path=search_path)
    if found:
        return found
    raise BinaryNotFoundError(f"{name} was not found on PATH. {install_hint(name)}")


def install_hint(name: str) -> str:
    """How to install `name` on this machine, in one line."""
    if os.environ.get("CONDA_PREFIX"):
        how = "conda env update -f environment.yml (it includes conda-forge's nginx and redis)"
    elif platform.system() == "Darwin":
        how = f"brew install {_BREW_PACKAGE.get(name, name)}"
    elif shutil.which("apt-get"):
        how = f"sudo apt-get install -y {_APT_PACKAGE.get(name, name)}"
    else:
        how = "your package manager, or the conda environment in environment.yml"
    return f"Install it with: {how}. `make lab` does this for you where it can."


# --- nginx config -------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def render_nginx_config(**values: str) -> str:
    """Fill `server/nginx.conf.template`'s `{{name}}` placeholders (nginx uses `$` and `{}`)."""
    template = (Path(__file__).parent / "nginx.conf.template").read_text()

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"nginx.conf.template needs a value for {{{{{key}}}}}")
        return values[key]

    return _PLACEHOLDER.sub(fill, template)


# --- processes ----------------------------------------------------------------------------


def _bind(host: str, port: int | None) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers themselves do
    try:
        sock.bind((host, port or 0))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise _port_in_use(host, port or 0) from None
        raise
    return sock


def _check_port_free(host: str, port: int | None) -> int:
    """A port for a server that binds its own socket (nginx, redis): `port`, checked, or any."""
    if port is None:
        return free_port(host)
    _bind(host, port).close()
    return port


def _port_in_use(host: str, port: int) -> PortInUseError:
    return PortInUseError(
        f"Port {port} on {host} is already in use. Pass port=None to let the course pick a "
        f"free port, or find what holds it with `lsof -iTCP:{port} -sTCP:LISTEN` and stop it "
        "(a server from a kernel you restarted is stopped by its watchdog within seconds)."
    )


def _spawn(
    name: str,
    command: Sequence[str],
    port: int,
    host: str,
    *,
    env: Mapping[str, str] | None = None,
    workdir: Path | None = None,
) -> Server:
    log_path, log = create_log(name)
    with log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=True,  # its own process group: stop() takes its children too
        )
    server = Server(name, process, port, log_path, host=host, workdir=workdir)
    _registry.add(server)
    return server


def _wait_ready(server: Server, timeout: float, answers: Callable[[], bool]) -> None:
    """Poll until the server answers; fail fast with its log if it exits first."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        if server.process.poll() is not None:
            code = server.process.returncode
            server.stop()
            tail = server.log_tail(15)
            if "Address already in use" in tail or "address already in use" in tail:
                raise _port_in_use(server.host, server.port)
            raise ServerCrashedError(
                f"{server.name} exited with code {code} while starting. "
                f"The end of its log ({server.log_path}):\n{tail}"
            )
        if answers():
            return
        if time.monotonic() > deadline:
            server.stop()
            raise ReadinessTimeoutError(
                f"{server.name} did not answer on port {server.port} within {timeout:g} s. "
                f"The end of its log ({server.log_path}):\n{server.log_tail(15)}"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _http_answers(host: str, port: int, path: str) -> bool:
    """True once anything answers HTTP at host:port (a 404 or a 502 is an answer too)."""
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        connection.request("GET", path)
        connection.getresponse()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _tcp_answers(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2):
            return True
    except OSError:
        return False


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _terminate_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
            _kill_leftovers(process.pid)
            return
        except subprocess.TimeoutExpired:
            continue


def _kill_leftovers(pgid: int) -> None:
    """Children that outlived their leader (nginx workers, say) go down with the group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


class _Registry:
    """The servers this process started, mirrored to the reaper watchdog."""

    def __init__(self) -> None:
        self._servers: dict[int, Server] = {}
        self._lock = threading.Lock()
        self._reaper: subprocess.Popen[bytes] | None = None
        self._reaper_owner = 0

    def add(self, server: Server) -> None:
        with self._lock:
            self._servers[server.pid] = server
            self._tell_reaper(f"add {server.pid}")

    def forget(self, server: Server) -> None:
        with self._lock:
            if self._servers.pop(server.pid, None) is not None:
                self._tell_reaper(f"remove {server.pid}")

    def servers(self) -> list[Server]:
        with self._lock:
            return list(self._servers.values())

    def _tell_reaper(self, line: str) -> None:
        stale = self._reaper_owner != os.getpid()  # a forked child needs its own reaper
        if self._reaper is None or stale or self._reaper.poll() is not None:
            self._reaper = subprocess.Popen(
                [sys.executable, "-m", "server.course.reaper"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            if not self._reaper_owner:
                atexit.register(self.shutdown)
            self._reaper_owner = os.getpid()
            for pid in self._servers:
                self._reaper.stdin.write(f"add {pid}\n".encode())  # type: ignore[union-attr]
        self._reaper.stdin.write(f"{line}\n".encode())  # type: ignore[union-attr]
        self._reaper.stdin.flush()  # type: ignore[union-attr]

    def shutdown(self) -> None:
        """At exit: stop our servers, then let the reaper go (end-of-file on its stdin)."""
        stop_all()
        reaper, self._reaper = self._reaper, None
        if reaper is not None and self._reaper_owner == os.getpid():
            reaper.stdin.close()  # type: ignore[union-attr]
            with contextlib.suppress(subprocess.TimeoutExpired):
                reaper.wait(timeout=STOP_TIMEOUT)


_registry = _Registry()
