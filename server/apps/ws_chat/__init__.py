"""Lesson 10's chat, over WebSocket and over SSE + POST, from one app and one fan-out.

    start_app("server.apps.ws_chat:app", env={"BROKER": "memory"}, args=UVICORN_ARGS)

A user's message goes in; the room sees it, then the assistant's reply, one token per
message (the seeds' fake reply, `server.seed_texts.REPLY`, a syllable at a time). Both
transports carry the same room messages from the same broker (`server.fanout`), so what
differs between them is the transport and nothing else:

    WS   /ws?limit=N&last_id=ID   in: {"text": ..., "tokens": n} per message, on the same
                                  connection; out: one text frame per room message
    POST /messages                {"text": ..., "tokens": n}: 202 {"reply": ...}
    GET  /events?limit=N          the room as SSE; `Last-Event-ID` resumes (streams broker)
    GET  /stats                   open connections and CPU seconds, of this worker
    GET  /                        the chat page (`static/ws_chat.html`), both transports

A room message is a JSON object: `{"type": "user", "reply": r, "text": ...}`, then
`{"type": "token", "reply": r, "text": "안"}` per token, then `{"type": "done", "reply": r}`.
Over SSE the broker's id is the `id:` field; over WebSocket there is no such field, so the id
goes inside the JSON (`{"id": "1700000000000-0", ...}`, spliced into the object without
parsing it again). A WebSocket client resumes by sending it back in `?last_id=` (a browser's
`WebSocket` cannot set headers); nothing does that for it: it is lesson 10's exercise.

`BROKER=memory|pubsub|streams` (and `REDIS_URL`, `WORKER_NAME`) as in lesson 09's broadcast
app: on two workers, a WebSocket room needs the same pub/sub as an SSE one. A bad `last_id` or
message closes the WebSocket with 1008 and the reason (a 400 for SSE); a client a whole queue
behind is dropped (1013 "try again later"); a send not accepted in `SEND_TIMEOUT` ends it.
A reply has at most `MAX_TOKENS` tokens, and a client sends at most `MESSAGE_RATE` messages a
minute (a 429 with `Retry-After`, or a 1008 close): see `room.py`. uvicorn buffers a whole
WebSocket frame (16 MiB by default) before the app sees it: run it with `UVICORN_ARGS`
(`--ws-max-size`, what the app accepts), and a bigger frame is refused (1009) unread.

Every refusal over HTTP is a JSON `{"detail", "error"}` (`server.asgi.refusals`, `REFUSALS` below).
The stream, the room's settings and the broker's lifespan are lesson 09's
(`server.fanout.serving`); per-app state is the lifespan's state dict.

Settings, from the environment: `TOKEN_DELAY` (0.05 s between tokens; 0 for a benchmark),
`MESSAGE_RATE` (120 a minute per client), `HEARTBEAT` (15 s: an SSE comment; a WebSocket
relies on uvicorn's pings, `--ws-ping-interval`), `SEND_TIMEOUT` (5 s), `QUEUE_SIZE`,
`STREAM_MAXLEN`, `RETRY_MS` (none sent unless set).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from server.apps.ws_chat.room import (
    MAX_MESSAGE_BYTES,
    STATS,
    BadMessage,
    Room,
    Settings,
    TooManyMessages,
)
from server.apps.ws_chat.stream import events, post_message
from server.apps.ws_chat.websocket import chat_socket, websocket_text
from server.asgi.json_body import BadBody
from server.asgi.refusals import Refusal, refusal_handlers
from server.fanout import Broker, BrokerUnavailable
from server.fanout.serving import State, room_lifespan

__all__ = [
    "UVICORN_ARGS",
    "WS_MAX_SIZE",
    "Room",
    "Settings",
    "app",
    "create_app",
    "websocket_text",
]

STATIC = Path(__file__).parent.parent / "static"
WS_MAX_SIZE = MAX_MESSAGE_BYTES  # the largest frame the app accepts, in bytes
UVICORN_ARGS = ("--ws-max-size", str(WS_MAX_SIZE))  # start_app(..., args=UVICORN_ARGS)
REFUSALS = {
    BadBody: Refusal(400, "bad_body"),  # or its own 413
    BadMessage: Refusal(400, "bad_message"),
    TooManyMessages: Refusal(429, "rate"),  # with its own Retry-After
    BrokerUnavailable: Refusal(503, "unavailable", {"Retry-After": "1"}),
}


async def stats(request: Request) -> Response:
    room: Room = request.state.room
    body = {
        "worker": room.settings.worker,
        "hub": asdict(room.broker.hub.stats()),
        "cpu_seconds": time.process_time(),
    }
    return JSONResponse({**body, **STATS.snapshot()})


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "ws_chat.html", headers={"Cache-Control": "no-cache"})


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def with_room(broker: Broker) -> AsyncIterator[State]:
        room = Room(broker, settings)
        try:
            yield {"room": room}
        finally:
            await room.stop()

    routes = [
        Route("/", page),
        WebSocketRoute("/ws", chat_socket),
        Route("/messages", post_message, methods=["POST"]),
        Route("/events", events),
        Route("/stats", stats),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(
        routes=routes,
        lifespan=room_lifespan(settings, with_room),
        exception_handlers=refusal_handlers(REFUSALS),
    )


app = create_app(Settings.from_env())
