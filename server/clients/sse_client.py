"""Reading an event stream from Python: the course's decoder under an httpx2 response.

The protocol lives in `server.sse` (bytes in, events out, no I/O); this module is the thin
transport layer, named as httpx-sse names its own: `connect_sse` over an `httpx2.Client`,
`aconnect_sse` over an `httpx2.AsyncClient`, both giving one `EventStream`:

    with httpx2.Client() as client, connect_sse(client, "GET", url) as events:
        for event in events:
            print(event.id, event.data)

    async with httpx2.AsyncClient() as client:
        async with aconnect_sse(client, "GET", url, headers={"Last-Event-ID": "3"}) as events:
            async for event in events:
                print(event.id, event.data)

Both check what a browser's EventSource checks before reading a byte (a 200 with
`text/event-stream`) and raise `NotAnEventStream` with the status, type and the start of the
body otherwise, so a 404 or a JSON error is reported as itself instead of as "no events".
Each event comes out as soon as the chunk that completes it arrives, so a reader can time
arrivals per event. `iter_bytes` and not `iter_lines`: httpx's line splitting follows
`str.splitlines`, which also breaks on U+2028 and form feeds that are ordinary data in SSE.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx2

from server.clients.resume import next_ready_state
from server.sse import MEDIA_TYPE, Decoder, Event

__all__ = ["EventStream", "NotAnEventStream", "aconnect_sse", "connect_sse"]


class NotAnEventStream(Exception):
    """The answer was not `200 text/event-stream`: what came instead, in the message.

    `body` is the answer's first chunk only: a wrong answer that never ends (a 200
    `text/plain` stream) must be reported, not read to its end.
    """

    def __init__(self, response: httpx2.Response, body: bytes) -> None:
        self.response = response
        self.body = body
        kind = response.headers.get("content-type", "no content-type")
        start = body[:200].decode(errors="replace")
        super().__init__(f"{response.status_code} {kind}: {start!r}")


class EventStream:
    """The events of one response, in order, and the last event id seen (for a reconnection).

    Iterate it with `for` under `connect_sse`, with `async for` under `aconnect_sse`.
    """

    def __init__(self, response: httpx2.Response) -> None:
        self.response = response
        self.decoder = Decoder()

    @property
    def last_event_id(self) -> str:
        return self.decoder.last_event_id

    def __iter__(self) -> Iterator[Event]:
        for chunk in self.response.iter_bytes():
            yield from self.decoder.feed(chunk)
        yield from self.decoder.close()

    async def __aiter__(self) -> AsyncIterator[Event]:
        async for chunk in self.response.aiter_bytes():
            for event in self.decoder.feed(chunk):
                yield event
        for event in self.decoder.close():
            yield event


def _headers(kwargs: dict[str, Any]) -> httpx2.Headers:
    """The request's headers, asking for a stream unless the caller asked for something else
    (in any case: `accept` is the same header as `Accept`)."""
    headers = httpx2.Headers(kwargs.pop("headers", None))
    headers.setdefault("Accept", MEDIA_TYPE)
    return headers


def _is_event_stream(response: httpx2.Response) -> bool:
    """What an `EventSource` reads: a 200 of type `text/event-stream`, in any case."""
    content_type = response.headers.get("content-type", "")
    return next_ready_state(response.status_code, content_type) == "OPEN"


@contextmanager
def connect_sse(
    client: httpx2.Client, method: str, url: str, **kwargs: Any
) -> Iterator[EventStream]:
    """Send a request and yield its events; `NotAnEventStream` if the answer is not a stream."""
    with client.stream(method, url, headers=_headers(kwargs), **kwargs) as response:
        if not _is_event_stream(response):
            raise NotAnEventStream(response, next(response.iter_bytes(), b""))
        yield EventStream(response)


@asynccontextmanager
async def aconnect_sse(
    client: httpx2.AsyncClient, method: str, url: str, **kwargs: Any
) -> AsyncIterator[EventStream]:
    """`connect_sse` for an `httpx2.AsyncClient`: iterate the stream with `async for`."""
    async with client.stream(method, url, headers=_headers(kwargs), **kwargs) as response:
        if not _is_event_stream(response):
            raise NotAnEventStream(response, await anext(aiter(response.aiter_bytes()), b""))
        yield EventStream(response)
