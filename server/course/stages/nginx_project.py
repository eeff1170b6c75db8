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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


def start_project_nginx(
    run: StageRun, upstream_ports: Sequence[int], *, edit: Callable[[str], str] | None = None
) -> Server:
    """The learner's `mychat/nginx.conf` in front of the app workers on `upstream_ports`.

    Renders it into a private folder (`server.workdir / "nginx.conf"`), runs `nginx -t` and
    reports a rejection as a `Missed` at the learner's line, then runs nginx on a free loopback
    port through the launcher; the run stops it. `server.url` is where to send requests.
    `edit` changes the learner's text first, line for line (stage 6 shortens its timeouts).
    """
    text = project_text(run, edit)
    workers = [f"{LOOPBACK}:{port}" for port in upstream_ports]

    def attempt(port: int) -> Server:
        workdir = checked_config(text, port, workers)
        try:
            return run_nginx(workdir, port)
        except PortInUseError:
            raise  # on_a_free_port tries another port
        except LauncherError as error:  # nginx -t passed, yet nginx did not start
            raise Missed(
                nginx_verdict(str(error), workdir / "nginx.conf", "nginx did not start")
            ) from None

    return run.started(on_a_free_port(None, attempt, LOOPBACK))


def check_project_config(run: StageRun) -> None:
    """`nginx -t` on the learner's config filled in for one app worker, without running nginx:
    a rejection is a `Missed` at the learner's line. (Stage 6 reads the config's timeouts
    before it starts the app that nginx will stand in front of.)"""
    checked_config(project_text(run), 1, [f"{LOOPBACK}:1"])


def project_text(run: StageRun, edit: Callable[[str], str] | None = None) -> str:
    """The learner's config, edited by `edit`; `Missed` if it is not there or lacks a name."""
    source = run.project / CONFIG
    if not source.is_file():
        raise Missed(f"there is no mychat/{CONFIG}")
    text = source.read_text()
    if edit is not None:
        text = edit(text)
    missing = missing_names(text)
    if missing:
        raise Missed(f"mychat/{CONFIG} has no {' and no '.join(missing)} line")
    return text


def checked_config(text: str, port: int, workers: Sequence[str]) -> Path:
    """A private folder with `text` rendered into its nginx.conf, which `nginx -t` accepted
    (`Missed` with nginx's verdict, at the learner's line, if not)."""
    workdir = new_workdir("nginx")
    rendered = workdir / "nginx.conf"
    rendered.write_text(
        render_project_config(text, listen=f"{LOOPBACK}:{port}", workers=workers, prefix=workdir)
    )
    try:
        check_config(workdir)
    except LauncherError as error:
        raise Missed(nginx_verdict(str(error), rendered)) from None
    return workdir


# Reading the config back: which directive applies where, as nginx decides it (for stage 6's
# proxy_read_timeout). Enough of nginx's grammar for a config file: words, quotes, comments,
# `;`, blocks, and the checker's `{{names}}` as words.
TOKEN = re.compile(
    r"""\s+|\#[^\n]*|(?P<word>(?:\{\{\w+\}\}|\$\{\w+\}|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[^\s;{}"'#])+)|(?P<punct>[;{}])"""
)


@dataclass
class Directive:
    """`name args...;` or `name args... { block }`, at `line` of the file."""

    name: str
    args: list[str]
    line: int
    block: list[Directive] | None = None

    def children(self, name: str) -> list[Directive]:
        return [child for child in self.block or [] if child.name == name]


def parse_config(text: str) -> list[Directive]:
    """The directives of an nginx config, nested; `ValueError` for what nginx -t would reject."""
    stack: list[list[Directive]] = [[]]
    words: list[tuple[str, int]] = []
    position = 0
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"line {text.count(chr(10), 0, position) + 1}: unexpected character")
        position = match.end()
        line = text.count("\n", 0, match.start()) + 1
        if match["word"]:
            word = match["word"]
            words.append((word[1:-1] if word[0] in "'\"" else word, line))
        elif match["punct"] in (";", "{"):
            if not words:
                raise ValueError(f"line {line}: {match['punct']!r} without a directive")
            directive = Directive(words[0][0], [w for w, _ in words[1:]], words[0][1])
            stack[-1].append(directive)
            words = []
            if match["punct"] == "{":
                directive.block = []
                stack.append(directive.block)
        elif match["punct"] == "}":
            if words or len(stack) == 1:
                raise ValueError(f"line {line}: unexpected '}}'")
            stack.pop()
    if words or len(stack) > 1:
        raise ValueError("the file ends inside a directive or a block")
    return stack[0]


def location_for(server: Directive, path: str) -> Directive | None:
    """The top-level `location` of `server` that nginx picks for `path` (nested ones aside)."""
    exact, prefixes, regexes = None, [], []
    for location in server.children("location"):
        if len(location.args) == 2 and location.args[0] in ("~", "~*"):
            regexes.append(location)
        elif len(location.args) == 2 and location.args[0] == "=":
            exact = location if location.args[1] == path else exact
        elif location.args and path.startswith(location.args[-1]):
            prefixes.append(location)
    if exact is not None:
        return exact
    longest = max(prefixes, key=lambda p: len(p.args[-1]), default=None)
    if longest is not None and longest.args[0] == "^~":
        return longest
    for location in regexes:
        flags = re.IGNORECASE if location.args[0] == "~*" else 0
        if re.search(location.args[1], path, flags):
            return location
    return longest


def effective(config: list[Directive], name: str, path: str, listen: str) -> Directive | None:
    """The `name` directive that applies to a request for `path` (None: nginx's default).

    `config` is the rendered config; the server is the one that listens on `listen`. The
    innermost of its location, the server and http wins, as nginx inherits directives down.
    """
    http = next((d for d in config if d.name == "http"), None)
    if http is None:
        return None
    servers = http.children("server")
    listening = [s for s in servers if any(listen in d.args for d in s.children("listen"))]
    scopes = [http]
    if listening or servers:
        server = (listening or servers)[0]
        scopes.append(server)
        location = location_for(server, path)
        if location is not None:
            scopes.append(location)
    for scope in reversed(scopes):
        found = scope.children(name)
        if found:
            return found[-1]
    return None


TIME_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|M|y)?")
TIME_UNITS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "M": 2592000,
    "y": 31536000,
}


def seconds(value: str) -> float:
    """An nginx time (`300`, `5m`, `1m30s`, `500ms`) in seconds; `ValueError` if it is not one."""
    value = value.replace(" ", "")  # nginx reads "1h 30m" too
    parts = list(TIME_PART.finditer(value))
    if not parts or "".join(p.group(0) for p in parts) != value:
        raise ValueError(f"{value!r} is not an nginx time")
    return sum(int(p[1]) * TIME_UNITS[p[2] or "s"] for p in parts)
