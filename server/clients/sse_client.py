"""Reading an event stream from Python: the course's decoder under an httpx2 response.

The protocol lives in `server.sse` (bytes in, events out, no I/O); this module is the thin
transport layer, the shape of httpx-sse's `aiter_sse`:

    async with httpx2.AsyncClient() as client:
        async with connect_sse(client, "GET", url, headers={"Last-Event-ID": "3"}) as events:
            async for event in events:
                print(event.id, event.data)

It checks what a browser's EventSource checks before reading a byte (a 200 with
`text/event-stream`) and raises `NotAnEventStream` with the status, type and the start of the
body otherwise, so a 404 or a JSON error is reported as itself instead of as "no events".
`iter_bytes` and not `iter_lines`: httpx's line splitting follows `str.splitlines`, which also
breaks on U+2028 and form feeds that are ordinary data in SSE.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2

from server.sse import MEDIA_TYPE, Decoder, Event

__all__ = ["EventStream", "NotAnEventStream", "connect_sse"]


class NotAnEventStream(Exception):
    """The answer was not `200 text/event-stream`: what came instead, in the message."""

    def __init__(self, response: httpx2.Response, body: bytes) -> None:
        self.response = response
        self.body = body
        kind = response.headers.get("content-type", "no content-type")
        start = body[:200].decode(errors="replace")
        super().__init__(f"{response.status_code} {kind}: {start!r}")


class EventStream:
    """The events of one response, in order, and the last event id seen (for a reconnection)."""

    def __init__(self, response: httpx2.Response) -> None:
        self.response = response
        self.decoder = Decoder()

    @property
    def last_event_id(self) -> str:
        return self.decoder.last_event_id

    async def __aiter__(self) -> AsyncIterator[Event]:
        async for chunk in self.response.aiter_bytes():
            for event in self.decoder.feed(chunk):
                yield event
        for event in self.decoder.close():
            yield event


@asynccontextmanager
async def connect_sse(
    client: httpx2.AsyncClient, method: str, url: str, **kwargs: Any
) -> AsyncIterator[EventStream]:
    """Send a request and yield its events; `NotAnEventStream` if the answer is not a stream."""
    headers = {"Accept": MEDIA_TYPE, **kwargs.pop("headers", {})}
    async with client.stream(method, url, headers=headers, **kwargs) as response:
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        if response.status_code != 200 or media_type != MEDIA_TYPE:
            raise NotAnEventStream(response, await response.aread())
        yield EventStream(response)
