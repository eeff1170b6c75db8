"""A real nginx in front of the course's apps, from one readable config template.

`start_nginx([app])` renders `nginx.conf.template` (beside this module) into a private folder and
runs nginx from there, as an ordinary user, touching nothing in /etc/nginx. The template is the
whole config a learner needs to read: a prefix, an `upstream` block with keep-alive connections
to the apps, and one proxied `location /` whose directives each call chooses. The default,
`SSE_PROXY`, is what an SSE endpoint behind nginx needs; lesson 08 takes it apart one directive
at a time and measures each. `websocket_proxy()` adds what a WebSocket needs (lesson 10).

Beyond the location, each call can add directives at every level of the config (`main`,
`http`, `upstream`, `server`), size each worker (`worker_connections`), run several
(`worker_processes`: one holds at most the open-files limit of descriptors, two per proxied
stream), drop the upstream `keepalive` (`keepalive=None`), and serve HTTPS, with HTTP/2 if
asked, from a certificate of `server.course.certificate`. The HTTP/2 switch is written the
way the installed nginx wants it: `listen ... ssl http2` before 1.25.1, `http2 on;` from then
on (`nginx_version()`).

The access log (`access_log(server)`) has one line per request, written when the response
ends, with the protocol the client spoke and the `Last-Event-ID` it sent; `reload_nginx`
runs `nginx -s reload` and waits until the new worker has started.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from server.course.binaries import find_binary
from server.course.certificate import Certificate
from server.course.errors import LauncherError
from server.course.logs import new_workdir
from server.course.ports import LOOPBACK, http_answers
from server.course.supervisor import Recipe, Server, on_a_free_port, start_on


def sse_proxy(read_timeout: str = "1h") -> str:
    """The directives every SSE location behind nginx needs (lesson 08 measures each one).

    HTTP/1.1 keep-alive to the upstream (with the template's `keepalive`), no response
    buffering, no cache, and a read timeout longer than the gap between heartbeats
    (`read_timeout`, in nginx's units: "2s", "1h").
    """
    return "\n".join(
        [
            "proxy_http_version 1.1;",
            'proxy_set_header Connection "";',
            "proxy_buffering off;",
            "proxy_cache off;",
            f"proxy_read_timeout {read_timeout};",
        ]
    )


SSE_PROXY = sse_proxy()

# In the `http` block, for `websocket_proxy` (nginx's "WebSocket proxying" page): the
# `Connection` header to send upstream is "upgrade" when the client asked for an upgrade, and
# none otherwise, so plain requests and SSE keep their keep-alive upstream connections.
CONNECTION_UPGRADE_MAP = """map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      "";
}"""


def websocket_proxy(read_timeout: str = "1h") -> str:
    """`sse_proxy`, plus what a WebSocket handshake needs to get through (lesson 10).

    `Upgrade` and `Connection` are hop-by-hop headers: a proxy never forwards them unless
    told to. Without these two lines the app receives a plain GET, and the client gets that
    GET's answer (a 404 from the course's apps) instead of `101 Switching Protocols`. Needs
    `CONNECTION_UPGRADE_MAP` in the `http` block (`start_nginx(http=CONNECTION_UPGRADE_MAP)`).
    `proxy_read_timeout` applies to a WebSocket as to a stream: silence for that long ends it.
    """
    lines = sse_proxy(read_timeout).splitlines()
    lines.remove('proxy_set_header Connection "";')
    upgrade = [
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
    ]
    return "\n".join([lines[0], *upgrade, *lines[1:]])


# nginx logs this once it has bound its port and forked its worker (error_log at "notice").
_LISTENING = re.compile(r"start worker processes")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_VERSION = re.compile(r"nginx/(\d+)\.(\d+)\.(\d+)")
HTTP2_ON_SINCE = (1, 25, 1)  # `http2 on;`; before, `listen ... http2`


def start_nginx(
    upstreams: Sequence[str | Server],
    *,
    port: int | None = None,
    location: str = SSE_PROXY,
    upstream: str = "",
    http: str = "",
    server: str = "",
    main: str = "",
    worker_connections: int = 1024,
    worker_processes: int = 1,
    keepalive: int | None = 16,
    tls: Certificate | None = None,
    http2: bool = False,
    timeout: float = 60.0,  # only bounds a hung start: a crash is reported at once
) -> Server:
    """Run nginx as a reverse proxy in front of `upstreams` (Servers or "host:port" strings).

    `location` holds the directives of the proxied `location /` (by default the ones SSE needs,
    `SSE_PROXY`); `upstream`, `server`, `http` and `main` add directives to those blocks
    (`ip_hash;`, `worker_shutdown_timeout 2s;`). `keepalive` is the upstream block's idle
    connection cache (None: no `keepalive` directive, nginx's own default). With `tls`, nginx
    serves HTTPS (the server's URL says `https`), and HTTP/2 too with `http2=True`. The
    rendered config is at `server.workdir / "nginx.conf"`; nginx's own messages (errors,
    upstream timeouts) go to the server's log.
    """
    servers = "\n".join(
        f"server {u.host}:{u.port};" if isinstance(u, Server) else f"server {u};" for u in upstreams
    )
    listen, server_tls = _tls_directives(tls, http2)

    def attempt(chosen: int) -> Server:
        workdir = new_workdir("nginx")
        config = render_nginx_config(
            prefix=str(workdir),
            port=str(chosen),
            upstream_servers=servers,
            upstream_extra=upstream,
            keepalive="" if keepalive is None else f"keepalive {keepalive};",
            location=location,
            listen_extra=listen,
            server_extra="\n".join(filter(None, [server_tls, server])),
            http_extra=http,
            main_extra=main,
            worker_connections=str(worker_connections),
            worker_processes=str(worker_processes),
            user="user root;" if os.geteuid() == 0 else "",
        )
        (workdir / "nginx.conf").write_text(config)
        return run_nginx(workdir, chosen, https=tls is not None, timeout=timeout)

    return on_a_free_port(port, attempt, LOOPBACK)


def check_config(workdir: Path) -> str:
    """`nginx -t` on `workdir / "nginx.conf"`: nginx's own verdict, or `LauncherError` with it."""
    command = (find_binary("nginx"), "-p", str(workdir), "-c", str(workdir / "nginx.conf"))
    check = subprocess.run([*command, "-e", "stderr", "-t"], capture_output=True, text=True)
    if check.returncode != 0:
        raise LauncherError(
            f"nginx rejected the config {workdir / 'nginx.conf'}:\n{check.stderr.strip()}"
        )
    return check.stderr.strip()


def run_nginx(workdir: Path, port: int, *, https: bool = False, timeout: float = 60.0) -> Server:
    """`nginx -t` on `workdir / "nginx.conf"`, then run nginx on it, listening on `port`."""
    check_config(workdir)
    command = (
        find_binary("nginx"), "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-e", "stderr"
    )  # fmt: skip
    recipe = Recipe(
        "nginx",
        command,
        _LISTENING,
        http_answers,  # over TLS too: nginx answers plain HTTP there with a 400
        scheme="https" if https else "http",
        timeout=timeout,
    )
    return start_on(recipe, port, workdir)


def rendered_config(server: Server, *, comments: bool = False) -> str:
    """The nginx.conf `server` runs, without its comments and blank lines unless `comments`.

    (A `#` starts a comment to the end of the line; the course's configs have none in quotes.)
    """
    assert server.workdir is not None, "not an nginx started by start_nginx"
    text = (server.workdir / "nginx.conf").read_text()
    if comments:
        return text
    lines = (
        line.split("#", 1)[0].rstrip() if "#" in line else line.rstrip()
        for line in text.splitlines()
    )
    return "\n".join(line for line in lines if line.strip())


def _tls_directives(tls: Certificate | None, http2: bool) -> tuple[str, str]:
    """(what follows the listen address, the server block's TLS lines) for this nginx."""
    if tls is None:
        if http2:
            raise ValueError("http2=True needs tls=: browsers speak HTTP/2 only over TLS")
        return "", ""
    lines = [f"ssl_certificate {tls.certificate};", f"ssl_certificate_key {tls.key};"]
    if not http2:
        return " ssl", "\n".join(lines)
    if nginx_version() >= HTTP2_ON_SINCE:
        return " ssl", "\n".join(["http2 on;", *lines])
    return " ssl http2", "\n".join(lines)


@functools.cache
def nginx_version() -> tuple[int, int, int]:
    """The installed nginx's version, from `nginx -v` (which prints it to stderr)."""
    line = subprocess.run([find_binary("nginx"), "-v"], capture_output=True, text=True).stderr
    found = _VERSION.search(line)
    if found is None:
        raise LauncherError(f"could not read a version from `nginx -v`: {line.strip()!r}")
    major, minor, patch = map(int, found.groups())
    return major, minor, patch


def access_log(server: Server) -> list[str]:
    """The access log's lines so far (format `course` in the template); one per ended request."""
    assert server.workdir is not None, "not an nginx started by start_nginx"
    path = server.workdir / "access.log"
    return path.read_text().splitlines() if path.exists() else []


def access_lines(
    server: Server, containing: str, at_least: int, timeout: float = 10.0
) -> list[str]:
    """The access log's lines with `containing`, once nginx has written `at_least` of them.

    nginx writes a request's line when the response ends: for a stream, when it closes, which
    can be a moment after the client has seen the stream end.
    """
    deadline = time.monotonic() + timeout
    while len(lines := [line for line in access_log(server) if containing in line]) < at_least:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{len(lines)} of {at_least} lines with {containing!r} in {timeout:g} s"
            )
        time.sleep(0.05)
    return lines


