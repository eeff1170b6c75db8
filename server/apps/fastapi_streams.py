"""The FastAPI app of lessons 04 and 05: every way of streaming, side by side.

Run it with the launcher (`start_app("server.apps.fastapi_streams:app")`) or
`uvicorn server.apps.fastapi_streams:app`. It is three routers, read top to bottom:

`handmade`, the seeds' way: a generator of `server.sse.encode` bytes in a `StreamingResponse`
(`server.sse_response.sse_response` adds the SSE media type and headers).

- `GET /countdown?start=5&interval=1` the seeds' countdown: 5, 4, 3, 2, 1, "발사!".
- `GET /countdown-plain` the same numbers with no SSE framing, to show why framing is needed.
- `GET /fake-llm?delay=0.05` the seeds' fake LLM: one character per event, then `[DONE]`.
- `GET /sync-vs-async/sync` and `/sync-vs-async/async` the same slow stream from a sync
  generator (runs in the threadpool) and from an async one that calls `time.sleep` (blocks
  the event loop), and `GET /ping`, whose latency shows the difference.
- `GET /ping-sync` the same answer from a plain `def` endpoint: it needs a worker thread, so it
  waits while sync generators hold all 40 of them.

`native`, FastAPI's own SSE: `fastapi.sse.EventSourceResponse` + `ServerSentEvent`.

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

`observability`: `GET /stats` (streams active / finished / cancelled), `GET /headers-log`
(the `Last-Event-ID`, `Origin` and cookie each stream request carried), `POST /stats/reset`,
and `POST /gc` (run Python's garbage collector now: what an abandoned sync stream waits for).

`GET /` is lesson 05's page (`server/apps/static/`). `COURSE_CORS_ORIGINS` (comma-separated
origins, in the server's environment) lets those origins read the streams with cookies.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from server.event_ids import parse_counter_id
from server.seed_texts import LIFTOFF, REPLY
from server.sse import Event, encode
from server.sse_response import sse_response
from server.stream_stats import StreamStats

STATIC = Path(__file__).parent / "static"
MILESTONE_EVERY = 5
SESSION_COOKIE = "course_session"

STATS = StreamStats()  # every generator below runs inside `STATS.track(name)`


# --- the hand-made way: StreamingResponse + server.sse.encode ----------------------------

handmade = APIRouter(tags=["hand-made: StreamingResponse"])


@handmade.get("/countdown")
def countdown(
    start: Annotated[int, Query(ge=0, le=100)] = 5,
    interval: Annotated[float, Query(ge=0, le=10)] = 1.0,
) -> StreamingResponse:
    """The seeds' countdown. A sync generator: it runs in the threadpool, so `time.sleep`
    blocks one worker thread, not the event loop. But it holds that thread for the life of
    the stream, and there are 40 (anyio's default): the 41st sync stream, and every sync
    endpoint, waits for one to be free."""

    def generate() -> Iterator[bytes]:
        with STATS.track("countdown"):
            for i in range(start, 0, -1):
                yield encode(Event(data=str(i)))
                time.sleep(interval)
            yield encode(Event(data=LIFTOFF))

    return sse_response(generate())


@handmade.get("/countdown-plain")
def countdown_plain(
    start: Annotated[int, Query(ge=0, le=100)] = 5,
    interval: Annotated[float, Query(ge=0, le=10)] = 0.0,
) -> StreamingResponse:
    """The countdown without framing: the client cannot tell where one message ends."""

    def generate() -> Iterator[bytes]:
        for i in range(start, 0, -1):
            yield str(i).encode()
            time.sleep(interval)
        yield LIFTOFF.encode()

    return StreamingResponse(generate(), media_type="text/plain; charset=utf-8")


@handmade.get("/fake-llm")
def fake_llm(delay: Annotated[float, Query(ge=0, le=5)] = 0.05) -> StreamingResponse:
    """The seeds' fake LLM: one character per event, then `[DONE]`, as OpenAI does."""

    def generate() -> Iterator[bytes]:
        with STATS.track("fake-llm"):
            for token in REPLY:
                yield encode(Event(data=token))
                time.sleep(delay)
            yield encode(Event(data="[DONE]"))

    return sse_response(generate())


# Sync vs async generators, who blocks whom: the same slow stream twice.
@handmade.get("/sync-vs-async/sync")
def slow_sync(
    n: Annotated[int, Query(ge=1, le=100)] = 4,
    delay: Annotated[float, Query(ge=0, le=5)] = 0.5,
) -> StreamingResponse:
    def generate() -> Iterator[bytes]:
        for i in range(1, n + 1):
            time.sleep(delay)  # fine: this runs in a worker thread
            yield encode(Event(data=str(i)))

    return sse_response(generate())


@handmade.get("/sync-vs-async/async")
def slow_async(
    n: Annotated[int, Query(ge=1, le=100)] = 4,
    delay: Annotated[float, Query(ge=0, le=5)] = 0.5,
) -> StreamingResponse:
    async def generate() -> AsyncIterator[bytes]:
        for i in range(1, n + 1):
            time.sleep(delay)  # the bug on purpose: blocks the event loop, every client waits
            yield encode(Event(data=str(i)))

    return sse_response(generate())


@handmade.get("/ping")
async def ping() -> dict[str, bool]:
    """Answers at once, unless the event loop is blocked."""
    return {"pong": True}


@handmade.get("/ping-sync")
def ping_sync() -> dict[str, bool]:
    """The same answer from a `def` endpoint, which FastAPI runs in the thread pool: it waits
    when sync generators hold every worker thread."""
    return {"pong": True}


# --- FastAPI's native SSE: EventSourceResponse + ServerSentEvent -------------------------


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


@native.post("/chat", response_class=EventSourceResponse)
async def chat(
    body: ChatRequest, delay: Annotated[float, Query(ge=0, le=5)] = 0.03
) -> AsyncIterator[ServerSentEvent]:
    """SSE over POST: JSON tokens (`data` is always JSON-encoded), then a raw `[DONE]`."""
    with STATS.track("chat"):
        for token in f"“{body.message}” {REPLY}":
            yield ServerSentEvent(data={"token": token})
            await asyncio.sleep(delay)
        yield ServerSentEvent(raw_data="[DONE]")


# --- observability: what the streams did, and what clients sent --------------------------

observability = APIRouter(tags=["observability"])


@observability.get("/stats")
async def stats() -> dict[str, dict[str, int]]:
    return STATS.snapshot()


@observability.post("/stats/reset")
async def stats_reset() -> dict[str, bool]:
    STATS.reset()
    return {"reset": True}


@observability.get("/headers-log")
async def headers_log() -> list[dict[str, Any]]:
    return STATS.requests()


@observability.post("/gc")
async def collect_garbage() -> dict[str, int]:
    """Run Python's cycle collector now. A sync generator abandoned by its client is closed
    (its `finally` and `with` blocks run) only when the collector frees it: lesson 04 calls
    this to show that, instead of waiting for the collector to run on its own schedule."""
    return {"unreachable": gc.collect()}


# --- the app ------------------------------------------------------------------------------

page = APIRouter(include_in_schema=False)


@page.get("/")
def index() -> FileResponse:
    """Lesson 05's page; its script and styles are under `/static`."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def create_app(cors_origins: list[str] | None = None) -> FastAPI:
    """The lessons' app; `cors_origins` are origins allowed to read its streams with cookies."""
    api = FastAPI(title="SSE course: streaming with FastAPI")
    for router in (handmade, native, observability, page):
        api.include_router(router)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    if cors_origins:
        api.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Last-Event-ID"],
        )
    return api


def _cors_from_env() -> list[str]:
    origins = os.environ.get("COURSE_CORS_ORIGINS", "")
    return [origin.strip() for origin in origins.split(",") if origin.strip()]


app = create_app(_cors_from_env())
