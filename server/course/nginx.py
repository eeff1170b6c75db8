"""A real nginx in front of the course's apps, from one readable config template.

`start_nginx([app])` renders `nginx.conf.template` (beside this module) into a private folder and
runs nginx from there, as an ordinary user, touching nothing in /etc/nginx. The template is the
whole config a learner needs to read: a prefix, an `upstream` block with keep-alive connections
to the apps, and one proxied `location /` whose directives each call chooses. The default,
`SSE_PROXY`, is what an SSE endpoint behind nginx needs; lesson 08 takes it apart one directive
at a time and measures each.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from server.course.binaries import find_binary
from server.course.errors import LauncherError
from server.course.logs import new_workdir
from server.course.ports import LOOPBACK, http_answers
from server.course.supervisor import Recipe, Server, on_a_free_port, start_on

# The directives every SSE location behind nginx needs (lesson 08 measures each one):
# HTTP/1.1 keep-alive to the upstream (with the template's `keepalive`), no response
# buffering, and a read timeout longer than the gap between heartbeats.
SSE_PROXY = """\
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_buffering off;
proxy_cache off;
proxy_read_timeout 1h;"""

# nginx logs this once it has bound its port and forked its worker (error_log at "notice").
_LISTENING = re.compile(r"start worker processes")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


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

    `location` holds the directives of the proxied `location /` (by default the ones SSE needs,
    `SSE_PROXY`), `upstream` extra directives of the upstream block (`ip_hash;`), `http` extra
    directives of the http block. The rendered config is at `server.workdir / "nginx.conf"`;
    nginx's own messages (errors, upstream timeouts) go to the server's log.
    """
    binary = find_binary("nginx")
    servers = "\n".join(
        f"server {u.host}:{u.port};" if isinstance(u, Server) else f"server {u};" for u in upstreams
    )

    def attempt(chosen: int) -> Server:
        workdir = new_workdir("nginx")
        config = render_nginx_config(
            prefix=str(workdir),
            port=str(chosen),
            upstream_servers=servers,
            upstream_extra=upstream,
            location=location,
            http_extra=http,
            user="user root;" if os.geteuid() == 0 else "",
        )
        (workdir / "nginx.conf").write_text(config)
        command = (binary, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-e", "stderr")
        check = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True)
        if check.returncode != 0:
            raise LauncherError(
                f"nginx rejected the config {workdir / 'nginx.conf'}:\n{check.stderr.strip()}"
            )
        recipe = Recipe("nginx", command, _LISTENING, http_answers, timeout=timeout)
        return start_on(recipe, chosen, workdir)

    return on_a_free_port(port, attempt, LOOPBACK)


def render_nginx_config(**values: str) -> str:
    """Fill `nginx.conf.template`'s `{{name}}` placeholders (nginx itself uses `$` and `{}`)."""
    template = (Path(__file__).parent / "nginx.conf.template").read_text()

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"nginx.conf.template needs a value for {{{{{key}}}}}")
        return values[key]

    return _PLACEHOLDER.sub(fill, template)
