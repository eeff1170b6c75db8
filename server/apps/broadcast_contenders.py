"""The broadcast room as a reader would write it without this course: the capacity benches' rivals.

`bench/bench_capacity.py` measures the course's broadcast app (`server.apps.broadcast`, lesson
09) against what an engineer would otherwise copy from a tutorial: a set of `asyncio.Queue`s,
one per client, and a publish that puts each message in every queue; each stream turns the
message into an SSE event itself. The same room, three ways to stream it (`CONTENDER`):

- `starlette`: a raw Starlette `StreamingResponse` over an async generator that formats
  `data: ...` by hand, with a `: ping` after `HEARTBEAT` seconds of silence;
- `sse-starlette`: `sse_starlette.EventSourceResponse` yielding dicts (its own `ping`);
- `fastapi`: FastAPI's native `fastapi.sse.EventSourceResponse` yielding `ServerSentEvent`s
  (its own 15 s keep-alive comment).

The routes are the course app's, so one load client drives all four:

    GET  /events    the room as SSE, from now on
    POST /publish   one JSON object to everyone here: 201
    GET  /          which contender this is, and how many clients it holds

What the tutorial version does differently from lesson 09, on purpose (it is the baseline):
the queues are unbounded (a client that stops reading grows its queue without end, where the
course's hub drops it), and every message is encoded once per client, where the course's
`Message` is encoded once. Nothing here is meant to be copied: it is what the benches beat.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.sse import EventSourceResponse as FastAPIEventSourceResponse
from fastapi.sse import ServerSentEvent
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from server.settings import number

CONTENDERS = ("starlette", "sse-starlette", "fastapi")
# Seconds of silence before a `: ping`: 15, as FastAPI's (fixed) and sse-starlette's defaults.
HEARTBEAT = number(os.environ, "HEARTBEAT", 15.0, low=0.05, high=3600)


class Room:
    """Every client's queue, and a publish that fills them all (the tutorial fan-out)."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[str]] = set()

    def publish(self, data: str) -> None:
        for queue in self.queues:
            queue.put_nowait(data)

    async def messages(self, heartbeat: float | None) -> AsyncIterator[str | None]:
        """This client's messages as they come; None after `heartbeat` seconds of silence."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.queues.add(queue)
        try:
            while True:
                try:
                    async with asyncio.timeout(heartbeat):
                        yield await queue.get()
                except TimeoutError:
                    yield None
        finally:
            self.queues.discard(queue)


ROOM = Room()


async def starlette_events(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        async for data in ROOM.messages(HEARTBEAT):
            yield b": ping\n\n" if data is None else f"data: {data}\n\n".encode()

    return StreamingResponse(
        body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


async def sse_starlette_events(request: Request) -> Response:
    async def body() -> AsyncIterator[dict[str, str]]:
        async for data in ROOM.messages(None):  # sse-starlette sends its own ping
            if data is not None:
                yield {"data": data}

    return EventSourceResponse(body(), ping=max(1, round(HEARTBEAT)))  # whole seconds only


async def fastapi_events() -> AsyncIterator[ServerSentEvent]:
    async for data in ROOM.messages(None):  # FastAPI sends its own keep-alive comment
        if data is not None:
            yield ServerSentEvent(raw_data=data)


async def publish(request: Request) -> Response:
    data = json.dumps(json.loads(await request.body()), separators=(",", ":"))
    ROOM.publish(data)
    # The course app's answer, so that `server.clients.publisher` drives both.
    return JSONResponse({"id": None, "worker": str(os.getpid())}, status_code=201)


def create_app(contender: str) -> Starlette:
    """The room streamed the `contender` way (one of `CONTENDERS`)."""
    if contender not in CONTENDERS:
        raise ValueError(f"CONTENDER must be one of {', '.join(CONTENDERS)}, got {contender!r}")

    async def status(request: Request) -> Response:
        return JSONResponse({"contender": contender, "clients": len(ROOM.queues)})

    if contender == "fastapi":
        api = FastAPI()
        api.get("/events", response_class=FastAPIEventSourceResponse)(fastapi_events)
        api.add_api_route("/publish", publish, methods=["POST"])
        api.add_api_route("/", status)
        return api
    stream = starlette_events if contender == "starlette" else sse_starlette_events
    routes = [
        Route("/", status),
        Route("/events", stream),
        Route("/publish", publish, methods=["POST"]),
    ]
    return Starlette(routes=routes)


app = create_app(os.environ.get("CONTENDER", "starlette"))
