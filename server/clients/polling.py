"""Three ways for a client to hear about new events: short polling, long polling and SSE.

These are the client loops of lesson 02, run against `server.apps.price_feed`. Each one is what
one user (one browser tab, one `httpx2.AsyncClient` with its own keep-alive connection) does
until a deadline. All three have the same shape, so that one harness
(`server.clients.polling_experiment`) can run, count and time any of them, the learner's
long-poll loop included:

    async def loop(client, url, since, deadline, on_event, **options) -> int

`url` is the endpoint (`.../poll`, `.../long-poll`, `.../sse`), `since` the last event id the
user already has, `deadline` a `time.monotonic()` value at which to stop, and `on_event(event)`
is called with each event dict as it arrives, in order. The loop returns the last id it saw.

The loops know nothing about measuring: counting requests, bytes and delays is the harness's
job, done from outside through the client (its hooks and transport) and `on_event`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2

from server.clients.sse_client import aconnect_sse

OnEvent = Callable[[dict[str, Any]], None]
ClientLoop = Callable[..., Awaitable[int]]

# A client's read timeout must be longer than any wait the server may impose: the long-poll
# hold, and the gap between two SSE events or heartbeats (15 s). httpx2's default is 5 s, and
# a 20 s hold under it fails with ReadTimeout, a classic long-polling bug.
CLIENT_TIMEOUT = httpx2.Timeout(10.0, read=30.0)


async def short_poll_loop(
    client: httpx2.AsyncClient,
    url: str,
    since: int,
    deadline: float,
    on_event: OnEvent,
    *,
    interval: float = 1.0,
) -> int:
    """Ask every `interval` seconds whether anything is new.

    Requests go out on a fixed schedule (start, start + interval, ...), as `setInterval`
    does, so a slow response does not make the next one late.
    """
    due = time.monotonic()
    while due < deadline:
        response = await client.get(url, params={"since": since})
        response.raise_for_status()
        for event in response.json():
            on_event(event)
            since = event["id"]
        due += interval
        await asyncio.sleep(max(0.0, min(due, deadline) - time.monotonic()))
    return since


async def long_poll_loop(
    client: httpx2.AsyncClient,
    url: str,
    since: int,
    deadline: float,
    on_event: OnEvent,
    *,
    hold: float = 20.0,
) -> int:
    """Ask, let the server hold the request until something is new, ask again at once.

    The server's `timeout` is the hold, cut short at the deadline so the loop ends on time.
    An empty answer (the hold ran out) is normal: ask again.
    """
    while (remaining := deadline - time.monotonic()) > 0.01:
        timeout = min(hold, remaining)
        response = await client.get(url, params={"since": since, "timeout": f"{timeout:.3f}"})
        response.raise_for_status()
        for event in response.json():
            on_event(event)
            since = event["id"]
    return since


async def sse_loop(
    client: httpx2.AsyncClient,
    url: str,
    since: int,
    deadline: float,
    on_event: OnEvent,
) -> int:
    """Ask once; read events from the open response as the server writes them.

    `duration` asks the server to end the stream at the deadline, so it ends cleanly. The
    course's client layer reads it (`aconnect_sse`: `NotAnEventStream` for any other answer).
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return since
    params: dict[str, int | str] = {"since": since, "duration": f"{remaining:.3f}"}
    async with aconnect_sse(client, "GET", url, params=params) as events:
        async for event in events:
            payload = json.loads(event.data)
            on_event(payload)
            since = payload["id"]
    return since
