"""The learner's own nginx config (`mychat/nginx.conf`), run by the checker in front of their app.

Stage 6 (lesson 08) asks for it; stages 7 and 9 put it in front of several app workers. The file
is a whole nginx config with four double-braced names the checker fills in, documented at the
top of the reference `solutions/mychat/nginx.conf`:

- `{{course_main}}` and `{{course_http}}`: the course's own lines (foreground, the pid file, the
  logs and the temp files in a private folder), so nginx runs as an ordinary process;
- `{{listen}}`: `127.0.0.1:<a free port>`;
- `{{worker}}`: one app worker's `127.0.0.1:<port>`; the line that holds it is written once per
  worker, side by side (`server 127.0.0.1:8001; server 127.0.0.1:8002;`).

Every name renders onto its own line, so a line number in nginx's verdict is a line number of
the learner's file: `nginx -t` rejecting it is reported as their error, at their line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from server.course.errors import LauncherError, PortInUseError
from server.course.launcher import Server
from server.course.logs import new_workdir
from server.course.nginx import check_config, fill_placeholders, run_nginx
from server.course.ports import LOOPBACK
from server.course.stages.run import Missed, StageRun
from server.course.supervisor import on_a_free_port

CONFIG = "nginx.conf"
NAMES = ("course_main", "course_http", "listen", "worker")
WORKER = "{{worker}}"
# One line of `nginx -t`'s verdict, `nginx: [emerg] unknown directive "x" in /path:12`, or once
# the config's error_log applies, `2026/12/07 16:44:59 [emerg] 5162#5162: ... in /path:12`.
VERDICT = re.compile(
    r"\[(?:emerg|alert|crit|error)\] (?:\d+#\d+: )?(?P<what>.*?)"
    r"(?: in (?P<path>\S+):(?P<line>\d+))?$"
)
# The access log's format: as the course's own nginx (server/course/nginx.conf.template), plus
# the worker that answered, for the stages with several.
LOG_FORMAT = (
    'log_format course \'$msec "$request" $status $server_protocol $body_bytes_sent '
    'time=$request_time last_event_id="$http_last_event_id" upstream=$upstream_addr\';'
)


def course_lines(prefix: Path) -> dict[str, str]:
    """The values of `{{course_main}}` and `{{course_http}}`: nginx's files under `prefix`."""
    main = ["daemon off;", f"pid {prefix}/nginx.pid;", "error_log stderr notice;"]
    if os.geteuid() == 0:  # nginx started by root switches to `nobody` unless told otherwise
        main.append("user root;")
    temp = [
        f"{kind}_temp_path {prefix}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    ]
    http = [LOG_FORMAT, f"access_log {prefix}/access.log course;", *temp]
    return {"course_main": " ".join(main), "course_http": " ".join(http)}


def render_project_config(text: str, *, listen: str, workers: Sequence[str], prefix: Path) -> str:
    """The learner's config with its names filled in, line for line (`Missed` if it can't be)."""
    values = {**course_lines(prefix), "listen": listen}
    lines = text.split("\n")
    for index, line in enumerate(lines):
        try:
            if WORKER in line:  # once per worker; a comment after it would swallow the rest
                code = line.split("#", 1)[0].rstrip()
                indent = code[: len(code) - len(code.lstrip())]
                lines[index] = indent + " ".join(
                    fill_placeholders(code.strip(), {**values, "worker": worker})
                    for worker in workers
                )
            else:
                lines[index] = fill_placeholders(line, values)
        except KeyError:
            unknown = sorted(set(re.findall(r"\{\{(\w+)\}\}", line)) - set(NAMES))
            known = ", ".join("{{" + name + "}}" for name in NAMES)
            raise Missed(
                f"mychat/{CONFIG} line {index + 1}: the checker fills only {known}, "
                f"not {', '.join('{{' + name + '}}' for name in unknown)}"
            ) from None
    return "\n".join(lines)


def missing_names(text: str) -> list[str]:
    """The names the config must hold and does not (comments don't count)."""
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return ["{{" + name + "}}" for name in NAMES if "{{" + name + "}}" not in code]


def nginx_verdict(error: str, rendered: Path, said: str = "nginx -t") -> str:
    """nginx's complaint about the rendered config, at the line of the learner's file."""
    for line in error.splitlines():
        found = VERDICT.search(line)
        if found is None:
            continue
        where = ""
        if found["line"]:
            name = f"mychat/{CONFIG}" if found["path"] == str(rendered) else found["path"]
            where = f" ({name} line {found['line']})"
        return f"{said}: {found['what']}{where}"
    return f"{said}: {error.strip().splitlines()[-1] if error.strip() else 'no reason given'}"


def start_project_nginx(run: StageRun, upstream_ports: Sequence[int]) -> Server:
    """The learner's `mychat/nginx.conf` in front of the app workers on `upstream_ports`.

    Renders it into a private folder (`server.workdir / "nginx.conf"`), runs `nginx -t` and
    reports a rejection as a `Missed` at the learner's line, then runs nginx on a free loopback
    port through the launcher; the run stops it. `server.url` is where to send requests.
    """
    source = run.project / CONFIG
    if not source.is_file():
        raise Missed(f"there is no mychat/{CONFIG}")
    text = source.read_text()
    missing = missing_names(text)
    if missing:
        raise Missed(f"mychat/{CONFIG} has no {' and no '.join(missing)} line")
    workers = [f"{LOOPBACK}:{port}" for port in upstream_ports]

    def attempt(port: int) -> Server:
        workdir = new_workdir("nginx")
        rendered = workdir / "nginx.conf"
        rendered.write_text(
            render_project_config(
                text, listen=f"{LOOPBACK}:{port}", workers=workers, prefix=workdir
            )
        )
        try:
            check_config(workdir)
        except LauncherError as error:
            raise Missed(nginx_verdict(str(error), rendered)) from None
        try:
            return run_nginx(workdir, port)
        except PortInUseError:
            raise  # on_a_free_port tries another port
        except LauncherError as error:  # nginx -t passed, yet nginx did not start
            raise Missed(nginx_verdict(str(error), rendered, "nginx did not start")) from None

    return run.started(on_a_free_port(None, attempt, LOOPBACK))
