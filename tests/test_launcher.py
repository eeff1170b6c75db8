"""The launcher against real processes: readiness, logs, every error case, no orphans."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest
from conftest import wait_until

from server.course import binaries, launcher, reaper, supervisor
from server.course.launcher import (
    BinaryNotFoundError,
    LauncherError,
    PortInUseError,
    ReadinessTimeoutError,
    ServerCrashedError,
    start_app,
    start_command,
    start_nginx,
    start_redis,
)
from server.course.urls import browser_url

APPS = str(Path(__file__).parent / "apps")


def test_app_starts_answers_logs_and_stops() -> None:
    with start_app("endless:app", args=["--app-dir", APPS]) as app:
        assert app.running
        assert app.url == f"http://127.0.0.1:{app.port}"
        with httpx2.stream("GET", app.url) as response:
            assert response.headers["content-type"] == "text/event-stream"
            assert next(response.iter_bytes()).startswith(b": ping")
        assert "Uvicorn running" in app.log_tail()
    assert not app.running
    assert app not in launcher.running_servers()


def test_stop_escalates_when_a_stream_keeps_uvicorn_waiting() -> None:
    # Without the launcher's short graceful-shutdown limit (the last flag wins), uvicorn waits
    # for the endless stream for an hour: only SIGKILL ends it.
    args = ["--app-dir", APPS, "--timeout-graceful-shutdown", "3600"]
    app = start_app("endless:app", args=args)
    with httpx2.stream("GET", app.url) as response:
        next(response.iter_bytes())
        started = time.monotonic()
        code = app.stop(timeout=1)
        elapsed = time.monotonic() - started
    assert code == -signal.SIGKILL, f"uvicorn exited by itself with {code}: no escalation"
    assert elapsed < 30, f"stop() took {elapsed:.1f} s to escalate after its 1 s timeout"
    assert not app.running


def test_busy_port_is_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUseError, match=rf"Port {port} .* in use.*port=None"):
            start_app("endless:app", port=port, args=["--app-dir", APPS])
        with pytest.raises(PortInUseError, match=str(port)):
            start_redis(port=port)


@contextlib.contextmanager
def _impostor() -> Iterator[int]:
    """Another process's server answering HTTP on a loopback port (here, a thread of ours)."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "8")
            self.end_headers()
            self.wfile.write(b"impostor")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _listeners(port: int) -> set[int]:
    """The pids holding a socket that listens on TCP `port` (Linux: /proc/net/tcp and fds)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    holders = set()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        with contextlib.suppress(OSError):
            if os.readlink(fd) in inodes:
                holders.add(int(fd.parts[2]))
    return holders


def _owns_its_port(server: launcher.Server) -> bool:
    """True if the socket listening on the server's port belongs to its own processes."""
    holders = _listeners(server.port)
    return bool(holders) and holders <= set(_group_members(server.pid))


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc to find listeners")
def test_an_impostor_on_the_chosen_port_is_not_taken_for_the_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Readiness is ownership: an answer on the port must come from the process started."""
    with _impostor() as taken:
        monkeypatch.setattr(supervisor, "free_port", lambda host="127.0.0.1": taken)
        with start_app("peer:app", args=["--app-dir", APPS]) as app:
            assert app.port != taken
            assert _owns_its_port(app)
            assert httpx2.get(app.url).text.isdigit()


@pytest.mark.nginx
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc to find listeners")
def test_an_impostor_on_the_chosen_port_is_not_taken_for_nginx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """nginx cannot bind port 0: the launcher picks a port, and retries if it lost the race."""
    real_free_port = supervisor.free_port
    with _impostor() as taken, start_app("peer:app", args=["--app-dir", APPS]) as app:
        offers = iter([taken])
        monkeypatch.setattr(
            supervisor, "free_port", lambda host="127.0.0.1": next(offers, 0) or real_free_port()
        )
        with start_nginx([app]) as proxy:
            assert proxy.port != taken
            assert _owns_its_port(proxy)
            assert httpx2.get(proxy.url).text.isdigit()


def test_kill_cuts_streams_at_once_and_restart_brings_the_server_back() -> None:
    """Lesson 09's crash: SIGKILL, no graceful shutdown, then the same server on the same port."""
    with start_app("endless:app", args=["--app-dir", APPS]) as app:
        port = app.port
        with httpx2.stream("GET", app.url) as response:
            chunks = response.iter_bytes()
            next(chunks)
            assert app.kill() == -signal.SIGKILL  # stop() would exit 0, gracefully
            with pytest.raises(httpx2.RemoteProtocolError):
                for _ in chunks:
                    pass
        assert app not in launcher.running_servers()
        app.restart()
        assert (app.port, app.running) == (port, True)
        assert app in launcher.running_servers()
        assert _owns_its_port(app)
        with httpx2.stream("GET", app.url) as response:
            assert next(response.iter_bytes()).startswith(b": ping")
        assert app.log_path.read_text().count("Uvicorn running on") == 2  # one log, two lives
    assert not app.running


