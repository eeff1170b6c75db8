"""Lesson 08's experiments, each one a fresh nginx in front of an app, measured from outside.

Every function here starts its own nginx (`start_nginx`) with the directives under test, drives
it as a client would, stops it, and returns what it saw, so that runs cannot disturb each other
and a lesson can run several at once (`compare`). The app behind is
`server.apps.stamped_events`, whose events carry the time they were sent
(`server.clients.delivery_times`), and whose `X-Peer-Port` header names the connection it was asked
on (how many connections nginx opened to it) and `/stats` counts the streams it cancelled (when
it learned that a client left).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx2

from server.clients.delivery_times import Delivery, deliveries, ids_and_ending, latest, passed_on
from server.course.nginx import reload_nginx, start_nginx
from server.course.supervisor import Server
from server.course.wiretap import start_wiretap


def through_nginx(
    upstream: Server, location: str, path: str, options: Mapping[str, Any] | None = None
) -> list[Delivery]:
    """Start nginx with `location` in front of `upstream` and read `path` through it.

    `options` are more keyword arguments for `start_nginx` (`{"http": "gzip on;"}`).
    """
    with start_nginx([upstream], location=location, **(options or {})) as proxy:
        return deliveries(proxy.url + path)


def compare(runs: Mapping[str, Sequence[Any]]) -> dict[str, list[Delivery]]:
    """{name: `through_nginx` arguments} -> {name: deliveries}, all runs at the same time."""
    with ThreadPoolExecutor(len(runs)) as pool:
        started = {name: pool.submit(through_nginx, *args) for name, args in runs.items()}
        return {name: future.result() for name, future in started.items()}


def measure_block(upstream: Server, lines: Sequence[str], path: str) -> dict[str, Any]:
    """One `location` block, measured three ways through a fresh nginx.

    Whether nginx held the events of `path` back, and the longest any waited; how many
    connections the app saw for five short streams in a row; how nginx framed the response
    to the client, and whether the client's connection could be kept alive.
    """
    with start_nginx([upstream], location="\n".join(lines)) as proxy:
        found = deliveries(proxy.url + path)
        with httpx2.Client() as client:
            answers = [client.get(f"{proxy.url}/events?limit=1&interval=0") for _ in range(5)]
    head = answers[0].headers
    return {
        "held back": "no" if passed_on(found) else "yes",
        "longest wait ms": 1000 * latest(found),
        "app connections": len({a.headers["x-peer-port"] for a in answers}),
        "framing": "chunked" if head.get("transfer-encoding") == "chunked" else "until close",
        "client keep-alive": "yes" if head.get("connection") == "keep-alive" else "no",
    }


def upstream_view(
    app: Server, location: str, keepalive: int | None = 16, streams: int = 10
) -> dict[str, Any]:
    """What the app sees of `streams` short streams sent through nginx one after another.

    A wiretap (lesson 01) between nginx and the app records every upstream byte: the request
    line nginx sent, whether it asked the app to close (`Connection: close`), how many TCP
    connections carried the streams, and the head of the app's first answer to one.
    """
    with start_wiretap(app) as tap:
        with (
            start_nginx([tap.server], location=location, keepalive=keepalive) as proxy,
            httpx2.Client() as client,
        ):
            for _ in range(streams):
                client.get(f"{proxy.url}/events?limit=1&interval=0").raise_for_status()
        records = tap.records()
    asked = [r for r in records if r.direction == "up" and b"/events" in r.data]
    request = asked[0].data
    carried = {r.connection for r in asked}
    answer = next(r.data for r in records if r.direction == "down" and r.connection in carried)
    return {
        "request line": request.split(b"\r\n")[0].decode(),
        "Connection": "close" if b"Connection: close" in request else "(none)",
        "app connections": len(carried),
        "answer head": answer.split(b"\r\n\r\n")[0].decode(),
    }


def framing_for_http10(server: Server) -> str:
    """How `server` frames its answer to an HTTP/1.0 request: "chunked" or "until close"."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"GET /events?limit=1&interval=0 HTTP/1.0\r\nHost: x\r\n\r\n")
        reply = b"".join(iter(lambda: sock.recv(65536), b""))
    head = reply.split(b"\r\n\r\n")[0].lower()
    return "chunked" if b"transfer-encoding: chunked" in head else "until close"


def seconds_until_app_sees_leave(app: Server, location: str, interval: float = 0.5) -> float:
    """Open a stream through nginx, read one event, leave: seconds until the app cancels it.

    The app counts cancelled streams at `/stats` (reset first), so the time is the app's own
    word that its generator stopped, not a guess from the client's side.
    """
    httpx2.post(f"{app.url}/stats/reset").raise_for_status()
    with start_nginx([app], location=location) as proxy:
        with httpx2.stream("GET", f"{proxy.url}/events?interval={interval}&limit=20") as response:
            next(response.iter_bytes())  # the first event: the app's generator is running
        left = time.perf_counter()  # the client has closed its connection
        while httpx2.get(f"{app.url}/stats").json()["events"].get("cancelled", 0) == 0:
            if time.perf_counter() - left > 10:
                raise TimeoutError("the app never saw the client leave")
            time.sleep(0.01)
        return time.perf_counter() - left


@dataclass(frozen=True)
class Reload:
    """What `nginx -s reload` did to streams open at the time."""

    streams: list[tuple[list[str], str]]  # each stream's ids and how it ended
    old_worker_gone: float  # seconds from the reload to the old worker's exit
    new_request: int  # the status of a request sent right after the reload


def reload_during_streams(app: Server, main: str = "", streams: int = 3) -> Reload:
    """`streams` streams of 12 events 0.25 s apart, and `nginx -s reload` once each has had
    its second event (about 0.25 s in), so that the old worker is surely serving all of them.

    `main` adds directives to nginx's main block (`worker_shutdown_timeout 1s;`).
    """
    proxy = start_nginx([app], main=main)
    url = f"{proxy.url}/events?limit=12&interval=0.25"
    under_way = threading.Barrier(streams + 1)

    def note(event_id: str) -> None:
        if event_id == "2":
            under_way.wait(timeout=10)

    try:
        with ThreadPoolExecutor(streams) as pool:
            reading = [pool.submit(ids_and_ending, url, 30.0, note) for _ in range(streams)]
            under_way.wait(timeout=10)  # every stream is on the old worker, and moving
            reloaded = time.perf_counter()
            reload_nginx(proxy)  # returns once the new worker has started
            new_request = httpx2.get(f"{proxy.url}/").status_code  # served by the new worker
            results = [stream.result() for stream in reading]
        while proxy.log_path.read_text().count("exited with code 0") < 1:  # the old worker
            if time.perf_counter() - reloaded > 10:
                raise TimeoutError(f"the old worker did not exit:\n{proxy.log_tail()}")
            time.sleep(0.02)
        return Reload(results, time.perf_counter() - reloaded, new_request)
    finally:
        proxy.stop()
