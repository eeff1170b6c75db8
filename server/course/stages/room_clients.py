"""The clients stages 7 and 8 run against the learner's chat room, each what a user would run.

- `Listener`: an `EventSource` in miniature on `GET /room/events`. It keeps every event, and
  when the connection ends (a worker killed, a 502 from nginx meanwhile) it waits `retry` and
  reconnects with the last id it received as `Last-Event-ID`, as a browser does.
- `stalled_listener`: a client that sends its request and never reads a byte, with a small
  receive buffer, so the server's writes to it back up in seconds.
- `running`, `connected`: listeners reading for the length of a block, once each has opened.
- `post`: one message through `POST /room/messages`, its id or None if the post failed.
- `compare`: the ids a listener received against the ids the stream holds, in words.
- `stream_ids`: what the stream holds, read from Redis itself.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import redis.asyncio as aioredis

from server.clients.sse_client import NotAnEventStream, aconnect_sse
from server.course.stages.run import Missed
from server.course.stages.waits import wait_until
from server.sse import Event

RETRY = 0.2  # seconds between a cut and the reconnection (EventSource's `retry`)


@dataclass
class Listener:
    """Reads the room until cancelled; reconnects after every cut with `Last-Event-ID`."""

    client: httpx2.AsyncClient
    url: str
    after: str | None = None  # the id it had before it started (as if it had seen that one)
    events: list[Event] = field(default_factory=list)
    connections: int = 0  # streams opened (200); more than one: it was cut and resumed
    failures: list[str] = field(default_factory=list)  # what each failed attempt got
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last_event_id(self) -> str | None:
        return self.events[-1].id if self.events else self.after

    async def run(self) -> None:
        while True:
            last = self.last_event_id
            headers = {"Last-Event-ID": last} if last else {}
            try:
                async with aconnect_sse(self.client, "GET", self.url, headers=headers) as events:
                    self.connections += 1
                    self.connected.set()
                    async for event in events:
                        self.events.append(event)
            except NotAnEventStream as error:
                self.failures.append(str(error))
            except httpx2.HTTPError as error:
                self.failures.append(f"{type(error).__name__}: {error}")
            await asyncio.sleep(RETRY)

    @property
    def ids(self) -> list[str]:
        return [event.id or "" for event in self.events]


@asynccontextmanager
async def running(listeners: list[Listener]) -> AsyncIterator[None]:
    """The listeners reading for the length of the block (see `connected`)."""
    tasks = [asyncio.create_task(listener.run()) for listener in listeners]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def connected(listeners: list[Listener], within: float = 10.0) -> None:
    """Once every listener's stream has opened; `Missed` with what one got instead."""
    await wait_until(
        lambda: (
            all(ls.connected.is_set() for ls in listeners) or any(ls.failures for ls in listeners)
        ),
        within=within,
    )
    for listener in listeners:
        if not listener.connected.is_set():
            got = listener.failures[-1] if listener.failures else f"nothing in {within:g} s"
            raise Missed(f"GET {listener.url}: {got}")


def text_of(data: str) -> str:
    """The `text` of a room message's JSON data, or the data itself if it is not such JSON."""
    try:
        value = json.loads(data)
    except ValueError:
        return data
    return str(value.get("text", data)) if isinstance(value, dict) else data


async def post(client: httpx2.AsyncClient, url: str, text: str) -> str | None:
    """Post one message; its id, or None if the post failed (a worker killed mid-request)."""
    try:
        answer = await client.post(url, json={"user": "checker", "text": text})
    except httpx2.HTTPError:
        return None
    if answer.status_code != 201:
        return None
    message_id = answer.json().get("id")
    return message_id if isinstance(message_id, str) else None


async def stalled_listener(host: str, port: int, path: str) -> socket.socket:
    """A connection that asks for the stream and then reads nothing, ever.

    Its receive buffer is as small as the kernel allows, so what the server sends backs up
    into the server's own socket (a few MB on loopback) and then into the server's writes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, port))
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
    await loop.sock_sendall(sock, request.encode())
    return sock


def compare(got: list[Event], want: list[str], names: Mapping[str, str]) -> str:
    """'' if the events' ids are exactly `want`, in order, else what differs, in a few words.

    `names` gives a message's name (the text posted) for its id, for the report."""
    ids = [event.id or "" for event in got]
    if ids == want:
        return ""
    missing = [names.get(i, i) for i in want if i not in ids]
    repeated = [names.get(i, i) for i in dict.fromkeys(ids) if ids.count(i) > 1]
    parts = [f"{len(ids)} events for {len(want)} messages"]
    if missing:
        parts.append(f"missing {shorten(missing)}")
    if repeated:
        parts.append(f"twice: {shorten(repeated)}")
    if not missing and not repeated:
        parts.append(f"in the order {shorten([names.get(i, i) for i in ids])}")
    return ", ".join(parts)


def shorten(texts: list[str], most: int = 8) -> str:
    shown = ", ".join(texts[:most])
    return shown + (f" and {len(texts) - most} more" if len(texts) > most else "")


async def stream_ids(redis_url: str, first: str) -> list[str]:
    """The ids of the Redis stream that holds `first`, from `first` on: what was stored."""
    redis = aioredis.from_url(redis_url, decode_responses=True)
    try:
        async for key in redis.scan_iter(_type="stream"):
            if await redis.xrange(key, min=first, max=first):
                entries: Any = await redis.xrange(key, min=first)
                return [entry_id for entry_id, _ in entries]
    finally:
        await redis.aclose()
    raise Missed(f"no Redis stream holds the id {first} that POST /room/messages returned")


def stream_position(entry_id: str) -> tuple[int, int]:
    """A Redis stream id as numbers, which sort in the stream's order (text does not)."""
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence)
