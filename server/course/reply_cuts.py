"""Cut a reader's connection while a reply streams, and see what it got: lesson 10's resume test.

An `EventSource` reconnects and resumes by itself; a WebSocket client must be taught to
(`server.clients.ws_resume`). To show the difference, and to check a learner's resuming
client, one scenario: a reader joins the chat's room (`server.apps.ws_chat`, with a history
broker) through a wiretap, the room streams a long reply, and the wiretap cuts every
connection a few times on the way. What the reader returns is what it received.

An observer reads the room directly (not through the tap) until the reply is over, so that the
next run starts in a quiet room, and so that "the reader connected" can be read from the app's
own count of open connections instead of guessed with a sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import httpx2

from server.course.launcher import Server
from server.course.wiretap import Wiretap

T = TypeVar("T")
DEADLINE = 30.0


def connected(app: Server) -> int:
    """Open WebSockets and event streams on the chat app, by its own count."""
    stats = httpx2.get(f"{app.url}/stats").json()
    return sum(stats.get(name, {}).get("active", 0) for name in ("ws", "events"))


async def cut_while_replying(
    tap: Wiretap, app: Server, reader: Awaitable[T], tokens: int, cuts: int = 2, every: float = 0.4
) -> T:
    """Start `reader` (reading the room through `tap`), ask `app` for a reply of `tokens`,
    cut every connection of the tap `cuts` times, `every` seconds apart; return what the reader
    returned. If the reader fails before it connected, its error is raised here."""
    async with httpx2.AsyncClient(timeout=DEADLINE) as http:
        request = http.build_request("GET", f"{app.url}/events?limit={tokens + 2}")
        observer = await http.send(request, stream=True)
        reading: asyncio.Future[Any] = asyncio.ensure_future(reader)
        while connected(app) < 2:  # the observer and the reader: the reply is the reader's too
            if reading.done():
                return await reading
            await asyncio.sleep(0.05)
        await http.post(f"{app.url}/messages", json={"text": "a long one", "tokens": tokens})
        for _ in range(cuts):
            await asyncio.sleep(every)
            tap.cut()
        got = await asyncio.wait_for(reading, DEADLINE)
        await observer.aread()  # the whole reply is out
    return got
