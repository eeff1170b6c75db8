"""Start and stop the course's servers (uvicorn, gunicorn, nginx, redis-server) as subprocesses.

Every notebook and test starts servers the same way, through this module:

    app = start_app("server.apps.fastapi_streams:app")      # a free port, waits until ready
    print(app.url)                                # http://127.0.0.1:PORT
    app.stop()                                    # or stop_all(), or `with start_app(...)`

Why subprocesses and not threads inside the kernel: a server thread writes its logs into
whichever cell happens to be running, shares the kernel's event loop and GIL with the code
measuring it, and cannot be killed. A subprocess has its own log file and its own fate.

Guarantees, each tested in tests/test_launcher.py:

- Readiness is ownership: the launcher waits for the server's own "listening" line, then for an
  answer on its port, never a sleep. Another process that answers on the port is not taken for
  the server. uvicorn binds port 0 itself, so the OS gives it a port nobody else holds (and
  asyncio sets TCP_NODELAY on its connections, which lesson 01 measures).
- A port that is already in use is a clear `PortInUseError`, not a hang.
- Logs go to a private file per server (`server.log_path`, `server.log_tail()`), never to a cell.
- Clear errors: `PortInUseError`, `BinaryNotFoundError` (with the install line for this
  platform), `ServerCrashedError` (with the end of its log), `ReadinessTimeoutError`.
- Nothing outlives the kernel: `stop_all()` runs at exit, and a watchdog process
  (`server/course/reaper.py`) stops every server even when the kernel is killed outright.

The machinery lives in small modules beside this one, and everything a lesson needs is
importable from here: `supervisor` (processes, readiness, stopping), `ports` (free ports and
readiness probes), `nginx` (the config template), `logs` (the private log folder), `binaries`
(finding nginx and redis-server), `reaper` (the watchdog), `errors`.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from server.course.binaries import find_binary, install_hint
from server.course.errors import (
    BinaryNotFoundError,
    LauncherError,
    PortInUseError,
    ReadinessTimeoutError,
    ServerCrashedError,
)
from server.course.logs import log_dir, new_workdir
from server.course.nginx import SSE_PROXY, start_nginx
from server.course.ports import LOOPBACK, free_port, http_answers, redis_answers, tcp_answers
from server.course.supervisor import Recipe, Server, running_servers, start, stop_all

__all__ = [
    "GUNICORN_LISTENING",
    "SSE_PROXY",
    "UVICORN_LISTENING",
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
    "start_command",
    "start_gunicorn",
    "start_nginx",
    "start_python",
    "start_redis",
    "stop_all",
]

# How long a server may take to say it listens. A server that crashes is reported the moment
# it exits, so this only bounds a hung start; it is generous because importing an app (the
# openai client, Django, FastAPI) takes seconds of CPU on a loaded 2-core machine (at a load
# average of 10, the relay took over 20 s).
READY_TIMEOUT = 60.0

# The line each server prints once it listens; the group is the port it bound.
UVICORN_LISTENING = r"Uvicorn running on https?://\S+:(\d+)"
GUNICORN_LISTENING = r"Listening at: https?://\S+:(\d+)"


def start_app(
    app: str,
    *,
    port: int | None = None,
    host: str = LOOPBACK,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    ready_path: str = "/",
    timeout: float = READY_TIMEOUT,
    name: str | None = None,
) -> Server:
    """Run an ASGI app under uvicorn, given as an import string (`"server.apps.http_demo:app"`).

    With `port=None`, uvicorn binds port 0 and the launcher reads the port the OS gave it from
    uvicorn's "Uvicorn running on" line. (Why not bind a socket here and pass it with
    `uvicorn --fd`? uvicorn wraps an inherited socket as AF_UNIX, so asyncio never sets
    TCP_NODELAY on its connections, and every keep-alive response then waits ~40 ms for a
    delayed ACK. Lesson 01 would measure that.)
    """
    command = (
        sys.executable, "-m", "uvicorn", app,
        "--host", host, "--port", "{port}",
        "--timeout-graceful-shutdown", "1",
        *args,
    )  # fmt: skip
    return start_command(
        command,
        listening=UVICORN_LISTENING,
        port=port,
        host=host,
        env=env,
        ready_path=ready_path,
        timeout=timeout,
        name=name or app,
    )


def start_gunicorn(
    app: str,
    *,
    threads: int = 4,
    workers: int = 1,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    ready_path: str = "/",
    timeout: float = READY_TIMEOUT,
    name: str | None = None,
) -> Server:
    """Run a WSGI app under gunicorn (`"server.apps.django_streams.wsgi:application"`).

    `workers` processes of `threads` threads each: at most workers x threads requests at a
    time, open streams included (lesson 07 measures that wall). gunicorn binds port 0 and
    prints the port it got. `--no-control-socket`: gunicorn 27 otherwise opens a control
    socket at one path per user (~/.gunicorn/gunicorn.ctl), which the next gunicorn takes
    over. `--graceful-timeout 1`: a stop waits 1 s for open streams, not gunicorn's 30.
    """
    command = (
        sys.executable, "-m", "gunicorn", app,
        "--bind", f"{LOOPBACK}:{{port}}",
        "--workers", str(workers), "--threads", str(threads),
        "--no-control-socket", "--graceful-timeout", "1",
        *args,
    )  # fmt: skip
    return start_command(
        command,
        listening=GUNICORN_LISTENING,
        port=port,
        env=env,
        ready_path=ready_path,
        timeout=timeout,
        name=name or f"gunicorn-{app.split(':')[0]}",
    )


def start_command(
    command: Sequence[str],
    *,
    listening: str,
    port: int | None = None,
    host: str = LOOPBACK,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/",
    timeout: float = READY_TIMEOUT,
    name: str | None = None,
) -> Server:
    """Run any server command that binds a TCP port and answers HTTP.

    In `command`, `{port}` becomes the port and `{workdir}` a private folder
    (`server.workdir`). `listening` is a regular expression for the line the server prints
    once it listens. If its group captures the port, `port=None` starts the server on port 0
    and the OS picks; otherwise the launcher picks a free port. Then `ready_path` must answer
    HTTP (any status). Django under gunicorn, for example (lesson 07; without
    `--no-control-socket`, gunicorn 27 opens a control socket at one path per user,
    ~/.gunicorn/gunicorn.ctl, which the next gunicorn takes over):

        start_command(
            [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:{port}",
             "--workers", "1", "--threads", "4", "--no-control-socket",
             "mysite.wsgi:application"],
            listening=GUNICORN_LISTENING,
        )
    """
    command = tuple(command)
    label = name or (command[2] if command[1:2] == ("-m",) else Path(command[0]).name)
    recipe = Recipe(
        label,
        command,
        re.compile(listening),
        functools.partial(http_answers, path=ready_path),
        host=host,
        env=env or {},
        timeout=timeout,
    )
    workdir = new_workdir(label) if any("{workdir}" in part for part in command) else None
    return start(recipe, port, workdir=workdir)


def start_redis(*, port: int | None = None, timeout: float = READY_TIMEOUT) -> Server:
    """Run a throwaway redis-server on loopback: no persistence, data lives in memory only.

    A dump written on purpose (`cluster.shutdown_redis`, maintenance) is loaded by the next
    start only: once Redis answers it has read the file, which is then removed. A later crash
    (`kill`, `restart`) starts empty, as a crash without persistence does, instead of reviving
    that old data (finished replies adopted and generated again).
    """
    workdir = new_workdir("redis")
    dump = workdir / "dump.rdb"

    def ready_and_dump_spent(host: str, port: int) -> bool:
        if not redis_answers(host, port):  # PING is refused while a dump is being loaded
            return False
        dump.unlink(missing_ok=True)
        return True

    binary = find_binary("redis-server")
    command = (
        binary, "--bind", LOOPBACK, "--port", "{port}", "--dir", "{workdir}",
        "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "",
    )  # fmt: skip
    recipe = Recipe(
        "redis-server",
        command,
        re.compile(r"Ready to accept connections"),
        ready_and_dump_spent,
        scheme="redis",
        timeout=timeout,
    )
    return start(recipe, port, workdir=workdir)


def start_python(
    module: str,
    args: Sequence[str] = (),
    *,
    port: int | None = None,
    name: str | None = None,
    timeout: float = READY_TIMEOUT,
    listening: str = r"\bon 127\.0\.0\.1:\d+",
) -> Server:
    """Run `python -m module *args`, a TCP server of the course's own (the wiretap, say).

    In `args`, `{port}` becomes the chosen port and `{workdir}` a private folder. Ready once
    the module prints its `listening` line (by default "... on 127.0.0.1:PORT") and a TCP
    connection to the port succeeds.
    """
    recipe = Recipe(
        name or module,
        (sys.executable, "-m", module, *args),
        re.compile(listening),
        tcp_answers,
        timeout=timeout,
    )
    return start(recipe, port, workdir=new_workdir(module.rsplit(".", 1)[-1]))
