"""FastAPI's own SSE: `fastapi.sse.EventSourceResponse` + `ServerSentEvent`.

- `GET /events` an endless stream. Event n is a pure function of n (`event_for`), so a client
  that resumes can check it missed nothing. Every connection's first event sets `retry`,
  every fifth event is named `milestone`, `?heartbeat=` adds comments between events,
  `?limit=N` ends the connection after N events (finite, for tests), `?until=M` says the
  stream has M events in all: a client that reconnects after the last one gets 204, which
  tells `EventSource` to stop reconnecting. A `Last-Event-ID` header resumes after that id
  (`?lastEventId=` too, for a page that opens a new `EventSource` itself and so cannot set
  the header); a malformed one is a 400 with a message, never a crash.
- `GET /echo?text=` one event holding `text` as is (for the XSS demo), then 204 on reconnect.
- `GET /data-vs-raw?text=` the same text twice, as `data=` (JSON-encoded: a string gets quotes)
  and as `raw_data=` (sent as is), to show the difference on the wire.
- `POST /chat` SSE over POST (what `EventSource` cannot do; `fetch` can): a fake reply to
  `{"message": ...}`, tokens as JSON, then a raw `[DONE]`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from server.apps.fastapi_streams.observability import SESSION_COOKIE, STATS
from server.asgi.json_body import json_model, openapi_body
from server.event_ids import parse_counter_id
from server.seed_texts import REPLY

MILESTONE_EVERY = 5


def event_for(n: int) -> ServerSentEvent:
    """Event number `n` of the endless stream: the same n always gives the same event."""
    return ServerSentEvent(
        data={"n": n, "square": n * n},
        id=str(n),
        event="milestone" if n % MILESTONE_EVERY == 0 else None,
    )


def resume_after(
    request: Request,
    last_event_id: Annotated[str | None, Header()] = None,
    until: Annotated[int | None, Query(ge=1, description="the stream's last id, if any")] = None,
    url_id: Annotated[
        str | None, Query(alias="lastEventId", description="if no Last-Event-ID header")
    ] = None,
) -> int:
    """Dependency: log the request, validate `Last-Event-ID`, answer 204 when nothing is left.

    It runs before the response starts, so it can still choose the status code: once the
    generator runs, the 200 has gone out and an error can only end the stream.

    The header is what a browser sends when it reconnects by itself. A page that opens a new
    `EventSource` (after a 502 closed the old one for good) cannot set headers, so it passes
    the id as `?lastEventId=`; the header wins when both are there.
    """
    STATS.log_request(request.url.path, request.headers, request.cookies.get(SESSION_COOKIE, ""))
    try:
        if last_event_id is None and url_id is not None:
            after = parse_counter_id(url_id, "lastEventId")
        else:
            after = parse_counter_id(last_event_id)
    except ValueError as error:
        raise HTTPException(status_code=400, detail=str(error)) from None
    if until is not None and after >= until:
        # 204 No Content: the standard's way to tell EventSource "done, don't reconnect".
        raise HTTPException(status_code=204)
    return after


def echo_after(request: Request, last_event_id: Annotated[str | None, Header()] = None) -> int:
    """`/echo` has one event: a client that has it gets 204."""
    return resume_after(request, last_event_id, until=1)


class ChatRequest(BaseModel):
    message: str = Field(max_length=2000)


# Read strictly (`server.asgi.json_body`): FastAPI's own parsing answers 3,000-deep JSON with a 500,
# and its 422 echoes a lone surrogate it then cannot encode, another 500. 2,000 characters
# take at most 12 bytes each as JSON escapes (an emoji is `\ud83d\ude00`), so 32 KB is plenty.
chat_body = json_model(ChatRequest, limit=32_768)


native = APIRouter(tags=["native: EventSourceResponse"])


@native.get("/events", response_class=EventSourceResponse)
async def events(
    after: Annotated[int, Depends(resume_after)],
    limit: Annotated[int | None, Query(ge=1, description="events on this connection")] = None,
    until: Annotated[int | None, Query(ge=1)] = None,
    interval: Annotated[float, Query(ge=0, le=60)] = 1.0,
    heartbeat: Annotated[float | None, Query(gt=0, le=60)] = None,
    retry: Annotated[int, Query(ge=0, le=600_000, description="ms")] = 1000,
) -> AsyncIterator[ServerSentEvent]:
    """Endless (or `limit`ed) numbered events, resuming after `Last-Event-ID`.

    The first event also carries `retry` and a comment saying where it resumed. Not in a block
    of their own: a block without data is nothing to a browser, but httpx-sse and the openai
    client dispatch it as an event with empty data. The heartbeats cannot avoid that here:
    `fastapi.sse` ends every comment with a blank line (lessons 03 and 04 show who sees what).
    """
    loop = asyncio.get_running_loop()
    with STATS.track("events"):
        n, sent = after, 0
        while (limit is None or sent < limit) and (until is None or n < until):
            if sent:
                deadline = loop.time() + interval
                while heartbeat is not None and deadline - loop.time() > heartbeat:
                    await asyncio.sleep(heartbeat)
                    yield ServerSentEvent(comment="heartbeat")
                await asyncio.sleep(max(0.0, deadline - loop.time()))
            n += 1
            event = event_for(n)
            if not sent:
                event = event.model_copy(
                    update={"retry": retry, "comment": f"resuming after {after}"}
                )
            sent += 1
            yield event


@native.get("/echo", response_class=EventSourceResponse)
async def echo(
    after: Annotated[int, Depends(echo_after)],
    text: Annotated[str, Query(max_length=2000)] = "",
) -> AsyncIterator[ServerSentEvent]:
    """One event holding `text` as is (`raw_data`); a reconnect gets 204."""
    with STATS.track("echo"):
        yield ServerSentEvent(raw_data=text, id="1", retry=500)


@native.get("/data-vs-raw", response_class=EventSourceResponse)
async def data_vs_raw(
    text: Annotated[str, Query(max_length=2000)] = "hello",
) -> AsyncIterator[ServerSentEvent]:
    """`text` as `data` (always JSON-encoded), then as `raw_data` (as is)."""
    yield ServerSentEvent(data=text)
    yield ServerSentEvent(raw_data=text)


@native.post("/chat", response_class=EventSourceResponse, openapi_extra=openapi_body(ChatRequest))
async def chat(
    body: Annotated[ChatRequest, Depends(chat_body)],
    delay: Annotated[float, Query(ge=0, le=5)] = 0.03,
) -> AsyncIterator[ServerSentEvent]:
    """SSE over POST: JSON tokens (`data` is always JSON-encoded), then a raw `[DONE]`."""
    with STATS.track("chat"):
        for token in f"“{body.message}” {REPLY}":
            yield ServerSentEvent(data={"token": token})
            await asyncio.sleep(delay)
        yield ServerSentEvent(raw_data="[DONE]")
