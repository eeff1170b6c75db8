"""Stage 6 (lesson 08): the learner's own nginx config in front of their app.

How it is checked: `mychat/nginx.conf` is filled in (`nginx_project`) and run by a real nginx,
`nginx -t` first. Through it, in front of the learner's app (with the wiretap between nginx and
the app, to see what nginx sends upstream), the checker reads the countdown, sends one request
to each of the app's paths, and counts the upstream connections they took. Then two things the
learner's app cannot show on its own:

- Buffering. The countdown sends `X-Accel-Buffering: no` (stage 1), and its events are small
  enough to pass a buffering nginx anyway (lesson 08, section 2), so it would stream without
  `proxy_buffering off`. The config itself is proved with the course's `stamped_events` app,
  which sends no such header and 5 KB events: each must arrive before the app sends the next.
- `proxy_read_timeout` against heartbeats, time-compressed. Waiting out a real timeout (60 s by
  default, minutes in a good config) does not fit a check, so the race is run faster: the
  effective `proxy_read_timeout` for `/chat` is read from the config (nginx's 60 s if none is
  set), every timeout in it is divided by the factor that makes that one 2 s, and the app's
  heartbeat (`CHAT_HEARTBEAT`, stage 4's 15 s) by the same factor. Then the course's fake model
  stays silent for 3 s before it answers. The ratio of timeout to heartbeat is the learner's,
  so the stream survives exactly when it would in production: when the timeout is above the
  heartbeat interval, and the app really sends heartbeats.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import httpx2

from server.clients.delivery_times import Delivery, deliveries, passed_on
from server.clients.sse_client import NotAnEventStream, aconnect_sse
from server.course.launcher import Server, start_app
from server.course.ports import LOOPBACK
from server.course.stages.nginx_project import (
    CONFIG,
    check_project_config,
    effective,
    parse_config,
    render_project_config,
    seconds,
    start_project_nginx,
)
from server.course.stages.run import Missed, StageRun
from server.course.stages.waits import wait_until
from server.course.wiretap import Wiretap, start_wiretap
from server.sse import Event

TITLE = "your nginx config: streams pass at once, stay open on heartbeats, reuse connections"
LESSON = "08_nginx"
DEADLINE = 45.0
NEEDS = ("nginx",)

HEARTBEAT = 15.0  # seconds: stage 4's default CHAT_HEARTBEAT
NGINX_DEFAULT = 60.0  # seconds: proxy_read_timeout when a config sets none
COMPRESSED = 2.0  # seconds: the /chat read timeout in the compressed race
SILENCE = 3.0  # seconds the fake model waits before its first token: longer than COMPRESSED
PATHS = ("/", "/countdown", "/chat", "/room/stage-6", "/replies/stage-6")
PADDED = "/events?limit=4&interval=0.5&pad=5000"  # 5 KB events, no X-Accel-Buffering header
READ_TIMEOUT = re.compile(r"(\bproxy_read_timeout\s+)([^\s;]+)(\s*;)")
# A request line as nginx sent it to the app: `GET /countdown?start=3 HTTP/1.1`, not
# anchored: on a reused connection it follows the previous request's body.
REQUEST = re.compile(rb"(?:GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH) (/\S*) HTTP/(1\.[01])\r\n")

UPSTREAM_HINT = (
    "in mychat/nginx.conf, `upstream mychat { server {{worker}}; keepalive 16; }` (the checker "
    "writes the `{{worker}}` line once per app worker), and `location / { proxy_pass "
    "http://mychat; ... }` in the server that listens on {{listen}}"
)


def read_timeout_for_chat(text: str) -> tuple[float, bool]:
    """(seconds, set in the http block?): the proxy_read_timeout that applies to POST /chat."""
    listen = f"{LOOPBACK}:1"
    rendered = render_project_config(text, listen=listen, workers=["127.0.0.1:2"], prefix=Path("/"))
    try:
        config = parse_config(rendered)
        found = effective(config, "proxy_read_timeout", "/chat", listen)
        at_http = any(d.children("proxy_read_timeout") for d in config if d.name == "http")
        return (seconds(found.args[0]) if found else NGINX_DEFAULT), at_http
    except (ValueError, IndexError, re.error) as error:  # what nginx -t accepted, we could not
        raise Missed(f"the checker could not read mychat/{CONFIG}: {error}") from None


def compressed(text: str, factor: float, at_http: bool) -> str:
    """The config with every proxy_read_timeout (and nginx's default) divided by `factor`."""

    def shorter(value: float) -> str:
        return f"{max(1, round(value * 1000 / factor))}ms"

    def scaled(match: re.Match[str]) -> str:
        try:
            return match[1] + shorter(seconds(match[2].strip("'\""))) + match[3]
        except ValueError:  # not a time we can read: left as it is
            return match[0]

    lines = text.split("\n")
    for index, line in enumerate(lines):
        code, mark, comment = line.partition("#")
        code = READ_TIMEOUT.sub(scaled, code)
        if not at_http:  # the default applies where the config sets none: shorten it too
            code = code.replace(
                "{{course_http}}",
                f"{{{{course_http}}}} proxy_read_timeout {shorter(NGINX_DEFAULT)};",
            )
        lines[index] = code + mark + comment
    return "\n".join(lines)


def upstream_requests(tap: Wiretap, since: int) -> dict[int, list[tuple[str, str]]]:
    """Per upstream connection, the (path, HTTP version) of each request nginx sent on it
    after the wiretap's mark `since`."""
    sent: dict[int, bytes] = {}
    for record in tap.records(since):
        if record.direction == "up":
            sent[record.connection] = sent.get(record.connection, b"") + record.data
    return {
        connection: [(path.decode(), version.decode()) for path, version in REQUEST.findall(data)]
        for connection, data in sent.items()
    }


async def read_chat(client: httpx2.AsyncClient, url: str) -> tuple[float, list[Event]]:
    """(seconds to the first event, every event) of one POST /chat, read to its end."""
    began, first, events = time.monotonic(), 0.0, []
    async with aconnect_sse(client, "POST", url, json={"message": "Say hello"}) as stream:
        async for event in stream:
            first = first or time.monotonic() - began
            events.append(event)
    return first, events


async def start_apps(run: StageRun, heartbeat: float) -> tuple[Server, Server]:
    """(the course's `stamped_events`, the learner's app): the app in front of the course's
    fake model, which is silent for `SILENCE` s, and sending heartbeats every `heartbeat` s."""
    model, stamped = await asyncio.gather(
        asyncio.to_thread(
            start_app,
            "server.apps.fake_openai:app",
            env={
                "FAKE_OPENAI_TTFT": str(SILENCE),
                "FAKE_OPENAI_TPS": "0",
                "FAKE_OPENAI_TOKENS": "5",
            },
            name="fake-openai",
        ),
        asyncio.to_thread(
            start_app, "server.apps.stamped_events:app", args=["--http", "h11"], name="stamped"
        ),
    )
    run.started(model)
    run.started(stamped)
    env = {
        "OPENAI_BASE_URL": f"{model.url}/v1",
        "OPENAI_API_KEY": "sk-course-stage-6",
        "OPENAI_MODEL": "fake-llm",
        "CHAT_HEARTBEAT": f"{heartbeat:.3f}",
    }
    app = await asyncio.to_thread(run.app, env=env)
    return stamped, app


async def check(run: StageRun) -> None:
    text = (run.project / CONFIG).read_text() if (run.project / CONFIG).is_file() else ""

    with run.step(
        f"nginx -t accepts mychat/{CONFIG} (filled in for one app worker), and nginx starts",
        hint=UPSTREAM_HINT,
    ):
        await asyncio.to_thread(check_project_config, run)
        timeout, at_http = read_timeout_for_chat(text)
        factor = timeout / COMPRESSED
        heartbeat = min(max(HEARTBEAT / factor, 0.05), 300.0)
        stamped, app = await start_apps(run, heartbeat)
        # The wiretap binds a port of the OS's choosing before nginx is told it: a port chosen
        # first and bound later can be taken meanwhile by another process (it was, in CI).
        tap = await asyncio.to_thread(start_wiretap, app)
        run.started(tap.server)
        proxy = await asyncio.to_thread(start_project_nginx, run, [tap.port])
    probed = tap.mark()  # nginx's readiness probe went through the wiretap: not the learner's

    async with httpx2.AsyncClient(base_url=proxy.url, timeout=15) as client:
        with run.step(
            "GET /countdown through nginx: 3, 2, 1, 발사! spread over time, not in one burst",
            hint="nginx passes on what your app sends: if the app answers an error, stages 1-2 "
            "need their code (`make catch-up STAGE=6`); if the events come in one burst, set "
            "`proxy_buffering off;` in `location /`",
        ):
            arrivals = []
            try:
                async with aconnect_sse(client, "GET", "/countdown?start=3&interval=0.3") as ticks:
                    async for event in ticks:
                        arrivals.append((time.monotonic(), event.data))
            except NotAnEventStream as error:
                raise Missed(str(error)) from None
            got = [data for _, data in arrivals]
            if got != ["3", "2", "1", "발사!"]:
                raise Missed(f"the events' data were {got}")
            spread = arrivals[-1][0] - arrivals[0][0]
            if spread < 0.4:  # 0.9 s when each of three waits 0.3 s
                raise Missed(f"all four within {spread:.2f} s")

        with run.step(
            "every path reaches your app: " + ", ".join(PATHS),
            hint="one `location / { proxy_pass http://mychat; ... }` sends every path to the "
            "app; a `location` without `proxy_pass` makes nginx answer from files instead",
        ):
            await client.get("/")
            await client.post("/chat", content=b"not json")  # a 4xx from the app, no model
            await client.get(PATHS[3])
            await client.get(PATHS[4])

            def missing() -> list[str]:  # the wiretap writes its records a moment later
                sent = upstream_requests(tap, probed).values()
                paths = {p.split("?")[0] for r in sent for p, _ in r}
                return [path for path in PATHS if path not in paths]

            if not await wait_until(lambda: not missing(), within=3.0):
                raise Missed(f"nginx never sent {', '.join(missing())} to your app")

        with run.step(
            "nginx reuses its connections to your app (keep-alive upstream)",
            hint="HTTP/1.1 to the app, without `Connection: close`: in `location /`, "
            '`proxy_http_version 1.1;` and `proxy_set_header Connection "";`, and '
            "`keepalive 16;` in the upstream block",
        ):
            seen = upstream_requests(tap, probed)
            requests = sum(len(r) for r in seen.values())
            versions = sorted({version for r in seen.values() for _, version in r})
            if len(seen) >= requests:
                raise Missed(
                    f"{requests} requests took {len(seen)} connections to the app "
                    f"(HTTP/{' and '.join(versions)})"
                )

    with run.step(
        "your config passes each event on at once, even 5 KB events from an app that does "
        "not send X-Accel-Buffering: no",
        hint="`proxy_buffering off;` in `location /`: with buffering on, nginx holds an event "
        "bigger than its 4 KB buffer until the next one comes (lesson 08, section 2)",
    ):
        probe = await asyncio.to_thread(start_project_nginx, run, [stamped.port])
        found: list[Delivery] = []
        for _ in range(2):  # the better of two: a busy machine can delay one event
            found = await asyncio.to_thread(deliveries, probe.url + PADDED, timeout=15)
            if passed_on(found):
                break
        else:
            late = ", ".join(f"{1000 * d.late:.0f}" for d in found)
            raise Missed(f"4 events sent 0.5 s apart arrived {late} ms after they were sent")

    with run.step(
        f"a chat stays open through a silence longer than your proxy_read_timeout "
        f"({timeout:g} s for /chat): your app's heartbeats keep it open",
        hint="proxy_read_timeout must be above your app's heartbeat interval "
        f"(CHAT_HEARTBEAT, {HEARTBEAT:g} s): e.g. `proxy_read_timeout 5m;` in `location /`; "
        "and the app must send `: ping` while the model is silent (stage 4)",
    ):
        race = await asyncio.to_thread(
            start_project_nginx, run, [app.port], edit=lambda t: compressed(t, factor, at_http)
        )
        async with httpx2.AsyncClient(timeout=15) as client:
            began = time.monotonic()
            try:
                first, events = await read_chat(client, race.url + "/chat")
            except NotAnEventStream as error:
                raise Missed(str(error)) from None
            except httpx2.HTTPError as error:
                raise Missed(
                    f"the stream was cut after {time.monotonic() - began:.1f} s "
                    f"({type(error).__name__}): in this race, run {factor:g} times faster than "
                    f"life, your {timeout:g} s timeout is {COMPRESSED:g} s, your app's "
                    f"{HEARTBEAT:g} s heartbeat {heartbeat:.2f} s, and the model is silent "
                    f"for {SILENCE:g} s"
                ) from None
        kinds = [event.event for event in events]
        if not events or kinds[-1] != "done":
            last = events[-1] if events else None
            said = f"{last.event}: {last.data[:120]}" if last else "no events"
            raise Missed(f"the stream ended without `done` (last: {said})")
        if first < COMPRESSED:
            raise Missed(f"the first event came after {first:.1f} s, before any silence")
        reply = "".join(json.loads(e.data).get("delta", "") for e in events if e.event == "message")
        if not reply:
            raise Missed("the stream ended with `done` but carried no text")
