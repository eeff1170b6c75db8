"""The seeds' way: a generator of `server.sse.encode` bytes in a `StreamingResponse`.

`server.asgi.sse_response.sse_response` adds the SSE media type and headers.

- `GET /countdown?start=5&interval=1` the seeds' countdown: 5, 4, 3, 2, 1, "발사!".
- `GET /countdown-plain` the same numbers with no SSE framing, to show why framing is needed.
- `GET /fake-llm?delay=0.05` the seeds' fake LLM: one character per event, then `[DONE]`.
- `GET /sync-vs-async/sync` and `/sync-vs-async/async` the same slow stream from a sync
  generator (runs in the threadpool) and from an async one that calls `time.sleep` (blocks
  the event loop), and `GET /ping`, whose latency shows the difference. `n × delay` is at
  most `MAX_BLOCK` seconds (a 400 above it): the async one stalls every client that long.
- `GET /ping-sync` the same answer from a plain `def` endpoint: it needs a worker thread, so it
  waits while sync generators hold all 40 of them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse

from server.apps.fastapi_streams.observability import STATS
from server.asgi.sse_response import sse_response
from server.seed_texts import LIFTOFF, REPLY
from server.sse import Event, encode

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
MAX_BLOCK = 2.0
"""Seconds one demo stream may sleep in all: the async one blocks the whole server that long."""


def slow_stream(
    n: Annotated[int, Query(ge=1, le=100)] = 4,
    delay: Annotated[float, Query(ge=0, le=5)] = 0.5,
) -> tuple[int, float]:
    """Dependency: `n` sleeps of `delay` seconds, refused (400) if they add up to over
    `MAX_BLOCK`: without it one GET of the async demo could stall the app for 500 s."""
    if n * delay > MAX_BLOCK:
        raise HTTPException(
            400,
            f"n × delay is {n * delay:g} s: at most {MAX_BLOCK:g} s (MAX_BLOCK), since the "
            "async demo blocks every client of the server that long; lower n or delay",
        )
    return n, delay


@handmade.get("/sync-vs-async/sync")
def slow_sync(sleeps: Annotated[tuple[int, float], Depends(slow_stream)]) -> StreamingResponse:
    n, delay = sleeps

    def generate() -> Iterator[bytes]:
        for i in range(1, n + 1):
            time.sleep(delay)  # fine: this runs in a worker thread
            yield encode(Event(data=str(i)))

    return sse_response(generate())


@handmade.get("/sync-vs-async/async")
def slow_async(sleeps: Annotated[tuple[int, float], Depends(slow_stream)]) -> StreamingResponse:
    n, delay = sleeps

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