def reload_nginx(server: Server, timeout: float = 10.0) -> None:
    """`nginx -s reload`: re-read the config, start new workers, and let the old ones finish.

    The master starts a new worker with the config as it is now on disk and tells the old one
    to shut down gracefully: stop accepting, and exit once its open requests have ended (or
    after `worker_shutdown_timeout`, if set). Returns once the new worker has started.
    """
    command = server.recipe.command
    started = server.log_path.read_text().count("start worker processes")
    done = subprocess.run([*command, "-s", "reload"], capture_output=True, text=True)
    if done.returncode != 0:
        raise LauncherError(f"nginx -s reload failed:\n{done.stderr.strip()}")
    deadline = time.monotonic() + timeout
    while server.log_path.read_text().count("start worker processes") <= started:
        if time.monotonic() > deadline:
            raise LauncherError(f"nginx did not reload within {timeout:g} s:\n{server.log_tail()}")
        time.sleep(0.02)


def render_nginx_config(**values: str) -> str:
    """Fill `nginx.conf.template`'s `{{name}}` placeholders (nginx itself uses `$` and `{}`)."""
    return fill_placeholders((Path(__file__).parent / "nginx.conf.template").read_text(), values)


def fill_placeholders(template: str, values: Mapping[str, str]) -> str:
    """`template` with each `{{name}}` replaced by `values[name]`; a missing one is a KeyError.

    A value of several lines is indented like its placeholder, so the rendered config reads
    as the template does.
    """

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"the nginx template needs a value for {{{{{key}}}}}")
        line_start = template.rfind("\n", 0, match.start()) + 1
        indent = template[line_start : match.start()]
        if indent.strip():  # the placeholder follows other text on its line: no indent
            indent = ""
        return values[key].replace("\n", "\n" + indent)

    return _PLACEHOLDER.sub(fill, template)
