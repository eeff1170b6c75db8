"""The nginx config lesson 08 ends with: every section's verdict in one file a learner copies.

`nginx_sse.conf.template` (beside this module) is a whole nginx.conf for an SSE app in
production: the `upstream` with `keepalive`, a `location /events` that streams (HTTP/1.1 to
the app, `Connection ""`, `proxy_buffering off`, `proxy_read_timeout` above the heartbeat),
`gzip_types` without `text/event-stream`, `worker_connections` and `worker_rlimit_nofile`
sized together, `worker_shutdown_timeout`, HTTP/2 over TLS, and what one client address may
hold: 10 s to send a header or a body or to take bytes (a slow socket is closed, not kept
until the connections run out) and 30 open streams (`limit_conn`, 429 over it). Unlike
`nginx.conf.template`, whose pieces each `start_nginx` call chooses, it has no knobs: it is
the answer, and a lesson cell checks the answer (`nginx -t`, then a stream read through it)
rather than trusting it.

`render_sse_config` fills in what differs per machine (the app's address, the listen address,
the certificate) and, for the course, a private folder for the pid, logs and temp files, so
nginx runs as an ordinary process; `start_sse_nginx` runs it with the launcher's supervision.
The HTTP/2 line is rewritten for the installed nginx as `start_nginx` does (`http2 on;` from
1.25.1), so the same file runs on Debian's 1.22 and on a newer nginx.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx2

from server.clients.delivery_times import Delivery, deliveries
from server.course.certificate import Certificate
from server.course.logs import new_workdir
from server.course.nginx import HTTP2_ON_SINCE, fill_placeholders, nginx_version, run_nginx
from server.course.ports import LOOPBACK
from server.course.supervisor import Server, on_a_free_port

TEMPLATE = Path(__file__).with_name("nginx_sse.conf.template")


def render_sse_config(
    app: Server | str, *, listen: str, certificate: Certificate, prefix: Path | None = None
) -> str:
    """`nginx_sse.conf.template` for `app` ("host:port" or a Server), listening on `listen`.

    With `prefix`, the course's lines put the pid, logs and temp files under that folder and
    keep nginx in the foreground (for the launcher); without it they are left out, as a
    production copy would have them.
    """
    address = f"{app.host}:{app.port}" if isinstance(app, Server) else app
    course_main, course_http = _course_lines(prefix)
    values = {
        "app": address,
        "listen": listen,
        "certificate": str(certificate.certificate),
        "key": str(certificate.key),
        "course_main": course_main,
        "course_http": course_http,
    }
    text = fill_placeholders(TEMPLATE.read_text(), values)
    if nginx_version() >= HTTP2_ON_SINCE:  # `listen ... http2` is deprecated there
        text = text.replace(" ssl http2;", " ssl;\n        http2 on;")
    return text


def _course_lines(prefix: Path | None) -> tuple[str, str]:
    """(main, http) lines that keep nginx's files in `prefix`; ("", "") without one."""
    if prefix is None:
        return "", ""
    main = [
        "daemon off;  # course: the launcher supervises nginx",
        f"pid {prefix}/nginx.pid;",
        "error_log stderr notice;",
    ]
    if os.geteuid() == 0:
        main.append("user root;")
    http = [f"access_log {prefix}/access.log;"] + [
        f"{kind}_temp_path {prefix}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    ]
    return "\n".join(main), "\n".join(http)


def start_sse_nginx(
    app: Server | str, certificate: Certificate, *, port: int | None = None
) -> Server:
    """Run nginx on the rendered config in front of `app`, after `nginx -t` has accepted it.

    The config is at `server.workdir / "nginx.conf"` (`check_config(server.workdir)` repeats
    nginx's verdict); the server's URL says `https`.
    """

    def attempt(chosen: int) -> Server:
        workdir = new_workdir("nginx")
        config = render_sse_config(
            app, listen=f"{LOOPBACK}:{chosen}", certificate=certificate, prefix=workdir
        )
        (workdir / "nginx.conf").write_text(config)
        return run_nginx(workdir, chosen, https=True)

    return on_a_free_port(port, attempt, LOOPBACK)


@dataclass(frozen=True)
class StreamThrough:
    """One stream read through the rendered config, as a browser would read it."""

    protocol: str  # what the client spoke to nginx: "HTTP/2"
    content_encoding: str | None  # None: nginx did not gzip the stream
    found: list[Delivery]  # each event's send and arrival times


def read_through(proxy: Server, certificate: Certificate, path: str) -> StreamThrough:
    """Read the stream at `path` through `proxy` over HTTPS, offering HTTP/2 and gzip.

    The certificate is trusted for this client only (an `ssl` context with it as the one CA).
    """
    trust = ssl.create_default_context(cafile=str(certificate.certificate))
    with httpx2.Client(verify=trust, http2=True, timeout=30) as client:
        head = client.get(f"{proxy.url}/events?limit=1&interval=0")  # httpx2 offers gzip
        head.raise_for_status()
        found = deliveries(proxy.url + path, client=client)
    return StreamThrough(head.http_version, head.headers.get("content-encoding"), found)