@pytest.mark.nginx
def test_kill_takes_the_whole_process_group() -> None:
    with start_app("peer:app", args=["--app-dir", APPS]) as app, start_nginx([app]) as proxy:
        members = _group_members(proxy.pid)
        assert len(members) >= 2, "nginx should have a master and a worker"
        proxy.kill()
        # SIGKILL is immediate; reaping may lag on a busy box
        wait_until(lambda: not any(map(_alive, members)), f"every one of {members} gone")
        proxy.restart()
        assert httpx2.get(proxy.url).text.isdigit()


def test_start_command_runs_any_http_server_on_the_port_it_reports() -> None:
    command = [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
    command += ["--directory", "{workdir}"]
    with start_command(command, listening=r"Serving HTTP on \S+ port (\d+)") as server:
        assert server.workdir is not None
        (server.workdir / "hello.txt").write_text("hello")
        assert httpx2.get(server.url + "/hello.txt").text == "hello"
        assert _owns_its_port(server)
        assert server.name == "http.server"


def test_start_command_runs_gunicorn_as_lesson_07_will() -> None:
    pytest.importorskip("gunicorn", reason="gunicorn is not installed")
    command = [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:{port}"]
    command += ["--workers", "1", "--threads", "4", "--no-control-socket"]
    command += ["--chdir", APPS, "hello_wsgi:application"]
    with start_command(command, listening=launcher.GUNICORN_LISTENING) as server:
        assert httpx2.get(server.url).text == "hello from WSGI"
        assert _owns_its_port(server)


def test_app_that_crashes_at_start_shows_its_log() -> None:
    with pytest.raises(ServerCrashedError, match=r"(?s)exited with code .*no_such_module"):
        start_app("no_such_module:app")


def test_app_that_never_gets_ready_times_out() -> None:
    with pytest.raises(ReadinessTimeoutError, match=r"did not say .* listening within 1 s"):
        start_app("slow_start:app", args=["--app-dir", APPS], timeout=1)
    assert launcher.running_servers() == []


def test_missing_binary_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(binaries, "_EXTRA_BIN_DIRS", ())
    monkeypatch.delenv("CONDA_PREFIX", raising=False)
    with pytest.raises(BinaryNotFoundError, match=r"nginx was not found.*Install it with"):
        start_nginx(["127.0.0.1:1"])


def test_binary_override_must_be_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_SERVER_BIN", "/nonexistent/redis-server")
    with pytest.raises(BinaryNotFoundError, match="REDIS_SERVER_BIN=/nonexistent"):
        start_redis()


@pytest.mark.nginx
def test_nginx_proxies_to_an_app_and_rejects_a_bad_config() -> None:
    with start_app("endless:app", args=["--app-dir", APPS]) as app:
        with start_nginx([app]) as proxy, httpx2.stream("GET", proxy.url) as response:
            assert response.status_code == 200
            assert next(response.iter_bytes()).startswith(b": ping")
        assert "proxy_buffering off;" in (proxy.workdir / "nginx.conf").read_text()
        with pytest.raises(LauncherError, match="unknown directive"):
            start_nginx([app], location="no_such_directive on;")


@pytest.mark.nginx
def test_nginx_reuses_its_upstream_connections() -> None:
    """Sequential requests through nginx reach the app over one kept-alive connection."""
    with (
        start_app("peer:app", args=["--app-dir", APPS]) as app,
        start_nginx([app]) as proxy,
        httpx2.Client() as client,
    ):
        ports = [client.get(proxy.url).text for _ in range(10)]
    # One connection is expected; a second one is allowed in case the loaded machine stalls
    # longer than uvicorn's 5 s keep-alive timeout between two requests.
    assert len(set(ports)) <= 2, f"10 requests used {len(set(ports))} upstream connections"


@pytest.mark.redis
def test_redis_answers_ping() -> None:
    with start_redis() as cache, socket.create_connection(("127.0.0.1", cache.port)) as sock:
        assert cache.url.startswith("redis://127.0.0.1:")
        sock.sendall(b"PING\r\n")
        assert sock.recv(16) == b"+PONG\r\n"


NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="acts as a second user: needs root")


@pytest.fixture
def shared_tmp(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A fresh world-writable, sticky temporary folder (like /tmp) as the default log place."""
    tmp_path_factory.getbasetemp()  # before tempfile's default changes: pytest's stays put
    root = Path(tempfile.mkdtemp())
    root.chmod(0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.delenv("COURSE_LOG_DIR", raising=False)
    yield root
    shutil.rmtree(root)


def _as_user(uid: int, action: Callable[[], object]) -> str:
    """Run `action` in a forked child that has become user `uid`: "ok <result>" or the error."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            try:
                answer = f"ok {action()}"
            except Exception as error:
                answer = f"error {error!r}"
            os.write(write, answer.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(child, 0)
    return answer


def test_logs_go_to_a_private_folder_of_this_user(shared_tmp: Path) -> None:
    path = launcher.log_dir()
    for folder in (path, path.parent):
        info = folder.lstat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (os.geteuid(), 0o700), folder


@needs_root
def test_a_second_user_on_the_host_gets_a_log_folder_too(shared_tmp: Path) -> None:
    first = launcher.log_dir()
    answer = _as_user(NOBODY, launcher.log_dir)
    assert answer.startswith("ok "), answer
    second = Path(answer.removeprefix("ok "))
    assert second.parent != first.parent
    assert second.parent.lstat().st_uid == NOBODY


@needs_root
def test_log_dir_refuses_a_folder_another_user_owns(shared_tmp: Path) -> None:
    planted = shared_tmp / f"sse-course-{os.geteuid()}"
    planted.mkdir()
    planted.chmod(0o777)
    os.chown(planted, NOBODY, NOBODY)
    with pytest.raises(LauncherError, match=rf"(?s){planted} is owned by user {NOBODY}"):
        launcher.log_dir()
    assert list(planted.iterdir()) == []


def test_log_dir_refuses_a_symlink(shared_tmp: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (shared_tmp / f"sse-course-{os.geteuid()}").symlink_to(elsewhere)
    with pytest.raises(LauncherError, match="is a symbolic link"):
        launcher.log_dir()
    assert list(elsewhere.iterdir()) == []


def test_log_dir_refuses_a_folder_others_can_write(shared_tmp: Path) -> None:
    mine = shared_tmp / f"sse-course-{os.geteuid()}"
    mine.mkdir()
    mine.chmod(0o777)
    with pytest.raises(LauncherError, match=rf"chmod 700 {mine}"):
        launcher.log_dir()


def test_a_symlink_planted_at_a_log_path_is_not_followed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COURSE_LOG_DIR", str(tmp_path))
    victim = tmp_path / "victim"
    victim.write_text("precious")
    port = launcher.free_port()
    for guess in (f"endless_app-{port}.log", "endless_app-1.log", "endless_app-2.log"):
        (tmp_path / guess).symlink_to(victim)
    with start_app("endless:app", port=port, args=["--app-dir", APPS]) as app:
        assert not app.log_path.is_symlink()
        assert "Uvicorn running" in app.log_tail()
    assert victim.read_text() == "precious"


def test_browser_url_locally_and_under_jupyterhub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    monkeypatch.delenv("COURSE_PROXY_PREFIX", raising=False)
    assert browser_url(8000) == "http://127.0.0.1:8000/"
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    assert browser_url(8000, "page.html") == "/user/alice/proxy/8000/page.html"
    monkeypatch.setenv("COURSE_PROXY_PREFIX", "/proxy/")
    assert browser_url(8000, "/") == "/proxy/8000/"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead but not yet reaped by its parent; it holds no port.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            members.append(int(stat_file.parent.name))
    return members


@pytest.mark.nginx
@pytest.mark.redis
@pytest.mark.skipif(not Path("/proc").exists(), reason="reads /proc to find orphans")
def test_no_server_outlives_a_killed_kernel() -> None:
    """Start servers from a real Jupyter kernel, SIGKILL the kernel, look for orphans."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3")
    code = textwrap.dedent(f"""
        from server.course.launcher import start_app, start_nginx, start_redis
        app = start_app("endless:app", args=["--app-dir", {APPS!r}])
        proxy = start_nginx([app])
        cache = start_redis()
        print(app.pid, proxy.pid, cache.pid)
    """)
    lines: list[str] = []

    def collect(message: dict) -> None:
        if message["msg_type"] == "stream":
            lines.append(message["content"]["text"])

    try:
        reply = client.execute_interactive(code, timeout=60, output_hook=collect)
        assert reply["content"]["status"] == "ok", reply["content"]
        leaders = [int(pid) for pid in "".join(lines).split()]
        processes = [pid for leader in leaders for pid in _group_members(leader)]
        assert len(processes) > len(leaders), "nginx should have a master and a worker"
        assert all(_alive(pid) for pid in processes)
        os.kill(manager.provisioner.process.pid, signal.SIGKILL)
        # the reaper's grace is 3 s
        wait_until(lambda: not any(map(_alive, processes)), f"every one of {processes} gone")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_reaper_stops_every_group_even_when_one_exits_during_cleanup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A group that is alive when the reaper looks and gone when it signals must not abort the
    cleanup: the groups after it still have to be stopped."""
    vanishing = subprocess.Popen(["sleep", "60"], start_new_session=True)
    survivor = subprocess.Popen(["sleep", "60"], start_new_session=True)
    real_killpg = os.killpg

    def killpg_then_vanish(pgid: int, sig: int) -> None:
        real_killpg(pgid, sig)
        if pgid == vanishing.pid and vanishing.returncode is None:
            vanishing.kill()  # the group exits right after the reaper's look at it
            vanishing.wait()

    monkeypatch.setattr(os, "killpg", killpg_then_vanish)
    try:
        reaper.terminate_groups([vanishing.pid, survivor.pid], grace=0.5)
        assert survivor.wait(timeout=30) == -signal.SIGTERM
    finally:
        for process in (vanishing, survivor):
            process.kill()
            process.wait()
